from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from fake_comfyui import FakeComfyUI

FakeFactory = Callable[..., Awaitable[list[FakeComfyUI]]]


@pytest.fixture
async def fake_servers() -> AsyncIterator[FakeFactory]:
    """`await fake_servers(n, service_time=...)` starts n fake ComfyUI servers on loopback ports."""
    started: list[FakeComfyUI] = []

    async def start(n: int = 2, **kwargs: object) -> list[FakeComfyUI]:
        fakes = [FakeComfyUI(host="127.0.0.1", port=0, **kwargs) for _ in range(n)]  # type: ignore[arg-type]
        for fake in fakes:
            await fake.__aenter__()
            started.append(fake)
        return fakes

    yield start
    for fake in reversed(started):
        await fake.__aexit__(None, None, None)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The endpoint URL of one S3 server (moto) for the whole session; tests make their own buckets."""
    from support.s3 import moto_server

    with moto_server() as url:
        yield url
