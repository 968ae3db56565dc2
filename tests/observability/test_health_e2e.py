"""/health and /status follow the servers: healthy, degraded (some down) or critical (all down).

/health answers 503 unless healthy; /status always 200, as the original."""

from __future__ import annotations

import re

from observability.helpers import UPSCALE, run_job, wait_status
from support.gateway import gateway_settings, hosts_of, running_gateway

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def instance_health(body: dict) -> dict[str, bool]:
    return {i["name"]: i["healthy"] for i in body["comfyui_instances"]["instances"]}


async def test_a_lone_server_going_down_makes_health_critical_until_it_returns(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fake = fakes[0]
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await run_job(gw, UPSCALE)
        healthy = await wait_status(gw, "/health", 200, "healthy")
        await fake.stop()
        down = await wait_status(gw, "/health", 503, "critical")
        quick_down = (await gw.client.get("/status"))
        await fake.start()
        back = await wait_status(gw, "/health", 200, "healthy", timeout=20)  # after the breaker's backoff
        quick_back = await gw.client.get("/status")

    # The seed's shape: status, timestamp, uptime, instances, job processing, performance.
    assert ISO_MS.fullmatch(healthy["timestamp"]), healthy["timestamp"]
    assert ISO_MS.fullmatch(healthy["uptime"]["started_at"]), healthy["uptime"]
    assert healthy["uptime"]["total_uptime_hours"] >= 0
    assert healthy["comfyui_instances"]["total"] == 1 and healthy["comfyui_instances"]["healthy"] == 1
    assert instance_health(healthy) == {fake.host_port: True}
    assert healthy["job_processing"]["processor_running"] is True
    assert healthy["job_processing"]["active_jobs"] == 0
    assert healthy["performance"] == {"total_jobs_processed": 1, "success_rate": "100.00%", "error_rate": "0%",
                                      "average_processing_time_seconds": healthy["performance"][
                                          "average_processing_time_seconds"], "jobs_per_hour": 60}
    assert healthy["issues"] == [] and healthy["last_health_check"] == healthy["timestamp"]

    assert down["comfyui_instances"]["healthy"] == 0
    assert instance_health(down) == {fake.host_port: False}
    assert down["issues"] == ["No healthy ComfyUI instances available"]
    assert quick_down.status_code == 200
    assert quick_down.json()["status"] == "critical" and quick_down.json()["healthy_instances"] == 0

    assert instance_health(back) == {fake.host_port: True}
    assert quick_back.status_code == 200
    assert set(quick_back.json()) >= {"status", "healthy_instances", "active_jobs", "uptime_hours"}
    assert quick_back.json()["healthy_instances"] == 1


async def test_two_servers_all_down_then_back_one_at_a_time(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    fa, fb = fakes
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await wait_status(gw, "/health", 200, "healthy")
        await fa.stop()
        degraded = await wait_status(gw, "/health", 503, "degraded")
        degraded_quick = await gw.client.get("/status")
        await fb.stop()
        critical = await wait_status(gw, "/status", 200, "critical")
        critical_health = await gw.client.get("/health")
        await fb.start()
        await wait_status(gw, "/health", 503, "degraded")
        await fa.start()
        healthy = await wait_status(gw, "/health", 200, "healthy", timeout=20)  # after the breaker's backoff
        healthy_quick = await gw.client.get("/status")

    assert instance_health(degraded) == {fa.host_port: False, fb.host_port: True}
    assert degraded["comfyui_instances"]["healthy"] == 1
    assert degraded["issues"] == ["1 of 2 ComfyUI instances unhealthy"]
    assert degraded_quick.status_code == 200
    assert degraded_quick.json()["status"] == "degraded" and degraded_quick.json()["healthy_instances"] == 1
    assert critical["healthy_instances"] == 0
    assert critical_health.status_code == 503 and critical_health.json()["status"] == "critical"
    assert instance_health(healthy) == {fa.host_port: True, fb.host_port: True}
    assert healthy_quick.status_code == 200 and healthy_quick.json()["healthy_instances"] == 2


async def test_status_metrics_has_the_seed_shape(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.02)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await run_job(gw, UPSCALE)
        body = (await gw.client.get("/status/metrics")).json()
    assert body["jobs"] == {"total_processed": 1, "completed": 1, "failed": 0, "success_rate": "100.00%",
                            "error_rate": "0%", "jobs_per_hour": 60, "currently_active": 0, "max_concurrent": 4}
    assert body["performance"]["average_processing_time_seconds"] > 0
    assert body["performance"]["p95_processing_time_ms"] > 0
