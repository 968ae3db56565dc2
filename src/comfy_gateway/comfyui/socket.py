"""One event WebSocket of the hub's pool: opened under a fresh clientId each time (protocol §6.1),
read frame by frame until it closes or fails."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp

from comfy_gateway.errors import UpstreamUnavailable

from .client import ComfyClient

log = logging.getLogger(__name__)


class EventSocket:
    """One slot of the pool. The ws object, and with it the clientId, is replaced on every reconnect."""

    def __init__(self) -> None:
        self.client_id = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.prompts: set[str] = set()  # the prompts posted with this socket's clientId
        self.connected_at = 0.0
        self.reader: asyncio.Task[None] | None = None

    @property
    def is_up(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def connect(self, client: ComfyClient, session: aiohttp.ClientSession) -> None:
        """Open the socket under a fresh clientId and wait for the first frame: the server has
        registered the id once it sends that `status` frame (protocol §6)."""
        client_id = f"cg-{uuid.uuid4().hex}"
        timeouts = client.timeouts
        ws: aiohttp.ClientWebSocketResponse | None = None
        connected = False
        try:
            async with asyncio.timeout(timeouts.connect):
                ws = await session.ws_connect(
                    client.ws_url(client_id),
                    heartbeat=timeouts.ws_heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    max_msg_size=client.limits.max_ws_frame_bytes,
                )
                first = await ws.receive()
            if first.type is not aiohttp.WSMsgType.TEXT:
                raise UpstreamUnavailable(f"event socket closed at once ({first.type.name})", instance=client.name)
            connected = True
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise UpstreamUnavailable(
                f"cannot open the event socket: {exc or type(exc).__name__}", instance=client.name
            ) from exc
        finally:
            if not connected and ws is not None:
                await ws.close()
        self.client_id = client_id
        self.ws = ws
        self.connected_at = time.monotonic()

    async def frames(self, name: str) -> AsyncIterator[str]:
        """The text frames until the socket closes or fails (binary previews are skipped, §6.6)."""
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    yield msg.data
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    log.info("event socket of %s failed: %s", name, self.ws.exception())
                    return
        except (aiohttp.ClientError, OSError) as exc:
            log.info("event socket of %s failed: %s", name, exc)
