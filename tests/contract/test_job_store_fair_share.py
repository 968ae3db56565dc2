"""Fair share in every JobStore: round robin over tenants, priority first, FIFO within a tenant,
per-tenant caps that hold for every worker of the store; plus the per-tenant counts behind admission."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from comfy_gateway.jobs.model import Job, JobState
from comfy_gateway.jobs.store import JobStore

JobStoreFactory = Callable[[], JobStore]
LEASE = 30.0
T0 = 1_700_000_000.0


async def queue(store: JobStore, tenant: str, count: int, start: float, priority: int = 0) -> list[str]:
    ids = [f"{tenant}-{i:02d}" for i in range(count)]
    for i, job_id in enumerate(ids):
        await store.create(Job(id=job_id, type="upscale", created_at=start + i, updated_at=start + i,
                               tenant=tenant, priority=priority))
    return ids


async def claim_all(store: JobStore, caps: dict[str, int] | None = None) -> list[str]:
    order = []
    while (job := await store.claim("worker-a", LEASE, caps=caps)) is not None:
        order.append(job.id)
    return order


async def test_claims_go_round_robin_over_tenants_fifo_within_each(store: JobStore) -> None:
    await queue(store, "alice", 4, T0)
    await queue(store, "bob", 2, T0 + 10)
    await queue(store, "carol", 1, T0 + 20)
    assert await claim_all(store) == [
        "alice-00", "bob-00", "carol-00", "alice-01", "bob-01", "alice-02", "alice-03"]


async def test_a_tenant_arriving_late_is_served_next_not_after_the_backlog(store: JobStore) -> None:
    await queue(store, "alice", 6, T0)
    first = [await store.claim("worker-a", LEASE) for _ in range(3)]
    assert [job.id for job in first if job] == ["alice-00", "alice-01", "alice-02"]
    await queue(store, "bob", 2, T0 + 100)
    assert await claim_all(store) == ["bob-00", "alice-03", "bob-01", "alice-04", "alice-05"]


async def test_higher_priority_tenants_go_first(store: JobStore) -> None:
    await queue(store, "alice", 2, T0)
    await queue(store, "vip", 2, T0 + 10, priority=5)
    await queue(store, "bob", 1, T0 + 20)
    assert await claim_all(store) == ["vip-00", "vip-01", "alice-00", "bob-00", "alice-01"]


async def test_a_capped_tenant_is_passed_over_until_its_jobs_end(store: JobStore) -> None:
    await queue(store, "alice", 3, T0)
    await queue(store, "bob", 1, T0 + 10)
    caps = {"alice": 1}
    assert await claim_all(store, caps) == ["alice-00", "bob-00"]
    assert await store.pending_count() == 2
    running = await store.get("alice-00")
    assert running is not None and running.state is JobState.PROCESSING
    assert await store.complete("alice-00", running.attempt, "blob", {})
    assert await claim_all(store, caps) == ["alice-01"]
    assert await store.requeue("alice-01", 1)
    assert await claim_all(store, caps) == ["alice-01"]  # a retry goes back to its place in the queue
    assert await store.fail("alice-01", 2, {"message": "x"})
    assert await claim_all(store, caps) == ["alice-02"]


async def test_caps_hold_across_replicas_claiming_at_once(make_store: JobStoreFactory) -> None:
    first, second = make_store(), make_store()
    await first.open()
    await second.open()
    await queue(first, "alice", 8, T0)
    caps = {"alice": 3}
    results = await asyncio.gather(*(replica.claim(f"w-{i}", LEASE, caps=caps)
                                     for i in range(6) for replica in (first, second)))
    claimed = [job.id for job in results if job is not None]
    assert claimed and len(claimed) == 3 and len(set(claimed)) == 3
    assert await first.pending_count("alice") == 5


async def test_pending_count_per_tenant(store: JobStore) -> None:
    await queue(store, "alice", 3, T0)
    await queue(store, "bob", 2, T0 + 10)
    assert (await store.pending_count(), await store.pending_count("alice"), await store.pending_count("bob")) == (
        5, 3, 2)
    await store.claim_job("alice-01", "worker-a", LEASE)
    await store.delete("bob-00")
    assert (await store.pending_count("alice"), await store.pending_count("bob")) == (2, 1)
    assert await store.pending_count("nobody") == 0


async def test_finished_since_counts_recent_endings(store: JobStore) -> None:
    assert await store.finished_since(0.0) == (0, None)
    await queue(store, "alice", 3, T0)
    before = time.time()
    for job_id in ("alice-00", "alice-01"):
        job = await store.claim_job(job_id, "worker-a", LEASE)
        assert job is not None and await store.complete(job_id, job.attempt, "blob", {})
    count, first = await store.finished_since(before)
    assert count == 2 and first is not None and before <= first <= time.time()
    assert (await store.finished_since(time.time() + 1))[0] == 0


async def test_webhook_attempts_are_appended_to_the_job(store: JobStore) -> None:
    await queue(store, "alice", 1, T0)
    assert await store.add_webhook_attempt("alice-00", {"attempt": 1, "status": 500})
    assert await store.add_webhook_attempt("alice-00", {"attempt": 2, "status": 204, "ok": True})
    assert not await store.add_webhook_attempt("missing", {"attempt": 1})
    job = await store.get("alice-00")
    assert job is not None and job.tenant == "alice"
    assert job.webhook_deliveries == [{"attempt": 1, "status": 500}, {"attempt": 2, "status": 204, "ok": True}]


async def test_a_retried_job_keeps_its_tenants_turn(store: JobStore) -> None:
    await queue(store, "alice", 1, T0)
    await queue(store, "bob", 2, T0 + 10)
    first = await store.claim("worker-a", LEASE)
    assert first is not None and first.id == "alice-00"
    assert await store.requeue("alice-00", first.attempt)  # alice was just served: bob goes next
    assert await claim_all(store) == ["bob-00", "alice-00", "bob-01"]
