"""Live events of a job as Server-Sent Events, with ids a client can resume from.

The discrete events of a job (its status changes, its outputs) form a timeline that can be read
back from the job record at any time, by any replica: queued, then running and queued again for
each attempt that was retried, running, the outputs, the final status. Event `n` of that timeline
has the id `n`; a progress snapshot sent after it has the id `n-<percent>`. A client that comes
back with `Last-Event-ID` gets every timeline event after the one it names, and the current
progress if it changed: nothing missed, nothing twice. The stream follows the job through its
own notifications (the job events every replica publishes): it holds no connection to any ComfyUI
server and does not poll the store.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from ...errors import JobNotFound
from ...graph_jobs import GraphJobs, outputs_of
from ...jobs.model import Job, JobState
from ...settings import Settings
from .views import output_body, progress_body, v2_status

KEEPALIVE_S = 14.0  # the updates look at a quiet job every 15 s: a comment goes out then
_EVENT_ID = re.compile(r"(\d{1,9})(?:-(\d{1,3}))?")
Event = tuple[str, dict[str, Any]]


def _status(status: str) -> Event:
    return "status", {"status": status}


def timeline(job: Job, base: str, settings: Settings) -> list[Event]:
    events = [_status("queued")]
    for _ in job.history:  # each attempt that was given back to the queue for a retry
        events += [_status("running"), _status("queued")]
    requeued_at = int(job.history[-1].get("attempt", 0)) if job.history else 0
    if job.state is JobState.PROCESSING or (job.state.finished and job.attempt > requeued_at):
        events.append(_status("running"))
        if job.canceling_at is not None and job.state is not JobState.COMPLETED:
            events.append(_status("canceling"))  # asked while it ran: it ends canceled
    if job.state is JobState.COMPLETED:
        events += [("output", output_body(job, out, base, settings)) for out in outputs_of(job)]
    if job.state.finished:
        events.append(_status(v2_status(job)))
    return events


def resume_point(last_event_id: str | None) -> tuple[int, int | None]:
    """(timeline events the client has, the progress percent it saw last) from `Last-Event-ID`."""
    match = _EVENT_ID.fullmatch((last_event_id or "").strip())
    if match is None:
        return 0, None
    return int(match[1]), None if match[2] is None else int(match[2])


def frame(event_id: str, event: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _new_frames(job: Job, sent: int, last_pct: int | None, base: str, settings: Settings,
                position: int | None) -> tuple[list[str], int, int | None]:
    """The frames `job` adds after `sent` timeline events and progress `last_pct`, and the new marks."""
    events = timeline(job, base, settings)
    frames = []
    for n in range(sent, len(events)):
        event, data = events[n]
        if position is not None and n == len(events) - 1 and data == {"status": "queued"}:
            data = {**data, "queue_position": position}  # where it stands now, as it waits
        frames.append(frame(str(n + 1), event, data))
    sent = max(sent, len(events))
    if job.state is JobState.PROCESSING and int(job.progress) != last_pct:
        last_pct = int(job.progress)
        progress = progress_body(job)
        assert progress is not None
        frames.append(frame(f"{sent}-{last_pct}", "progress", progress))
    return frames, sent, last_pct


async def stream(jobs: GraphJobs, job: Job, base: str, settings: Settings,
                 last_event_id: str | None) -> AsyncIterator[str]:
    """Fed by the job's own events (JobService.updates): the job is read again only when it changed,
    or after a quiet while in case a notification was lost."""
    sent, last_pct = resume_point(last_event_id)
    sent = min(sent, len(timeline(job, base, settings)))
    quiet_since = time.monotonic()
    try:
        async for current in jobs.updates(job.id):
            frames, sent, last_pct = _new_frames(current, sent, last_pct, base, settings,
                                                 await jobs.queue_position(current))
            if frames:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                frames, quiet_since = [": keepalive\n\n"], time.monotonic()
            for text in frames:
                yield text
    except JobNotFound:
        return
