"""Find out how a prompt ended without its WebSocket events (protocol §12, step 5).

Used when the socket a prompt reported to was lost, and when re-attaching to a prompt submitted
by an earlier gateway process. A bounded fallback: `wake` lets the caller cut the wait between two
polls short (the event hub wakes it on every broadcast `status` frame, which ComfyUI sends when a
prompt leaves the queue, after writing its history).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from comfy_gateway.errors import UpstreamUnavailable

from .client import ComfyClient

Wake = Callable[[float], Awaitable[None]]
"""Wait at most the given number of seconds, returning early when the server's queue changed."""


@dataclass(frozen=True, slots=True)
class PollPolicy:
    first_interval: float = 0.25
    max_interval: float = 2.0
    growth: float = 1.5
    grace: float = 3.0  # how long the server may stay unreachable before the prompt counts as lost


@dataclass(frozen=True, slots=True)
class Reconciled:
    """`history` is the finished prompt's entry, or None when the prompt is lost (`reason` says why)."""

    history: dict[str, Any] | None
    reason: str = ""


async def reconcile(
    client: ComfyClient,
    prompt_id: str,
    *,
    policy: PollPolicy | None = None,
    wake: Wake | None = None,
) -> Reconciled:
    """Poll /history and /queue until the prompt has a history entry or is known to be gone."""
    policy = policy or PollPolicy()
    wait = wake or asyncio.sleep
    interval = policy.first_interval
    last_reached = time.monotonic()
    while True:
        try:
            async with asyncio.timeout(policy.grace):
                entry = await _poll_once(client, prompt_id)
        except (UpstreamUnavailable, TimeoutError) as exc:
            if time.monotonic() - last_reached >= policy.grace:
                reason = exc.message if isinstance(exc, UpstreamUnavailable) else "no answer"
                return Reconciled(None, f"server unreachable for {policy.grace:g}s: {reason}")
            await asyncio.sleep(policy.first_interval)
            continue
        if entry is not _RUNNING:
            return entry
        last_reached = time.monotonic()
        await wait(interval)
        interval = min(interval * policy.growth, policy.max_interval)


_RUNNING = Reconciled(None, "still queued or running")


async def _poll_once(client: ComfyClient, prompt_id: str) -> Reconciled:
    entry = await client.history(prompt_id)
    if entry is not None:
        return Reconciled(entry)
    state = await client.queue()
    if prompt_id in state:
        return _RUNNING
    # It may have finished between the two reads: history is written before it leaves the queue.
    entry = await client.history(prompt_id)
    if entry is not None:
        return Reconciled(entry)
    return Reconciled(None, "neither in history nor in the queue")
