"""The JobStore contract: every store (SQLite, Redis) passes these same tests.

`create` with an id that exists raises ValueError; a store used after `close` raises RuntimeError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from comfy_gateway.jobs.model import Job, JobState, can_transition
from comfy_gateway.jobs.outputs import Output
from comfy_gateway.jobs.store import JobFilter, JobStore

JobStoreFactory = Callable[[], JobStore]  # the `make_store` fixture

LEASE = 30.0
T0 = 1_700_000_000.0


def make_job(job_id: str, created_at: float = T0, type: str = "upscale", **fields: object) -> Job:
    return Job(id=job_id, type=type, created_at=created_at, updated_at=created_at, **fields)  # type: ignore[arg-type]


async def add_jobs(store: JobStore, count: int, type: str = "upscale") -> list[Job]:
    jobs = [make_job(f"job-{i:03d}", T0 + i, type) for i in range(count)]
    for job in jobs:
        await store.create(job)
    return jobs


async def claimed(store: JobStore, job_id: str, instance: str | None = "gpu-1", lease: float = LEASE) -> Job:
    job = await store.claim_job(job_id, "worker-a", lease, instance)
    assert job is not None
    return job


# --- create / get -----------------------------------------------------------------------------


async def test_create_get_round_trip_keeps_every_field(store: JobStore) -> None:
    job = Job(
        id="round-trip",
        type="img2img",
        created_at=T0 + 0.123456789,
        updated_at=T0 + 1.5,
        params={
            "prompt": 'a cat ☕ "quoted" / slash',
            "steps": 20,
            "cfg": 7.25,
            "tags": ["a", []],
            "n": None,
        },
        input_blob="jobs/round-trip/input.png",
        input_meta={"width": 512, "height": 768, "nested": {"empty": {}, "list": []}},
        result_meta={"k": [1, 2.5, "x"]},
        history=[{"attempt": 1, "instance": "gpu-0", "error": {"message": "boom"}, "at": T0}],
    )
    await store.create(job)
    got = await store.get("round-trip")
    assert got == job
    assert isinstance(got.state, JobState)
    assert await store.get("missing") is None


async def test_create_keeps_optional_scalars(store: JobStore) -> None:
    job = make_job(
        "scalars",
        attempt=0,
        instance="gpu-7",
        prompt_id="p-1",
        progress=0.25,
        result_blob="r",
        error={"e": 1},
    )
    await store.create(job)
    assert await store.get("scalars") == job


async def test_duplicate_id_raises_value_error_and_keeps_original(store: JobStore) -> None:
    await store.create(make_job("dup", params={"first": True}))
    with pytest.raises(ValueError):
        await store.create(make_job("dup", T0 + 5, type="other", params={"first": False}))
    got = await store.get("dup")
    assert got is not None and got.params == {"first": True} and got.type == "upscale"
    assert (await store.counts()).total == 1


# --- claim ------------------------------------------------------------------------------------


async def test_claim_takes_oldest_first(store: JobStore) -> None:
    for job_id, created in (("middle", T0 + 1), ("newest", T0 + 2), ("oldest", T0)):
        await store.create(make_job(job_id, created))
    order = []
    for _ in range(3):
        job = await store.claim("worker-a", LEASE)
        assert job is not None
        order.append(job.id)
    assert order == ["oldest", "middle", "newest"]
    assert await store.claim("worker-a", LEASE) is None


async def test_claim_marks_processing_with_lease_and_attempt(store: JobStore) -> None:
    await add_jobs(store, 1)
    before = time.time()
    job = await store.claim("worker-a", LEASE, instance="gpu-1")
    after = time.time()
    assert job is not None
    assert job.state is JobState.PROCESSING
    assert job.attempt == 1
    assert job.lease_owner == "worker-a"
    assert job.instance == "gpu-1"
    assert job.lease_expires_at is not None and before + LEASE <= job.lease_expires_at <= after + LEASE
    assert job.started_at is not None and before <= job.started_at <= after
    assert before <= job.updated_at <= after
    assert await store.get(job.id) == job


async def test_claim_returns_none_when_nothing_is_pending(store: JobStore) -> None:
    assert await store.claim("worker-a", LEASE) is None
    await add_jobs(store, 2)
    await claimed(store, "job-000")
    await store.fail("job-001", None, {"message": "gone"})
    assert await store.claim("worker-a", LEASE) is None


async def test_claim_next_tells_whether_any_job_is_still_pending(store: JobStore) -> None:
    """Whatever the filter passed over: a job of another type, or of a tenant at its cap, counts."""
    await store.create(make_job("rembg", T0, "rembg"))
    await store.create(make_job("upscale", T0 + 1, "upscale"))
    first = await store.claim_next("worker-a", LEASE, types={"upscale"})
    assert first.job is not None and first.job.id == "upscale"
    assert first.more_pending  # the rembg job
    passed_over = await store.claim_next("worker-a", LEASE, types={"upscale"})
    assert passed_over.job is None and passed_over.more_pending
    last = await store.claim_next("worker-a", LEASE)
    assert last.job is not None and last.job.id == "rembg"
    assert not last.more_pending
    empty = await store.claim_next("worker-a", LEASE)
    assert empty.job is None and not empty.more_pending


async def test_claim_of_types_takes_the_oldest_job_of_those_types_only(store: JobStore) -> None:
    for i, job_type in enumerate(("rembg", "upscale", "rembg", "upscale", "edit")):
        await store.create(make_job(f"job-{i}", T0 + i, job_type))
    taken = [await store.claim("worker-a", LEASE, types={"upscale", "edit"}) for _ in range(3)]
    assert [job.id for job in taken if job is not None] == ["job-1", "job-3", "job-4"]
    assert await store.claim("worker-a", LEASE, types={"upscale"}) is None
    assert await store.claim("worker-a", LEASE, types=set()) is None
    rest = await store.claim("worker-a", LEASE)  # no filter: the oldest of any type
    assert rest is not None and rest.id == "job-0"


async def test_claim_of_types_keeps_the_fair_order_among_jobs_of_those_types(store: JobStore) -> None:
    await store.create(make_job("a-rembg", T0, "rembg", tenant="a"))
    await store.create(make_job("a-up", T0 + 1, "upscale", tenant="a"))
    await store.create(make_job("a-up-2", T0 + 2, "upscale", tenant="a"))
    await store.create(make_job("b-up", T0 + 3, "upscale", tenant="b"))
    taken = [await store.claim("worker-a", LEASE, types={"upscale"}) for _ in range(3)]
    # each tenant's oldest upscale job competes; a was served first, so b's comes next
    assert [job.id for job in taken if job is not None] == ["a-up", "b-up", "a-up-2"]
    assert await store.claim("worker-a", LEASE, types={"upscale"}) is None


async def test_record_placement_sets_the_instance_and_is_fenced(store: JobStore) -> None:
    await add_jobs(store, 1)
    job = await store.claim("worker-a", LEASE)
    assert job is not None and job.instance is None
    placement = {"instance": "gpu-2", "reason": "warm model, 0 ahead", "expected_seconds": 1.5}
    assert await store.record_placement(job.id, job.attempt, "gpu-2", placement)
    stored = await store.get(job.id)
    assert stored is not None and (stored.instance, stored.placement) == ("gpu-2", placement)
    assert [j.id for j in await store.list(JobFilter(instance="gpu-2"))] == [job.id]
    assert not await store.record_placement(job.id, job.attempt + 1, "gpu-3", placement)
    assert await store.fail(job.id, job.attempt, {"message": "gone"})
    assert not await store.record_placement(job.id, job.attempt, "gpu-3", placement)


async def test_record_placement_may_record_the_prompt_id_in_the_same_write(store: JobStore) -> None:
    await add_jobs(store, 1)
    job = await store.claim("worker-a", LEASE)
    assert job is not None and job.prompt_id is None
    assert await store.record_placement(job.id, job.attempt, "gpu-1", {"instance": "gpu-1"}, prompt_id="p-1")
    stored = await store.get(job.id)
    assert stored is not None and (stored.instance, stored.prompt_id) == ("gpu-1", "p-1")
    assert await store.record_placement(job.id, job.attempt, "gpu-2", {"instance": "gpu-2"})
    stored = await store.get(job.id)
    assert stored is not None and (stored.instance, stored.prompt_id) == ("gpu-2", "p-1")  # kept without one


async def test_list_pages_by_key_so_new_jobs_do_not_shift_them(store: JobStore) -> None:
    await add_jobs(store, 5)
    await store.create(make_job("job-tie", T0 + 2))  # created with job-002: the id orders them
    first = await store.list(JobFilter(type="upscale", limit=3))
    assert [j.id for j in first] == ["job-004", "job-003", "job-tie"]
    await store.create(make_job("job-new", T0 + 100))  # a new job: the next page is the same
    last = first[-1]
    second = await store.list(JobFilter(type="upscale", limit=3, before=(last.created_at, last.id)))
    assert [j.id for j in second] == ["job-002", "job-001", "job-000"]
    both = await store.list(JobFilter(type="upscale", state=JobState.PENDING, limit=2, before=(T0 + 2, "job-tie")))
    assert [j.id for j in both] == ["job-002", "job-001"]
    everything = await store.list(JobFilter(limit=10, before=(T0 + 3, "job-003")))
    assert [j.id for j in everything] == ["job-tie", "job-002", "job-001", "job-000"]


async def test_a_key_is_claimed_once_until_released_or_expired(store: JobStore) -> None:
    assert await store.claim_key("asset:t/k1", 30)
    assert not await store.claim_key("asset:t/k1", 30)
    await store.release_key("asset:t/k1")
    assert await store.claim_key("asset:t/k1", 30)
    assert await store.claim_key("asset:t/short", 0.05)
    await asyncio.sleep(0.2)
    assert await store.claim_key("asset:t/short", 30)  # expired: free again
    assert await store.claim_key("asset:u/k1", 30)  # another key


async def test_queue_position_counts_the_pending_jobs_created_before(store: JobStore) -> None:
    jobs = await add_jobs(store, 4)
    await store.create(make_job("job-tie", T0 + 2))  # created with job-002: the id decides
    assert [await store.queue_position(j.id) for j in jobs] == [1, 2, 3, 5]
    assert await store.queue_position("job-tie") == 4
    await claimed(store, "job-000")
    assert await store.queue_position("job-000") is None
    assert [await store.queue_position(j.id) for j in jobs[1:]] == [1, 2, 4]
    assert await store.queue_position("no-such-job") is None


async def test_mark_canceling_is_kept_and_fenced(store: JobStore) -> None:
    await add_jobs(store, 2)
    waiting = (await store.get("job-001"))
    job = await claimed(store, "job-000")
    assert waiting is not None and not await store.mark_canceling(waiting.id, 0)  # not running
    assert not await store.mark_canceling(job.id, job.attempt + 1)
    before = time.time()
    assert await store.mark_canceling(job.id, job.attempt)
    stored = await store.get(job.id)
    assert stored is not None and stored.canceling_at is not None and stored.canceling_at >= before - 1
    assert stored.state is JobState.PROCESSING
    assert await store.fail(job.id, job.attempt, {"message": "canceled", "code": "canceled"})
    assert not await store.mark_canceling(job.id, job.attempt)
    failed = await store.get(job.id)
    assert failed is not None and failed.canceling_at == stored.canceling_at


async def test_concurrent_claims_take_each_job_exactly_once(make_store: JobStoreFactory) -> None:
    first, second = make_store(), make_store()  # two replicas on one backing store
    await first.open()
    await second.open()
    await add_jobs(first, 10)
    results = await asyncio.gather(
        *(replica.claim(f"worker-{i}", LEASE) for i in range(10) for replica in (first, second))
    )
    ids = [job.id for job in results if job is not None]
    assert sorted(ids) == [f"job-{i:03d}" for i in range(10)]
    assert results.count(None) == 10
    assert await first.pending_count() == 0
    assert all(job.attempt == 1 for job in results if job is not None)


async def test_claim_job_takes_only_that_pending_job(store: JobStore) -> None:
    await add_jobs(store, 3)
    job = await store.claim_job("job-002", "worker-a", LEASE, "gpu-2")
    assert job is not None and job.id == "job-002" and job.state is JobState.PROCESSING
    assert job.attempt == 1 and job.instance == "gpu-2" and job.lease_owner == "worker-a"
    assert await store.claim_job("job-002", "worker-b", LEASE) is None
    assert await store.claim_job("missing", "worker-b", LEASE) is None
    next_job = await store.claim("worker-b", LEASE)
    assert next_job is not None and next_job.id == "job-000"
    assert await store.pending_count() == 1


# --- fencing ----------------------------------------------------------------------------------


async def test_stale_attempt_is_refused_after_requeue(store: JobStore) -> None:
    await add_jobs(store, 1)
    first = await claimed(store, "job-000")
    assert not await store.complete("job-000", first.attempt + 1, "r", {})
    assert await store.requeue("job-000", first.attempt, {"message": "connection reset"})
    assert not await store.requeue("job-000", first.attempt, {"message": "twice"})

    second = await store.claim("worker-b", LEASE, "gpu-2")
    assert second is not None and second.id == "job-000" and second.attempt == 2
    assert not await store.complete("job-000", 1, "late", {"stale": True})
    assert not await store.record_prompt("job-000", 1, "late-prompt")
    assert not await store.set_progress("job-000", 1, 0.9)
    assert not await store.renew_lease("job-000", 1, "worker-a", LEASE)
    assert not await store.requeue("job-000", 1)
    assert not await store.fail("job-000", 1, {"message": "late"})
    assert await store.get("job-000") == second

    finished = await store.complete("job-000", 2, "jobs/job-000/result.png", {"width": 1024})
    done = await store.get("job-000")
    assert finished == done  # the completed job comes back as stored: its waiter need not read it
    assert done is not None and done.state is JobState.COMPLETED
    assert done.result_blob == "jobs/job-000/result.png" and done.result_meta == {"width": 1024}
    assert done.finished_at is not None and done.finished_at >= done.started_at  # type: ignore[operator]
    assert done.lease_owner is None and done.lease_expires_at is None
    assert done.progress == 100.0  # percent, as the dispatcher records it


async def test_requeue_keeps_attempt_and_records_history(store: JobStore) -> None:
    await add_jobs(store, 1)
    job = await claimed(store, "job-000", instance="gpu-1")
    assert await store.record_prompt("job-000", job.attempt, "prompt-1")
    before = time.time()
    assert await store.requeue("job-000", job.attempt, {"message": "refused", "code": 111})
    requeued = await store.get("job-000")
    assert requeued is not None
    assert requeued.state is JobState.PENDING and requeued.attempt == 1
    assert requeued.lease_owner is None and requeued.lease_expires_at is None
    assert requeued.instance is None and requeued.prompt_id is None
    assert requeued.error is None
    [entry] = requeued.history
    assert entry["attempt"] == 1 and entry["instance"] == "gpu-1"
    assert entry["error"] == {"message": "refused", "code": 111}
    assert before <= entry["at"] <= time.time()

    again = await claimed(store, "job-000", instance="gpu-2")
    assert again.attempt == 2 and again.started_at == job.started_at  # started_at: first claim only
    assert await store.requeue("job-000", 2)
    history = (await store.get("job-000")).history  # type: ignore[union-attr]
    assert [(h["attempt"], h["instance"], h["error"]) for h in history] == [
        (1, "gpu-1", {"message": "refused", "code": 111}),
        (2, "gpu-2", None),
    ]


async def test_fenced_updates_for_current_attempt(store: JobStore) -> None:
    await add_jobs(store, 2)
    job = await claimed(store, "job-000")
    assert await store.record_prompt("job-000", job.attempt, "prompt-xyz")
    assert await store.set_progress("job-000", job.attempt, 0.5)
    got = await store.get("job-000")
    assert got is not None and got.prompt_id == "prompt-xyz" and got.progress == 0.5
    assert got.updated_at >= job.updated_at
    # nothing is fenced-updated on a job that is not processing
    assert not await store.record_prompt("job-001", 0, "p")
    assert not await store.set_progress("job-001", 0, 0.1)
    assert not await store.complete("job-001", 0, "r", {})
    assert not await store.requeue("job-001", 0)
    assert not await store.record_prompt("missing", 1, "p")


async def test_fail_with_attempt_is_fenced(store: JobStore) -> None:
    await add_jobs(store, 1)
    job = await claimed(store, "job-000")
    assert not await store.fail("job-000", job.attempt + 1, {"message": "wrong attempt"})
    assert await store.fail("job-000", job.attempt, {"message": "node error", "node": "7"})
    failed = await store.get("job-000")
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == {"message": "node error", "node": "7"}
    assert failed.finished_at is not None and failed.lease_owner is None


async def test_fail_without_attempt_fails_only_a_pending_job(store: JobStore) -> None:
    await add_jobs(store, 3)
    running = await claimed(store, "job-001")
    assert await store.fail("job-000", None, {"message": "queue deadline"})
    assert not await store.fail("job-001", None, {"message": "withdrawn"})  # it runs: its attempt owns it
    assert not await store.fail("missing", None, {"message": "nope"})
    pending_failed = await store.get("job-000")
    assert pending_failed is not None and pending_failed.state is JobState.FAILED
    assert pending_failed.error == {"message": "queue deadline"} and pending_failed.finished_at is not None
    still_running = await store.get("job-001")
    assert still_running is not None and still_running.state is JobState.PROCESSING
    assert still_running.error is None and still_running.lease_owner == running.lease_owner
    assert await store.pending_count() == 1
    claimed_next = await store.claim("worker-a", LEASE)
    assert claimed_next is not None and claimed_next.id == "job-002"
    assert {j.id for j in await store.expired_leases(time.time() + 3600)} == {"job-001", "job-002"}


@pytest.mark.parametrize("end", ["completed", "failed"])
async def test_finished_jobs_never_change_state(store: JobStore, end: str) -> None:
    await add_jobs(store, 1)
    job = await claimed(store, "job-000", lease=0.0)
    if end == "completed":
        assert await store.complete("job-000", job.attempt, "r", {})
    else:
        assert await store.fail("job-000", job.attempt, {"message": "x"})
    final = await store.get("job-000")
    assert final is not None and final.state.value == end

    assert not await store.complete("job-000", job.attempt, "other", {})
    assert not await store.fail("job-000", job.attempt, {"message": "again"})
    assert not await store.fail("job-000", None, {"message": "again"})
    assert not await store.requeue("job-000", job.attempt)
    assert not await store.record_prompt("job-000", job.attempt, "p")
    assert not await store.set_progress("job-000", job.attempt, 0.1)
    assert not await store.renew_lease("job-000", job.attempt, "worker-a", LEASE)
    assert await store.claim_job("job-000", "worker-b", LEASE) is None
    assert await store.claim("worker-b", LEASE) is None
    assert await store.take_over("job-000", job.attempt, "worker-b", LEASE) is None
    assert await store.expired_leases(time.time() + 3600) == []
    assert await store.get("job-000") == final


async def _in_state(store: JobStore, state: JobState) -> Job:
    await add_jobs(store, 1)
    job = await store.get("job-000")
    if state is not JobState.PENDING:
        job = await claimed(store, "job-000", lease=0.0)
    if state is JobState.COMPLETED:
        await store.complete("job-000", job.attempt, "r", {})
    elif state is JobState.FAILED:
        await store.fail("job-000", job.attempt, {"message": "x"})
    current = await store.get("job-000")
    assert current is not None and current.state is state
    return current


OPERATIONS = {
    "claim_job": lambda s, j: s.claim_job(j.id, "worker-b", LEASE),
    "complete": lambda s, j: s.complete(j.id, j.attempt, "r", {}),
    "fail": lambda s, j: s.fail(j.id, j.attempt, {"message": "x"}),
    "fail_any": lambda s, j: s.fail(j.id, None, {"message": "x"}),
    "requeue": lambda s, j: s.requeue(j.id, j.attempt),
    "take_over": lambda s, j: s.take_over(j.id, j.attempt, "worker-b", LEASE),
}


@pytest.mark.parametrize("start", list(JobState))
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_every_state_change_is_one_the_model_allows(store: JobStore, start: JobState, operation: str) -> None:
    """`ALLOWED_TRANSITIONS` (jobs/model.py) is what the stores do, not only what they document."""
    job = await _in_state(store, start)
    await OPERATIONS[operation](store, job)
    after = await store.get(job.id)
    assert after is not None
    assert after.state is start or can_transition(start, after.state), f"{start} -> {after.state}"


# --- leases -----------------------------------------------------------------------------------


async def test_take_over_only_after_the_lease_expired(store: JobStore) -> None:
    await add_jobs(store, 2)
    live = await claimed(store, "job-000", instance="gpu-1", lease=LEASE)
    assert await store.expired_leases(time.time()) == []
    assert await store.take_over("job-000", live.attempt, "worker-b", LEASE) is None
    assert [j.id for j in await store.expired_leases(live.lease_expires_at + 1)] == ["job-000"]  # type: ignore[operator]

    dead = await claimed(store, "job-001", instance="gpu-3", lease=0.0)
    assert await store.record_prompt("job-001", dead.attempt, "prompt-3")
    [expired] = await store.expired_leases(time.time())
    assert expired.id == "job-001" and expired.state is JobState.PROCESSING
    assert await store.take_over("job-001", dead.attempt + 1, "worker-b", LEASE) is None

    adopted = await store.take_over("job-001", dead.attempt, "worker-b", LEASE)
    assert adopted is not None
    assert adopted.attempt == dead.attempt + 1
    assert adopted.lease_owner == "worker-b"
    assert adopted.lease_expires_at is not None and adopted.lease_expires_at > time.time() + LEASE - 5
    assert adopted.instance == "gpu-3" and adopted.prompt_id == "prompt-3"
    assert adopted.state is JobState.PROCESSING
    assert await store.get("job-001") == adopted
    assert await store.expired_leases(time.time()) == []
    assert await store.take_over("job-001", dead.attempt, "worker-c", 0.0) is None  # old attempt

    assert not await store.complete("job-001", dead.attempt, "late", {})
    assert await store.complete("job-001", adopted.attempt, "r", {})


async def test_renew_lease_checks_owner_and_attempt(store: JobStore) -> None:
    await add_jobs(store, 1)
    job = await claimed(store, "job-000", lease=0.0)
    assert [j.id for j in await store.expired_leases(time.time())] == ["job-000"]
    assert not await store.renew_lease("job-000", job.attempt, "worker-b", LEASE)
    assert not await store.renew_lease("job-000", job.attempt + 1, "worker-a", LEASE)
    assert await store.expired_leases(time.time()) != []
    before = time.time()
    assert await store.renew_lease("job-000", job.attempt, "worker-a", LEASE)
    renewed = await store.get("job-000")
    assert renewed is not None and renewed.attempt == job.attempt and renewed.lease_owner == "worker-a"
    assert renewed.lease_expires_at is not None and renewed.lease_expires_at >= before + LEASE
    assert await store.expired_leases(time.time()) == []
    assert await store.take_over("job-000", job.attempt, "worker-b", LEASE) is None


# --- queries ----------------------------------------------------------------------------------


async def _mixed(store: JobStore) -> None:
    """a0..a5 of type a, b0..b3 of type b, created in that order; some run on gpu-1/gpu-2."""
    for i in range(6):
        await store.create(make_job(f"a{i}", T0 + i, "a"))
    for i in range(4):
        await store.create(make_job(f"b{i}", T0 + 10 + i, "b"))
    for job_id, instance in (
        ("a0", "gpu-1"),
        ("a1", "gpu-1"),
        ("a2", "gpu-2"),
        ("b0", "gpu-1"),
        ("b1", "gpu-2"),
    ):
        await claimed(store, job_id, instance)
    assert await store.complete("a0", 1, "r", {})
    assert await store.fail("b0", 1, {"message": "x"})
    assert await store.fail("a5", None, {"message": "deadline"})
    # now: a0 completed/gpu-1, a1 processing/gpu-1, a2 processing/gpu-2, a3 a4 pending, a5 failed,
    #      b0 failed/gpu-1, b1 processing/gpu-2, b2 b3 pending


async def ids(store: JobStore, **filters: object) -> list[str]:
    return [job.id for job in await store.list(JobFilter(**filters))]  # type: ignore[arg-type]


async def test_list_newest_first_with_combined_filters(store: JobStore) -> None:
    await _mixed(store)
    assert await ids(store) == ["b3", "b2", "b1", "b0", "a5", "a4", "a3", "a2", "a1", "a0"]
    assert await ids(store, limit=3) == ["b3", "b2", "b1"]
    assert await ids(store, limit=3, offset=2) == ["b1", "b0", "a5"]
    assert await ids(store, type="a") == ["a5", "a4", "a3", "a2", "a1", "a0"]
    assert await ids(store, state=JobState.PENDING) == ["b3", "b2", "a4", "a3"]
    assert await ids(store, instance="gpu-1") == ["b0", "a1", "a0"]
    assert await ids(store, state=JobState.PROCESSING, type="a") == ["a2", "a1"]
    assert await ids(store, state=JobState.PROCESSING, instance="gpu-2") == ["b1", "a2"]
    assert await ids(store, state=JobState.FAILED, type="b", instance="gpu-1") == ["b0"]
    assert await ids(store, type="a", instance="gpu-1", limit=1) == ["a1"]
    assert await ids(store, type="a", state=JobState.PENDING, offset=1) == ["a3"]
    assert await ids(store, type="c") == []
    assert await ids(store, state=JobState.COMPLETED, type="b") == []
    listed = await store.list(JobFilter(type="b", state=JobState.PROCESSING))
    assert listed == [await store.get("b1")]


async def test_list_pages_through_many_matches(store: JobStore) -> None:
    for i in range(450):
        await store.create(make_job(f"j{i:03d}", T0 + i, "a" if i % 3 else "b"))
    got = await ids(store, type="b", state=JobState.PENDING, limit=50, offset=100)
    assert got == [f"j{i:03d}" for i in range(447, -1, -3)][100:150]


async def test_counts_by_state_type_and_instance(store: JobStore) -> None:
    empty = await store.counts()
    assert empty.total == 0 and empty.by_type == {} and empty.by_instance == {}
    assert empty.by_state == {"pending": 0, "processing": 0, "completed": 0, "failed": 0}
    await _mixed(store)
    counts = await store.counts()
    assert counts.total == 10
    assert counts.by_state == {"pending": 4, "processing": 3, "completed": 1, "failed": 2}
    assert counts.by_type == {"a": 6, "b": 4}
    assert counts.by_instance == {"gpu-1": 3, "gpu-2": 2}
    assert await store.requeue("a2", 1)  # a requeued job has no instance
    assert (await store.counts()).by_instance == {"gpu-1": 3, "gpu-2": 1}
    await store.delete("b1")
    after = await store.counts()
    assert after.by_instance == {"gpu-1": 3} and after.by_type == {"a": 6, "b": 3} and after.total == 9


async def test_pending_count_follows_the_queue(store: JobStore) -> None:
    assert await store.pending_count() == 0
    await add_jobs(store, 4)
    assert await store.pending_count() == 4
    job = await claimed(store, "job-000")
    assert await store.pending_count() == 3
    assert await store.requeue("job-000", job.attempt)
    assert await store.pending_count() == 4
    await store.fail("job-001", None, {"message": "x"})
    await store.delete("job-002")
    assert await store.pending_count() == 2


async def test_delete_returns_the_removed_job(store: JobStore) -> None:
    await _mixed(store)
    before = await store.get("a1")
    removed = await store.delete("a1")
    assert removed is not None and removed == before
    assert await store.get("a1") is None
    assert await store.delete("a1") is None
    assert "a1" not in await ids(store)
    assert "a1" not in await ids(store, type="a", instance="gpu-1", state=JobState.PROCESSING)
    assert [j.id for j in await store.expired_leases(time.time() + 3600)] == ["a2", "b1"]
    assert await store.delete("a3") is not None
    assert [j.id for j in await store.unfinished()] == ["a2", "a4", "b1", "b2", "b3"]
    await store.create(make_job("a1"))  # the id is free again
    assert (await store.get("a1")).state is JobState.PENDING  # type: ignore[union-attr]


async def test_finished_before_returns_old_finished_jobs(store: JobStore) -> None:
    await add_jobs(store, 5)
    start = time.time()
    first = await claimed(store, "job-000")
    assert await store.complete("job-000", first.attempt, "r", {})
    assert await store.fail("job-001", None, {"message": "x"})
    second = await claimed(store, "job-002")
    assert await store.fail("job-002", second.attempt, {"message": "y"})
    await claimed(store, "job-003")  # processing, not finished
    done = {job.id: job for job in await store.list(JobFilter())}

    assert await store.finished_before(start - 1) == []
    got = await store.finished_before(time.time() + 1)
    assert sorted(job.id for job in got) == ["job-000", "job-001", "job-002"]
    assert all(job == done[job.id] for job in got)
    assert len(await store.finished_before(time.time() + 1, limit=2)) == 2
    cutoff = done["job-001"].finished_at
    assert cutoff is not None
    assert {job.id for job in await store.finished_before(cutoff)} == {
        j.id for j in done.values() if j.finished_at is not None and j.finished_at < cutoff
    }
    assert "job-001" not in {job.id for job in await store.finished_before(cutoff)}


async def test_unfinished_returns_pending_and_processing(store: JobStore) -> None:
    await add_jobs(store, 5)
    one = await claimed(store, "job-001")
    three = await claimed(store, "job-003")
    assert await store.complete("job-001", one.attempt, "r", {})
    assert await store.fail("job-004", None, {"message": "x"})
    unfinished = await store.unfinished()
    assert [job.id for job in unfinished] == ["job-000", "job-002", "job-003"]
    assert unfinished[2] == three


# --- lifecycle --------------------------------------------------------------------------------


async def test_jobs_survive_reopening(make_store: JobStoreFactory) -> None:
    async with make_store() as first:  # type: ignore[attr-defined]
        await add_jobs(first, 3)
        job = await claimed(first, "job-000", instance="gpu-1")
        assert await first.record_prompt("job-000", job.attempt, "prompt-1")
        saved = {j.id: j for j in await first.list(JobFilter())}

    async with make_store() as second:  # type: ignore[attr-defined]
        assert {j.id: j for j in await second.list(JobFilter())} == saved
        assert await second.pending_count() == 2
        assert [j.id for j in await second.unfinished()] == ["job-000", "job-001", "job-002"]
        nxt = await second.claim("worker-b", LEASE)
        assert nxt is not None and nxt.id == "job-001"
        assert not await second.complete("job-000", job.attempt + 1, "r", {})
        assert await second.complete("job-000", job.attempt, "r", {})
        with pytest.raises(ValueError):
            await second.create(make_job("job-002"))


async def test_close_is_idempotent_and_a_closed_store_refuses_calls(make_store: JobStoreFactory) -> None:
    store = make_store()
    with pytest.raises(RuntimeError):
        await store.get("x")
    async with store as opened:  # type: ignore[attr-defined]
        assert opened is store
        await store.create(make_job("x"))
    await store.close()
    with pytest.raises(RuntimeError):
        await store.get("x")
    with pytest.raises(RuntimeError):
        await store.claim("worker-a", LEASE)
    with pytest.raises(RuntimeError):
        await store.open()


# --- idempotency keys ----------------------------------------------------------------------------


async def test_create_once_creates_then_returns_the_same_job(store: JobStore) -> None:
    first, created = await store.create_once(make_job("job-a"), "key-1", 60)
    assert created and first.id == "job-a"
    again, created_again = await store.create_once(make_job("job-b"), "key-1", 60)
    assert not created_again and again.id == "job-a"
    assert await store.get("job-b") is None  # the second job was never stored
    other, created_other = await store.create_once(make_job("job-c"), "key-2", 60)
    assert created_other and other.id == "job-c"


async def test_create_once_concurrently_creates_one_job(store: JobStore) -> None:
    results = await asyncio.gather(*(store.create_once(make_job(f"job-{n}"), "same-key", 60) for n in range(10)))
    assert sum(created for _, created in results) == 1
    assert len({job.id for job, _ in results}) == 1
    assert (await store.counts()).total == 1


async def test_a_key_is_free_again_once_its_job_is_gone_or_it_expired(store: JobStore) -> None:
    await store.create_once(make_job("job-a"), "key-1", 60)
    await store.delete("job-a")
    job, created = await store.create_once(make_job("job-b"), "key-1", 60)
    assert created and job.id == "job-b"
    await store.create_once(make_job("job-c"), "short", 0.05)
    await asyncio.sleep(0.1)
    job, created = await store.create_once(make_job("job-d"), "short", 60)
    assert created and job.id == "job-d"
    assert await store.get("job-c") is not None  # the job itself stays; only its key expired


async def test_complete_keeps_outputs_and_expiry(store: JobStore) -> None:
    await store.create(make_job("job-out"))
    job = await store.claim("worker-a", LEASE)
    assert job is not None
    outputs = [Output(node_id="7", kind="gifs", filename="clip_00001_.mp4", content_type="video/mp4", size=12345,
                      sha256="ab" * 32, key="outputs/job-out-1/0", subfolder="sub"),
               Output(node_id="8", kind="text", filename="text_8_0.txt", content_type="text/plain; charset=utf-8",
                      size=3, sha256="cd" * 32, key="outputs/job-out-1/1")]
    assert await store.complete("job-out", job.attempt, "r", {}, outputs, expires_at=T0 + 3600.25)
    done = await store.get("job-out")
    assert done is not None and done.outputs == outputs and done.expires_at == T0 + 3600.25
    assert not done.expired(now=T0 + 3600) and done.expired(now=T0 + 3600.25)
    assert (await store.list(JobFilter()))[0].outputs == outputs


async def test_finished_before_since_skips_older_jobs(store: JobStore) -> None:
    for n in range(3):
        await store.create(make_job(f"f{n}", created_at=T0 + n))
        claimed = await store.claim_job(f"f{n}", "w", LEASE)
        assert claimed is not None and await store.complete(f"f{n}", claimed.attempt, "r", {})
    jobs = await store.finished_before(time.time() + 1)
    assert [j.id for j in jobs] == ["f0", "f1", "f2"]
    later = await store.finished_before(time.time() + 1, since=jobs[1].finished_at or 0.0)
    assert [j.id for j in later] == ["f1", "f2"]  # `since` is inclusive
