"""The JobStore contract, continued: the queue figures autoscaling reads, and the job's trace context."""

from __future__ import annotations

from comfy_gateway.jobs.store import JobStore, QueueStats
from contract.test_job_store import LEASE, T0, claimed, make_job

TRACEPARENT = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


async def test_queue_stats_count_unfinished_jobs_by_type_and_find_the_oldest_waiting(store: JobStore) -> None:
    assert await store.queue_stats() == QueueStats()
    for n, job_type in enumerate(("upscale", "upscale", "upscale", "remove-bg", "remove-bg", "done")):
        await store.create(make_job(f"j{n}", T0 + 10 + n, job_type))
    await claimed(store, "j0")  # processing; the oldest pending is now j1
    await claimed(store, "j3")
    job5 = await claimed(store, "j5")
    assert await store.complete("j5", job5.attempt, "r", {})

    stats = await store.queue_stats()

    assert stats.pending_by_type == {"upscale": 2, "remove-bg": 1}
    assert stats.processing_by_type == {"upscale": 1, "remove-bg": 1}
    assert stats.oldest_pending_created_at == T0 + 11


async def test_a_requeued_job_waits_under_its_creation_time(store: JobStore) -> None:
    await store.create(make_job("old", T0))
    await store.create(make_job("new", T0 + 5))
    job = await claimed(store, "old")
    assert await store.requeue("old", job.attempt, {"message": "server lost"})
    stats = await store.queue_stats()
    assert stats.pending_by_type == {"upscale": 2} and stats.processing_by_type == {}
    assert stats.oldest_pending_created_at == T0


async def test_the_trace_context_travels_with_the_job(store: JobStore) -> None:
    await store.create(make_job("traced", T0, trace_context=dict(TRACEPARENT)))
    await store.create(make_job("untraced", T0 + 1))
    job = await claimed(store, "traced")
    assert job.trace_context == TRACEPARENT
    assert await store.requeue("traced", job.attempt, {"message": "retry"})
    again = await store.claim_job("traced", "worker-b", LEASE, "gpu-2")
    assert again is not None and again.trace_context == TRACEPARENT
    untraced = await store.get("untraced")
    assert untraced is not None and untraced.trace_context == {}
