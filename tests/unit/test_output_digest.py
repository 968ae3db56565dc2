"""Digest: the size and both hashes of a stream, whatever the mix of chunk sizes (large chunks are
hashed in a thread while the stream goes on, and must still be hashed in order)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

from blake3 import blake3

from comfy_gateway.jobs.outputs import THREAD_HASH_BYTES, Digest


async def chunks_of(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_stream_of_mixed_chunks_is_hashed_in_order_and_passed_on_unchanged():
    big = THREAD_HASH_BYTES
    parts = [os.urandom(n) for n in (big * 3, 10, big, big + 1, 1, big * 2, 0, 7)]
    digest = Digest()
    passed = [chunk async for chunk in digest.measured(chunks_of(parts))]
    whole = b"".join(parts)
    assert passed == parts
    assert digest.size == len(whole)
    assert digest.hexdigest == hashlib.sha256(whole).hexdigest()
    assert digest.blake3_hexdigest == blake3(whole).hexdigest()


async def test_swapped_large_chunks_give_another_hash():
    a, b = os.urandom(THREAD_HASH_BYTES), os.urandom(THREAD_HASH_BYTES)
    first, second = Digest(), Digest()
    [_ async for _ in first.measured(chunks_of([a, b]))]
    [_ async for _ in second.measured(chunks_of([b, a]))]
    assert first.hexdigest == hashlib.sha256(a + b).hexdigest() != second.hexdigest
