"""The one timestamp format of the gateway's JSON: ISO 8601 in UTC with milliseconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=256)
def _second(whole_s: int) -> str:
    # strftime is most of the cost; log lines and job views ask for the same few seconds again and again
    return datetime.fromtimestamp(whole_s, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso(epoch_s: float) -> str:
    """`2025-06-04T12:44:18.415Z` for an epoch time in seconds."""
    whole = math.floor(epoch_s)
    micro = round((epoch_s - whole) * 1e6)  # as datetime.fromtimestamp rounds
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    return f"{_second(whole)}.{micro // 1000:03d}Z"
