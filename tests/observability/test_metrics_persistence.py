"""Metrics survive restarts: saved on demand, on shutdown and every METRICS_SAVE_INTERVAL, restored on start."""

from __future__ import annotations

import json

from observability.helpers import REMOVE_BG, UPSCALE, run_job
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.waiting import eventually


def persisted_view(summary: dict) -> dict:
    """What a restart must keep (uptime.start_time and timestamps of this process are not in it)."""
    return {
        "jobs": {k: v for k, v in summary["jobs"].items() if k != "jobs_per_hour"},
        "instances": {name: {k: v for k, v in view.items() if k not in ("utilization_percent", "placement")}
                      for name, view in summary["instances"].items()},
        "errors": summary["errors"],
        "percentiles": {k: v for k, v in summary["performance"].items() if k.startswith("p")},
        "metrics_since": summary["uptime"]["metrics_since"],
    }


async def test_saved_metrics_survive_restarts(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.02)
    fake = fakes[0]
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    path = settings.metrics_file_path
    async with running_gateway(settings) as gw:
        for _ in range(2):
            await run_job(gw, UPSCALE)
        fake.fail_next(1, message="cannot cut this out")
        failed_id = await run_job(gw, REMOVE_BG, "failed")

        async def counted() -> bool:  # a job's figures are taken, and its server freed, after its state is written
            figures = (await gw.client.get("/api/metrics")).json()
            idle = all(view["active_jobs"] == 0 for view in figures["instances"].values())
            return figures["jobs"]["total_processed"] == 3 and idle

        await eventually(counted, timeout=5, what="the third job in the figures")
        before_save = (await gw.client.get("/api/metrics/persistence")).json()
        saved = await gw.client.post("/api/metrics/save")
        status = (await gw.client.get("/api/metrics/persistence")).json()
        first = (await gw.client.get("/api/metrics")).json()

    assert before_save["file_exists"] is False and before_save["last_saved_at"] is None
    assert saved.status_code == 200
    assert saved.json()["persistence"]["last_save_ok"] is True
    state = json.loads(path.read_text(encoding="utf-8"))  # valid JSON, whole
    assert state["totals"]["total"] == 3 and state["totals"]["failed"] == 1
    assert status["file_path"] == str(path)
    assert status["file_exists"] is True and status["last_save_ok"] is True
    assert status["last_saved_at"].endswith("Z")
    assert status["save_interval_ms"] == settings.metrics_save_interval
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]  # no temp file left behind

    # A new process on the same data dir starts from the saved figures.
    async with running_gateway(settings) as gw:
        second = (await gw.client.get("/api/metrics")).json()
        assert persisted_view(second) == persisted_view(first)
        assert second["uptime"]["start_time"] > first["uptime"]["start_time"]  # uptime is this process's
        assert second["errors"]["recent_errors"][0]["job_id"] == failed_id
        await run_job(gw, UPSCALE)  # counted here, never saved by hand: saved on shutdown
    async with running_gateway(settings) as gw:
        third = (await gw.client.get("/api/metrics")).json()
    assert (third["jobs"]["total_processed"], third["jobs"]["total_successful"]) == (4, 3)
    assert third["jobs"]["by_type"][UPSCALE]["total"] == 3
    assert third["instances"][fake.host_port]["total_jobs"] == 4
    assert third["uptime"]["metrics_since"] == first["uptime"]["metrics_since"]


async def test_metrics_are_saved_every_interval(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), metrics_save_interval=1000)
    path = settings.metrics_file_path
    async with running_gateway(settings) as gw:
        await run_job(gw, UPSCALE)

        async def saved_with_the_job() -> bool:
            # the file is renamed into place a moment before the save is counted as done
            done = (await gw.client.get("/api/metrics/persistence")).json()["last_save_ok"] is not None
            return done and path.exists() and json.loads(path.read_text(encoding="utf-8"))["totals"]["total"] == 1

        await eventually(saved_with_the_job, timeout=5, what="an automatic save")
        status = (await gw.client.get("/api/metrics/persistence")).json()
    assert status["save_interval_ms"] == 1000
    assert status["last_save_ok"] is True and status["file_exists"] is True


async def test_a_failed_save_is_answered_in_json_and_the_next_one_recovers(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    folder = settings.metrics_file_path.parent
    async with running_gateway(settings) as gw:
        await run_job(gw, UPSCALE)
        folder.rmdir()
        folder.write_text("a file where the metrics folder should be")  # every write now fails
        failed = await gw.client.post("/api/metrics/save")
        status_failed = (await gw.client.get("/api/metrics/persistence")).json()
        folder.unlink()
        folder.mkdir()
        saved = await gw.client.post("/api/metrics/save")
    assert failed.status_code == 500
    assert failed.json()["code"] == "metrics_save_failed" and failed.json()["error"]
    assert failed.json()["persistence"]["last_save_ok"] is False
    assert status_failed["last_save_ok"] is False and status_failed["file_exists"] is False
    assert saved.status_code == 200 and saved.json()["persistence"]["last_save_ok"] is True
    assert json.loads(settings.metrics_file_path.read_text(encoding="utf-8"))["totals"]["total"] == 1
