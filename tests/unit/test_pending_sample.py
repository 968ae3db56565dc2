"""The pending sample: one store read stands in for the next ones, and this replica's own changes
(jobs queued, claimed, finished) are applied to it without reading again."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from comfy_gateway.dispatch.pending_sample import PendingSample
from comfy_gateway.jobs.model import Job
from comfy_gateway.jobs.sqlite import SqliteJobStore

_ids: Iterator[int] = itertools.count()


def job(created_at: float) -> Job:
    return Job(id=f"job-{next(_ids)}", type="upscale-image", params={}, created_at=created_at)


class CountingStore:
    """The real SQLite store, counting the reads the sample makes."""

    def __init__(self, store: SqliteJobStore) -> None:
        self.store = store
        self.reads = 0

    async def pending_count(self, tenant: str | None = None) -> int:
        self.reads += 1
        return await self.store.pending_count(tenant)

    async def list(self, flt):  # type: ignore[no-untyped-def]
        self.reads += 1
        return await self.store.list(flt)


@pytest.fixture
async def store(tmp_path) -> CountingStore:
    real = SqliteJobStore(tmp_path / "jobs.db")
    await real.open()
    yield CountingStore(real)
    await real.close()


async def test_one_read_serves_the_next_estimates_and_sees_what_this_replica_queues(store):
    for n in range(3):
        await store.store.create(job(created_at=100.0 + n))
    finished: set[str] = set()
    sample = PendingSample(store, finished.__contains__, size=3, fresh_s=60)  # type: ignore[arg-type]
    jobs, unseen = await sample.read()
    assert [j.created_at for j in jobs] == [100.0, 101.0, 102.0] and unseen == 0
    reads = store.reads

    newer = job(created_at=103.0)
    await store.store.create(newer)
    sample.added(newer)
    jobs, unseen = await sample.read()
    assert [j.created_at for j in jobs] == [101.0, 102.0, 103.0]  # the oldest is still pending, only not sampled
    assert unseen == 1

    sample.claimed(jobs[0].id)  # the dispatcher took the oldest sampled one
    finished.add(jobs[1].id)  # and another was canceled
    jobs, unseen = await sample.read()
    assert [j.created_at for j in jobs] == [103.0] and unseen == 1
    assert store.reads == reads  # all of it without reading the store again


async def test_a_stale_sample_is_read_again(store):
    sample = PendingSample(store, lambda job_id: False, fresh_s=0.0)  # type: ignore[arg-type]
    assert await sample.read() == ([], 0)
    queued = job(created_at=1.0)
    await store.store.create(queued)  # by another replica: this one did not see it queued
    jobs, unseen = await sample.read()
    assert [j.id for j in jobs] == [queued.id] and unseen == 0
