"""The last 15 minutes in 10-second buckets: what the dashboard's live charts draw."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from .deps import Ops

router = APIRouter(tags=["metrics"])


class TimelinePoint(BaseModel):
    at: str = Field(description="start of the bucket")
    finished: int = Field(description="jobs this replica finished in the bucket (failed ones included)")
    failed: int
    p95_latency_ms: int | None = Field(description="submit to finish, over the bucket's successful jobs")
    pending: int | None = Field(description="the deepest queue seen in the bucket (the whole pool)")
    running: int | None = Field(description="the most jobs seen running at once in the bucket (the whole pool)")


class TimelineBody(BaseModel):
    span_seconds: float
    step_seconds: float
    points: list[TimelinePoint] = Field(description="oldest first; a stretch with nothing sampled has none")


@router.get("/api/metrics/timeline", response_model=TimelineBody)
async def timeline(ops: Ops) -> dict[str, Any]:
    return ops.timeline.snapshot()
