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
import logging
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

import aiohttp

from comfy_gateway.errors import UpstreamError, UpstreamUnavailable
from comfy_gateway.lifecycle import Lifecycle

from . import wire
from .client import ComfyClient
from .reconcile import PollPolicy, reconcile
from .socket import EventSocket
from .watch import ProgressCallback, PromptWatch

log = logging.getLogger(__name__)

RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 5.0
_STABLE_AFTER = 5.0  # a connection that lived this long resets the reconnect backoff
# Frames no prompt reads, as ComfyUI writes them (`json.dumps({"type": ..., "data": ...})`): skipped
# unparsed. `progress_state` (every node's state, sent after each change) is the most frequent
# frame of a run and the largest; a frame written any other way is parsed as before.
UNREAD_FRAMES = tuple(f'{{"type": "{kind}"' for kind in ("progress_state", "execution_start"))


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
        self._state = Lifecycle.OPEN
        self._sockets: list[EventSocket] = []
        self._watches: dict[str, PromptWatch] = {}
        self._reconciliations: dict[str, asyncio.Task[None]] = {}  # prompt id -> its polling task
        self._growing: asyncio.Task[None] | None = None  # one more socket, opened in the background
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
        if self._state is Lifecycle.CLOSED:
            return
        self._state = Lifecycle.CLOSED
        tasks = [sock.reader for sock in self._sockets if sock.reader is not None]
        tasks += [*self._reconciliations.values(), *([self._growing] if self._growing else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for sock in self._sockets:
            if sock.ws is not None:
                await sock.ws.close()
        for watch in list(self._watches.values()):
            watch.lose("event hub closed")
        self._watches.clear()

    def _check_open(self) -> None:
        if self._state is Lifecycle.CLOSED:
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

    def release(self, watch: PromptWatch) -> asyncio.Task[None] | None:
        """A watch closes: forget it and cancel its reconciliation (returned, to be awaited)."""
        if self._watches.get(watch.prompt_id) is watch:
            del self._watches[watch.prompt_id]
        for sock in self._sockets:
            sock.prompts.discard(watch.prompt_id)
        task = self._reconciliations.get(watch.prompt_id)
        if task is not None:
            task.cancel()
        return task

    def _least_busy(self) -> EventSocket | None:
        up = [sock for sock in self._sockets if sock.is_up]
        return min(up, key=lambda sock: len(sock.prompts)) if up else None

    async def _pick_socket(self) -> EventSocket:
        """The least busy socket that is up. A prompt never waits for a connect while one is up:
        when they are all busy and there is room, another opens in the background for later ones."""
        best = self._least_busy()
        if best is not None:
            if best.prompts:
                self._grow()
            return best
        async with self._open_lock:  # no socket up: one caller connects, the others wait for it
            best = self._least_busy()
            if best is None and len(self._sockets) < self._max:
                # A fresh connect that fails says the server is not there now: the sockets
                # reconnecting in the background would not do better within the connect timeout.
                return await self._open_socket()
            if best is not None:
                return best
        # Every slot is reconnecting: give them the connect timeout to come back.
        try:
            async with asyncio.timeout(self._client.timeouts.connect), self._socket_up:
                await self._socket_up.wait_for(lambda: any(sock.is_up for sock in self._sockets))
        except TimeoutError as exc:
            raise UpstreamUnavailable("no event socket", instance=self._client.name) from exc
        self._check_open()
        best = self._least_busy()
        assert best is not None
        return best

    def warm(self) -> None:
        """Open a first socket in the background if none is open or opening, so that the first
        prompt sent here does not wait for the handshake (a pool's first burst met 32 of them)."""
        if not self._sockets:
            self._grow()

    def _grow(self) -> None:
        if self._growing is not None or len(self._sockets) >= self._max or self._state is Lifecycle.CLOSED:
            return
        self._growing = asyncio.create_task(self._grow_one(), name=f"comfyui-events-{self._client.name}-grow")

    async def _grow_one(self) -> None:
        try:
            async with self._open_lock:
                if len(self._sockets) < self._max:
                    await self._open_socket()
        except (UpstreamUnavailable, RuntimeError) as exc:  # the sockets that are up carry on
            log.debug("extra event socket to %s not opened: %s", self._client.name, exc)
        finally:
            self._growing = None

    async def _open_socket(self) -> EventSocket:
        sock = EventSocket()
        await self._connect(sock)
        if self._state is Lifecycle.CLOSED:  # closed while we connected
            assert sock.ws is not None
            await sock.ws.close()
            self._check_open()
        self._sockets.append(sock)
        sock.reader = asyncio.create_task(
            self._read_forever(sock), name=f"comfyui-events-{self._client.name}-{len(self._sockets)}"
        )
        return sock

    # ------------------------------------------------------------ the socket

    async def _connect(self, sock: EventSocket) -> None:
        await sock.connect(self._client, self._session)
        self.client_ids_used.append(sock.client_id)
        async with self._socket_up:
            self._socket_up.notify_all()

    async def _read_forever(self, sock: EventSocket) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            assert sock.ws is not None
            await self._read(sock)
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

    async def _read(self, sock: EventSocket) -> None:
        """Route frames until the socket closes or fails."""
        async for text in sock.frames(self._client.name):
            try:
                self._dispatch(sock, text)
            except Exception:
                # One bad frame must not stop the events of every other prompt.
                log.exception("cannot route an event frame from %s", self._client.name)

    def _dispatch(self, sock: EventSocket, text: str) -> None:
        if text.startswith(UNREAD_FRAMES):
            return
        try:
            frame = wire.validated_json(wire.EventFrame, text, "an event frame", self._client.name)
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
            watch.feed(kind, data)

    # ---------------------------------------------------------- reconciling

    def _socket_lost(self, sock: EventSocket) -> None:
        lost = [self._watches[pid] for pid in sock.prompts if pid in self._watches]
        sock.prompts.clear()
        if lost:
            log.info("event socket of %s lost; reconciling %d prompt(s)", self._client.name, len(lost))
        for watch in lost:
            if watch.socket_lost():
                self._start_reconciliation(watch)

    def _start_reconciliation(self, watch: PromptWatch) -> None:
        prompt_id = watch.prompt_id
        task = asyncio.create_task(self._reconcile(watch), name=f"comfyui-reconcile-{self._client.name}-{prompt_id}")
        self._reconciliations[prompt_id] = task
        task.add_done_callback(lambda done: self._reconciliation_ended(prompt_id, done))

    def _reconciliation_ended(self, prompt_id: str, task: asyncio.Task[None]) -> None:
        if self._reconciliations.get(prompt_id) is task:
            del self._reconciliations[prompt_id]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("reconciling prompt %s failed", prompt_id, exc_info=exc)

    async def _reconcile(self, watch: PromptWatch) -> None:
        await watch.wait_submitted()
        try:
            result = await reconcile(self._client, watch.prompt_id, policy=self._policy, wake=self._wake)
        except UpstreamError as exc:
            watch.settle(None, exc.message)
            return
        watch.settle(result.history, result.reason)

    async def _wake(self, seconds: float) -> None:
        """Sleep up to `seconds`, or until the server broadcasts a queue change."""
        changed = self._queue_changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await changed.wait()
