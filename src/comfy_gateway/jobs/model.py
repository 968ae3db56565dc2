"""The job record, its states and the transitions between them, written down once."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from .outputs import Output


class JobState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED)


# processing -> pending is a retry on another server (or a lease taken over after a crash).
ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.PROCESSING, JobState.FAILED}),
    JobState.PROCESSING: frozenset({JobState.PENDING, JobState.COMPLETED, JobState.FAILED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
}


def can_transition(old: JobState, new: JobState) -> bool:
    return new in ALLOWED_TRANSITIONS[old]


def compact_json(value: Any) -> str:
    """How the stores write the JSON parts of a job."""
    return json.dumps(value, separators=(",", ":"))


ANONYMOUS_TENANT = "anonymous"  # the one tenant of a gateway without API keys


def new_job_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Job:
    """One unit of work. Holds references to blobs, never image bytes."""

    id: str
    type: str
    state: JobState = JobState.PENDING
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    params: dict[str, Any] = field(default_factory=dict)
    input_blob: str | None = None
    input_meta: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    instance: str | None = None
    prompt_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0  # percent, 0-100
    result_blob: str | None = None
    result_meta: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    tenant: str = ANONYMOUS_TENANT  # the API key's name: fair share, limits and who may see the job
    priority: int = 0  # of its key: higher goes first
    webhook_deliveries: list[dict[str, Any]] = field(default_factory=list)  # one entry per attempt
    outputs: list[Output] = field(default_factory=list)  # every file of every output node, in order
    expires_at: float | None = None  # when its result and outputs go (set when it completes)
    placement: dict[str, Any] | None = None  # where the current attempt runs and why (dispatch/placement.py)
    canceling_at: float | None = None  # when a cancel of the running job was asked (it ends canceled)
    # W3C trace context ({"traceparent": ...}) of the job's trace: its later spans, run by whichever
    # replica executes it, continue that trace. Empty when tracing is off.
    trace_context: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The stores hand back the outputs as the dicts they wrote.
        self.outputs = [o if isinstance(o, Output) else Output.from_dict(o) for o in self.outputs]

    def to_dict(self) -> dict[str, Any]:
        """Every field, as the stores write it. Not a deep copy (`asdict` was one, and a cost on
        every write): the stores serialize it at once."""
        data = {name: getattr(self, name) for name in _JOB_FIELDS}
        data["state"] = self.state.value
        data["outputs"] = [output.to_dict() for output in self.outputs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        values = dict(data)
        values["state"] = JobState(values["state"])
        return cls(**values)

    def expired(self, now: float | None = None) -> bool:
        """Whether its result and outputs are past their time (RESULT_TTL)."""
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    @property
    def queue_wait_seconds(self) -> float | None:
        return None if self.started_at is None else max(0.0, self.started_at - self.created_at)

    @property
    def processing_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)


_JOB_FIELDS = tuple(f.name for f in fields(Job))
