"""Process faults: the real `comfy-gateway serve` killed with SIGKILL or stopped with SIGTERM, in
front of fake ComfyUI servers running as their own processes (they keep working while the gateway
is gone). Each test prints `submitted=N completed=N failed=N lost=N`."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import httpx
import pytest

from support.images import png
from support.processes import kill9, processes, start_fake, start_gateway
from support.tally import all_finished, submit, tally
from support.waiting import eventually

pytestmark = pytest.mark.slow


async def job_stats(client: httpx.AsyncClient) -> dict[str, int]:
    return (await client.get("/api/jobs/stats")).json()["by_status"]


async def test_kill_9_with_50_jobs_in_flight_then_restart_loses_none_and_runs_none_twice(tmp_path):
    data = tmp_path / "data"
    with processes() as procs:
        fakes = [start_fake(service_time=0.1, name=f"fake-{n}") for n in range(2)]
        procs += fakes
        hosts = ",".join(f.host_port for f in fakes)
        first = start_gateway(data, hosts, max_concurrent_jobs=4, max_jobs_per_instance=2)
        procs.append(first)
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            ids = list(await asyncio.gather(*(submit(client) for _ in range(50))))

            async def some_done_some_running() -> bool:
                by_status = await job_stats(client)
                return by_status["completed"] >= 4 and by_status["processing"] >= 2

            await eventually(some_done_some_running, timeout=20, what="jobs to be both done and running")
        kill9(first)
        killed_at = time.time()
        assert first.popen.returncode == -signal.SIGKILL

        second = start_gateway(data, hosts, max_concurrent_jobs=4, max_jobs_per_instance=2)
        procs.append(second)
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            await all_finished(client, ids, timeout=40)
            t = await tally(client, ids)
            infos = [(await client.get(f"/api/jobs/{i}/info")).json() for i in ids]
        prompts = [p for f in fakes for p in f.stats()["prompts"]]

    print(f"\n{t.line()}")
    assert t.lost == 0
    assert (t.completed, t.failed) == (50, 0), t.failed_codes()
    # None completed twice: every job's result comes from its own prompt, each prompt serves one job.
    result_prompts = [i["result"]["prompt_id"] for i in infos]
    assert len(set(result_prompts)) == 50
    arrived = {p["prompt_id"]: p["arrived_at"] for p in prompts}
    assert set(result_prompts) <= set(arrived)
    # Every prompt beyond one per job is explained by a retry the job recorded.
    retries = sum(len(i["attempts_history"] or []) for i in infos)
    assert len(prompts) <= 50 + retries, (len(prompts), retries)
    # Jobs still running at the kill were re-attached to their prompt, not run again.
    reattached = [i for i in infos if arrived[i["result"]["prompt_id"]] < killed_at < _ts(i["finished_at"])]
    assert reattached, "no job was followed to its prompt across the restart"
    assert all(i["attempt"] >= 2 for i in reattached)


def assert_clean_exit(proc, code: int) -> None:
    """uvicorn re-raises the signal once it has shut down cleanly: -SIGTERM (or 0) after the drain."""
    assert code in (0, -signal.SIGTERM), proc.output()
    assert "Gateway stopped" in proc.output(), "the gateway did not run its shutdown"


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_sigterm_stops_admitting_lets_running_jobs_finish_and_keeps_pending_ones(tmp_path):
    data = tmp_path / "data"
    service = 1.0
    with processes() as procs:
        fakes = [start_fake(service_time=service, name=f"fake-{n}") for n in range(2)]
        procs += fakes
        hosts = ",".join(f.host_port for f in fakes)
        settings = {"max_concurrent_jobs": 2, "max_jobs_per_instance": 1, "shutdown_grace": 8_000,
                    "log_level": "info"}
        gw = start_gateway(data, hosts, **settings)
        procs.append(gw)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            ids = [await submit(client) for _ in range(6)]

            async def both_running() -> bool:
                return all(f.stats()["queue_depth"] == 1 for f in fakes)

            await eventually(both_running, timeout=10, what="one job running on each server")
            running = [j["job_id"] for j in (await client.get("/api/jobs/list?status=processing")).json()["jobs"]]
            assert len(running) == 2
            termed = time.monotonic()
            gw.signal(signal.SIGTERM)
            try:
                late = await client.post("/api/async/upscale-image",
                                         files={"imageFile": ("a.png", png(), "image/png")})
                refused = f"HTTP {late.status_code}"
                assert late.status_code == 503, late.text
                assert late.headers.get("retry-after") and "error" in late.json()
            except httpx.TransportError as exc:  # already stopped listening: not admitted either
                refused = type(exc).__name__
        code = await asyncio.to_thread(gw.wait_exit, 8 + 5)
        exit_seconds = time.monotonic() - termed
        print(f"\nafter SIGTERM: new job -> {refused}; exit {code} after {exit_seconds:.1f}s")
        assert_clean_exit(gw, code)
        assert exit_seconds < service + 4, "the drain waited for more than the running jobs"
        prompts_before_restart = sum(f.stats()["prompts_received"] for f in fakes)

        again = start_gateway(data, hosts, **settings)
        procs.append(again)
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            drained = [(await client.get(f"/api/jobs/{i}/info")).json() for i in running]
            await all_finished(client, ids, timeout=20)
            t = await tally(client, ids)
        prompts_total = sum(f.stats()["prompts_received"] for f in fakes)

    print(f"{t.line()}")
    assert [d["status"] for d in drained] == ["completed", "completed"], "running jobs did not finish in the grace"
    assert all(d["attempt"] == 1 for d in drained)
    assert prompts_before_restart == 2, "a pending job was started while draining"
    assert t.lost == 0
    assert (t.completed, t.failed) == (6, 0), t.failed_codes()
    assert prompts_total == 6, "a job ran twice"


async def test_sigterm_with_a_job_longer_than_the_grace_leaves_it_to_the_restart(tmp_path):
    data = tmp_path / "data"
    with processes() as procs:
        fake = start_fake(service_time=2.5)
        procs.append(fake)
        settings = {"shutdown_grace": 500, "max_concurrent_jobs": 1, "max_jobs_per_instance": 1, "log_level": "info"}
        gw = start_gateway(data, fake.host_port, **settings)
        procs.append(gw)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            job_id = await submit(client)

            async def running() -> bool:
                return fake.stats()["queue_depth"] == 1

            await eventually(running, timeout=10, what="the job to run")
        gw.signal(signal.SIGTERM)
        code = await asyncio.to_thread(gw.wait_exit, 10)
        assert_clean_exit(gw, code)
        assert re.search(r'"jobsLeftForRestart": ?1\b', gw.output())
        again = start_gateway(data, fake.host_port, **settings)
        procs.append(again)
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            await all_finished(client, [job_id], timeout=15)
            t = await tally(client, [job_id])
            info = (await client.get(f"/api/jobs/{job_id}/info")).json()
        stats = fake.stats()
    print(f"\n{t.line()}")
    assert t.lost == 0 and (t.completed, t.failed) == (1, 0), t.failed_codes()
    assert stats["prompts_received"] == 1, "the job was run again instead of re-attached"
    assert info["attempt"] == 2


async def test_sigterm_with_10_open_sync_requests_answers_each_in_json_within_one_grace(tmp_path):
    """Two jobs run longer than the grace, eight wait behind them: every sync request gets a JSON
    answer (503 with Retry-After), the listener answers during the drain, the process exits within
    the grace plus 2 s, and the two running jobs complete after the restart, re-attached."""
    data, grace_s = tmp_path / "data", 1.5
    with processes() as procs:
        fakes = [start_fake(service_time=4.0, name=f"fake-{n}") for n in range(2)]
        procs += fakes
        hosts = ",".join(f.host_port for f in fakes)
        settings = {"max_concurrent_jobs": 2, "max_jobs_per_instance": 1, "shutdown_grace": int(grace_s * 1000),
                    "log_level": "info"}
        gw = start_gateway(data, hosts, **settings)
        procs.append(gw)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            upload = {"imageFile": ("a.png", png(), "image/png")}
            syncs = [asyncio.create_task(client.post("/api/upscale-image", files=upload)) for _ in range(10)]

            async def both_running() -> bool:
                return all(f.stats()["queue_depth"] == 1 for f in fakes)

            await eventually(both_running, timeout=10, what="one job running on each server")
            running = [j["job_id"] for j in (await client.get("/api/jobs/list?status=processing")).json()["jobs"]]
            termed = time.monotonic()
            gw.signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as late_client:  # a new connection
                late = await late_client.post("/api/async/upscale-image",
                                              files={"imageFile": ("a.png", png(), "image/png")})
            answers = await asyncio.gather(*syncs, return_exceptions=True)
        code = await asyncio.to_thread(gw.wait_exit, grace_s + 10)
        exit_seconds = time.monotonic() - termed
        assert_clean_exit(gw, code)

        again = start_gateway(data, hosts, **settings)
        procs.append(again)
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            await all_finished(client, running, timeout=20)
            after = [(await client.get(f"/api/jobs/{i}/info")).json() for i in running]
        prompts = sum(f.stats()["prompts_received"] for f in fakes)

    statuses = [a.status_code if isinstance(a, httpx.Response) else type(a).__name__ for a in answers]
    print(f"\nafter SIGTERM: late submit -> {late.status_code}; sync answers {statuses}; "
          f"exit after {exit_seconds:.1f}s")
    assert late.status_code == 503 and late.headers.get("connection") == "close" and late.json()["error"]
    assert all(isinstance(a, httpx.Response) for a in answers), statuses
    assert all(a.headers["content-type"].startswith("application/json") for a in answers)
    assert sorted(statuses) == [503] * 10, statuses
    assert all(a.headers.get("retry-after") and a.json()["error"] for a in answers)
    assert exit_seconds < grace_s + 2, f"exit {exit_seconds:.1f} s after SIGTERM with a {grace_s} s grace"
    assert len(running) == 2 and [a["status"] for a in after] == ["completed", "completed"]
    assert prompts == 2, "a job left running was run again instead of re-attached, or a pending one started"


async def test_ctrl_c_shuts_down_cleanly_and_ends_without_a_traceback(tmp_path):
    with processes() as procs:
        fake = start_fake(service_time=0.1)
        procs.append(fake)
        gw = start_gateway(tmp_path / "data", fake.host_port, log_level="info")
        procs.append(gw)
        gw.signal(signal.SIGINT)
        code = await asyncio.to_thread(gw.wait_exit, 10)
    assert code == 130, gw.output()
    assert "Gateway stopped" in gw.output()
    assert "Traceback" not in gw.output(), gw.output()
