"""Operators' control of the circuit breakers (the seed's /api/circuit-breakers endpoints)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ..comfyui.instance import Instance
from ..errors import NotFound
from ..gateway import Gateway
from .deps import get_gateway
from .models import BreakerChangeBody, BreakersBody, ErrorBody

router = APIRouter(prefix="/api/circuit-breakers", tags=["instances"])
GW = Annotated[Gateway, Depends(get_gateway)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}


def _instance(gateway: Gateway, name: str) -> Instance:
    instance = gateway.pool.get(name)
    if instance is None:
        raise NotFound(f"unknown instance {name!r}", known=[i.name for i in gateway.pool])
    return instance


@router.get("", response_model=BreakersBody)
async def list_breakers(gateway: GW) -> dict[str, Any]:
    return {"circuit_breakers": {i.name: i.breaker.snapshot() for i in gateway.pool}}


@router.post("/{name}/open", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def open_breaker(name: str, gateway: GW) -> dict[str, Any]:
    instance = _instance(gateway, name)
    instance.breaker.force_open()
    return {"message": f"circuit breaker of {name} opened", "circuit_breaker": instance.breaker.snapshot()}


@router.post("/{name}/close", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def close_breaker(name: str, gateway: GW) -> dict[str, Any]:
    instance = _instance(gateway, name)
    instance.breaker.force_close()
    gateway.dispatcher.notify()
    return {"message": f"circuit breaker of {name} closed", "circuit_breaker": instance.breaker.snapshot()}
