"""Three real gateway processes sharing Redis and two fake ComfyUI servers; one is killed under load."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter

import httpx
import pytest

from support.images import png
from support.processes import kill9, processes, start_gateway
from support.redis import REDIS_URL

pytestmark = [pytest.mark.redis, pytest.mark.slow]

JOBS = 60


def completions(log_files) -> Counter[str]:
    """How many times each job was completed, read from every replica's combined.log."""
    done: Counter[str] = Counter()
    for path in log_files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if '"Job completed successfully"' in line:
                done[json.loads(line)["jobId"]] += 1
    return done


async def until_running_on(client: httpx.AsyncClient, url: str) -> None:
    async with asyncio.timeout(10):
        while (await client.get(f"{url}/api/jobs/processor/stats")).json()["active_jobs_this_replica"] == 0:
            await asyncio.sleep(0.01)


def adopted(log_files) -> int:
    total = 0
    for path in log_files:
        for line in path.read_text().splitlines():
            if '"Housekeeping"' in line:
                total += json.loads(line).get("adoptedJobs", 0)
    return total


async def wait_all_finished(client: httpx.AsyncClient, urls: list[str], ids: list[str], timeout: float) -> dict:
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    live = itertools.cycle(urls)
    while time.monotonic() < deadline:
        for job_id in [i for i in ids if states.get(i) not in ("completed", "failed")]:
            resp = await client.get(f"{next(live)}/api/jobs/{job_id}/status")
            states[job_id] = resp.json()["status"] if resp.status_code == 200 else f"http {resp.status_code}"
        if all(states.get(i) in ("completed", "failed") for i in ids):
            break
        await asyncio.sleep(0.2)
    return states


async def test_replica_killed_under_load_loses_and_duplicates_nothing(fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(2, service_time=0.15)
    hosts = ",".join(f.host_port for f in fakes)
    settings = {"job_store": "redis", "redis_url": REDIS_URL, "redis_prefix": redis_prefix,
                "lease_duration": 2000, "job_cleanup_interval": 600_000, "log_level": "info",
                "max_concurrent_jobs": 4, "max_jobs_per_instance": 2}
    with processes() as started:
        replicas = []
        for n in range(3):
            proc = await asyncio.to_thread(start_gateway, tmp_path / f"replica-{n}", hosts,
                                           replica_id=f"replica-{n}", **settings)
            started.append(proc)
            replicas.append(proc)
        urls = [r.url for r in replicas]
        async with httpx.AsyncClient(timeout=30) as client:
            ids: list[str] = []
            for n in range(JOBS):
                if n == JOBS // 3:
                    await until_running_on(client, urls[0])
                    kill9(replicas[0])  # jobs are running on it and queued everywhere
                target = urls[n % 3] if n < JOBS // 3 else urls[1 + n % 2]
                resp = await client.post(f"{target}/api/async/upscale-image",
                                         files={"imageFile": ("a.png", png(16, 16), "image/png")})
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["job_id"])
            states = await wait_all_finished(client, urls[1:], ids, timeout=60)
    done = completions(tmp_path.glob("replica-*/logs/combined.log"))
    completed = sum(1 for s in states.values() if s == "completed")
    failed = sum(1 for s in states.values() if s == "failed")
    lost = JOBS - completed - failed
    duplicated = sum(1 for n in done.values() if n > 1)
    print(f"submitted={JOBS} completed={completed} failed={failed} lost={lost} duplicated={duplicated}")
    assert (completed, failed, lost, duplicated) == (JOBS, 0, 0, 0), states
    assert set(done) == set(ids)  # every job's completion is in some replica's log, once
    assert adopted([tmp_path / f"replica-{n}" / "logs" / "combined.log" for n in (1, 2)]) >= 1
    for fake in fakes:
        assert fake.stats()["peak_queue_depth"] <= 2
