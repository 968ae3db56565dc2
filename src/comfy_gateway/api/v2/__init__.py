"""The Comfy API v2 under /api/v2: graph jobs, assets, live events, health."""

from __future__ import annotations

from . import assets, health, jobs

routers = (jobs.router, assets.router, health.router)
