"""GET /api/v2/health: whether this gateway can take and run jobs now (no server is called)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..deps import get_gateway
from .views import PREFIX

router = APIRouter(prefix=PREFIX, tags=["v2"])


@router.get("/health", summary="Whether jobs can be taken and run now")
async def health(request: Request) -> dict[str, Any]:
    gateway = get_gateway(request)
    healthy = len(gateway.pool.available())
    ready = gateway.admitting and healthy > 0
    return {"status": "healthy" if ready else "degraded", "accepting_jobs": gateway.admitting,
            "servers": {"total": len(list(gateway.pool)), "healthy": healthy}}
