"""Operators' control of the circuit breakers (the seed's /api/circuit-breakers endpoints)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..errors import NotFound
from ..overview import Overview
from . import breaker_views
from .deps import Ops
from .health_models import BreakerChangeBody, BreakerNotFoundBody, BreakersBody

router = APIRouter(prefix="/api/circuit-breakers", tags=["instances"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": BreakerNotFoundBody}}


async def _server(ops: Overview, name: str) -> str:
    servers = [snap.name for snap in await ops.instances()]
    server = breaker_views.server_named(servers, name)
    if server is None:
        raise NotFound("Circuit breaker not found", name=name, known=servers + list(breaker_views.seed_names(servers)))
    return server


@router.get("", response_model=BreakersBody)
async def list_breakers(ops: Ops) -> JSONResponse:
    figures = {snap.name: snap.figures for snap in await ops.instances()}
    return JSONResponse(breaker_views.all_breakers(figures, ops.breakers()))


@router.post("/{name}/open", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def open_breaker(name: str, ops: Ops) -> JSONResponse:
    breaker = ops.open_breaker(await _server(ops, name))
    return JSONResponse(breaker_views.changed(name, breaker.figures(), breaker.snapshot(), "opened"))


@router.post("/{name}/close", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def close_breaker(name: str, ops: Ops) -> JSONResponse:
    breaker = ops.close_breaker(await _server(ops, name))
    return JSONResponse(breaker_views.changed(name, breaker.figures(), breaker.snapshot(), "closed"))
