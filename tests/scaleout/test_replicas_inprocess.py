"""Two gateway replicas sharing Redis, in one process: the shared behaviour, quickly."""

from __future__ import annotations

import asyncio

import pytest

from support.gateway import running_gateway
from support.images import png
from support.redis import connect_redis
from support.replicas import replica_settings, two_replicas
from support.tally import submit
from support.waiting import eventually

pytestmark = pytest.mark.redis


async def test_a_job_sent_to_one_replica_is_seen_waited_on_and_deleted_from_the_other(
        fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(2)
    async with two_replicas(tmp_path, fakes, redis_prefix) as (a, b):
        job_id = await submit(a.client)
        status = await b.wait_job(job_id)  # b hears of the finish over pub/sub
        assert status["status"] == "completed"
        result = (await b.client.get(f"/api/jobs/{job_id}/result")).json()
        assert result["result"]["image_base64"].startswith("data:image/png;base64,")
        sync = await b.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(10, 10), "image/png")})
        assert sync.status_code == 200
        assert (await a.client.delete(f"/api/jobs/{job_id}")).status_code == 200
        assert (await b.client.get(f"/api/jobs/{job_id}/status")).status_code == 404


async def test_global_limits_hold_across_replicas(fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(2)
    for fake in fakes:
        fake.pause()
    async with two_replicas(tmp_path, fakes, redis_prefix, max_concurrent_jobs=3, max_jobs_per_instance=2) as (a, b):
        ids = [await submit((a if n % 2 else b).client) for n in range(10)]
        async with asyncio.timeout(10):
            while sum(f.stats()["queue_depth"] for f in fakes) < 3:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # both replicas had every chance to over-commit
        assert sum(f.stats()["queue_depth"] for f in fakes) == 3
        usage = (await a.client.get("/api/jobs/processor/stats")).json()
        assert usage["active_jobs"] == 3
        for fake in fakes:
            fake.resume()
        results = await asyncio.gather(*(a.wait_job(i, timeout=30) for i in ids))
    assert all(r["status"] == "completed" for r in results)
    assert max(f.stats()["peak_queue_depth"] for f in fakes) <= 2
    assert sum(f.stats()["prompts_received"] for f in fakes) == 10


async def test_breaker_opened_on_one_replica_is_avoided_by_the_other(fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(2)
    async with two_replicas(tmp_path, fakes, redis_prefix) as (a, b):
        name = fakes[0].host_port
        # An operator's forced open is local; a breaker that trips on failures is shared.
        b_breaker = b.gateway.pool.get(name).breaker
        for _ in range(3):
            a.gateway.pool.get(name).breaker.record_failure("refused")
        async with asyncio.timeout(5):
            while b_breaker.state.value != "open":
                await asyncio.sleep(0.01)
        ids = [await submit(b.client) for _ in range(6)]
        await asyncio.gather(*(b.wait_job(i) for i in ids))
    assert fakes[0].stats()["prompts_received"] == 0
    assert fakes[1].stats()["prompts_received"] == 6


async def test_metrics_report_cluster_totals(fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(1)
    async with two_replicas(tmp_path, fakes, redis_prefix) as (a, b):
        ids = [await submit(a.client), await submit(b.client), await submit(b.client)]
        for job_id in ids:
            await a.wait_job(job_id)
        async with asyncio.timeout(15):  # each replica shares its figures within a fraction of a second (idle)
            while (body := (await a.client.get("/api/metrics")).json())["jobs"]["total_processed"] < 3:
                await asyncio.sleep(0.05)
        here = body["replica_view"]["jobs"]["total_processed"]
        there = (await b.client.get("/api/metrics")).json()["replica_view"]["jobs"]["total_processed"]
    assert body["jobs"]["total_processed"] == 3 == here + there
    assert body["metrics"]["jobs"]["total"] == 3  # the original's figures are the cluster's too
    assert sorted(body["cluster"]["replicas"]) == ["replica-a", "replica-b"]


async def test_a_replica_restarted_under_its_own_id_takes_its_jobs_back_at_once(fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(1)
    fakes[0].pause()
    settings = replica_settings(tmp_path, fakes, redis_prefix, "replica-a", lease_duration=60_000, shutdown_grace=0)
    async with running_gateway(settings) as gw:
        job_id = await submit(gw.client)
        async with asyncio.timeout(5):
            while fakes[0].stats()["queue_depth"] < 1:
                await asyncio.sleep(0.02)
    # What a kill -9 would also leave behind: slot counts under this replica's id.
    redis = await connect_redis()
    await redis.hset(f"{redis_prefix}:slots:replica-a", fakes[0].host_port, 2)
    await redis.aclose()
    fakes[0].resume()
    async with running_gateway(settings) as gw:  # same REPLICA_ID; its 60 s lease has not run out
        status = await gw.wait_job(job_id, timeout=10)

        async def slots_free() -> bool:  # a slot is given back just after its job shows as completed
            return (await gw.client.get("/api/jobs/processor/stats")).json()["active_jobs"] == 0

        # the adopted job's slot was released, nothing left over from the first process
        await eventually(slots_free, timeout=5, what="no slot held once the adopted job completed")
    assert status["status"] == "completed" and status["attempt"] == 2
    assert fakes[0].stats()["prompts_received"] == 1  # re-attached, not run again


async def test_a_keys_max_concurrent_jobs_holds_across_replicas(fake_servers, tmp_path, redis_prefix):
    from support.keys import auth, write_keys

    fakes = await fake_servers(2)
    for fake in fakes:
        fake.pause()
    keys = write_keys(tmp_path / "keys.toml", alice={"max_concurrent_jobs": 1})
    async with two_replicas(tmp_path, fakes, redis_prefix, api_keys_file=keys) as (a, b):
        upload = {"imageFile": ("a.png", png(10, 10), "image/png")}
        for n in range(4):
            for who in ("alice", "bob"):
                resp = await (a if n % 2 else b).client.post("/api/async/upscale-image", files=upload,
                                                              headers=auth(who))
                assert resp.status_code == 202
        async with asyncio.timeout(10):  # bob's jobs fill the free slots: 4 in all (2 servers x 2)
            while sum(f.stats()["queue_depth"] for f in fakes) < 4:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # both replicas had every chance to start a second job of alice's
        running = (await a.client.get("/api/jobs/list", params={"status": "processing"},
                                      headers=auth("admin"))).json()["jobs"]
        assert sorted(job["tenant"] for job in running) == ["alice", "bob", "bob", "bob"]
        for fake in fakes:
            fake.resume()
