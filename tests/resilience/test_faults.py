"""Fault tests over real sockets: an in-process gateway in front of in-process fake ComfyUI servers.

Each test prints `submitted=N completed=N failed=N lost=N` (run with `pytest -s`) and asserts that
no job was lost and how many completed and failed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from comfy_gateway.comfyui.breaker import BreakerState, CircuitBreaker
from comfy_gateway.jobs.outputs import output_key
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png
from support.proxy import FaultProxy
from support.tally import breaker_state, submit, tally
from support.waiting import eventually


def report(t) -> None:
    print(f"\n{t.line()}")


@pytest.mark.slow
async def test_server_killed_while_100_jobs_run_all_complete_on_the_others(fake_servers, tmp_path):
    fakes = await fake_servers(3, service_time=0.05)
    victim = fakes[0]
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_concurrent_jobs=6, max_jobs_per_instance=2)
    async with running_gateway(settings) as gw:
        ids = await asyncio.gather(*(submit(gw.client) for _ in range(100)))
        await eventually(lambda: victim.stats()["completed"] >= 2 and victim.stats()["queue_depth"] > 0,
                    what="jobs running on the server about to be killed")
        await victim.stop()
        killed_at = time.monotonic()
        await asyncio.gather(*(gw.wait_job(i, timeout=60) for i in ids))
        t = await tally(gw.client, ids)
        infos = [(await gw.client.get(f"/api/jobs/{i}/info")).json() for i in ids]
    report(t)
    assert t.lost == 0
    assert (t.completed, t.failed) == (100, 0), t.failed_codes()
    retried = [i for i in infos if i["attempt"] > 1]
    assert retried, "the jobs that were running on the killed server were not retried"
    assert all(i["comfyui_instance"] != victim.host_port for i in retried)
    ran_elsewhere = sum(f.stats()["completed"] for f in fakes[1:])
    assert ran_elsewhere >= 100 - victim.stats()["completed"]
    assert time.monotonic() - killed_at < 20


async def test_sockets_dropped_mid_job_complete_through_history_without_waiting_for_a_timeout(
        fake_servers, tmp_path):
    service = 0.8
    fakes = await fake_servers(2, service_time=service)
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_concurrent_jobs=4, max_jobs_per_instance=2,
                                job_timeout=30_000)
    async with running_gateway(settings) as gw:
        ids = [await submit(gw.client) for _ in range(6)]
        await eventually(lambda: all(f.stats()["queue_depth"] == 2 for f in fakes), what="two prompts at each server")
        started = time.monotonic()
        for fake in fakes:
            await fake.drop_sockets()
        # Drop them again once the reconnected sockets carry the next round of prompts.
        await eventually(lambda: sum(f.stats()["completed"] for f in fakes) >= 2, what="the first round to finish")
        await eventually(lambda: sum(f.stats()["prompts_received"] for f in fakes) == 6, what="all six prompts sent")
        for fake in fakes:
            await fake.drop_sockets()
        await asyncio.gather(*(gw.wait_job(i, timeout=25) for i in ids))
        elapsed = time.monotonic() - started
        t = await tally(gw.client, ids)
    report(t)
    assert t.lost == 0
    assert (t.completed, t.failed) == (6, 0), t.failed_codes()
    assert all(s["attempt"] == 1 for s in t.statuses.values()), "a dropped socket made a job run again"
    assert sum(f.stats()["prompts_received"] for f in fakes) == 6
    # Three rounds of work per server at most; far from the 30 s deadline.
    assert elapsed < 3 * service + 4.0, f"took {elapsed:.1f}s"


async def test_hanging_prompt_is_interrupted_at_the_deadline_and_fails_as_timed_out(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    for fake in fakes:
        fake.hang_next(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), job_timeout=1500, max_jobs_per_instance=1,
                                max_concurrent_jobs=2)
    async with running_gateway(settings) as gw:
        hung = [await submit(gw.client) for _ in range(2)]
        await eventually(lambda: all(f.stats()["prompts_received"] == 1 for f in fakes), what="one prompt per server")
        started = time.monotonic()
        others = [await submit(gw.client) for _ in range(3)]
        await asyncio.gather(*(gw.wait_job(i, timeout=10) for i in hung + others))
        elapsed = time.monotonic() - started
        t = await tally(gw.client, hung + others)
    report(t)
    assert t.lost == 0
    assert (t.completed, t.failed) == (3, 2)
    for job_id in hung:
        error = t.statuses[job_id]["error_details"]
        assert error["code"] == "job_timed_out" and "interrupted" in error["message"], error
    assert [f.stats()["interrupted"] for f in fakes] == [1, 1], "no /interrupt reached the hanging prompt"
    assert elapsed < 1.5 + 3.0


async def test_prompt_still_queued_at_the_deadline_is_removed_from_the_server_queue(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fake = fakes[0]
    fake.pause()
    settings = gateway_settings(tmp_path, hosts_of(fakes), job_timeout=1000)
    async with running_gateway(settings) as gw:
        job_id = await submit(gw.client)
        await eventually(lambda: fake.stats()["queue_depth"] == 1, what="the prompt queued at the server")
        await gw.wait_job(job_id, timeout=6)
        assert fake.stats()["queue_depth"] == 0, "the timed-out prompt was left in the server's queue"
        fake.resume()
        t = await tally(gw.client, [job_id])
    report(t)
    assert t.lost == 0
    assert (t.completed, t.failed) == (0, 1)
    assert t.statuses[job_id]["error_details"]["code"] == "job_timed_out"
    stats = fake.stats()
    assert (stats["prompts_received"], stats["completed"], stats["interrupted"]) == (1, 0, 0)


async def test_server_failing_every_job_opens_its_breaker_others_take_the_work_and_it_closes_when_healthy(
        fake_servers, tmp_path):
    fakes = await fake_servers(2, service_time=0.02)
    async with FaultProxy(fakes[0].url) as proxy:
        proxy.fail_prompts = True
        bad, good = proxy.host_port, fakes[1].host_port
        settings = gateway_settings(tmp_path, f"{bad},{good}", health_check_interval=300)
        async with running_gateway(settings) as gw:
            ids = await asyncio.gather(*(submit(gw.client) for _ in range(30)))
            await eventually(lambda: _is(gw, bad, "open"), timeout=5, what="the failing server's breaker to open")
            await asyncio.gather(*(gw.wait_job(i, timeout=30) for i in ids))
            t = await tally(gw.client, ids)
            failures_while_failing = proxy.failed_prompts

            # Healthy again: the breaker closes and the server takes work again.
            proxy.fail_prompts = False
            await eventually(lambda: _is(gw, bad, "closed"), timeout=10, what="the breaker to close")
            more = await asyncio.gather(*(submit(gw.client) for _ in range(10)))
            await asyncio.gather(*(gw.wait_job(i, timeout=30) for i in more))
            t2 = await tally(gw.client, more)
    report(t)
    report(t2)
    assert t.lost == 0 and t2.lost == 0
    assert (t.completed, t.failed) == (30, 0), t.failed_codes()
    assert (t2.completed, t2.failed) == (10, 0), t2.failed_codes()
    assert failures_while_failing >= 3
    assert all(s["comfyui_instance"] == good for s in t.statuses.values())
    assert fakes[0].stats()["prompts_received"] > 0, "the recovered server got no work"


async def _is(gw, name: str, state: str) -> bool:
    return await breaker_state(gw.client, name) == state


async def test_an_open_breaker_gets_no_job_and_the_endpoints_open_and_close_it(fake_servers, tmp_path):
    fakes = await fake_servers(2, service_time=0.02)
    a, b = (f.host_port for f in fakes)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        opened = await gw.client.post(f"/api/circuit-breakers/{a}/open")
        assert opened.status_code == 200 and opened.json()["circuit_breaker"]["state"] == "open"
        ids = await asyncio.gather(*(submit(gw.client) for _ in range(10)))
        await asyncio.gather(*(gw.wait_job(i, timeout=20) for i in ids))
        t = await tally(gw.client, ids)
        assert fakes[0].stats()["prompts_received"] == 0
        assert await breaker_state(gw.client, a) == "open", "a forced-open breaker closed by itself"
        closed = await gw.client.post(f"/api/circuit-breakers/{a}/close")
        assert closed.status_code == 200 and closed.json()["circuit_breaker"]["state"] == "closed"
        more = await asyncio.gather(*(submit(gw.client) for _ in range(10)))
        await asyncio.gather(*(gw.wait_job(i, timeout=20) for i in more))
        t2 = await tally(gw.client, more)
        unknown = await gw.client.post("/api/circuit-breakers/nowhere:1/open")
    report(t)
    assert t.lost == 0 and (t.completed, t.failed) == (10, 0)
    assert t2.lost == 0 and (t2.completed, t2.failed) == (10, 0)
    assert fakes[0].stats()["prompts_received"] > 0
    assert fakes[1].stats()["prompts_received"] >= 10
    assert unknown.status_code == 404 and "error" in unknown.json()
    assert b in {s["comfyui_instance"] for s in t.statuses.values()}


async def test_workflow_error_fails_at_once_with_comfyui_message_node_and_type_without_retry(
        fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fakes[0].fail_next(1, message="CUDA out of memory (injected)")
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        job_id = await submit(gw.client)
        await gw.wait_job(job_id, timeout=10)
        t = await tally(gw.client, [job_id])
        result = await gw.client.get(f"/api/jobs/{job_id}/result")
        sync = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        breakers = (await gw.client.get("/api/circuit-breakers")).json()["circuit_breakers"]
    report(t)
    assert t.lost == 0 and (t.completed, t.failed) == (0, 1)
    error = t.statuses[job_id]["error_details"]
    assert error["code"] == "workflow_failed"
    assert error["message"] == "CUDA out of memory (injected)"
    assert error["node_id"] and error["node_type"] and error["exception_type"] == "RuntimeError"
    assert t.statuses[job_id]["attempt"] == 1
    assert fakes[0].stats()["prompts_received"] == 2  # the failed one was not retried; the sync one ran
    assert result.status_code == 409  # as the original: the result of a failed job is not there; its status says why
    assert (result.json()["error"], result.json()["status"]) == ("Job not completed", "failed")
    assert sync.status_code == 200
    assert breakers[fakes[0].host_port]["state"] == "closed"  # a workflow error says nothing against the server


async def test_no_healthy_server_sync_gets_503_quickly_and_async_fails_at_the_queue_deadline(
        fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fake = fakes[0]
    settings = gateway_settings(tmp_path, hosts_of(fakes), queue_timeout=1500, health_check_interval=200)
    async with running_gateway(settings) as gw:
        await fake.stop()
        await eventually(lambda: _is(gw, fake.host_port, "open"), timeout=5, what="the breaker to open")
        asked = time.monotonic()
        sync = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        sync_seconds = time.monotonic() - asked
        job_id = await submit(gw.client)
        status = (await gw.client.get(f"/api/jobs/{job_id}/status")).json()
        assert status["status"] == "pending"
        submitted = time.monotonic()
        await gw.wait_job(job_id, timeout=10)
        waited = time.monotonic() - submitted
        t = await tally(gw.client, [job_id])
        result = await gw.client.get(f"/api/jobs/{job_id}/result")
    report(t)
    assert sync.status_code == 503 and sync_seconds < 2.0
    assert int(sync.headers["retry-after"]) >= 1 and "error" in sync.json()
    assert t.lost == 0 and (t.completed, t.failed) == (0, 1)
    error = t.statuses[job_id]["error_details"]
    assert error["code"] == "queue_timeout" and "queue deadline" in error["message"]
    assert 1.3 < waited < 1.5 + 1.5, f"failed after {waited:.1f}s for a 1.5 s queue deadline"
    assert result.status_code == 409 and result.json()["status"] == "failed"  # the reason is in the status


async def test_sync_request_to_a_server_that_just_died_answers_without_hanging(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fake = fakes[0]
    settings = gateway_settings(tmp_path, hosts_of(fakes), health_check_interval=60_000, queue_timeout=60_000)
    async with running_gateway(settings) as gw:
        # Its event socket is open: once the server is gone, that socket is reconnecting, which
        # must not make a prompt wait for it.
        await eventually(lambda: fake.stats()["sockets_open"] == 1, what="the event socket")
        await fake.stop()  # the breaker still says closed: the job is admitted and fails at the server
        asked = time.monotonic()
        sync = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        seconds = time.monotonic() - asked
        t = await tally(gw.client, [sync.json().get("job_id", "")] if "job_id" in sync.json() else [])
    report(t)
    assert sync.status_code == 503, sync.text
    assert "error" in sync.json() and sync.headers.get("retry-after")
    assert seconds < 5, f"the sync request hung for {seconds:.1f}s"
    assert t.lost == 0


async def test_draining_gateway_refuses_new_jobs_with_503_and_finishes_running_ones(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.5)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        running = await submit(gw.client)
        await eventually(lambda: fakes[0].stats()["queue_depth"] == 1, what="the job to reach the server")
        gw.gateway.begin_drain()
        refused = await gw.client.post("/api/async/upscale-image",
                                       files={"imageFile": ("a.png", png(), "image/png")})
        refused_sync = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        await gw.wait_job(running, timeout=10)
        t = await tally(gw.client, [running])
    report(t)
    for resp in (refused, refused_sync):
        assert resp.status_code == 503 and resp.headers["retry-after"] and "error" in resp.json()
        assert resp.headers["x-request-id"]
    assert t.lost == 0 and (t.completed, t.failed) == (1, 0)


async def test_a_retry_goes_to_another_server_than_the_one_that_failed(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    good = fakes[1]
    good.set_service_time(3.0)
    async with FaultProxy(fakes[0].url) as proxy:
        proxy.fail_prompts = True
        bad = proxy.host_port
        settings = gateway_settings(tmp_path, f"{bad},{good.host_port}", health_check_interval=60_000)
        async with running_gateway(settings) as gw:
            await gw.client.post(f"/api/circuit-breakers/{bad}/open")
            busy = await submit(gw.client)  # keeps one of the good server's two slots taken
            await eventually(lambda: good.stats()["queue_depth"] == 1, what="the long job to reach the good server")
            await gw.client.post(f"/api/circuit-breakers/{bad}/close")
            good.set_service_time(0.0)
            job_id = await submit(gw.client)  # the bad server is now the least loaded
            await asyncio.gather(*(gw.wait_job(i, timeout=15) for i in (busy, job_id)))
            t = await tally(gw.client, [busy, job_id])
    report(t)
    assert t.lost == 0
    # The good server had a free slot the whole time: the retry belongs there.
    assert (t.completed, t.failed) == (2, 0), t.statuses[job_id].get("error_details")
    assert proxy.failed_prompts == 1


def test_breaker_opens_on_job_failures_even_while_probes_answer_and_its_backoff_grows():
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, base_backoff=2.0, max_backoff=8.0, clock=lambda: now[0])
    backoffs = []
    for _ in range(4):
        for _ in range(3):  # a job fails, the kicked probe answers, the next job fails...
            breaker.record_failure("POST /prompt: HTTP 500")
            breaker.record_probe_success()
        assert breaker.state is BreakerState.OPEN
        backoffs.append(breaker.retry_in)
        now[0] += breaker.retry_in
        assert breaker.state is BreakerState.HALF_OPEN
        breaker.record_probe_success()  # reachable again: it closes, but has not recovered
        assert breaker.state is BreakerState.CLOSED
    assert backoffs == [2.0, 4.0, 8.0, 8.0]  # grows, capped
    breaker.record_success()  # a job got through: full recovery
    for _ in range(3):
        breaker.record_failure("refused", probe=True)
    assert breaker.retry_in == 2.0


def test_probe_failures_are_forgotten_when_a_probe_answers_but_job_failures_are_not():
    breaker = CircuitBreaker(failure_threshold=3)
    breaker.record_failure("timeout", probe=True)
    breaker.record_failure("timeout", probe=True)
    breaker.record_probe_success()
    assert breaker.snapshot()["consecutive_failures"] == 0
    breaker.record_failure("HTTP 500")
    breaker.record_failure("timeout", probe=True)
    breaker.record_probe_success()
    assert breaker.snapshot()["consecutive_failures"] == 1
    breaker.record_failure("HTTP 500")
    breaker.record_failure("HTTP 500")
    assert breaker.state is BreakerState.OPEN


async def test_a_late_result_from_an_abandoned_attempt_is_ignored(fake_servers, tmp_path):
    """Attempt 1's lease runs out while its prompt waits at the server (its renewal came too late)
    and the janitor's sweep finds it. Whichever attempt ends up owning the job, it completes once,
    from the one prompt, and the result of the other attempt is not kept."""
    fakes = await fake_servers(1)
    fake = fakes[0]
    fake.pause()
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        job_id = await submit(gw.client)
        await eventually(lambda: fake.stats()["queue_depth"] == 1, what="the prompt queued at the server")
        store, dispatcher, blobs = gw.gateway.store, gw.gateway.dispatcher, gw.gateway.blobs
        assert await store.expire_lease(job_id, 1)
        await gw.gateway.janitor.sweep()
        fake.resume()
        await gw.wait_job(job_id, timeout=10)
        await eventually(lambda: not dispatcher.running, what="every attempt to end")
        t = await tally(gw.client, [job_id])
        job = await store.get(job_id)
        assert job is not None
        others = [n for n in range(1, job.attempt + 1) if output_key(job_id, n, 0) != job.result_blob]
        kept = [n for n in others if await blobs.exists(output_key(job_id, n, 0))
                or await blobs.exists(f"results/{job_id}-{n}")]
    report(t)
    assert t.lost == 0 and (t.completed, t.failed) == (1, 0), t.statuses[job_id].get("error_details")
    assert job.result_blob == output_key(job_id, job.attempt, 0)  # the PNG result is its first output
    assert fake.stats()["prompts_received"] == 1
    assert kept == [], f"results of abandoned attempts {kept} were kept"
