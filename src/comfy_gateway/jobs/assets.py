"""Assets: uploaded files, content-addressed by blake3 and kept in the blob store.

The bytes of a file live once, under `cas/blake3-<hex>`, however many assets name them; each asset
is a small JSON record under `assets/<uuid>` pointing at its bytes. Both are plain blobs, so every
replica sees the same assets through the same BlobStore, and nothing new has to be opened.

An asset is its tenant's. Bytes are stored once for all tenants, but a tenant finds them by hash
(HEAD by-hash, from-hash) only once it uploaded them itself: a marker `cas-seen/<tenant>/<hex>`
says so. Otherwise a hash alone would read another tenant's file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass

from blake3 import blake3

from ..errors import BlobNotFound, HashMismatch, InvalidInput
from .blobs import BlobStore
from .model import ANONYMOUS_TENANT

HASH_PREFIX = "blake3:"
_HASH = re.compile(r"blake3:[0-9a-f]{64}")
_ASSET_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def content_hash(data: bytes) -> str:
    return HASH_PREFIX + blake3(data).hexdigest()


def checked_hash(value: str) -> str:
    """`value` in its canonical form (`blake3:` and 64 lower-case hex digits), or InvalidInput."""
    canonical = value.strip().lower()
    if not _HASH.fullmatch(canonical):
        raise InvalidInput("a hash is `blake3:` followed by 64 hex digits", hash=value[:80])
    return canonical


def content_key(hash_: str) -> str:
    return "cas/" + hash_.replace(":", "-")


def is_asset_id(value: str) -> bool:
    return bool(_ASSET_ID.fullmatch(value))


@dataclass(frozen=True)
class AssetRecord:
    id: str
    hash: str
    size_bytes: int
    content_type: str
    file_path: str
    created_at: float
    tags: tuple[str, ...] = ()
    tenant: str = ANONYMOUS_TENANT

    @property
    def content_key(self) -> str:
        return content_key(self.hash)


def _seen_key(tenant: str, hash_: str) -> str:
    return f"cas-seen/{hashlib.sha256(tenant.encode()).hexdigest()[:24]}/{hash_.removeprefix(HASH_PREFIX)}"


class AssetStore:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def add(self, data: bytes, *, tenant: str, content_type: str, file_path: str, tags: tuple[str, ...] = (),
                  expected_hash: str | None = None) -> tuple[AssetRecord, bool]:
        """A new asset of `tenant` for `data`, and whether the bytes were new (False: stored already,
        not again). `expected_hash`, the hash the client computed, must be the hash of what arrived."""
        hash_ = content_hash(data)
        if expected_hash is not None and expected_hash != hash_:
            raise HashMismatch("the uploaded bytes do not have the hash the client declared",
                               expected_hash=expected_hash, hash=hash_)
        created_new = not await self._blobs.exists(content_key(hash_))
        record = AssetRecord(id=str(uuid.uuid4()), hash=hash_, size_bytes=len(data), content_type=content_type,
                             file_path=file_path, created_at=time.time(), tags=tags, tenant=tenant)
        writes = [self._blobs.put(_seen_key(tenant, hash_), b""), self._save(record)]
        if created_new or self._blobs.expires:  # known bytes again only so that they expire from the newest use
            writes.append(self._blobs.put(content_key(hash_), data))
        await asyncio.gather(*writes)  # side by side, all before the answer
        return record, created_new

    async def has_hash(self, hash_: str, tenant: str) -> bool:
        """Whether `tenant` stored bytes with this hash."""
        return await self._blobs.exists(_seen_key(tenant, hash_)) and await self._blobs.exists(content_key(hash_))

    async def from_hash(self, hash_: str, *, tenant: str, file_path: str | None, content_type: str | None,
                        tags: tuple[str, ...] = ()) -> AssetRecord:
        """A new asset of `tenant` over bytes it stored already (BlobNotFound when there are none)."""
        if not await self._blobs.exists(_seen_key(tenant, hash_)):
            raise BlobNotFound(f"no stored bytes have the hash {hash_}", hash=hash_)
        try:
            data = await self._blobs.get(content_key(hash_))
        except KeyError:
            raise BlobNotFound(f"no stored bytes have the hash {hash_}", hash=hash_) from None
        record = AssetRecord(id=str(uuid.uuid4()), hash=hash_, size_bytes=len(data),
                             content_type=content_type or "application/octet-stream",
                             file_path=file_path or hash_.removeprefix(HASH_PREFIX)[:16],
                             created_at=time.time(), tags=tags, tenant=tenant)
        writes = [self._save(record)]
        if self._blobs.expires:  # the bytes again, so the new asset keeps them as long as itself
            writes.append(self._blobs.put(content_key(hash_), data))
        await asyncio.gather(*writes)
        return record

    async def get(self, asset_id: str) -> AssetRecord | None:
        if not is_asset_id(asset_id):
            return None
        try:
            raw = await self._blobs.get(_record_key(asset_id))
        except KeyError:
            return None
        values = json.loads(raw)
        values["tags"] = tuple(values.get("tags", ()))
        return AssetRecord(**values)

    async def content(self, record: AssetRecord) -> bytes:
        try:
            return await self._blobs.get(record.content_key)
        except KeyError:
            raise BlobNotFound(f"the bytes of asset {record.id} are no longer stored", asset_id=record.id) from None

    async def delete(self, asset_id: str) -> bool:
        """Forget the asset; its bytes stay while other assets may name them."""
        if await self.get(asset_id) is None:
            return False
        await self._blobs.delete(_record_key(asset_id))
        return True

    async def _save(self, record: AssetRecord) -> None:
        await self._blobs.put(_record_key(record.id), json.dumps(asdict(record)).encode())


def _record_key(asset_id: str) -> str:
    return f"assets/{asset_id}"
