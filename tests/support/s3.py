"""A real S3 protocol server for the tests: moto's standalone server on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

# moto accepts any credentials; botocore insists on having some (the standard variables).
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Its endpoint URL, e.g. http://127.0.0.1:41234, while the server runs."""
    for name, value in TEST_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


async def create_bucket(endpoint_url: str) -> str:
    name = f"cg-test-{uuid.uuid4().hex[:12]}"
    async with get_session().create_client("s3", endpoint_url=endpoint_url) as s3:
        await s3.create_bucket(Bucket=name)
    return name


async def object_keys(endpoint_url: str, bucket: str) -> list[str]:
    async with get_session().create_client("s3", endpoint_url=endpoint_url) as s3:
        answer = await s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in answer.get("Contents", []))
