"""A loopback proxy in front of a fake ComfyUI that can turn its answers into server errors.

Forwards HTTP and the event WebSocket untouched. With `fail_prompts = True`, every POST /prompt is
answered 500 without reaching the server while everything else (the health probe included)
keeps working: a server that is up but fails every job. With `ws_delay` seconds, every new event
socket waits that long before its upgrade is answered: a slow connect.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"})


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail_prompts = False
        self.failed_prompts = 0
        self.ws_delay = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        if request.method == "POST" and request.path == "/prompt" and self.fail_prompts:
            await request.read()
            self.failed_prompts += 1
            return web.json_response({"error": "injected server error"}, status=500)
        if request.headers.get("upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        body = await request.read()
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body or None, allow_redirects=False) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=upstream.status, body=payload, headers=out)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        if self.ws_delay:
            await asyncio.sleep(self.ws_delay)
        server = web.WebSocketResponse()
        await server.prepare(request)
        async with self._session.ws_connect(self.upstream + request.path_qs) as client:

            async def pump(src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
                           dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse) -> None:
                async for msg in src:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                    elif msg.type is aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                    else:
                        break

            tasks = [asyncio.create_task(pump(client, server)), asyncio.create_task(pump(server, client))]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        await server.close()
        return server
