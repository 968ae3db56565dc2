"""FakeComfyUI: one fake ComfyUI server on a real loopback port.

    async with FakeComfyUI(port=0) as fake:
        fake.url  # http://127.0.0.1:PORT

Lifecycle: NEW -> RUNNING <-> STOPPED -> CLOSED. `stop()` stops listening, closes every socket
and loses the queue (running and pending), like a crashed server; `start()` listens again on
the same port. History, files, stats, knobs and the `number` counter survive a stop/start.
`aclose()` (or leaving the `async with`) stops and deletes the server's folders; a closed
server cannot start again.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Collection, Sequence
from typing import Any

from aiohttp import web

from .catalog import NodeCatalog
from .control import ControlRoutes
from .executor import Executor
from .history import History
from .hub import MAX_UPLOAD_SIZE, Message, WebSocketHub, status_data
from .knobs import DEFAULT_FAILURE_MESSAGE, Knobs
from .lies import DEFAULT_SIZE
from .nodes import build_catalog
from .prompt_queue import PromptQueue
from .routes import ComfyRoutes, ServerParts, error_responses, origin_guard
from .stats import Stats
from .storage import Storage

SHUTDOWN_TIMEOUT = 0.5
EXIT_GRACE = 0.05


class ServerState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"
    CLOSED = "closed"


class FakeComfyUI:
    """A protocol-faithful stand-in for a ComfyUI server, with knobs for fault injection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, service_time: float = 0.0,
                 name: str | None = None, *, view_delay: float = 0.0, without_nodes: Collection[str] = (),
                 models: Sequence[str] | None = None, model_load_time: float = 0.0) -> None:
        """`without_nodes`: node classes this server lacks; `models`: the upscale model files it offers;
        `model_load_time`: seconds a prompt waits first when it uses other models than the previous one."""
        self._host = host
        self._port = port
        self._name = name
        self._knobs = Knobs()
        self._knobs.set_service_time(service_time)
        self._knobs.set_view_delay(view_delay)
        self._knobs.set_model_load_time(model_load_time)
        self._stats = Stats()
        self._history = History()
        self._queue = PromptQueue()
        self._catalog: NodeCatalog = build_catalog(without_nodes, models)
        self._hub = WebSocketHub(self._stats, self._welcome)
        self._storage: Storage | None = None
        self._executor: Executor | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._exited = asyncio.Event()
        self._state = ServerState.NEW

    # -- addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def host_port(self) -> str:
        return f"{self._host}:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def storage(self) -> Storage:
        """The server's folders (input/output/temp); exists once started."""
        if self._storage is None:
            raise RuntimeError("FakeComfyUI has not been started")
        return self._storage

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeComfyUI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Listen (again) on the configured or previously chosen port. No-op if running."""
        if self._state is ServerState.RUNNING:
            return
        if self._state is ServerState.CLOSED:
            raise RuntimeError("FakeComfyUI is closed and cannot start again")
        if self._storage is None:
            self._storage = Storage()
        executor = self._executor = self._executor or Executor(
            queue=self._queue, hub=self._hub, history=self._history, catalog=self._catalog,
            storage=self._storage, knobs=self._knobs, stats=self._stats)
        self._storage.wipe_temp()
        app = web.Application(middlewares=[origin_guard, error_responses], client_max_size=MAX_UPLOAD_SIZE)
        parts = ServerParts(self._queue, executor, self._history, self._storage, self._catalog, self._hub,
                            self._knobs, self._stats, self._name)
        ComfyRoutes(parts).register(app)
        ControlRoutes(self).register(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._runner, self._site = runner, site
        self._worker = asyncio.create_task(executor.run_forever(), name=f"fake-comfyui-{self._port}")
        self._state = ServerState.RUNNING

    async def stop(self) -> None:
        """Stop listening, close all sockets, lose the queue. Harmless when not running."""
        if self._state is not ServerState.RUNNING:
            return
        self._state = ServerState.STOPPED
        if self._executor is not None:
            self._executor.abandon()
        if self._worker is not None:
            await _cancel(self._worker)
            self._worker = None
        self._queue.drop_all()
        if self._site is not None:
            await self._site.stop()
        await self._hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._site = None
        if self._storage is not None:
            self._storage.wipe_temp()

    async def aclose(self) -> None:
        """Stop and delete the server's folders. Calling it twice is harmless."""
        if self._state is ServerState.CLOSED:
            return
        for task in list(self._background):
            if task is not asyncio.current_task():
                await _cancel(task)
        await self.stop()
        if self._storage is not None:
            self._storage.close()
        self._state = ServerState.CLOSED

    def request_exit(self) -> None:
        """Stop shortly (after the current response is sent); `wait_exit()` returns afterwards."""
        task = asyncio.create_task(self._exit_soon())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _exit_soon(self) -> None:
        await asyncio.sleep(EXIT_GRACE)
        await self.stop()
        self._exited.set()

    async def wait_exit(self) -> None:
        """Wait until an `exit` control action has stopped the server."""
        await self._exited.wait()

    # -- knobs -----------------------------------------------------------------------------------

    def set_service_time(self, seconds: float) -> None:
        """Extra seconds every prompt takes, spread over its nodes and progress ticks."""
        self._knobs.set_service_time(seconds)

    def set_view_delay(self, seconds: float) -> None:
        """Delay every GET /view by `seconds`."""
        self._knobs.set_view_delay(seconds)

    def set_model_load_time(self, seconds: float) -> None:
        """Seconds a prompt waits first when it uses other models than the previous prompt."""
        self._knobs.set_model_load_time(seconds)

    def pause(self) -> None:
        """Prompts keep queueing but none starts (a running one finishes)."""
        self._queue.set_paused(True)

    def resume(self) -> None:
        self._queue.set_paused(False)

    def fail_next(self, n: int = 1, message: str = DEFAULT_FAILURE_MESSAGE) -> None:
        """The next `n` prompts to start end in execution_error on their first non-loader node."""
        self._knobs.fail_next(n, message)

    def hang_next(self, n: int = 1) -> None:
        """The next `n` prompts to start never finish unless interrupted (POST /interrupt)."""
        self._knobs.hang_next(n)

    def lie_next(self, how: str, n: int = 1, size: int = DEFAULT_SIZE) -> None:
        """The next `n` prompts to start are lied about as `how` says (see lies.py)."""
        self._knobs.lies.lie_next(how, n, size)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Same as POST /interrupt; returns whether a running prompt was flagged."""
        return self._executor.interrupt(prompt_id) if self._executor is not None else False

    async def drop_sockets(self) -> None:
        """Server-side close of every open WebSocket."""
        await self._hub.close_all()

    def stats(self) -> dict[str, Any]:
        return {**self._stats.snapshot(queue_depth=self._queue.depth(), sockets_open=self._hub.open_count,
                                       name=self._name), "lies_told": dict(self._knobs.lies.told)}

    def reset_stats(self) -> None:
        self._stats.reset(self._queue.depth())

    # -- internals -------------------------------------------------------------------------------

    def _welcome(self, sid: str) -> list[Message]:
        messages: list[Message] = [("status", {**status_data(self._queue.depth()), "sid": sid})]
        node = self._executor.current_node(sid) if self._executor is not None else None
        if node is not None:
            messages.append(("executing", {"node": node}))
        return messages


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel and await a task; our own cancellation is re-raised, the task's is absorbed."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
