"""GET /api/v2/health: whether this gateway takes jobs and has a server to run them (none is called)."""

from __future__ import annotations

from fastapi import APIRouter

from .deps import Jobs
from .models import HealthBody
from .views import PREFIX

router = APIRouter(prefix=PREFIX, tags=["v2"])


@router.get("/health", summary="Whether jobs can be taken and run now", response_model=HealthBody)
async def health(jobs: Jobs) -> dict[str, str]:
    return {"status": "healthy" if jobs.accepting() else "degraded"}
