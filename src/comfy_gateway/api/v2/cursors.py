"""The list's `next_cursor`: the key (created_at, id) of the last job of a page, opaque to clients.

Keyset paging: the next page starts after that job whatever was created since, so new jobs never
shift a page (an offset would show some jobs twice).
"""

from __future__ import annotations

import base64
import binascii
import math

from ...errors import InvalidInput

_NOT_OURS = "this cursor was not issued by this list"


def encoded(key: tuple[float, str]) -> str:
    created_at, job_id = key
    return base64.urlsafe_b64encode(f"{created_at!r}/{job_id}".encode()).decode().rstrip("=")


def decoded(cursor: str) -> tuple[float, str]:
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
        created, _, job_id = text.partition("/")
        created_at = float(created)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(_NOT_OURS) from None
    if not job_id or not math.isfinite(created_at):
        raise InvalidInput(_NOT_OURS)
    return created_at, job_id
