"""Counting the job reads a gateway's store answers, to show a stream reads only when a job changed."""

from __future__ import annotations

from typing import Any


def counted_reads(store: Any) -> list[str]:
    """The ids `store.get` is asked for from now on (the real store still answers every read)."""
    reads: list[str] = []
    real_get = store.get

    async def counting_get(wanted: str) -> Any:
        reads.append(wanted)
        return await real_get(wanted)

    store.get = counting_get
    return reads
