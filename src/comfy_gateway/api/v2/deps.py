"""What the v2 routes get per request: the graph-job door and the address the client used."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from ...errors import InvalidInput
from ...graph_jobs import GraphJobs

MAX_KEY_LENGTH = 255


def checked_key(key: str | None) -> str | None:
    """The contract's Idempotency-Key: 1-255 printable ASCII characters."""
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters")
    return key


async def get_graph_jobs(request: Request) -> GraphJobs:
    jobs: GraphJobs = request.app.state.graph_jobs
    return jobs


Jobs = Annotated[GraphJobs, Depends(get_graph_jobs)]


def base_url(request: Request) -> str:
    """Scheme and authority the client reached us on: links in answers are absolute and point back here."""
    return f"{request.url.scheme}://{request.url.netloc}"


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body
