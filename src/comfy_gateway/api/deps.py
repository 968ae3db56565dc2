"""Request-scoped access to the two doors the lifespan's Gateway opened: jobs and the overview."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..overview import Overview
from ..service import JobService


def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def get_overview(request: Request) -> Overview:
    overview: Overview = request.app.state.overview
    return overview


Service = Annotated[JobService, Depends(get_service)]
Ops = Annotated[Overview, Depends(get_overview)]
