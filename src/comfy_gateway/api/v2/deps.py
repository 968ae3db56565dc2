"""What the v2 routes get per request: the graph-job service and the address the client used."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ...graph_jobs import GraphJobs
from ..deps import get_gateway


def get_graph_jobs(request: Request) -> GraphJobs:
    return GraphJobs(get_gateway(request))


Jobs = Annotated[GraphJobs, Depends(get_graph_jobs)]


def base_url(request: Request) -> str:
    """Scheme and authority the client reached us on: links in answers are absolute and point back here."""
    return f"{request.url.scheme}://{request.url.netloc}"
