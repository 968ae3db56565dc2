"""Following one prompt: its events, its progress, and how it ended."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float], None]


class WatchOwner(Protocol):
    """What a watch needs of the hub that made it: to be let go of."""

    def release(self, watch: PromptWatch) -> asyncio.Task[None] | None:
        """Forget `watch` and stop following its prompt; returns the task still stopping, if any."""


class WatchOutcome(enum.Enum):
    FINISHED = "finished"  # the prompt ended (success, error or interrupt): its history says how
    LOST = "lost"  # its events were lost and it is neither in history nor in the queue


class _Mode(enum.Enum):
    LIVE = "live"  # events arrive on the socket the prompt was submitted with
    RECONCILING = "reconciling"  # that socket is gone: polling /history and /queue
    DONE = "done"
    CLOSED = "closed"


class Progress:
    """Share of the graph done: finished + cached nodes, plus the running node's own `value/max`.

    Reported values never decrease; 1.0 is reported only when the prompt succeeded.
    """

    _IN_FLIGHT_CAP = 0.99

    def __init__(self, total_nodes: int | None, callback: ProgressCallback | None) -> None:
        self._total = total_nodes if total_nodes and total_nodes > 0 else None
        self._callback = callback
        self._done: set[str] = set()
        self._current: str | None = None
        self._current_fraction = 0.0
        self.reported = 0.0

    def cached(self, nodes: Iterable[Any]) -> None:
        self._done.update(str(node) for node in nodes)
        self._update()

    def executing(self, node: str) -> None:
        if self._current is not None and self._current != node:
            self._done.add(self._current)
        self._current = node
        self._current_fraction = 0.0
        self._update()

    def tick(self, node: str | None, value: float, maximum: float) -> None:
        if node is not None and node != self._current:
            self.executing(node)
        if maximum > 0:
            self._current_fraction = min(max(value / maximum, 0.0), 1.0)
        self._update()

    def finished(self) -> None:
        self._report(1.0)

    def _update(self) -> None:
        if self._total is None:
            return
        done = len(self._done - {self._current}) if self._current else len(self._done)
        fraction = (done + self._current_fraction) / self._total
        self._report(min(fraction, self._IN_FLIGHT_CAP))

    def _report(self, fraction: float) -> None:
        if fraction <= self.reported:
            return
        self.reported = fraction
        if self._callback is None:
            return
        try:
            self._callback(fraction)
        except Exception:
            log.exception("progress callback failed")


class PromptWatch:
    """Registered with an `EventHub` before the prompt is posted; `wait()` returns when it ended.

    After `wait()`: `outcome`, and what the events said: `succeeded`, `error` (the
    `execution_error` data), `interrupted` (the `execution_interrupted` data), `history` (set when
    the end was found by polling) and `lost_reason`.

    The hub drives a watch through four calls and nothing else: `feed` (a live event),
    `socket_lost` (switch to polling), `settle` (what polling found) and `lose`.
    """

    def __init__(
        self,
        owner: WatchOwner,
        prompt_id: str,
        client_id: str | None,
        *,
        total_nodes: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.prompt_id = prompt_id
        self._client_id = client_id
        self._owner = owner
        self._mode = _Mode.LIVE if client_id is not None else _Mode.RECONCILING
        self._ended = asyncio.Event()
        self._submitted = asyncio.Event()
        self.progress = Progress(total_nodes, on_progress)
        self.outcome: WatchOutcome | None = None
        self.succeeded = False
        self.error: dict[str, Any] | None = None
        self.interrupted: dict[str, Any] | None = None
        self.outputs: dict[str, Any] = {}  # node id -> its `executed` UI output, as history will hold it
        self.history: dict[str, Any] | None = None
        self.lost_reason = ""
        self._stopping: asyncio.Task[None] | None = None  # the hub's reconciliation, as it stops

    def __repr__(self) -> str:
        return f"PromptWatch({self.prompt_id}, {self._mode.value})"

    @property
    def client_id(self) -> str:
        """The `client_id` to post the prompt with: the clientId of the socket we listen on."""
        if self._client_id is None:
            raise RuntimeError("an adopted prompt has no client id to submit with")
        return self._client_id

    @property
    def reconciling(self) -> bool:
        return self._mode is _Mode.RECONCILING

    @property
    def closed(self) -> bool:
        return self._mode is _Mode.CLOSED

    def mark_submitted(self) -> None:
        """Call once POST /prompt answered: from now on, absence from the queue means lost."""
        self._submitted.set()

    async def wait_submitted(self) -> None:
        await self._submitted.wait()

    async def wait(self) -> WatchOutcome:
        """Until the prompt ended, or was found lost (also when the watch or the hub is closed)."""
        await self._ended.wait()
        assert self.outcome is not None
        return self.outcome

    def close(self) -> None:
        """Unregister from the hub and stop any reconciliation. Closing twice is harmless."""
        if self._mode is _Mode.CLOSED:
            return
        self._mode = _Mode.CLOSED
        self._stopping = self._owner.release(self)
        self.lose("watch closed")  # a wait() still pending returns LOST

    async def aclose(self) -> None:
        """`close()`, then wait until the reconciliation task (if any) has really stopped."""
        self.close()
        if self._stopping is not None and not self._stopping.done():
            await asyncio.wait([self._stopping])

    async def __aenter__(self) -> PromptWatch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ---------------------------------------------------------- for the hub

    def feed(self, kind: str, data: dict[str, Any]) -> None:
        if self._mode is not _Mode.LIVE:
            return
        if kind == "executing":
            node = data.get("node")
            if node is None:
                self._end(WatchOutcome.FINISHED)
            else:
                self.progress.executing(str(node))
        elif kind == "progress":
            node = data.get("node")
            try:
                value, maximum = float(data.get("value", 0)), float(data.get("max", 0))
            except (TypeError, ValueError):
                return
            self.progress.tick(None if node is None else str(node), value, maximum)
        elif kind == "execution_cached":
            self.progress.cached(data.get("nodes") or [])
        elif kind == "executed":
            node, output = data.get("node"), data.get("output")
            if node is not None and isinstance(output, dict):
                self.outputs[str(node)] = output
        elif kind == "execution_success":
            self.succeeded = True
        elif kind == "execution_error":
            self.error = data
        elif kind == "execution_interrupted":
            self.interrupted = data

    def socket_lost(self) -> bool:
        """The socket is gone. True if the hub should start polling for this prompt."""
        if self._mode is not _Mode.LIVE:
            return False
        self._mode = _Mode.RECONCILING
        return True

    def settle(self, history: dict[str, Any] | None, reason: str) -> None:
        if self._mode is not _Mode.RECONCILING:
            return
        if history is None:
            self.lost_reason = reason
            self._end(WatchOutcome.LOST)
            return
        self.history = history
        status = history.get("status") or {}
        self.succeeded = status.get("status_str") == "success"
        for message in status.get("messages") or []:
            if isinstance(message, list | tuple) and len(message) == 2:
                if message[0] == "execution_error":
                    self.error = message[1]
                elif message[0] == "execution_interrupted":
                    self.interrupted = message[1]
        self._end(WatchOutcome.FINISHED)

    def lose(self, reason: str) -> None:
        if self.outcome is None:
            self.lost_reason = reason
            self._end(WatchOutcome.LOST)

    def _end(self, outcome: WatchOutcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        if outcome is WatchOutcome.FINISHED and self.succeeded:
            self.progress.finished()
        if self._mode is not _Mode.CLOSED:
            self._mode = _Mode.DONE
        self._ended.set()
