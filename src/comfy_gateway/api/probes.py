"""Kubernetes probes: `/live` (the process answers) and `/ready` (this replica can take work).

`/health` stays the original's combined view; these two are cheap and say one thing each.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..gateway import Gateway
from .deps import get_gateway

router = APIRouter(tags=["health"])
GW = Annotated[Gateway, Depends(get_gateway)]


@router.get("/live", summary="Liveness: the process answers (never asks ComfyUI or the store)")
async def live() -> JSONResponse:
    return JSONResponse({"status": "alive"})


@router.get("/ready", summary="Readiness: store reachable, a healthy server, the queue below its bound",
            responses={503: {"description": "not ready; `reasons` says why"}})
async def ready(gateway: GW) -> JSONResponse:
    readiness = await gateway.readiness()
    headers = None if readiness.ready else {"Retry-After": "5"}
    return JSONResponse(readiness.body(), status_code=200 if readiness.ready else 503, headers=headers)
