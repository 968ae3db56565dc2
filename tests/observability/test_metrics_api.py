"""The JSON metrics API after a known mix of jobs on two servers: exact counts, every view agrees."""

from __future__ import annotations

import asyncio
from typing import Any

from observability.helpers import REMOVE_BG, UPSCALE, run_known_mix
from support.gateway import gateway_settings, hosts_of, running_gateway


def ordered_percentiles(perf: dict[str, Any], name: str) -> list[int]:
    values = [perf[f"p{p}_{name}_ms"] for p in (50, 90, 95, 99)]
    assert all(isinstance(v, int) for v in values), values
    assert values == sorted(values), f"{name} percentiles out of order: {values}"
    return values


async def test_a_known_mix_is_counted_exactly_in_every_view(fake_servers, tmp_path):
    fakes = await fake_servers(2, service_time=0.02)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        mix = await run_known_mix(gw, fakes)
        summary = (await gw.client.get("/api/metrics")).json()
        performance = (await gw.client.get("/api/metrics/performance")).json()
        errors = (await gw.client.get("/api/metrics/errors")).json()
        instances = (await gw.client.get("/api/metrics/instances")).json()
        one = (await gw.client.get(f"/api/metrics/instances/{mix.b}")).json()
        basic = (await gw.client.get("/status/metrics")).json()
        health = (await gw.client.get("/health")).json()
        failed_status = (await gw.client.get(f"/api/jobs/{mix.failed[0][0]}/status")).json()

    jobs = summary["jobs"]
    assert (jobs["total_processed"], jobs["total_successful"], jobs["total_failed"]) == (10, 8, 2)
    assert jobs["success_rate"] == "80.00%"
    assert jobs["jobs_per_hour"] == 600.0  # 10 jobs over the one-minute floor of the rate window
    by_type = {name: {k: v[k] for k in ("total", "successful", "failed", "success_rate")}
               for name, v in jobs["by_type"].items()}
    assert by_type == {
        UPSCALE: {"total": 6, "successful": 5, "failed": 1, "success_rate": "83.33%"},
        REMOVE_BG: {"total": 4, "successful": 3, "failed": 1, "success_rate": "75.00%"},
    }
    for view in jobs["by_type"].values():
        assert view["average_processing_time_ms"] > 0

    def counts(view: dict[str, Any]) -> tuple[int, int, int, str]:
        return view["total_jobs"], view["successful_jobs"], view["failed_jobs"], view["success_rate"]

    assert {name: counts(v) for name, v in summary["instances"].items()} == {
        mix.a: (4, 3, 1, "75.00%"),
        mix.b: (6, 5, 1, "83.33%"),
    }
    for view in summary["instances"].values():
        assert view["active_jobs"] == 0
        assert 0 < view["utilization_percent"] <= 100
        assert view["last_job_at"].endswith("Z")
    assert summary["queue"] == {"pending_jobs": 0, "active_jobs": 0}
    assert summary["uptime"]["total_uptime_ms"] > 0
    assert summary["uptime"]["metrics_since"] == summary["uptime"]["start_time"]

    # The last errors, newest first, name the job, its type, its server and the server's message.
    assert {key: errors[key] for key in summary["errors"]} == summary["errors"]
    assert errors["total_errors"] == 2
    assert errors["error_rate"] == "20%"
    assert errors["errors"]["failed_jobs_by_type"][UPSCALE] == {"total_failed": 1, "total_jobs": 6,
                                                                "failure_rate": "16.67%"}
    assert errors["errors_by_type"] == {UPSCALE: 1, REMOVE_BG: 1}
    assert errors["errors_by_instance"] == {mix.a: 1, mix.b: 1}
    recent = [(e["job_id"], e["job_type"], e["instance"], e["message"]) for e in errors["recent_errors"]]
    assert recent == list(reversed(mix.failed))
    assert all(e["timestamp"].endswith("Z") for e in errors["recent_errors"])
    assert failed_status["error"] == "boom on A" and failed_status["error_details"]["code"] == "workflow_failed"

    # Processing time covers the 8 successful jobs; queue wait every attempt.
    assert performance["success_rate"] == "80.00%"
    p_processing = ordered_percentiles(performance, "processing_time")
    ordered_percentiles(performance, "queue_wait")
    assert p_processing[0] > 0
    assert performance["average_processing_time_ms"] > 0
    for key in ("p50_processing_time_ms", "p95_processing_time_ms", "p99_queue_wait_ms"):
        assert performance[key] == summary["performance"][key]

    # The per-instance endpoints: every configured server, with live state added.
    assert instances["count"] == 2
    assert {name: counts(v) for name, v in instances["instances"].items()} == {
        mix.a: (4, 3, 1, "75.00%"), mix.b: (6, 5, 1, "83.33%")}
    assert instances["instances"][mix.a]["circuit_breaker"] == "open"  # steered away from A last
    assert instances["instances"][mix.b]["circuit_breaker"] == "closed"
    assert instances["instances"][mix.b]["healthy"] is True
    assert counts(one) == (6, 5, 1, "83.33%")
    assert one["instance"] == mix.b and one["active_jobs"] == 0

    # The seed's basic view and /health tell the same story.
    assert basic["jobs"] == {"total_processed": 10, "completed": 8, "failed": 2, "success_rate": "80.00%",
                             "error_rate": "20%", "jobs_per_hour": 600, "currently_active": 0, "max_concurrent": 4}
    assert basic["performance"]["p95_processing_time_ms"] == performance["p95_processing_time_ms"]
    assert basic["performance"]["average_processing_time_seconds"] == performance["average_processing_time_seconds"]
    assert (health["performance"]["total_jobs_processed"], health["performance"]["success_rate"]) == (10, "80.00%")


async def test_instance_views_know_configured_servers_and_refuse_unknown_ones(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        unknown = await gw.client.get("/api/metrics/instances/nowhere:8188")
        idle = await gw.client.get(f"/api/metrics/instances/{fakes[0].host_port}")
        listing = (await gw.client.get("/api/metrics/instances")).json()
        empty = (await gw.client.get("/api/metrics")).json()

    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/json")
    body = unknown.json()
    assert body["code"] == "not_found" and body["error"] == "Instance not found"
    assert body["available_instances"] == sorted(f.host_port for f in fakes)
    assert idle.status_code == 200
    assert idle.json()["total_jobs"] == 0 and idle.json()["circuit_breaker"] == "closed"
    assert set(listing["instances"]) == {f.host_port for f in fakes} and listing["count"] == 2
    assert empty["jobs"]["total_processed"] == 0 and empty["jobs"]["success_rate"] == "0%"
    assert empty["errors"]["recent_errors"] == []


async def test_a_slot_held_while_the_dispatcher_looks_for_a_job_is_not_an_active_job(fake_servers, tmp_path):
    """The dispatcher takes a slot before it claims, so that replicas do not all claim for one
    freed slot; an idle pool must still read as idle while that claim is under way."""
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        dispatcher = gw.gateway.dispatcher
        real_claim = dispatcher.store.claim_next
        claiming, go_on = asyncio.Event(), asyncio.Event()

        async def slow_claim(*args: Any, **kwargs: Any) -> Any:
            claiming.set()
            await go_on.wait()
            return await real_claim(*args, **kwargs)

        dispatcher.store.claim_next = slow_claim  # type: ignore[method-assign]
        dispatcher.notify()
        await asyncio.wait_for(claiming.wait(), 5)
        held = await gw.gateway.slots.usage()
        metrics = (await gw.client.get("/api/metrics")).json()
        status = (await gw.client.get("/status")).json()
        go_on.set()

    assert held == {fakes[0].host_port: 1}  # the slot really is held during the claim
    assert metrics["instances"][fakes[0].host_port]["active_jobs"] == 0
    assert metrics["queue"]["active_jobs"] == 0
    assert status["active_jobs"] == 0
