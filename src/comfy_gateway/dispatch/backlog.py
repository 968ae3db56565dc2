"""The work this replica has sent to each server and not seen end: how much is queued ahead there.

A ComfyUI server runs its prompts one at a time, in the order they came. So the job at the head of
a server's queue started when it was sent or when the job before it ended, whichever was later;
that interval, measured when the job ends, is the service-time sample the estimates learn from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Sent:
    job_id: str
    workflow: str
    expected_s: float
    cold: bool
    sent_at: float = field(default_factory=time.monotonic)


@dataclass
class Ended:
    """A job that left its server's queue: how long it held the server, and whether it was cold."""

    workflow: str
    held_s: float
    cold: bool


@dataclass
class ServerQueue:
    jobs: list[Sent] = field(default_factory=list)
    last_end: float = 0.0  # monotonic time the previous job here ended

    def _left(self, index: int, job: Sent, now: float) -> float:
        if index == 0:  # under way: what is left of it
            return max(0.0, job.expected_s - (now - max(job.sent_at, self.last_end)))
        return job.expected_s

    def ahead_s(self, now: float) -> float:
        """Expected seconds until the server gets to a job sent now."""
        return sum(self._left(index, job, now) for index, job in enumerate(self.jobs))

    def until_end(self, job_id: str, now: float) -> float | None:
        """Expected seconds until `job_id` ends, or None if it is not queued here."""
        total = 0.0
        for index, job in enumerate(self.jobs):
            total += self._left(index, job, now)
            if job.job_id == job_id:
                return total
        return None


class Backlog:
    def __init__(self) -> None:
        self._queues: dict[str, ServerQueue] = {}
        self._where: dict[str, str] = {}  # job id -> server

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._where

    def queue(self, server: str) -> ServerQueue:
        queue = self._queues.get(server)
        if queue is None:  # not setdefault: that would build a ServerQueue at every call
            queue = self._queues[server] = ServerQueue()
        return queue

    def sent(self, server: str, job: Sent) -> None:
        self.queue(server).jobs.append(job)
        self._where[job.job_id] = server

    def ended(self, server: str, job_id: str) -> Ended | None:
        """Take `job_id` off the server's queue; what it measured, if this replica had sent it."""
        queue = self.queue(server)
        now = time.monotonic()
        self._where.pop(job_id, None)
        found = next((j for j in queue.jobs if j.job_id == job_id), None)
        ended = None
        if found is not None:
            queue.jobs.remove(found)
            ended = Ended(found.workflow, now - max(found.sent_at, queue.last_end), found.cold)
        queue.last_end = now
        return ended

    def until_end(self, job_id: str) -> float | None:
        """Expected seconds until a job this replica sent ends (None if it sent no such job)."""
        server = self._where.get(job_id)
        return None if server is None else self.queue(server).until_end(job_id, time.monotonic())

    def local_count(self, server: str) -> int:
        return len(self.queue(server).jobs)
