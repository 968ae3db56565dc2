"""Kubernetes probes: `/live` (the process answers) and `/ready` (this replica can take work).

`/health` stays the original's combined view; these two are cheap and say one thing each.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from .deps import Ops

router = APIRouter(tags=["health"])


class LiveBody(BaseModel):
    status: Literal["alive"]


class ReadyBody(BaseModel):
    status: Literal["ready", "not_ready"]
    reasons: list[str]
    checks: dict[str, Any]


@router.get("/live", response_model=LiveBody,
            summary="Liveness: the process answers (never asks ComfyUI or the store)")
async def live() -> JSONResponse:
    return JSONResponse({"status": "alive"})


@router.get("/ready", response_model=ReadyBody, responses={503: {"model": ReadyBody}},
            summary="Readiness: store reachable, a healthy server, the queue below its bound")
async def ready(overview: Ops) -> JSONResponse:
    readiness = await overview.readiness()
    headers = None if readiness.ready else {"Retry-After": "5"}
    return JSONResponse(readiness.body(), status_code=200 if readiness.ready else 503, headers=headers)
