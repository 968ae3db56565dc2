"""WebSocket endpoint and message routing (§6, §6.1 of the protocol notes).

Routing is by clientId: one socket per id. A second socket with the same id replaces the first
in the routing table; when the older socket then closes, the id is removed even though the newer
socket still uses it, and the newer socket receives nothing more. Real ComfyUI behaves this way
and clients must cope with it, so it is reproduced on purpose. Nothing is buffered.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .stats import Stats

MAX_UPLOAD_SIZE = 100 * 1024 * 1024
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE}
CLOSE_TIMEOUT = 2.0

Message = tuple[str, dict[str, Any]]
Welcome = Callable[[str], list[Message]]


class WebSocketHub:
    """Tracks open sockets, the clientId routing table, and sends frames in one global order."""

    def __init__(self, stats: Stats, welcome: Welcome) -> None:
        self._stats = stats
        self._welcome = welcome
        self._routes: dict[str, web.WebSocketResponse] = {}
        self._open: set[web.WebSocketResponse] = set()
        self._lock = asyncio.Lock()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def routed_ids(self) -> list[str]:
        return list(self._routes)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """GET /ws?clientId=ID."""
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self._open.add(ws)
        self._stats.socket_opened()
        async with self._lock:
            self._routes[sid] = ws
            for event, data in self._welcome(sid):
                await self._send_frame(ws, _encode(event, data))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(ws, message.data)
        finally:
            self._open.discard(ws)
            self._routes.pop(sid, None)
        return ws

    async def _on_text(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            async with self._lock:
                await self._send_frame(ws, _encode("feature_flags", dict(SERVER_FEATURES)))

    async def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        """Send to the socket registered under `sid`, or to every routed socket when `sid` is None."""
        frame = _encode(event, data)
        async with self._lock:
            if sid is None:
                targets = list(self._routes.values())
            else:
                target = self._routes.get(sid)
                targets = [target] if target is not None else []
            for ws in targets:
                await self._send_frame(ws, frame)

    async def broadcast_status(self, queue_remaining: int) -> None:
        await self.send("status", status_data(queue_remaining))

    async def close_all(self) -> None:
        """Server-side close of every open socket (routed or not)."""
        sockets = list(self._open)
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY) for ws in sockets))

    @staticmethod
    async def _send_frame(ws: web.WebSocketResponse, frame: str) -> None:
        if ws.closed:
            return
        try:
            await ws.send_str(frame)
        except ConnectionError:
            return


def status_data(queue_remaining: int) -> dict[str, Any]:
    return {"status": {"exec_info": {"queue_remaining": queue_remaining}}}


def _encode(event: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": event, "data": data})
