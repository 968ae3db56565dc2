"""BlobStore: where upload and result bytes live while a job needs them (never in job rows)."""

from __future__ import annotations

from typing import Protocol


class BlobStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes:
        """Raises KeyError when the blob does not exist."""

    async def delete(self, *keys: str) -> None:
        """Missing keys are ignored."""

    async def exists(self, key: str) -> bool: ...
