"""The dashboard's timeline: buckets of finished jobs, latency and queue depth over the last minutes."""

from __future__ import annotations

import asyncio

from comfy_gateway.jobs.model import Job
from comfy_gateway.observability.timeline import Timeline


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def finished_job(created_at: float, finished_at: float) -> Job:
    return Job(id="j", type="upscale-image", params={}, input_meta={}, created_at=created_at, finished_at=finished_at)


def test_jobs_fall_into_the_bucket_of_their_finish_with_latency_from_submit():
    clock = Clock(1000.0)
    timeline = Timeline(span_s=60, step_s=10, clock=clock)
    timeline.job_finished(finished_job(995.0, 1000.0), ok=True)
    timeline.job_finished(finished_job(998.0, 1000.0), ok=True)
    timeline.job_finished(finished_job(990.0, 1001.0), ok=False)
    clock.now = 1012.0
    timeline.job_finished(finished_job(1011.0, 1012.0), ok=True)
    points = timeline.snapshot()["points"]
    assert [(p["finished"], p["failed"], p["p95_latency_ms"]) for p in points] == [(3, 1, 5000), (1, 0, 1000)]
    assert points[0]["at"] == "1970-01-01T00:16:40.000Z"


def test_the_queue_sample_keeps_the_deepest_of_its_bucket():
    clock = Clock(2000.0)
    timeline = Timeline(span_s=60, step_s=10, clock=clock)
    for pending, running in ((3, 1), (7, 2), (2, 2)):
        timeline.sample(pending, running)
    (point,) = timeline.snapshot()["points"]
    assert (point["pending"], point["running"], point["finished"], point["p95_latency_ms"]) == (7, 2, 0, None)


def test_buckets_older_than_the_span_are_dropped():
    clock = Clock(3000.0)
    timeline = Timeline(span_s=30, step_s=10, clock=clock)
    for _ in range(6):
        timeline.sample(1, 0)
        clock.now += 10
    points = timeline.snapshot()["points"]  # the span's last buckets, up to the current one (not sampled yet)
    assert [p["at"] for p in points] == ["1970-01-01T00:50:40.000Z", "1970-01-01T00:50:50.000Z",
                                         "1970-01-01T00:51:00.000Z"]
    assert [p["pending"] for p in points] == [1, 1, None]


async def test_the_sampler_reads_the_queue_until_cancelled():
    timeline = Timeline(span_s=60, step_s=0.05)
    reads = 0

    async def read() -> tuple[int, int]:
        nonlocal reads
        reads += 1
        return reads, 0

    task = asyncio.create_task(timeline.run(read))
    while reads < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert max(p["pending"] or 0 for p in timeline.snapshot()["points"]) >= 3
