"""Running one job's attempt on one server: render the workflow, run the prompt, keep the result.

Everything here is about a single attempt; retries, deadlines and bookkeeping are the Dispatcher's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pybase64

from ..comfyui.instance import Instance
from ..comfyui.models import RunResult
from ..comfyui.runner import attach, outputs_of, run_prompt
from ..errors import UpstreamUnavailable, WorkflowFailed
from ..images import OUTPUT_MIME, convert_image, image_size, result_size, strip_png_text, stripped_png_size
from ..jobs.blob_cache import CachedBlobStore
from ..jobs.blobs import BlobStore
from ..jobs.model import Job
from ..jobs.outputs import Output
from ..jobs.store import JobStore
from ..observability.tracing import step
from ..workflows.graph import GRAPH_JOB_TYPE
from ..workflows.registry import Workflow, WorkflowRegistry
from .graph_run import GraphRun
from .outputs import OutputCollector

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def result_key(job_id: str, attempt: int) -> str:
    # Per attempt: a late result of an abandoned attempt can never overwrite the real one.
    return f"results/{job_id}-{attempt}"


PROMPT_NAMESPACE = uuid.UUID("6f0d6a52-8a8e-4c55-9d4e-3b1f2a7c9e10")


def prompt_id_for(job_id: str, attempt: int) -> str:
    """The ComfyUI prompt id of one attempt: derived, so a process that adopts the job finds the
    prompt even when the crashed one never got to record it."""
    return str(uuid.uuid5(PROMPT_NAMESPACE, f"{job_id}/{attempt}"))


def input_key(job_id: str) -> str:
    return f"inputs/{job_id}"


@dataclass
class Outcome:
    blob: str
    meta: dict[str, Any]
    outputs: list[Output] = field(default_factory=list)
    expires_at: float | None = None


class ProgressReporter:
    """Writes progress to the store at most every `interval` seconds or each whole percent.

    One write at a time, in a task the reporter owns: `aclose()` waits for the last one."""

    def __init__(self, store: JobStore, job: Job, on_change: Callable[[str], Awaitable[None]],
                 interval: float = 0.25) -> None:
        self._store = store
        self._job = job
        self._on_change = on_change
        self._interval = interval
        self._last_write = time.monotonic()  # a job that ends within `interval` never writes progress
        self._last_pct = -1
        self._pending: asyncio.Task[None] | None = None

    def __call__(self, fraction: float) -> None:
        pct = int(max(0.0, min(1.0, fraction)) * 100)
        now = time.monotonic()
        # 100 % waits its turn too: the completion that follows writes it anyway.
        if pct == self._last_pct or now - self._last_write < self._interval:
            return
        if self._pending is not None and not self._pending.done():
            return
        self._last_pct, self._last_write = pct, now
        self._pending = asyncio.create_task(self._write(pct), name=f"progress-{self._job.id}")

    async def _write(self, pct: int) -> None:
        if await self._store.set_progress(self._job.id, self._job.attempt, pct):
            await self._on_change(self._job.id)

    async def aclose(self) -> None:
        """Wait for the write under way; a failed progress write only costs that figure."""
        if self._pending is not None:
            await asyncio.wait([self._pending])
            if not self._pending.cancelled():
                self._pending.exception()  # retrieved: progress is best effort
            self._pending = None


class JobExecution:
    def __init__(self, *, store: JobStore, blobs: BlobStore, registry: WorkflowRegistry,
                 outputs_dir: Path | None, results: BlobStore | None = None, result_ttl_s: float | None = None,
                 max_result_pixels: int = 40_000_000) -> None:
        self.store = store
        self.blobs = blobs
        self.registry = registry
        self.outputs_dir = outputs_dir
        self.collector = OutputCollector(results or blobs)  # where every output file goes
        self.result_ttl_s = result_ttl_s
        self.max_result_pixels = max_result_pixels
        self.graphs = GraphRun(blobs, results or blobs)

    def workflow_of(self, job: Job) -> Workflow:
        workflow = self.registry.get(job.type)
        if workflow is None:
            raise WorkflowFailed(f"workflow {job.type!r} is not configured on this gateway")
        return workflow

    async def run(self, job: Job, instance: Instance, on_progress: Callable[[float], None],
                  placed: Awaitable[None]) -> Outcome:
        """A new attempt (its prompt id set). `placed`: the write of its placement, under way; the
        prompt is posted once it is done."""
        workflow, result = await self._execute(job, instance, on_progress, placed)
        return await self.collect(job, instance, workflow, result)

    async def _execute(self, job: Job, instance: Instance, on_progress: Callable[[float], None],
                       placed: Awaitable[None]) -> tuple[Workflow | None, RunResult]:
        """The attempt's prompt, posted and followed to its end; `None` for a submitted graph."""
        if job.type == GRAPH_JOB_TYPE:
            await placed
            with step("comfyui.prompt", prompt_id=job.prompt_id, graph=True) as prompt:
                return None, await self.graphs.run(job, instance, prompt.progress_listener(on_progress))
        workflow = self.workflow_of(job)
        return workflow, await self._run_workflow(job, instance, workflow, on_progress, placed)

    async def _run_workflow(self, job: Job, instance: Instance, workflow: Workflow,
                            on_progress: Callable[[float], None], placed: Awaitable[None]) -> RunResult:
        assert job.prompt_id is not None
        image = await self.blobs.get(job.input_blob or input_key(job.id))
        if workflow.input_mode == "upload":
            ext = EXTENSIONS.get(job.input_meta.get("content_type", ""), "png")
            with step("comfyui.upload", size_bytes=len(image)):
                ref = await instance.client.upload_image(image, f"cg_{job.id}.{ext}", overwrite=True)
            value = f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename
        else:
            value = pybase64.b64encode_as_string(image)
        del image
        graph = workflow.render(value, run_tag=f"{job.id[:8]}_{job.attempt}", params=job.params.get("workflow", {}))
        await placed  # the graph is made while the placement is written
        with step("comfyui.prompt", prompt_id=job.prompt_id) as prompt:
            return await run_prompt(instance.client, instance.hub, graph, prompt_id=job.prompt_id,
                                    extra_data={"gateway_job": job.id, "attempt": job.attempt},
                                    on_progress=prompt.progress_listener(on_progress))

    async def reattach(self, job: Job, instance: Instance, on_progress: Callable[[float], None]) -> Outcome:
        """Follow a prompt an earlier process submitted (restart or lease take-over)."""
        assert job.prompt_id is not None
        workflow = None if job.type == GRAPH_JOB_TYPE else self.workflow_of(job)
        with step("comfyui.prompt", prompt_id=job.prompt_id, reattached=True) as prompt:
            result = await attach(instance.client, instance.hub, job.prompt_id,
                                  on_progress=prompt.progress_listener(on_progress))
        return await self.collect(job, instance, workflow, result)

    async def collect(self, job: Job, instance: Instance, workflow: Workflow | None, result: RunResult) -> Outcome:
        """The attempt's outputs, stored; a named workflow's job also gets its `result` image."""
        expires_at = None if self.result_ttl_s is None else time.time() + self.result_ttl_s
        if workflow is None:  # a submitted graph: every output, no single result
            with step("job.store_result") as stored:
                outputs = (await self.collector.collect(instance.client, job, result.history)).outputs
                stored.set(outputs=len(outputs))
            return Outcome("", {"prompt_id": result.prompt_id}, outputs, expires_at)
        refs = outputs_of(result.history, workflow.result_node)
        if not refs:
            raise WorkflowFailed(f"the workflow produced no image at node {workflow.result_node}",
                                 instance=instance.name, prompt_id=result.prompt_id)
        with step("comfyui.output_fetch", filename=refs[0].filename) as fetched:
            # The result image is one of the outputs: stored as it arrives, and gathered on the way.
            collected = await self.collector.collect(instance.client, job, result.history, keep=refs[0])
            fetched.set(outputs=len(collected.outputs))
        # refs[0] is listed in the same entry the outputs come from: it was gathered
        assert collected.kept is not None and collected.kept_key is not None
        try:
            size = self._check_result(collected.kept, instance, result.prompt_id)
            with step("job.store_result", format=job.params.get("format", "png")):
                key, meta = await self._keep_result(job, collected.kept, size, result.prompt_id, collected.kept_key)
        except BaseException:
            await asyncio.shield(self.collector.discard(collected.outputs))
            raise
        return Outcome(key, meta, collected.outputs, expires_at)

    def _check_result(self, png: bytes, instance: Instance, prompt_id: str) -> tuple[int, int]:
        """The result's width and height from its header, refused past MAX_RESULT_PIXELS: nothing
        huge is ever decoded."""
        try:
            return result_size(png, self.max_result_pixels)
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(exc.message, instance=instance.name, prompt_id=prompt_id) from None

    async def _keep_result(self, job: Job, png: bytes, size: tuple[int, int], prompt_id: str,
                           output: str) -> tuple[str, dict[str, Any]]:
        """The job's `result` (its first image, in the format asked for; `size`: the image's, from its
        header): its key, and its description."""
        fmt = job.params.get("format", "png")
        if fmt == "png" and self.collector.store is self.blobs and self.outputs_dir is None:
            return self._result_as_output(png, size, output, prompt_id)
        try:
            data = await asyncio.to_thread(convert_image, png, fmt) if fmt != "png" else strip_png_text(png)
            width, height = image_size(data)  # the header only: microseconds
        except (OSError, SyntaxError, ValueError) as exc:  # its header was fine, its pixels are not
            raise UpstreamUnavailable(f"the result image is damaged: {exc}", prompt_id=prompt_id) from None
        key = result_key(job.id, job.attempt)
        await self.blobs.put(key, data)
        if self.outputs_dir is not None:
            await asyncio.to_thread(self._write_output, job.id, fmt, data)
        return key, _described(fmt, len(data), width, height, prompt_id)

    def _result_as_output(self, png: bytes, size: tuple[int, int], key: str,
                          prompt_id: str) -> tuple[str, dict[str, Any]]:
        """A PNG result is not written again: it is the stored output under `key`, read without its
        text chunks (`service.result_bytes`)."""
        if isinstance(self.blobs, CachedBlobStore):  # the sync answer reads it a moment later
            self.blobs.remember(key, png)
        return key, _described("png", stripped_png_size(png), *size, prompt_id)

    async def discard(self, outcome: Outcome) -> None:
        """Drop what an abandoned attempt stored: its result is not the job's."""
        await self.blobs.delete(outcome.blob)
        await self.collector.discard(outcome.outputs)

    def _write_output(self, job_id: str, fmt: str, data: bytes) -> None:
        assert self.outputs_dir is not None
        folder = self.outputs_dir / job_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"result.{'jpg' if fmt == 'jpeg' else fmt}").write_bytes(data)


def _described(fmt: str, size: int, width: int, height: int, prompt_id: str) -> dict[str, Any]:
    """A result's `result_meta`."""
    return {"content_type": OUTPUT_MIME[fmt], "format": fmt, "size_bytes": size, "width": width, "height": height,
            "prompt_id": prompt_id}
