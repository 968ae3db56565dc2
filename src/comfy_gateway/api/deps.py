"""Request-scoped access to the two doors the lifespan's Gateway opened: jobs and the overview.

The dependencies are `async def` although they never wait: FastAPI runs a plain `def` dependency on
a worker thread, two thread hops per request for a dictionary lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..access import Principal
from ..errors import Unauthorized
from ..overview import Overview
from ..service import JobService


async def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def get_overview(request: Request) -> Overview:
    overview: Overview = request.app.state.overview
    return overview


Service = Annotated[JobService, Depends(get_service)]
Ops = Annotated[Overview, Depends(get_overview)]


REALM = 'Bearer realm="comfy-gateway"'


async def get_caller(request: Request) -> Principal:
    """Who is calling, as the auth middleware found out; a route outside its care has no caller."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise Unauthorized("an API key is required", REALM)
    return principal


Caller = Annotated[Principal, Depends(get_caller)]
