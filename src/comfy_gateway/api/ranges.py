"""One `Range: bytes=...` header (RFC 9110 §14) against a file of known size."""

from __future__ import annotations

import re

from ..errors import RangeNotSatisfiable

_SINGLE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`[start, end)` the header asks for, None without one; RangeNotSatisfiable for anything
    malformed, outside the file, or several ranges (only one is served)."""
    if header is None:
        return None
    match = _SINGLE.fullmatch(header.strip().replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeNotSatisfiable(f"unsupported Range {header[:100]!r}: give one range, bytes=start-end",
                                  size=size)
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size
        if int(last) == 0:
            raise RangeNotSatisfiable("a suffix range of 0 bytes selects nothing", size=size)
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
        if last and int(last) < start:
            raise RangeNotSatisfiable(f"Range {header[:100]!r} ends before it starts", size=size)
    if start >= size:
        raise RangeNotSatisfiable(f"Range {header[:100]!r} starts at or past the end ({size} bytes)", size=size)
    return start, end
