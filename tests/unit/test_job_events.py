"""LocalJobEvents: who is woken, and what is remembered for a subscriber that comes late."""

from __future__ import annotations

from comfy_gateway.jobs.events import FINISHES_KEPT, LocalJobEvents
from comfy_gateway.jobs.model import Job, JobState


async def test_a_finish_wakes_its_subscriber_and_is_remembered_for_a_late_one() -> None:
    events = LocalJobEvents()
    early = events.subscribe("job-1")
    await events.publish_changed("job-1")
    assert not early.is_set() and not events.finished_lately("job-1")  # a change is no finish
    await events.publish_finished("job-1")
    assert early.is_set()
    assert events.finished_lately("job-1") and not events.finished_lately("job-2")


async def test_only_the_latest_finishes_are_remembered() -> None:
    events = LocalJobEvents()
    for n in range(FINISHES_KEPT + 1):
        await events.publish_finished(f"job-{n}")
    assert not events.finished_lately("job-0")
    assert events.finished_lately("job-1") and events.finished_lately(f"job-{FINISHES_KEPT}")


async def test_a_finished_job_is_handed_to_its_waiters_until_it_changes_or_nobody_waits() -> None:
    events = LocalJobEvents()
    done = Job(id="job-1", type="upscale-image", state=JobState.COMPLETED)
    await events.publish_finished("job-1", done)
    assert events.finished_job("job-1") is None  # nobody waited here: nothing is kept
    waiting = events.subscribe("job-1")
    await events.publish_finished("job-1", done)
    assert waiting.is_set() and events.finished_job("job-1") is done
    await events.publish_finished("job-1")  # deleted since: the waiter must read the store
    assert events.finished_job("job-1") is None
    await events.publish_finished("job-1", done)
    events.unsubscribe("job-1", waiting)
    assert events.finished_job("job-1") is None
