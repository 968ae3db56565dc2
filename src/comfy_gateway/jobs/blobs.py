"""BlobStore: where upload and result bytes live while a job needs them (never in job rows).

Small blobs go in and out whole (`put`, `get`); outputs of any size go in and out as streams of
chunks (`put_stream`, `read`), so a 300 MB video never sits in the gateway's memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol, runtime_checkable

CHUNK_BYTES = 256 * 1024  # what one read of a stream hands on


async def first_chunks(stream: AsyncIterator[bytes], limit: int) -> tuple[list[bytes], int]:
    """The stream's next chunks as they came, until together they pass `limit` bytes or it ends,
    and their size: at most `limit` means the stream has ended (the rest is still `stream`'s)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return chunks, size


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """Bytes already in memory as a stream (`put_stream`, `read`): one chunk, none when empty."""
    if data:
        yield data


class BlobStore(Protocol):
    @property
    def expires(self) -> bool:
        """Whether a blob goes by itself some time after its last write (Redis): one still needed is
        written again to keep it."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes:
        """Raises KeyError when the blob does not exist."""

    async def delete(self, *keys: str) -> None:
        """Missing keys are ignored."""

    async def exists(self, key: str) -> bool: ...

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the chunks as one blob and return its size. Readers see the blob only once the last
        chunk is in; if the chunks fail, nothing is left behind."""

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes `[start, end)` of a blob (to its end when `end` is None), in chunks.

        Raises KeyError, before any chunk, when the blob does not exist."""


@runtime_checkable
class PresigningStore(Protocol):
    """A store whose blobs clients can fetch directly (S3): downloads may go there instead."""

    async def presign(self, key: str, ttl_seconds: int, content_type: str | None = None,
                      filename: str | None = None) -> str: ...
