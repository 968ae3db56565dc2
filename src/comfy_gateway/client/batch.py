"""A batch: every input sent as a job, N at a time, each result written to its own file.

Inputs whose output already exists are skipped, so a batch stopped half way picks up where it
left off. A result is written under a temporary name and renamed, so a file that exists is whole."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from .http import FINISHED, GatewayClient, RequestFailed
from .inputs import BatchItem
from .progress import BatchProgress

CANCEL_TIMEOUT_S = 5.0
STREAM_RETRIES = 5  # event streams lost in a row before the input counts as failed
SUBMIT_RETRIES = 5  # "come back later" answers to one input before it counts as failed
MAX_RETRY_AFTER_S = 30.0


class Outcome(enum.Enum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ItemResult:
    item: BatchItem
    outcome: Outcome
    detail: str = ""
    seconds: float | None = None


@dataclass(frozen=True)
class BatchOptions:
    task: str
    params: Mapping[str, str]
    concurrency: int


async def run_batch(client: GatewayClient, items: list[BatchItem], options: BatchOptions,
                    progress: BatchProgress) -> list[ItemResult]:
    """One result per item, in the items' order."""
    limit = asyncio.Semaphore(max(1, options.concurrency))

    async def one(item: BatchItem) -> ItemResult:
        async with limit:
            return await _run_item(client, item, options, progress)

    todo = [item for item in items if not item.output.exists()]
    async with asyncio.TaskGroup() as group:
        tasks = {item: group.create_task(one(item)) for item in todo}
    return [tasks[item].result() if item in tasks else ItemResult(item, Outcome.SKIPPED, "already done")
            for item in items]


async def _run_item(client: GatewayClient, item: BatchItem, options: BatchOptions,
                    progress: BatchProgress) -> ItemResult:
    name = item.source.name
    started = time.monotonic()
    progress.started(name)
    job_id: str | None = None
    try:
        image = await asyncio.to_thread(item.source.read_bytes)
        job_id = await _submit(client, image, name, options, progress)
        last = await _follow(client, job_id, name, progress)
        if last.get("status") != "completed":
            raise RequestFailed(_error_text(last))
        await asyncio.to_thread(_write_whole, item, await client.result(job_id))
    except (RequestFailed, aiohttp.ClientError, OSError) as exc:
        progress.finished(name, False, str(exc))
        return ItemResult(item, Outcome.FAILED, str(exc), time.monotonic() - started)
    except asyncio.CancelledError:
        if job_id is not None:  # interrupted: don't leave the server working for nobody
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wait_for(client.cancel(job_id), CANCEL_TIMEOUT_S))
        raise
    seconds = time.monotonic() - started
    progress.finished(name, True, f"{item.output.name} in {seconds:.1f} s")
    return ItemResult(item, Outcome.DONE, seconds=seconds)


async def _submit(client: GatewayClient, image: bytes, name: str, options: BatchOptions,
                  progress: BatchProgress) -> str:
    """The job id. Asked again when the gateway says "later" (429 over a quota, 503 while no server
    is up) or the connection drops (a kept-alive one the server just closed); one idempotency key
    for all the tries, so a request that did arrive is not run twice."""
    key = f"batch-{uuid.uuid4().hex}"
    tries = 0
    while True:
        try:
            return await client.submit(image, name, options.task, options.params, idempotency_key=key)
        except RequestFailed as exc:
            tries += 1
            if exc.retry_after_s is None or tries > SUBMIT_RETRIES:
                raise
            progress.update(name, 0, f"waiting {exc.retry_after_s:.0f} s: {exc}")
            await asyncio.sleep(min(exc.retry_after_s, MAX_RETRY_AFTER_S))
        except aiohttp.ClientConnectionError:
            tries += 1
            if tries > SUBMIT_RETRIES:
                raise
            await asyncio.sleep(0.2 * tries)


async def _follow(client: GatewayClient, job_id: str, name: str, progress: BatchProgress) -> dict[str, object]:
    """The job's final status, following its event stream.

    The stream is silent while nothing changes (a long wait in the queue), so a read that times out
    or a dropped connection just opens it again: it starts with the job's current status."""
    last: dict[str, object] = {}
    failures = 0
    while True:
        error: Exception | None = None
        try:
            async for body in client.events(job_id):
                last, failures = body, 0
                where = f" on {body['comfyui_instance']}" if body.get("comfyui_instance") else ""
                progress.update(name, float(body.get("progress_percentage") or 0), f"{body['status']}{where}")
        except (aiohttp.ClientPayloadError, aiohttp.ServerTimeoutError, aiohttp.ClientConnectionError) as exc:
            error = exc
        if last.get("status") in FINISHED:
            return last
        failures += 1
        if failures > STREAM_RETRIES:
            raise RequestFailed(f"lost the event stream of job {job_id}") from error
        await asyncio.sleep(min(5.0, 0.2 * failures))


def _error_text(status: Mapping[str, object]) -> str:
    error = status.get("error")  # the original's string; older gateways sent an object
    if isinstance(error, dict):
        error = error.get("message")
    return str(error) if error else f"job ended {status.get('status')}"


def _write_whole(item: BatchItem, data: bytes) -> None:
    item.output.parent.mkdir(parents=True, exist_ok=True)
    partial = item.output.with_name(f".{item.output.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, item.output)
