"""Operators' control of the circuit breakers (the seed's /api/circuit-breakers endpoints)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import Ops
from .models import BreakerChangeBody, BreakersBody, ErrorBody

router = APIRouter(prefix="/api/circuit-breakers", tags=["instances"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}


@router.get("", response_model=BreakersBody)
async def list_breakers(ops: Ops) -> dict[str, Any]:
    return {"circuit_breakers": ops.breakers()}


@router.post("/{name}/open", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def open_breaker(name: str, ops: Ops) -> dict[str, Any]:
    breaker = ops.open_breaker(name)
    return {"message": f"circuit breaker of {name} opened", "circuit_breaker": breaker.snapshot()}


@router.post("/{name}/close", response_model=BreakerChangeBody, responses=NOT_FOUND)
async def close_breaker(name: str, ops: Ops) -> dict[str, Any]:
    breaker = ops.close_breaker(name)
    return {"message": f"circuit breaker of {name} closed", "circuit_breaker": breaker.snapshot()}
