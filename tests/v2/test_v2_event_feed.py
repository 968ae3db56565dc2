"""The v2 event stream is fed by the job's events: the store is read when the job changes, not on a
timer, and progress still flows to the end."""

from __future__ import annotations

import asyncio

from comfy_sdk import AsyncComfy, Progress, StatusChange

from support.gateway import RunningGateway
from support.images import png
from support.store_reads import counted_reads
from support.v2 import LOADER, invert_graph
from support.waiting import eventually


async def test_the_stream_reads_the_job_only_when_it_changes(sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.pause()
        fake.set_service_time(0.8)
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", sdk.assets.from_bytes(png(), filename="in.png"))
    job = await sdk.submit(workflow)
    await eventually(lambda: sum(f.stats()["queue_depth"] for f in v2gw.fakes) == 1, what="the prompt at a server")
    reads = counted_reads(v2gw.gateway.store)
    events = job.events()
    seen = [await anext(events)]  # the running job's first frame
    read_before = len(reads)
    await asyncio.sleep(1.5)  # nothing changes meanwhile: a poller would read six times
    assert len(reads) == read_before
    for fake in v2gw.fakes:
        fake.resume()
    seen += [event async for event in events]

    statuses = [e.status for e in seen if isinstance(e, StatusChange)]
    assert statuses[-1] == "succeeded" and "running" in statuses
    values = [e.value for e in seen if isinstance(e, Progress)]
    assert len(values) >= 2 and values == sorted(values)
    assert len(reads) < 30  # one read per change, not one per quarter second


async def test_a_queued_jobs_stream_tells_its_queue_position(sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.set_service_time(30)
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", sdk.assets.from_bytes(png(), filename="in.png"))
    running = [await sdk.submit(workflow) for _ in range(4)]  # two servers, two slots each: all four run
    await eventually(lambda: sum(f.stats()["prompts_received"] for f in v2gw.fakes) == 4, timeout=10)
    waiting = await sdk.submit(workflow)
    first = await anext(waiting.events())
    assert isinstance(first, StatusChange) and (first.status, first.queue_position) == ("queued", 1)
    for fake in v2gw.fakes:
        fake.set_service_time(0)
    for job in [*running, waiting]:
        await job.cancel()
