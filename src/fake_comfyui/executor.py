"""Runs queued prompts one at a time and emits ComfyUI's execution events (§6.2-§6.5, §7).

Node work runs in a worker thread; the event loop only sends frames. The interrupt flag is a
`threading.Event` polled between nodes, during service-time waits and at every progress tick.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import NodeCatalog, NodeOutput, NodeSpec
from .errors import ExecutionInterrupted, NodeExecutionError
from .history import History
from .hub import WebSocketHub
from .knobs import Fault, Knobs
from .lies import Lie
from .prompt_queue import PromptQueue, QueueItem
from .stats import Outcome, Stats
from .storage import Storage, StoredFile

POLL_STEP = 0.02
SEND_TIMEOUT = 10.0
ANONYMOUS_BROADCAST = frozenset({"progress", "progress_state", "execution_interrupted"})


def now_ms() -> int:
    return int(time.time() * 1000)


def _id_key(node_id: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, then the others."""
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def execution_order(prompt: Mapping[str, Any], outputs: list[str]) -> list[str]:
    """Nodes the outputs depend on, each after its inputs (depth-first, inputs in order)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node_id: str) -> None:
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "active":
            raise NodeExecutionError(f"Dependency cycle detected at node {node_id}", "DependencyCycleError")
        state[node_id] = "active"
        links = [str(v[0]) for v in (prompt[node_id].get("inputs") or {}).values()
                 if isinstance(v, list) and len(v) == 2]
        for source in sorted(links, key=_id_key):
            visit(source)
        state[node_id] = "done"
        order.append(node_id)

    for output_id in outputs:
        visit(output_id)
    return order


@dataclass
class _Run:
    """Mutable state of the prompt being executed."""

    item: QueueItem
    fault: Fault
    lie: Lie = Lie.NONE
    interrupt: threading.Event = field(default_factory=threading.Event)
    current: str | None = None
    values: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


class _ThreadContext:
    """The NodeContext handed to node code running in a worker thread."""

    def __init__(self, executor: Executor, run: _Run, node_id: str, pace: float,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._executor = executor
        self._run = run
        self._node_id = node_id
        self._pace = pace
        self._loop = loop
        self.prompt = run.item.prompt
        self.extra_data = run.item.extra_data

    def check_interrupted(self) -> None:
        if self._run.interrupt.is_set():
            raise ExecutionInterrupted()

    def progress(self, value: int, total: int) -> None:
        deadline = time.monotonic() + self._pace / max(total, 1)
        while (left := deadline - time.monotonic()) > 0:
            self.check_interrupted()
            time.sleep(min(POLL_STEP, left))
        coro = self._executor.send_progress(self._run, self._node_id, value, total)
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=SEND_TIMEOUT)
        except (TimeoutError, RuntimeError) as exc:  # loop gone or stuck: give up the node
            coro.close()
            raise ExecutionInterrupted() from exc
        self.check_interrupted()

    def next_output_path(self, folder_type: str, filename_prefix: str, ext: str = "png") -> tuple[Path, StoredFile]:
        return self._executor.storage.next_output_path(folder_type, filename_prefix, ext)

    def input_path(self, name: str) -> Path | None:
        return self._executor.storage.input_path(name)


class Executor:
    """The single worker of one fake server."""

    def __init__(self, *, queue: PromptQueue, hub: WebSocketHub, history: History, catalog: NodeCatalog,
                 storage: Storage, knobs: Knobs, stats: Stats) -> None:
        self._queue = queue
        self._hub = hub
        self._history = history
        self._catalog = catalog
        self.storage = storage
        self._knobs = knobs
        self._stats = stats
        self._run: _Run | None = None
        self._loaded_models: frozenset[str] = frozenset()  # those of the previous prompt

    # -- control ---------------------------------------------------------------------------------

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only if it is `prompt_id`, when given)."""
        run = self._run
        if run is None or (prompt_id is not None and prompt_id != run.item.prompt_id):
            return False
        run.interrupt.set()
        return True

    def abandon(self) -> None:
        """Forget the running prompt; node code in a worker thread stops at its next check."""
        if self._run is not None:
            self._run.interrupt.set()
        self._run = None

    def current_node(self, client_id: str) -> str | None:
        """The executing node of the running prompt, if that prompt belongs to `client_id`."""
        run = self._run
        if run is None or run.item.client_id != client_id:
            return None
        return run.current

    # -- main loop -------------------------------------------------------------------------------

    async def run_forever(self) -> None:
        while True:
            item = await self._queue.start_next()
            await self._execute(item)

    async def _execute(self, item: QueueItem) -> None:
        run = self._run = _Run(item, self._knobs.take_fault(), self._knobs.lies.take())
        await self._status()
        try:
            await self._run_graph(run)
        except ExecutionInterrupted:
            outcome = Outcome.INTERRUPTED
            await self._finish_event(run, "execution_interrupted", self._interrupted_data(run))
        except NodeExecutionError as exc:
            outcome = Outcome.FAILED
            await self._finish_event(run, "execution_error", self._error_data(run, exc))
        else:
            outcome = Outcome.COMPLETED
            await self._finish_event(run, "execution_success", {"prompt_id": item.prompt_id,
                                                                "timestamp": now_ms()})
        self._history.put(item.prompt_id, self._history_entry(run, outcome))
        self._knobs.lies.record(item.prompt_id, run.lie, run.outputs)
        self._stats.record_outcome(outcome)
        self._queue.finish(item)
        self._run = None
        await self._status()
        await self._emit(run, "executing", {"node": None, "prompt_id": item.prompt_id})

    async def _run_graph(self, run: _Run) -> None:
        prompt_id = run.item.prompt_id
        await self._finish_event(run, "execution_start", {"prompt_id": prompt_id, "timestamp": now_ms()})
        await self._finish_event(run, "execution_cached",
                                 {"nodes": [], "prompt_id": prompt_id, "timestamp": now_ms()})
        run.order = execution_order(run.item.prompt, run.item.outputs)
        if run.lie is Lie.WS_FRAME:
            await self._emit(run, "progress_text", self._knobs.lies.frame(prompt_id))
        specs = {node_id: self._spec(run, node_id) for node_id in run.order}
        await self._load_models(run)
        fault_node = next((n for n in run.order if not specs[n].is_loader), None)
        # The service time is what the whole prompt takes: the nodes' real work counts towards it,
        # and what is left of it is slept, shared among the nodes still to run.
        deadline = time.monotonic() + self._knobs.service_time
        for index, node_id in enumerate(run.order):
            run.current = node_id
            if run.interrupt.is_set():
                raise ExecutionInterrupted()
            await self._progress_state(run, node_id, "running", 0.0, 1.0)
            await self._emit(run, "executing", {"node": node_id, "display_node": node_id,
                                                "prompt_id": prompt_id})
            if node_id == fault_node and run.fault is Fault.FAIL:
                raise NodeExecutionError(self._knobs.fail_message, "RuntimeError")
            if node_id == fault_node and run.fault is Fault.HANG:
                await self._wait(run, None)
            nodes_left = len(run.order) - index

            def share(left: int = nodes_left) -> float:
                return max(0.0, deadline - time.monotonic()) / left

            output = await self._run_node(run, node_id, specs[node_id], share)
            run.values[node_id] = output.values
            run.executed.append(node_id)
            await self._progress_state(run, node_id, "finished", 1.0, 1.0)
            if output.ui is not None:
                run.outputs[node_id] = output.ui
                run.meta[node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None,
                                     "real_node_id": node_id}
                if not run.lie.about_history:  # a lie about /history: the client must read it
                    await self._emit(run, "executed", {"node": node_id, "display_node": node_id,
                                                       "output": output.ui, "prompt_id": prompt_id})

    async def _load_models(self, run: _Run) -> None:
        """Pay the model-load time when this prompt uses other models than the previous one."""
        models = self._catalog.models_of({n: run.item.prompt[n] for n in run.order})
        changed = bool(models) and not models <= self._loaded_models
        self._loaded_models = models
        if changed:
            self._stats.record_model_load()
            await self._wait(run, self._knobs.model_load_time)

    def _spec(self, run: _Run, node_id: str) -> NodeSpec:
        spec = self._catalog.get(run.item.prompt[node_id]["class_type"])
        if spec is None:  # validated at submit time; kept for safety
            raise NodeExecutionError(f"Unknown node class for node {node_id}", "KeyError")
        return spec

    async def _run_node(self, run: _Run, node_id: str, spec: NodeSpec,
                        share: Callable[[], float]) -> NodeOutput:
        raw = run.item.prompt[node_id].get("inputs") or {}
        inputs: dict[str, Any] = {}
        try:
            for input_spec in spec.inputs:
                value = raw.get(input_spec.name)
                if isinstance(value, list):
                    inputs[input_spec.name] = run.values[str(value[0])][value[1]]
                else:
                    inputs[input_spec.name] = input_spec.coerce(value)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise NodeExecutionError(f"Bad input for node {node_id}: {exc!r}", type(exc).__name__) from exc
        # A node that reports progress spreads its share over its ticks; any other sleeps after its work.
        pace = share() if spec.reports_progress else 0.0
        context = _ThreadContext(self, run, node_id, pace, asyncio.get_running_loop())
        output = await asyncio.to_thread(_call_node, spec, inputs, context)
        if not spec.reports_progress:
            await self._wait(run, share())
        return output

    @staticmethod
    async def _wait(run: _Run, seconds: float | None) -> None:
        """Sleep in small steps (forever when None) unless the run is interrupted."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while deadline is None or time.monotonic() < deadline:
            if run.interrupt.is_set():
                raise ExecutionInterrupted()
            step = POLL_STEP if deadline is None else min(POLL_STEP, deadline - time.monotonic())
            await asyncio.sleep(max(step, 0.0))
        if run.interrupt.is_set():
            raise ExecutionInterrupted()

    # -- events ----------------------------------------------------------------------------------

    async def _emit(self, run: _Run, event: str, data: dict[str, Any]) -> None:
        client_id = run.item.client_id
        if client_id is not None:
            await self._hub.send(event, data, client_id)
        elif event in ANONYMOUS_BROADCAST:
            await self._hub.send(event, data, None)

    async def _finish_event(self, run: _Run, event: str, data: dict[str, Any]) -> None:
        """Events that also go into the history's `status.messages`."""
        run.messages.append([event, data])
        await self._emit(run, event, data)

    async def _status(self) -> None:
        await self._hub.broadcast_status(self._queue.depth())

    async def _progress_state(self, run: _Run, node_id: str, state: str, value: float, total: float) -> None:
        run.states[node_id] = {
            "value": value, "max": total, "state": state, "node_id": node_id,
            "prompt_id": run.item.prompt_id, "display_node_id": node_id, "parent_node_id": None,
            "real_node_id": node_id,
        }
        nodes = {key: dict(entry) for key, entry in run.states.items()}
        await self._emit(run, "progress_state", {"prompt_id": run.item.prompt_id, "nodes": nodes})

    async def send_progress(self, run: _Run, node_id: str, value: int, total: int) -> None:
        await self._emit(run, "progress", {"value": value, "max": total, "prompt_id": run.item.prompt_id,
                                           "node": node_id})
        await self._progress_state(run, node_id, "running", float(value), float(total))

    # -- payloads --------------------------------------------------------------------------------

    def _node_type(self, run: _Run) -> str:
        node = run.item.prompt.get(run.current or "", {})
        return str(node.get("class_type", ""))

    def _interrupted_data(self, run: _Run) -> dict[str, Any]:
        return {"prompt_id": run.item.prompt_id, "node_id": run.current, "node_type": self._node_type(run),
                "executed": list(run.executed), "timestamp": now_ms()}

    def _error_data(self, run: _Run, exc: NodeExecutionError) -> dict[str, Any]:
        raw = run.item.prompt.get(run.current or "", {}).get("inputs") or {}
        current_inputs = {name: [value] for name, value in raw.items() if not isinstance(value, list)}
        return {
            "prompt_id": run.item.prompt_id, "node_id": run.current, "node_type": self._node_type(run),
            "executed": list(run.executed), "exception_message": exc.message,
            "exception_type": exc.exception_type, "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": current_inputs, "current_outputs": list(run.order or run.item.prompt),
            "timestamp": now_ms(),
        }

    @staticmethod
    def _history_entry(run: _Run, outcome: Outcome) -> dict[str, Any]:
        success = outcome is Outcome.COMPLETED
        return {
            "prompt": run.item.as_wire(),
            "outputs": run.outputs,
            "status": {"status_str": "success" if success else "error", "completed": success,
                       "messages": run.messages},
            "meta": run.meta,
        }


def _call_node(spec: NodeSpec, inputs: dict[str, Any], context: _ThreadContext) -> NodeOutput:
    """Run node code, mapping unexpected exceptions to the execution_error ComfyUI would report."""
    try:
        return spec.run(inputs, context)
    except (NodeExecutionError, ExecutionInterrupted):
        raise
    except Exception as exc:  # node code is the boundary: any failure becomes execution_error
        kind = type(exc)
        name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
        raise NodeExecutionError(str(exc), name) from exc
