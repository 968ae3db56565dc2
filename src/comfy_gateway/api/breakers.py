"""Operators' control of the circuit breakers (the seed's /api/circuit-breakers endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..comfyui.instance import Instance
from ..errors import NotFound
from ..gateway import Gateway
from . import breaker_views
from .deps import get_gateway
from .health_models import BreakerChangeBody, BreakerNotFoundBody, BreakersBody

router = APIRouter(prefix="/api/circuit-breakers", tags=["instances"])
GW = Annotated[Gateway, Depends(get_gateway)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": BreakerNotFoundBody}}


def _instance(gateway: Gateway, name: str) -> Instance:
    instance = breaker_views.find(gateway.pool, name)
    if instance is None:
        raise NotFound("Circuit breaker not found", name=name,
                       known=[i.name for i in gateway.pool] + list(breaker_views.seed_names(gateway.pool)))
    return instance


@router.get("", response_model=BreakersBody)
async def list_breakers(gateway: GW) -> JSONResponse:
    return JSONResponse(breaker_views.all_breakers(gateway.pool))


@router.post("/{name}/open", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def open_breaker(name: str, gateway: GW) -> JSONResponse:
    instance = _instance(gateway, name)
    instance.breaker.force_open()
    return JSONResponse(breaker_views.changed(name, instance, "opened"))


@router.post("/{name}/close", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def close_breaker(name: str, gateway: GW) -> JSONResponse:
    instance = _instance(gateway, name)
    instance.breaker.force_close()
    gateway.dispatcher.notify()
    return JSONResponse(breaker_views.changed(name, instance, "closed"))
