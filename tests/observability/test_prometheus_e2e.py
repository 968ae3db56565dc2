"""GET /metrics after real traffic: Prometheus text that prometheus-client parses, with every series."""

from __future__ import annotations

from observability.helpers import REMOVE_BG, UPSCALE, run_known_mix, sample_value, scrape, submit
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.waiting import eventually

P = "comfy_gateway_"


async def test_metrics_endpoint_holds_every_series_with_real_values(fake_servers, tmp_path):
    fakes = await fake_servers(2, service_time=0.02)
    fa, fb = fakes
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        mix = await run_known_mix(gw, fakes)  # ends with A's breaker forced open, B's closed
        await gw.client.get("/api/jobs/not-a-job/status")  # a 404 on a templated route
        await gw.client.get("/no/such/path")
        families = await scrape(gw)

        # A server that drops its event sockets is reconnected to, and that is counted.
        await fb.drop_sockets()

        async def reconnected() -> bool:
            value = sample_value((await scrape(gw))[P + "websocket_reconnects"], "_total", instance=mix.b)
            return (value or 0) >= 1

        await eventually(reconnected, timeout=5, what="a counted WebSocket reconnect")

        # A job sent to a server that stopped answering is an upstream error (and goes elsewhere).
        await fb.stop()
        job_id = await submit(gw, UPSCALE)

        async def upstream_error_counted() -> bool:
            family = (await scrape(gw))[P + "upstream_errors"]
            return any(s.labels.get("instance") == mix.b and s.value >= 1 for s in family.samples)

        await eventually(upstream_error_counted, timeout=10, what="a counted upstream error")
        await gw.client.post(f"/api/circuit-breakers/{mix.a}/close")
        await gw.wait_job(job_id)
        after = await scrape(gw)

    # HTTP requests by route template and status, with a latency histogram.
    requests = families[P + "http_requests"]
    assert requests.type == "counter"
    assert sample_value(requests, "_total", method="POST", route=f"/api/async/{UPSCALE}", status="202") == 6
    assert sample_value(requests, "_total", method="POST", route=f"/api/async/{REMOVE_BG}", status="202") == 4
    assert sample_value(requests, "_total", method="GET", route="/api/jobs/{job_id}/status", status="404") == 1
    assert sample_value(requests, "_total", method="GET", route="unmatched", status="404") == 1
    routes = {s.labels["route"] for s in requests.samples}
    assert not any(mix.a in r or "not-a-job" in r for r in routes), routes  # templates, never raw paths
    latency = families[P + "http_request_duration_seconds"]
    assert latency.type == "histogram"
    route = {"method": "POST", "route": f"/api/async/{UPSCALE}"}
    assert sample_value(latency, "_count", **route) == 6
    assert sample_value(latency, "_bucket", le="+Inf", **route) == 6
    assert sample_value(latency, "_sum", **route) > 0

    # Jobs by type, instance and outcome: exactly the mix.
    jobs = families[P + "jobs"]
    assert jobs.type == "counter"
    by_labels = {(s.labels["type"], s.labels["instance"], s.labels["outcome"]): s.value
                 for s in jobs.samples if s.name == P + "jobs_total"}
    assert by_labels == {
        (UPSCALE, mix.a, "completed"): 2, (UPSCALE, mix.a, "failed"): 1, (REMOVE_BG, mix.a, "completed"): 1,
        (UPSCALE, mix.b, "completed"): 3, (REMOVE_BG, mix.b, "completed"): 2, (REMOVE_BG, mix.b, "failed"): 1,
    }

    # Job duration and queue wait histograms by type.
    for name in ("job_duration_seconds", "job_queue_wait_seconds"):
        family = families[P + name]
        assert family.type == "histogram"
        assert sample_value(family, "_count", type=UPSCALE) == 6
        assert sample_value(family, "_count", type=REMOVE_BG) == 4
    assert sample_value(families[P + "job_duration_seconds"], "_sum", type=UPSCALE) > 0

    # Point-in-time gauges, read at scrape time.
    assert sample_value(families[P + "queue_depth"]) == 0
    for instance in (mix.a, mix.b):
        assert sample_value(families[P + "jobs_running"], instance=instance) == 0
        assert sample_value(families[P + "instance_healthy"], instance=instance) in (0, 1)
    assert sample_value(families[P + "instance_healthy"], instance=mix.b) == 1
    assert sample_value(families[P + "circuit_breaker_state"], instance=mix.a) == 2  # forced open
    assert sample_value(families[P + "circuit_breaker_state"], instance=mix.b) == 0
    for name in ("queue_depth", "jobs_running", "instance_healthy", "circuit_breaker_state"):
        assert families[name if name.startswith(P) else P + name].type == "gauge"

    # Declared before anything happened, counted once it did.
    assert families[P + "websocket_reconnects"].type == "counter"
    assert families[P + "upstream_errors"].type == "counter"
    kinds = {s.labels["kind"] for s in after[P + "upstream_errors"].samples if s.name.endswith("_total")}
    assert kinds and all(kinds), kinds
    assert sample_value(after[P + "instance_healthy"], instance=mix.b) == 0  # stopped
    assert sample_value(after[P + "instance_healthy"], instance=fa.host_port) == 1


async def test_live_gauges_show_running_and_waiting_jobs(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fake = fakes[0]
    fake.pause()
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), max_jobs_per_instance=2)) as gw:
        ids = [await submit(gw, UPSCALE) for _ in range(3)]

        async def two_queued_at_the_server() -> bool:
            return fake.stats()["queue_depth"] == 2

        await eventually(two_queued_at_the_server, what="two prompts queued at the paused server")
        busy = await scrape(gw)
        summary = (await gw.client.get("/api/metrics")).json()
        health = (await gw.client.get("/health")).json()
        fake.resume()
        for job_id in ids:
            await gw.wait_job(job_id)
        idle = await scrape(gw)

    assert sample_value(busy[P + "jobs_running"], instance=fake.host_port) == 2
    assert sample_value(busy[P + "queue_depth"]) == 1
    assert summary["queue"] == {"pending_jobs": 1, "active_jobs": 2}
    assert summary["instances"][fake.host_port]["active_jobs"] == 2
    assert health["job_processing"]["active_jobs"] == 2 and health["job_processing"]["pending_jobs"] == 1
    assert sample_value(idle[P + "jobs_running"], instance=fake.host_port) == 0
    assert sample_value(idle[P + "queue_depth"]) == 0
    assert sample_value(idle[P + "jobs"], "_total", type=UPSCALE, instance=fake.host_port, outcome="completed") == 3
