"""S3BlobStore: blobs as objects of one bucket of any S3-compatible store (AWS, MinIO, R2, ...).

Keys go under `prefix`. Credentials and region come the standard AWS way (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, profiles, instance roles), read by
botocore. A stream is uploaded in parts of `part_bytes` (one plain PUT when it is smaller), so the
gateway holds at most one part of it; reads ask for ranges. `presign` makes a GET URL a client can
fetch the object with directly. The bucket must exist: `open` checks it. Errors of the store
(unreachable, denied, ...) raise StorageError, as the other stores' do.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.response import StreamingBody
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..lifecycle import Lifecycle
from .blobs import CHUNK_BYTES
from .outputs import content_disposition
from .resource import OpenClose
from .storage_faults import converting

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

PART_BYTES = 8 * 1024 * 1024  # S3 needs at least 5 MiB for every part but the last
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "InvalidRange"})


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


@converting((ClientError, BotoCoreError, OSError), "the result store (S3)")
class S3BlobStore(OpenClose):
    expires = False  # a bucket's own lifecycle rules are the operator's

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, part_bytes: int = PART_BYTES) -> None:
        if not bucket:
            raise ValueError("S3_BUCKET must be set for RESULT_STORE=s3")
        if part_bytes < 5 * 1024 * 1024:
            raise ValueError("part_bytes must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._endpoint_url = endpoint_url
        self._region = region
        self._part_bytes = part_bytes
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._phase = Lifecycle.NEW

    async def open(self) -> None:
        if self._phase is Lifecycle.CLOSED:
            raise RuntimeError("S3BlobStore is closed and cannot be reopened")
        config = AioConfig(signature_version="s3v4", s3={"addressing_style": "path"},
                           retries={"max_attempts": 3, "mode": "standard"})
        client = await self._stack.enter_async_context(get_session().create_client(
            "s3", endpoint_url=self._endpoint_url, region_name=self._region, config=config))
        self._client = client
        try:
            await client.head_bucket(Bucket=self.bucket)
        except BaseException:
            await self._stack.aclose()
            raise
        self._phase = Lifecycle.OPEN

    async def close(self) -> None:
        self._phase = Lifecycle.CLOSED
        await self._stack.aclose()

    @property
    def _s3(self) -> S3Client:
        if self._phase is not Lifecycle.OPEN or self._client is None:
            raise RuntimeError(f"S3BlobStore is {self._phase.value}, not open")
        return self._client

    def object_key(self, key: str) -> str:
        if not key:
            raise ValueError("blob key must not be empty")
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(self, key: str, data: bytes) -> None:
        await self._s3.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=bytes(data))

    async def get(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in await self.read(key)])

    async def delete(self, *keys: str) -> None:
        names = [self.object_key(key) for key in keys]
        for start in range(0, len(names), 1000):  # the most one request may name
            batch: list[ObjectIdentifierTypeDef] = [{"Key": name} for name in names[start:start + 1000]]
            await self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    async def exists(self, key: str) -> bool:
        try:
            await self._s3.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        buffer = bytearray()
        iterator = aiter(chunks)
        async for chunk in iterator:
            buffer += chunk
            if len(buffer) >= self._part_bytes:
                return await self._multipart(key, buffer, iterator)  # takes over the buffer
        await self.put(key, bytes(buffer))
        return len(buffer)

    async def _multipart(self, key: str, buffer: bytearray, rest: AsyncIterator[bytes]) -> int:
        name = self.object_key(key)
        upload = await self._s3.create_multipart_upload(Bucket=self.bucket, Key=name)
        upload_id = upload["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        size = 0

        async def send(data: bytes) -> None:
            number = len(parts) + 1
            answer = await self._s3.upload_part(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                PartNumber=number, Body=data)
            parts.append({"ETag": answer["ETag"], "PartNumber": number})

        try:
            async for chunk in rest:
                buffer += chunk
                if len(buffer) >= self._part_bytes:
                    part = bytes(buffer)
                    buffer.clear()  # before the upload: one copy of the part in memory, not two
                    size += len(part)
                    await send(part)
            if buffer or not parts:
                size += len(buffer)
                await send(bytes(buffer))
            await self._s3.complete_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id,
                                                     MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(ClientError):
                await self._s3.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise
        return size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            if not await self.exists(key):
                raise KeyError(key)
            return _nothing()
        wanted = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = await self._s3.get_object(Bucket=self.bucket, Key=self.object_key(key), Range=wanted)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) == "InvalidRange":  # start at or past the end
                return _nothing()
            if _missing(exc):
                raise KeyError(key) from exc
            raise
        return _body_chunks(answer["Body"])

    async def presign(self, key: str, ttl_seconds: int, content_type: str | None = None,
                      filename: str | None = None) -> str:
        """A URL that GETs the object, valid `ttl_seconds`; the response carries the given type and name."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.object_key(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        return await self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_seconds)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


async def _body_chunks(body: StreamingBody) -> AsyncIterator[bytes]:
    try:
        async for chunk in body.iter_chunks(CHUNK_BYTES):
            yield chunk
    finally:
        body.close()  # releases the connection, also when the reader stops early
