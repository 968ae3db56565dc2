from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from comfy_gateway.observability.job_metrics import JobMetrics

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
HOUR = 3600.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _run_known_mix(m: JobMetrics) -> None:
    """9 remove-background (8 ok on gpu-a, 1 never reached a server), 2 upscale on gpu-b (1 ok)."""
    for i in range(1, 9):
        m.job_started("remove-background", "gpu-a", queue_wait_s=i * 0.1)
        m.job_finished("remove-background", "gpu-a", True, float(i), job_id=f"rb-{i}")
    m.job_started("upscale-image", "gpu-b", queue_wait_s=1.0)
    m.job_finished("upscale-image", "gpu-b", True, 10.0, job_id="up-1")
    m.job_started("upscale-image", "gpu-b", queue_wait_s=2.0)
    m.job_finished("upscale-image", "gpu-b", False, 3.0, job_id="up-2", error="boom")
    m.job_finished("remove-background", None, False, None, job_id="rb-9", error="timed out in queue")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(tmp_path: Path, clock: FakeClock) -> JobMetrics:
    m = JobMetrics(tmp_path / "metrics" / "metrics.json", replica="r1", clock=clock)
    _run_known_mix(m)
    clock.now = T0 + HOUR
    return m


def test_job_counts_and_rates(metrics: JobMetrics) -> None:
    jobs = metrics.summary()["jobs"]
    assert jobs["total_processed"] == 11
    assert jobs["total_successful"] == 9
    assert jobs["total_failed"] == 2
    assert jobs["success_rate"] == "81.82%"
    assert jobs["jobs_per_hour"] == 11.0
    assert jobs["by_type"] == {
        "remove-background": {
            "total": 9,
            "successful": 8,
            "failed": 1,
            "success_rate": "88.89%",
            "average_processing_time_ms": 4500,
        },
        "upscale-image": {
            "total": 2,
            "successful": 1,
            "failed": 1,
            "success_rate": "50.00%",
            "average_processing_time_ms": 10000,
        },
    }


def test_performance_percentiles_over_successful_jobs(metrics: JobMetrics) -> None:
    assert metrics.performance() == {
        "average_processing_time_ms": 5111,  # (1+...+8 + 10) s / 9
        "average_processing_time_seconds": 5.11,
        "p50_processing_time_ms": 5000,
        "p90_processing_time_ms": 10000,
        "p95_processing_time_ms": 10000,
        "p99_processing_time_ms": 10000,
        "average_queue_wait_ms": 660,
        "p50_queue_wait_ms": 500,
        "p90_queue_wait_ms": 1000,
        "p95_queue_wait_ms": 2000,
        "p99_queue_wait_ms": 2000,
        "jobs_per_hour": 11.0,
        "success_rate": "81.82%",
    }


def test_reading_holds_the_raw_figures(metrics: JobMetrics) -> None:
    reading = metrics.reading()
    assert (reading.counts.totals.total, reading.counts.totals.failed, reading.jobs_per_hour) == (11, 2, 11)
    assert len(reading.processing_ms) == 9 and max(reading.processing_ms) == 10000
    assert [e["job_id"] for e in reading.recent_errors] == ["up-2", "rb-9"]  # oldest first


def test_errors_view(metrics: JobMetrics) -> None:
    errors = metrics.errors()
    assert errors["total_errors"] == 2
    assert errors["error_rate"] == "18.18%"  # two decimals at most, trailing zeros dropped
    assert errors["errors_by_type"] == {"upscale-image": 1, "remove-background": 1}
    assert errors["errors_by_instance"] == {"gpu-b": 1, "unassigned": 1}
    assert errors["recent_errors"] == [
        {
            "timestamp": "2023-11-14T22:13:20.000Z",
            "job_id": "rb-9",
            "job_type": "remove-background",
            "instance": None,
            "message": "timed out in queue",
        },
        {
            "timestamp": "2023-11-14T22:13:20.000Z",
            "job_id": "up-2",
            "job_type": "upscale-image",
            "instance": "gpu-b",
            "message": "boom",
        },
    ]


def test_average_processing_seconds_per_type(metrics: JobMetrics) -> None:
    assert metrics.average_processing_seconds("remove-background") == 4.5
    assert metrics.average_processing_seconds("upscale-image") == 10.0  # the failure is not counted
    assert metrics.average_processing_seconds("never-seen") is None


def test_average_seconds_are_rounded_from_the_exact_average_not_the_rounded_ms(tmp_path: Path,
                                                                                clock: FakeClock) -> None:
    """34.55 ms: its whole ms (35) would round to 0.04 s, the /status/metrics view says 0.03."""
    m = JobMetrics(tmp_path / "m.json", clock=clock)
    for seconds in (0.0344, 0.0347):
        m.job_started("upscale-image", "gpu-a", queue_wait_s=0.0)
        m.job_finished("upscale-image", "gpu-a", True, seconds, job_id=f"up-{seconds}")
    performance = m.performance()
    assert performance["average_processing_time_ms"] == 35
    assert performance["average_processing_time_seconds"] == 0.03


def test_recent_errors_keep_the_newest_hundred(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "m.json", clock=clock)
    for i in range(150):
        m.job_finished("upscale-image", "gpu-a", False, 1.0, job_id=f"j{i}", error="bad")
    recent = m.errors()["recent_errors"]
    assert len(recent) == 100
    assert recent[0]["job_id"] == "j149"
    assert recent[-1]["job_id"] == "j50"
    assert m.errors()["total_errors"] == 150


def test_instance_views(metrics: JobMetrics) -> None:
    assert metrics.instance("gpu-a") == {
        "instance": "gpu-a",
        "total_jobs": 8,
        "successful_jobs": 8,
        "failed_jobs": 0,
        "active_jobs": 0,
        "success_rate": "100.00%",
        "average_processing_time_ms": 4500,
        "utilization_percent": 1.0,  # 36 busy seconds in the hour since first seen
        "last_job_at": "2023-11-14T22:13:20.000Z",
    }
    gpu_b = metrics.instance("gpu-b")
    assert gpu_b is not None
    assert (gpu_b["total_jobs"], gpu_b["failed_jobs"], gpu_b["success_rate"]) == (2, 1, "50.00%")
    assert gpu_b["utilization_percent"] == 0.4  # 13 s / 3600 s
    assert metrics.instance("nope") is None
    assert list(metrics.instances()) == ["gpu-a", "gpu-b"]
    assert metrics.summary()["instances"] == metrics.instances()


def test_active_jobs_and_released_attempts(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "m.json", clock=clock)
    m.job_started("upscale-image", "gpu-a", 0.0)
    m.job_started("upscale-image", "gpu-a", 0.0)
    assert m.instance("gpu-a")["active_jobs"] == 2  # type: ignore[index]
    m.job_released("gpu-a", processing_s=5.0)  # retried elsewhere
    m.job_started("upscale-image", "gpu-b", 0.0)
    m.job_finished("upscale-image", "gpu-b", True, 2.0, job_id="x")
    a, b = m.instance("gpu-a"), m.instance("gpu-b")
    assert a is not None and b is not None
    assert (a["active_jobs"], a["total_jobs"]) == (1, 0)
    assert (b["active_jobs"], b["total_jobs"]) == (0, 1)
    assert m.summary()["jobs"]["total_processed"] == 1
    # finishing more than started never goes negative
    m.job_finished("upscale-image", "gpu-b", True, 2.0, job_id="y")
    assert m.instance("gpu-b")["active_jobs"] == 0  # type: ignore[index]


def test_utilization_is_capped_at_100(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "m.json", clock=clock)
    for n in range(3):
        m.job_started("upscale-image", "gpu-a", 0.0)
        m.job_finished("upscale-image", "gpu-a", True, 50.0, job_id=str(n))
    clock.now = T0 + 100
    assert m.instance("gpu-a")["utilization_percent"] == 100.0  # type: ignore[index]


def test_percentiles_use_a_bounded_sample_but_averages_everything(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "m.json", clock=clock, sample_size=10)
    for i in range(1, 101):  # 2 ms, 4 ms, ... 200 ms
        m.job_finished("upscale-image", "gpu-a", True, i * 0.002, job_id=str(i))
    perf = m.performance()
    assert perf["average_processing_time_ms"] == 101
    assert perf["p50_processing_time_ms"] == 190  # over 182..200 only
    assert perf["p99_processing_time_ms"] == 200


def test_empty_metrics_read_as_zero(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "m.json", clock=clock)
    summary = m.summary()
    assert summary["jobs"]["total_processed"] == 0
    assert summary["jobs"]["success_rate"] == "0%"
    assert summary["errors"]["error_rate"] == "0%"
    assert summary["performance"]["p95_processing_time_ms"] == 0
    assert summary["instances"] == {}
    json.dumps(summary)


def test_jobs_per_hour_floors_the_window_at_one_minute(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "m.json", clock=clock)
    clock.now = T0 + 1
    m.job_finished("upscale-image", "gpu-a", True, 0.5, job_id="a")
    assert m.reading().jobs_per_hour == 60


def test_summary_uptime_and_timestamp(metrics: JobMetrics) -> None:
    summary = metrics.summary()
    assert summary["timestamp"] == "2023-11-14T23:13:20.000Z"
    assert summary["uptime"] == {
        "start_time": "2023-11-14T22:13:20.000Z",
        "total_uptime_ms": 3_600_000,
        "total_uptime_hours": 1.0,
        "metrics_since": "2023-11-14T22:13:20.000Z",
    }
    assert set(summary) >= {"timestamp", "uptime", "jobs", "performance", "instances", "errors"}
    assert summary["performance"] == metrics.performance()
    assert summary["errors"] == metrics.errors()


# ---- persistence ------------------------------------------------------------------------------


def _figures(m: JobMetrics) -> dict[str, Any]:
    s = m.summary()
    return {"jobs": s["jobs"], "performance": s["performance"], "errors": s["errors"], "inst": s["instances"]}


def test_save_then_load_restores_the_same_figures(
    metrics: JobMetrics, clock: FakeClock, tmp_path: Path
) -> None:
    metrics.save()
    path = tmp_path / "metrics" / "metrics.json"
    assert os.listdir(path.parent) == ["metrics.json"]  # no temp file left behind
    restored = JobMetrics(path, replica="r1", clock=clock)
    assert restored.load() is True
    assert _figures(restored) == _figures(metrics)


def test_rate_window_survives_restarts(metrics: JobMetrics, clock: FakeClock, tmp_path: Path) -> None:
    metrics.save()
    clock.now = T0 + 2 * HOUR  # a new process, started later
    restored = JobMetrics(tmp_path / "metrics" / "metrics.json", clock=clock)
    restored.load()
    summary = restored.summary()
    assert summary["uptime"]["total_uptime_ms"] == 0  # this process just started
    assert summary["uptime"]["metrics_since"] == "2023-11-14T22:13:20.000Z"
    assert summary["jobs"]["jobs_per_hour"] == 5.5  # 11 jobs over two hours


def test_active_jobs_are_not_restored(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "m.json", clock=clock)
    m.job_started("upscale-image", "gpu-a", 0.0)
    m.save()
    restored = JobMetrics(tmp_path / "m.json", clock=clock)
    restored.load()
    assert restored.instance("gpu-a")["active_jobs"] == 0  # type: ignore[index]


def test_missing_file_starts_empty(tmp_path: Path, clock: FakeClock) -> None:
    m = JobMetrics(tmp_path / "absent.json", clock=clock)
    assert m.load() is False
    assert m.summary()["jobs"]["total_processed"] == 0


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 1, "totals": "x"}',
        '{"version": 99}',
        "",
    ],
)
def test_corrupt_file_is_tolerated(tmp_path: Path, clock: FakeClock, content: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    m = JobMetrics(path, clock=clock)
    m.job_finished("upscale-image", "gpu-a", True, 1.0, job_id="kept")
    assert m.load() is False
    assert m.summary()["jobs"]["total_processed"] == 1  # what was counted before is untouched


def test_failed_replace_keeps_the_old_file_and_no_temp(
    metrics: JobMetrics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics.save()
    path = tmp_path / "metrics" / "metrics.json"
    before = path.read_bytes()
    metrics.job_finished("upscale-image", "gpu-a", True, 1.0, job_id="new")

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk says no")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk says no"):
        metrics.save()
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["metrics.json"]
    assert metrics.persistence_status()["last_save_ok"] is False


def test_persistence_status(metrics: JobMetrics, tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "metrics" / "metrics.json"
    status = metrics.persistence_status()
    assert status == {
        "file_path": str(path),
        "save_interval_ms": None,
        "last_saved_at": None,
        "last_save_ok": None,
        "file_exists": False,
        "file_size_bytes": 0,
    }
    metrics.save()
    status = metrics.persistence_status()
    assert status["last_saved_at"] == "2023-11-14T23:13:20.000Z"
    assert status["last_save_ok"] is True
    assert status["file_exists"] is True
    assert status["file_size_bytes"] == path.stat().st_size > 0


def test_save_failure_is_reported(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    m = JobMetrics(blocker / "metrics.json", clock=clock)
    with pytest.raises(OSError):
        m.save()
    assert m.persistence_status()["last_save_ok"] is False


async def test_autosave_writes_periodically_until_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    m = JobMetrics(path)
    m.job_finished("upscale-image", "gpu-a", True, 1.0, job_id="a")
    task = asyncio.create_task(m.run_autosave(0.01))
    for _ in range(200):
        if m.persistence_status()["last_saved_at"] is not None:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert json.loads(path.read_text())["totals"]["total"] == 1
    status = m.persistence_status()
    assert status["save_interval_ms"] == 10
    assert status["last_save_ok"] is True


async def test_asave_writes_the_file(tmp_path: Path) -> None:
    m = JobMetrics(tmp_path / "m.json")
    await m.asave()
    restored = JobMetrics(tmp_path / "m.json")
    assert restored.load() is True


# ---- cluster view -----------------------------------------------------------------------------


def test_merge_sums_replicas(tmp_path: Path, clock: FakeClock) -> None:
    one = JobMetrics(tmp_path / "1.json", replica="r1", clock=clock)
    _run_known_mix(one)
    two = JobMetrics(tmp_path / "2.json", replica="r2", clock=clock)
    two.job_started("upscale-image", "gpu-b", 0.5)
    two.job_finished("upscale-image", "gpu-b", True, 4.0, job_id="r2-1")
    two.job_started("upscale-image", "gpu-c", 0.5)  # still running

    merged = JobMetrics.merge([one.export_state(), two.export_state()])
    assert merged["replicas"] == ["r1", "r2"]
    assert merged["jobs"]["total_processed"] == 12
    assert merged["jobs"]["total_successful"] == 10
    assert merged["jobs"]["success_rate"] == "83.33%"
    assert merged["jobs"]["by_type"]["upscale-image"]["total"] == 3
    assert merged["jobs"]["by_type"]["upscale-image"]["average_processing_time_ms"] == 7000
    assert merged["instances"]["gpu-b"]["total_jobs"] == 3
    assert merged["instances"]["gpu-c"]["active_jobs"] == 1
    assert merged["errors"]["total_errors"] == 2
    assert merged["errors"]["errors_by_instance"] == {"gpu-b": 1, "unassigned": 1}
    assert merged["performance"]["average_processing_time_ms"] == 5000  # (46 + 4) s / 10
    json.dumps(merged)


def test_merge_of_nothing_is_empty() -> None:
    merged = JobMetrics.merge([])
    assert merged["jobs"]["total_processed"] == 0
    assert merged["instances"] == {}
