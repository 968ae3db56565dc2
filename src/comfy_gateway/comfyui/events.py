"""WebSocket events of one ComfyUI server, routed to the prompts that wait for them.

A small pool of sockets, each under its own clientId (`cg-<uuid4 hex>`). A clientId is never
reused: ComfyUI keeps one socket per id and, when an old socket with a reused id closes, drops the
id for the new one too (protocol §6.1). Execution events go only to the socket whose id the
prompt was posted with, so a prompt is registered (`watch`) before it is posted.

When a socket is lost, its reader reconnects with backoff under a new id, and every prompt that
listened on it switches to polling /history and /queue (`reconcile`), woken early by the
broadcast `status` frames of the other sockets. A dropped socket never leaves a run waiting for
its deadline: the prompt ends, or is found lost within the reconciliation grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from types import TracebackType

import aiohttp

from comfy_gateway.errors import UpstreamError, UpstreamUnavailable

from . import wire
from .client import ComfyClient
from .reconcile import PollPolicy, reconcile
from .watch import ProgressCallback, PromptWatch

log = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
_STABLE_AFTER = 5.0  # a connection that lived this long resets the reconnect backoff


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class _Socket:
    """One WebSocket slot of the pool. The ws object is replaced on every reconnect."""

    def __init__(self) -> None:
        self.client_id = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.prompts: set[str] = set()
        self.connected_at = 0.0
        self.reader: asyncio.Task[None] | None = None

    @property
    def is_up(self) -> bool:
        return self.ws is not None and not self.ws.closed


class EventHub:
    """Events of one server for many prompts. An async context manager; `aclose()` is idempotent."""

    def __init__(
        self,
        client: ComfyClient,
        session: aiohttp.ClientSession,
        *,
        max_connections: int = 3,
        on_reconnect: Callable[[str], None] | None = None,
        poll_policy: PollPolicy | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._client = client
        self._session = session
        self._max = max_connections
        self._on_reconnect = on_reconnect
        self._policy = poll_policy or PollPolicy()
        self._state = _State.OPEN
        self._sockets: list[_Socket] = []
        self._watches: dict[str, PromptWatch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._open_lock = asyncio.Lock()
        self._socket_up = asyncio.Condition()
        self._queue_changed = asyncio.Event()
        self.reconnects = 0
        self.client_ids_used: deque[str] = deque(maxlen=1000)  # the newest ids, for inspection

    def __repr__(self) -> str:
        return f"EventHub({self._client.name}, sockets={self.sockets_open}/{self._max})"

    @property
    def instance(self) -> str:
        return self._client.name

    @property
    def sockets_open(self) -> int:
        return sum(1 for sock in self._sockets if sock.is_up)

    @property
    def client_ids(self) -> list[str]:
        """clientIds of the sockets that are up now."""
        return [sock.client_id for sock in self._sockets if sock.is_up]

    @property
    def watching(self) -> int:
        return len(self._watches)

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> EventHub:
        self._check_open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop readers and reconciliations, close the sockets; waiting prompts end as lost."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        tasks = [sock.reader for sock in self._sockets if sock.reader is not None] + list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for sock in self._sockets:
            if sock.ws is not None:
                await sock.ws.close()
        for watch in list(self._watches.values()):
            watch._lose("event hub closed")
        self._watches.clear()

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise RuntimeError(f"the event hub of {self._client.name} is closed")

    # -------------------------------------------------------------- watching

    async def watch(
        self,
        prompt_id: str,
        *,
        total_nodes: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> PromptWatch:
        """Listen for `prompt_id` on the least busy socket; post the prompt with `watch.client_id`.

        Raises UpstreamUnavailable when no socket can be opened within the connect timeout.
        """
        self._check_open()
        if prompt_id in self._watches:
            raise ValueError(f"prompt {prompt_id} is already watched")
        sock = await self._pick_socket()
        self._check_open()
        if prompt_id in self._watches:  # registered by another caller while we waited
            raise ValueError(f"prompt {prompt_id} is already watched")
        watch = PromptWatch(
            self, prompt_id, sock.client_id, total_nodes=total_nodes, on_progress=on_progress
        )
        self._watches[prompt_id] = watch
        sock.prompts.add(prompt_id)
        return watch

    def adopt(self, prompt_id: str, *, on_progress: ProgressCallback | None = None) -> PromptWatch:
        """Follow a prompt posted under a clientId we do not hold (e.g. by an earlier process) by polling."""
        self._check_open()
        if prompt_id in self._watches:
            raise ValueError(f"prompt {prompt_id} is already watched")
        watch = PromptWatch(self, prompt_id, None, on_progress=on_progress)
        watch.mark_submitted()
        self._watches[prompt_id] = watch
        self._start_reconciliation(watch)
        return watch

    def _forget(self, watch: PromptWatch) -> None:
        if self._watches.get(watch.prompt_id) is watch:
            del self._watches[watch.prompt_id]
        for sock in self._sockets:
            sock.prompts.discard(watch.prompt_id)

    async def _pick_socket(self) -> _Socket:
        async with self._open_lock:
            up = [sock for sock in self._sockets if sock.is_up]
            best = min(up, key=lambda sock: len(sock.prompts)) if up else None
            if (best is None or best.prompts) and len(self._sockets) < self._max:
                try:
                    best = await self._open_socket()
                except UpstreamUnavailable:
                    if best is None and not self._sockets:
                        raise
            if best is not None:
                return best
        # Every slot is reconnecting: give them the connect timeout to come back.
        try:
            async with asyncio.timeout(self._client.timeouts.connect), self._socket_up:
                await self._socket_up.wait_for(lambda: any(sock.is_up for sock in self._sockets))
        except TimeoutError as exc:
            raise UpstreamUnavailable("no event socket", instance=self._client.name) from exc
        self._check_open()
        return min((s for s in self._sockets if s.is_up), key=lambda sock: len(sock.prompts))

    async def _open_socket(self) -> _Socket:
        sock = _Socket()
        await self._connect(sock)
        if self._state is _State.CLOSED:  # closed while we connected
            assert sock.ws is not None
            await sock.ws.close()
            self._check_open()
        self._sockets.append(sock)
        sock.reader = asyncio.create_task(
            self._read_forever(sock), name=f"comfyui-events-{self._client.name}-{len(self._sockets)}"
        )
        return sock

    # ------------------------------------------------------------ the socket

    async def _connect(self, sock: _Socket) -> None:
        """Open the socket under a fresh clientId and wait for the first frame: the server has
        registered the id once it sends that `status` frame (protocol §6)."""
        client_id = f"cg-{uuid.uuid4().hex}"
        timeouts = self._client.timeouts
        ws: aiohttp.ClientWebSocketResponse | None = None
        connected = False
        try:
            async with asyncio.timeout(timeouts.connect):
                ws = await self._session.ws_connect(
                    self._client.ws_url(client_id),
                    heartbeat=timeouts.ws_heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                    max_msg_size=self._client.limits.max_ws_frame_bytes,
                )
                first = await ws.receive()
            if first.type is not aiohttp.WSMsgType.TEXT:
                raise UpstreamUnavailable(
                    f"event socket closed at once ({first.type.name})", instance=self._client.name
                )
            connected = True
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise UpstreamUnavailable(
                f"cannot open the event socket: {exc or type(exc).__name__}", instance=self._client.name
            ) from exc
        finally:
            if not connected and ws is not None:
                await ws.close()
        sock.client_id = client_id
        sock.ws = ws
        sock.connected_at = time.monotonic()
        self.client_ids_used.append(client_id)
        async with self._socket_up:
            self._socket_up.notify_all()

    async def _read_forever(self, sock: _Socket) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            assert sock.ws is not None
            await self._read(sock, sock.ws)
            self._socket_lost(sock)
            await sock.ws.close()
            if time.monotonic() - sock.connected_at >= _STABLE_AFTER:
                delay = RECONNECT_FIRST_DELAY
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                try:
                    await self._connect(sock)
                except UpstreamUnavailable as exc:
                    log.debug("reconnect to %s failed: %s", self._client.name, exc.message)
                    continue
                break
            self.reconnects += 1
            if self._on_reconnect is not None:
                try:
                    self._on_reconnect(self._client.name)
                except Exception:
                    log.exception("on_reconnect callback failed")

    async def _read(self, sock: _Socket, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Route frames until the socket closes or fails."""
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    try:
                        self._dispatch(sock, msg.data)
                    except Exception:
                        # One bad frame must not stop the events of every other prompt.
                        log.exception("cannot route an event frame from %s", self._client.name)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    log.info("event socket of %s failed: %s", self._client.name, ws.exception())
                    return
                # Binary frames are previews (protocol §6.6): not needed here.
        except (aiohttp.ClientError, OSError) as exc:
            log.info("event socket of %s failed: %s", self._client.name, exc)

    def _dispatch(self, sock: _Socket, text: str) -> None:
        try:
            frame = wire.validated(wire.EventFrame, wire.parse_json(text, "an event frame", self._client.name),
                                   "an event frame", self._client.name)
        except UpstreamUnavailable as exc:
            log.warning("unreadable event frame from %s: %s", self._client.name, exc.message)
            return
        kind, data = frame.type, frame.data
        if kind == "status":
            self._queue_changed.set()
            self._queue_changed = asyncio.Event()
        prompt_id = data.get("prompt_id")
        if not isinstance(prompt_id, str):
            return
        watch = self._watches.get(prompt_id)
        # Only the socket the prompt was posted with speaks for it; some frames are broadcast.
        if watch is not None and prompt_id in sock.prompts:
            watch._feed(kind, data)

    # ---------------------------------------------------------- reconciling

    def _socket_lost(self, sock: _Socket) -> None:
        lost = [self._watches[pid] for pid in sock.prompts if pid in self._watches]
        sock.prompts.clear()
        if lost:
            log.info("event socket of %s lost; reconciling %d prompt(s)", self._client.name, len(lost))
        for watch in lost:
            if watch._start_reconciling():
                self._start_reconciliation(watch)

    def _start_reconciliation(self, watch: PromptWatch) -> None:
        task = asyncio.create_task(
            self._reconcile(watch), name=f"comfyui-reconcile-{self._client.name}-{watch.prompt_id}"
        )
        watch.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile(self, watch: PromptWatch) -> None:
        await watch.wait_submitted()
        try:
            result = await reconcile(self._client, watch.prompt_id, policy=self._policy, wake=self._wake)
        except UpstreamError as exc:
            watch._reconciled(None, exc.message)
            return
        watch._reconciled(result.history, result.reason)

    async def _wake(self, seconds: float) -> None:
        """Sleep up to `seconds`, or until the server broadcasts a queue change."""
        changed = self._queue_changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await changed.wait()
