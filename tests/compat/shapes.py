"""The original middleware's bodies as SEED-API.md documents them, written as data (see checks.py).

Only the original's keys are listed: the gateway may add its own beside them, never drop or reshape these.
"""

from __future__ import annotations

from typing import Any

REMOVED = ("[removed - use result endpoint]",)
STATES = ("pending", "processing", "completed", "failed")
HEALTH = ("healthy", "degraded", "critical")
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")
FORMATS = ("PNG", "JPEG", "WEBP")


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        out.update(part)
    return out


# §3.2, §4.1
SYNC = {"imageBase64": "datauri", "promptId": "str", "jobId": "uuid", "format": FORMATS, "crop": "absent"}
SYNC_CROP = merged(SYNC, {"crop": "bool"})
ACCEPTED = {"job_id": "uuid", "status": ("pending",),
            "message": ("Job submitted successfully. Use /api/jobs/{job_id}/status to track progress.",),
            "estimated_completion_time": "range", "status_url": "str", "result_url": "str", "format": FORMATS,
            "crop": "absent"}
ACCEPTED_CROP = merged(ACCEPTED, {"crop": "bool"})
NO_FILE = {"error": ("No image file provided.",)}
BAD_FORMAT = {"error": ("Invalid format",), "details": ("Format must be one of: PNG, JPEG, WEBP",)}
SYNC_FAILED = {"error": "str", "details": "str"}  # the original answered 500; the gateway a specific 5xx

# §5.1
STATUS_COMMON = {"job_id": "uuid", "status": STATES, "type": "str", "created_time": "iso", "updated_time": "iso",
                 "processing_time_seconds": "int", "comfyui_instance": "str?"}
STATUS_PENDING = merged(STATUS_COMMON, {"status": ("pending",), "message": ("Job is queued for processing",),
                                        "estimated_completion_time_seconds": "int", "result_url": "absent",
                                        "error": "absent"})
STATUS_PROCESSING = merged(STATUS_COMMON, {"status": ("processing",), "comfyui_instance": "str",
                                           "message": ("Job is currently being processed",),
                                           "estimated_remaining_time_seconds": "int", "progress_percentage": "int",
                                           "result_url": "absent", "error": "absent"})
STATUS_COMPLETED = merged(STATUS_COMMON, {"status": ("completed",), "comfyui_instance": "str",
                                          "message": ("Job completed successfully",), "completed_time": "iso",
                                          "result_url": "str", "progress_percentage": (100,), "error": "absent"})
STATUS_FAILED = merged(STATUS_COMMON, {"status": ("failed",), "message": ("Job failed to process",),
                                       "error": "str?", "failed_time": "iso", "result_url": "absent"})
JOB_NOT_FOUND = {"error": ("Job not found",), "job_id": "str"}
JOB_NOT_FOUND_BARE = {"error": ("Job not found",)}

# §6
RESULT = {"job_id": "uuid", "status": ("completed",), "type": "str", "completed_time": "iso",
          "processing_time_seconds": "int", "result": {"image_base64": "datauri", "prompt_id": "str"}}
NOT_COMPLETED = {"error": ("Job not completed",), "status": ("pending", "processing"), "message": "str",
                 "status_url": "str"}
NOT_COMPLETED_FAILED = merged(NOT_COMPLETED, {"status": ("failed",), "message": ("Job failed to process",)})

# §2.4, §7
DATA = {"imageSize": "int", "mimeType": "str", "originalFilename": "str", "format": FORMATS, "submittedAt": "iso",
        "imageBase64_size": REMOVED}
# `result` differs by state (null until completed): see the two variants below.
JOB = {"id": "uuid", "type": "str", "status": STATES, "data": DATA, "createdTime": "epoch_ms",
       "updatedTime": "epoch_ms", "comfyuiInstance": "str?", "result": "any", "error": "str?"}
JOB_COMPLETED = merged(JOB, {"status": ("completed",),
                             "data": {**{k: v for k, v in DATA.items() if k not in ("submittedAt", "imageBase64_size")},
                                      "crop": "bool", "submittedAt": "iso", "imageBase64_size": REMOVED},
                             "comfyuiInstance": "str", "result": {"promptId": "str", "base64_size": REMOVED},
                             "error": (None,), "processingStartTime": "epoch_ms", "completedTime": "epoch_ms",
                             "processingDuration": "int"})
JOB_FAILED = merged(JOB, {"status": ("failed",), "result": (None,), "error": "str", "processingStartTime": "epoch_ms",
                          "failedTime": "epoch_ms", "processingDuration": "int"})
JOB_STATS = {"total": "int", "byStatus": {"pending": "int", "processing": "int", "completed": "int", "failed": "int"},
             "byType": {"*": "int"}, "byInstance": {"*": "int"}}
PROCESSOR_STATS = {"isRunning": "bool", "activeJobs": "int", "maxConcurrentJobs": "int",
                   "instanceJobCounts": {"*": "int"}, "processingInterval": "int", "maxJobsPerInstance": "int"}
JOB_LIST = {"jobs": [JOB], "total": "int"}
DELETED = {"message": ("Job deleted successfully",)}
CLEANED = {"message": "str", "cleanedCount": "int"}

# §8
BREAKER_BRIEF = {"state": BREAKER_STATES, "failures": "int", "error_rate": "pct2"}
HEALTH_BODY = {
    "status": HEALTH, "timestamp": "iso",
    "uptime": {"total_uptime_ms": "int", "total_uptime_hours": "num2", "session_uptime_ms": "int",
               "session_uptime_hours": "num2", "started_at": "iso", "session_started_at": "iso"},
    "comfyui_instances": {"total": "int", "healthy": "int", "unhealthy": "int",
                          "instances": [{"id": "str", "host": "str", "is_healthy": "bool",
                                         "last_health_check": "epoch_ms?", "circuit_breaker": BREAKER_BRIEF,
                                         "active_jobs": "int"}]},
    "job_processing": {"processor_running": "bool", "active_jobs": "int", "max_concurrent_jobs": "int",
                       "total_jobs_in_memory": "int", "pending_jobs": "int", "processing_jobs": "int"},
    "connections": {"total_pools": "int",
                    "pool_stats": {"*": {"host": "str", "total": "int", "connected": "int", "available": "int",
                                         "queued": "int", "totalUses": "int"}}},
    "performance": {"total_jobs_processed": "int", "success_rate": "pct2", "error_rate": "pctN",
                    "average_processing_time_seconds": "num2", "jobs_per_hour": "num2"},
    "issues": ["str"], "last_health_check": "iso"}
QUICK_STATUS = {"status": HEALTH, "timestamp": "iso", "healthy_instances": "int", "total_instances": "int",
                "active_jobs": "int", "total_jobs_processed": "int", "uptime_hours": "num2",
                "processor_running": "bool"}
TALLY = {"total_jobs": "int", "completed_jobs": "int", "failed_jobs": "int", "success_rate": "pct2",
         "average_processing_time_ms": "num"}
BASIC_METRICS = {
    "timestamp": "iso",
    "system": {"uptime_hours": "num2", "session_uptime_hours": "num2", "started_at": "iso"},
    "jobs": {"total_processed": "int", "completed": "int", "failed": "int", "success_rate": "pct2",
             "error_rate": "pctN", "jobs_per_hour": "num2", "currently_active": "int", "max_concurrent": "int"},
    "performance": {"average_processing_time_ms": "num2", "average_processing_time_seconds": "num2",
                    "min_processing_time_ms": "int", "max_processing_time_ms": "int",
                    "p50_processing_time_ms": "int", "p95_processing_time_ms": "int"},
    "instances": {"*": merged(TALLY, {"current_active_jobs": "int"})},
    "job_types": {"*": TALLY}}

# §9
INST_STATS = {"totalJobs": "int", "completedJobs": "int", "failedJobs": "int", "totalProcessingTime": "int",
              "averageProcessingTime": "num", "successRate": "pct2"}
ERROR_ENTRY = {"timestamp": "iso", "type": "str", "instance": "str", "error": "str"}
PERCENTILES = {"p50_ms": "int", "p90_ms": "int", "p95_ms": "int", "p99_ms": "int", "min_ms": "int", "max_ms": "int",
               "recent_sample_size": "int", "note": ("Based on recent samples only",)}
UTILIZATION = {"*": {"job_count": "int", "utilization_percentage": "num2", "success_rate": "pct2",
                     "average_processing_time_ms": "num"}}
LOAD_BALANCER = {"totalInstances": "int", "healthyInstances": "int", "totalActiveJobs": "int",
                 "instances": {"*": {"host": "str", "activeJobs": "int", "isHealthy": "bool"}}}
STATS = {
    "system": {"total_uptime_ms": "int", "total_uptime_hours": "num2", "session_uptime_ms": "int",
               "session_uptime_hours": "num2", "system_start_time": "iso", "session_start_time": "iso",
               "metrics_file_path": "str"},
    "jobs": {"total": "int", "completed": "int", "failed": "int", "success_rate": "pct2", "error_rate": "pctN",
             "jobs_per_hour": "num2"},
    "processing_time": {"average_ms": "num2", "average_seconds": "num2", "percentiles": PERCENTILES,
                        "total_processing_time_ms": "int", "total_processing_time_hours": "num3"},
    "instances": {"*": INST_STATS}, "job_types": {"*": INST_STATS},
    "errors": {"total_errors": "int", "recent_errors": [ERROR_ENTRY], "error_history_size": "int"}}
METRICS = {"timestamp": "iso", "metrics": merged(STATS, {
    "load_balancer": LOAD_BALANCER, "job_processor": PROCESSOR_STATS, "job_manager": JOB_STATS,
    "instance_utilization": UTILIZATION})}
PERFORMANCE = {"timestamp": "iso", "performance": {
    "uptime_hours": "num2", "total_jobs": "int", "success_rate": "pct2", "average_processing_time_seconds": "num2",
    "jobs_per_hour": "num2", "percentiles": PERCENTILES, "instance_utilization": UTILIZATION}}
ERRORS = {"timestamp": "iso", "errors": {
    "total_errors": "int", "error_rate": "pctN", "recent_errors": [ERROR_ENTRY], "error_history_size": "int",
    "failed_jobs_by_type": {"*": {"total_failed": "int", "total_jobs": "int", "failure_rate": "pct2"}}}}
INSTANCES = {"timestamp": "iso", "instances": {"*": INST_STATS}, "utilization": UTILIZATION,
             "load_balancer": LOAD_BALANCER}
ONE_INSTANCE = {"timestamp": "iso", "instance": "str",
                "metrics": merged(INST_STATS, {"current_active_jobs": "int", "is_healthy": "bool"})}
INSTANCE_NOT_FOUND = {"error": ("Instance not found",), "available_instances": ["str"]}
SAVED = {"message": ("Metrics saved successfully",), "timestamp": "iso", "file_path": "str"}
PERSISTENCE = {"timestamp": "iso", "persistence": {"file_path": "str", "auto_save_enabled": "bool",
                                                   "save_interval_ms": "int", "save_interval_minutes": "num"}}

# §10
WINDOW = {"totalRequests": "int", "errorCount": "int", "errorRate": "pct2"}
BREAKERS = {"timestamp": "iso", "breakers": {"*": {"state": BREAKER_STATES, "failures": "int", "successes": "int",
                                                   "metrics": WINDOW, "nextAttempt": "iso?", "resetTimeout": "int"}}}


def breaker_changed(action: str, state: str, next_attempt: Any) -> dict[str, Any]:
    return {"message": (f"Circuit breaker {action} successfully",), "name": "str",
            "newStatus": {"name": "str", "state": (state,), "failures": "int", "successes": "int",
                          "nextAttempt": next_attempt, "currentResetTimeout": "int", "metrics": WINDOW}}


BREAKER_OPENED = breaker_changed("opened", "OPEN", "epoch_ms")
BREAKER_CLOSED = breaker_changed("closed", "CLOSED", (None,))
BREAKER_NOT_FOUND = {"error": ("Circuit breaker not found",), "name": "str"}
