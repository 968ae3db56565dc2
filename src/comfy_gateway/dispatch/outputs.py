"""Storing a finished prompt's outputs: each file streams from /view into the result store.

No output is ever whole in memory (only the inline text ones, which are small by nature); each one
is measured and hashed on the way through. If one fails, the ones already stored are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from ..comfyui.client import ComfyClient
from ..comfyui.models import ImageRef
from ..comfyui.outputs import OutputItem, output_items
from ..jobs.blobs import BlobStore, one_chunk
from ..jobs.model import Job
from ..jobs.outputs import TEXT_TYPE, Digest, Output, content_type_of, output_key


class OutputCollector:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    async def collect(self, client: ComfyClient, job: Job, entry: dict[str, Any],
                      fetched: Mapping[ImageRef, bytes] | None = None) -> list[Output]:
        """Store every output of the entry; files in `fetched` (already read whole) are not fetched again."""
        stored: list[Output] = []
        try:
            for index, item in enumerate(output_items(entry)):
                key = output_key(job.id, job.attempt, index)
                stored.append(await self._store(client, key, item, fetched or {}))
        except BaseException:
            await asyncio.shield(self.discard(stored))
            raise
        return stored

    async def discard(self, outputs: list[Output]) -> None:
        if outputs:
            await self.store.delete(*(o.key for o in outputs))

    async def _store(self, client: ComfyClient, key: str, item: OutputItem,
                     fetched: Mapping[ImageRef, bytes]) -> Output:
        digest = Digest()
        if item.ref is not None:
            filename, subfolder = item.ref.filename, item.ref.subfolder
            content_type = content_type_of(filename)
            known = fetched.get(item.ref)
        else:
            filename, subfolder = f"{item.kind}_{item.node_id}_{item.position}.txt", ""
            content_type = TEXT_TYPE
            known = (item.text or "").encode()
        if known is not None:  # in memory already: hashed while it is written, not before
            await asyncio.gather(digest.whole(known), self.store.put_stream(key, one_chunk(known)))
        else:
            assert item.ref is not None
            async with contextlib.aclosing(client.view_stream(item.ref)) as chunks:
                await self.store.put_stream(key, digest.measured(chunks))
        return Output(node_id=item.node_id, kind=item.kind, filename=filename, content_type=content_type,
                      size=digest.size, sha256=digest.hexdigest, key=key, subfolder=subfolder,
                      blake3=digest.blake3_hexdigest)
