"""Storing a finished prompt's outputs: each file streams from /view into the result store.

No output is ever whole in memory (only the inline text ones, which are small by nature, and the one
the caller asks to keep: a named workflow's result image); each one is measured and hashed on the way
through. If one fails, the ones already stored are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..comfyui.client import ComfyClient
from ..comfyui.models import ImageRef
from ..comfyui.outputs import OutputItem, output_items
from ..jobs.blobs import BlobStore, one_chunk
from ..jobs.model import Job
from ..jobs.outputs import TEXT_TYPE, Digest, Output, content_type_of, output_key


@dataclass(frozen=True, slots=True)
class Collected:
    """What `collect` stored, and the bytes of the one output it was asked to keep (None when the
    entry did not list it)."""

    outputs: list[Output]
    kept: bytes | None = None
    kept_key: str | None = None  # where those bytes are stored


class OutputCollector:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def collect(self, client: ComfyClient, job: Job, entry: dict[str, Any],
                      keep: ImageRef | None = None) -> Collected:
        """Store every output of the entry; the bytes of `keep` are also gathered as they stream past
        (a job's result image: it is written while it arrives, never fetched twice)."""
        stored: list[Output] = []
        kept: list[bytes] = []
        kept_key = None
        try:
            for index, item in enumerate(output_items(entry)):
                key = output_key(job.id, job.attempt, index)
                keeping = kept_key is None and keep is not None and item.ref == keep
                if keeping:
                    kept_key = key
                stored.append(await self._store(client, key, item, kept if keeping else None))
        except BaseException:
            await asyncio.shield(self.discard(stored))
            raise
        return Collected(stored, None if kept_key is None else b"".join(kept), kept_key)

    async def discard(self, outputs: list[Output]) -> None:
        if outputs:
            await self.store.delete(*(o.key for o in outputs))

    async def _store(self, client: ComfyClient, key: str, item: OutputItem, into: list[bytes] | None) -> Output:
        digest = Digest()
        if item.ref is not None:
            filename, subfolder = item.ref.filename, item.ref.subfolder
            content_type = content_type_of(filename)
            async with contextlib.aclosing(client.view_stream(item.ref)) as chunks:
                await self.store.put_stream(key, digest.measured(_gathered(chunks, into)))
        else:
            filename, subfolder = f"{item.kind}_{item.node_id}_{item.position}.txt", ""
            content_type = TEXT_TYPE
            text = (item.text or "").encode()
            await asyncio.gather(digest.whole(text), self.store.put_stream(key, one_chunk(text)))
        return Output(node_id=item.node_id, kind=item.kind, filename=filename, content_type=content_type,
                      size=digest.size, sha256=digest.hexdigest, key=key, subfolder=subfolder,
                      blake3=digest.blake3_hexdigest)


async def _gathered(chunks: AsyncIterator[bytes], into: list[bytes] | None) -> AsyncIterator[bytes]:
    """The chunks passed on unchanged, each also appended to `into` (when there is one)."""
    async for chunk in chunks:
        if into is not None:
            into.append(chunk)
        yield chunk
