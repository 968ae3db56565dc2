"""A real HTTP server on 127.0.0.1 that records every POST it gets (webhooks, OTLP exports)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Posted:
    path: str
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackReceiver:
    """`async with LoopbackReceiver() as url`: POSTs to any path under `url` are kept in `posts`.

    `answer(body) -> (status, payload, content type)` shapes the reply (default: 204, empty)."""

    def __init__(self, answer: Callable[[bytes], tuple[int, bytes, str]] | None = None) -> None:
        self.posts: list[Posted] = []
        self.arrived = asyncio.Event()
        self._answer = answer or (lambda _: (204, b"", "text/plain"))
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts.append(Posted(request.path, request.content_type, body, dict(request.headers)))
        self.arrived.set()
        status, payload, content_type = self._answer(body)
        return web.Response(status=status, body=payload or None, content_type=content_type)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
