"""Run one prompt on one server and classify how it ended (protocol §12).

    success                               -> RunResult
    execution_error                       -> WorkflowFailed (node_id, node_type, exception_type)
    execution_interrupted                 -> WorkflowFailed("Execution interrupted", interrupted=True)
    events lost, not in history nor queue -> UpstreamUnavailable("prompt lost")
    validation                            -> WorkflowRejected (from ComfyClient.submit)

The caller owns the deadline: it wraps `run_prompt` in `asyncio.timeout` and on expiry calls
`client.cancel(prompt_id)`. Cancelling `run_prompt` leaves no watch registered and no task running.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from comfy_gateway.errors import UpstreamError, UpstreamUnavailable, WorkflowFailed

from . import wire
from .client import ComfyClient
from .events import EventHub
from .models import ImageRef, RunResult
from .watch import ProgressCallback, PromptWatch, WatchOutcome


async def run_prompt(
    client: ComfyClient,
    hub: EventHub,
    graph: dict[str, Any],
    *,
    prompt_id: str | None = None,
    extra_data: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Post `graph` under our own prompt id, follow it to its end, and return its outputs."""
    prompt_id = prompt_id or str(uuid.uuid4())
    async with await hub.watch(prompt_id, total_nodes=len(graph), on_progress=on_progress) as watch:
        try:
            await client.submit(graph, client_id=watch.client_id, prompt_id=prompt_id, extra_data=extra_data)
        except UpstreamUnavailable:
            # A timed-out POST may still have queued the prompt: take it back if we can.
            with contextlib.suppress(UpstreamError, TimeoutError):
                async with asyncio.timeout(client.timeouts.probe):
                    await client.cancel(prompt_id)
            raise
        watch.mark_submitted()
        await watch.wait()
    return await _conclude(client, watch)


async def attach(
    client: ComfyClient,
    hub: EventHub,
    prompt_id: str,
    *,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Follow a prompt posted earlier (its events go to a clientId we no longer hold).

    Finished: classified at once. Queued or running: followed by polling /history and /queue,
    woken by the hub's `status` frames. Neither: UpstreamUnavailable("prompt lost").
    An adopted prompt reports progress only at its end.
    """
    async with hub.adopt(prompt_id, on_progress=on_progress) as watch:
        await watch.wait()
    return await _conclude(client, watch)


def outputs_of(history_entry: dict[str, Any], node_id: str) -> list[ImageRef]:
    """Images one node produced, from a /history entry (`outputs[node_id].images`)."""
    node_output = (history_entry.get("outputs") or {}).get(str(node_id)) or {}
    images = node_output.get("images") or []
    return [ImageRef.from_wire(item) for item in images if isinstance(item, dict) and "filename" in item]


async def _conclude(client: ComfyClient, watch: PromptWatch) -> RunResult:
    prompt_id = watch.prompt_id
    if watch.outcome is not WatchOutcome.FINISHED:
        raise UpstreamUnavailable(
            "prompt lost", instance=client.name, prompt_id=prompt_id, reason=watch.lost_reason or None
        )
    if watch.history is not None:
        entry: dict[str, Any] | None = watch.history
    elif watch.succeeded and watch.outputs:
        # Seen live: the `executed` events carried what /history would say; skip the round trip.
        entry = {"outputs": watch.outputs, "status": {"status_str": "success", "completed": True},
                 "from_events": True}
    else:
        entry = await _final_history(client, prompt_id)
    if entry is None:
        raise UpstreamUnavailable(
            "prompt lost", instance=client.name, prompt_id=prompt_id, reason="finished without history"
        )
    entry = wire.check_entry(entry, "the history of the prompt", client.name)
    status = entry.get("status") or {}
    if status.get("status_str") == "success":
        outputs = {str(node): outputs_of(entry, str(node)) for node in (entry.get("outputs") or {})}
        return RunResult(prompt_id=prompt_id, instance=client.name, outputs=outputs, history=entry)
    raise _failure(client.name, prompt_id, entry, watch)


async def _final_history(client: ComfyClient, prompt_id: str) -> dict[str, Any] | None:
    """History of a prompt whose end we saw. A blip here must not turn a finished run into a
    retry elsewhere, so a failed or empty read is tried again a few times (about a second)."""
    for delay in _HISTORY_RETRY_DELAYS:
        try:
            entry = await client.history(prompt_id)
        except UpstreamUnavailable:
            if delay is None:
                raise
            entry = None
        if entry is not None or delay is None:
            return entry
        await asyncio.sleep(delay)
    return None


_HISTORY_RETRY_DELAYS = (0.1, 0.3, 0.6, None)


def _failure(instance: str, prompt_id: str, entry: dict[str, Any], watch: PromptWatch) -> WorkflowFailed:
    raw_error, raw_interrupted = watch.error, watch.interrupted
    for message in (entry.get("status") or {}).get("messages") or []:
        if message[0] == "execution_error":
            raw_error = message[1]
        elif message[0] == "execution_interrupted":
            raw_interrupted = message[1]
    what = "the error report of the prompt"
    if raw_interrupted is not None:
        interrupted = wire.validated(wire.EventError, raw_interrupted, what, instance)
        return WorkflowFailed(
            "Execution interrupted",
            instance=instance,
            prompt_id=prompt_id,
            node_id=interrupted.node_id,
            node_type=interrupted.node_type,
            interrupted=True,
        )
    if raw_error is not None:
        error = wire.validated(wire.EventError, raw_error, what, instance)
        return WorkflowFailed(
            (error.exception_message or "execution failed").strip(),
            instance=instance,
            prompt_id=prompt_id,
            node_id=error.node_id,
            node_type=error.node_type,
            exception_type=error.exception_type,
        )
    return WorkflowFailed(
        f"execution ended with status {status_str(entry)!r}", instance=instance, prompt_id=prompt_id
    )


def status_str(entry: dict[str, Any]) -> str | None:
    value = (entry.get("status") or {}).get("status_str")
    return value if isinstance(value, str) else None
