"""The S3 store's failures are storage errors (503 with Retry-After), never a driver's exception."""

from __future__ import annotations

import socket

import pytest

from comfy_gateway.errors import StorageError
from comfy_gateway.jobs.blob_s3 import S3BlobStore
from support.s3 import create_bucket


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_store_does_not_open() -> None:
    store = S3BlobStore("results", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(StorageError) as info:
        await store.open()
    assert "the result store (S3) is unavailable" in info.value.message and info.value.retry_after > 0


async def test_a_missing_bucket_does_not_open(s3_endpoint: str) -> None:
    with pytest.raises(StorageError):
        await S3BlobStore("no-such-bucket-here", endpoint_url=s3_endpoint).open()


async def test_keys_go_under_the_prefix_and_urls_are_presigned(s3_endpoint: str) -> None:
    bucket = await create_bucket(s3_endpoint)
    async with S3BlobStore(bucket, "/tenant/results/", endpoint_url=s3_endpoint) as store:
        assert store.object_key("outputs/j-1/0") == "tenant/results/outputs/j-1/0"
        url = await store.presign("outputs/j-1/0", 60, "video/mp4", 'a "clip".mp4')
        assert url.startswith(f"{s3_endpoint}/{bucket}/tenant/results/outputs/j-1/0?")
        assert "X-Amz-Expires=60" in url and "response-content-type=video%2Fmp4" in url
    with pytest.raises(ValueError):
        S3BlobStore("")
