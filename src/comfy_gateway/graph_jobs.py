"""Graph jobs: a caller's own API-format graph, run as a gateway job (the Comfy API v2 surface).

Same store, dispatcher, limits, failover, deadlines and recovery as every job; this module only
adds what a graph job needs: its input assets checked and pinned at submit, a single-use
Idempotency-Key, cancellation, and the job's outputs as assets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .access import Principal
from .background import TaskOwner
from .errors import (
    HashMismatch,
    IdempotencyKeyReuse,
    InvalidInput,
    InvalidWorkflow,
    JobNotFound,
    MissingAsset,
    NoCapableServer,
    NotFound,
)
from .jobs.assets import HASH_PREFIX, AssetRecord, AssetStore
from .jobs.model import Job, JobState, new_job_id
from .jobs.outputs import Output
from .jobs.store import JobFilter
from .service import JobService
from .workflows.graph import GRAPH_JOB_TYPE, asset_ids, checked_graph
from .workflows.needs import node_errors

CANCELED = "canceled"
OUTPUT_ID_SEPARATOR = "."
# Parameters a job carries to its server but no answer shows: the partner-node API key of extra_data.
SECRET_PARAMS = frozenset({"extra_data"})


def shown_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in SECRET_PARAMS}


def output_id(job_id: str, index: int) -> str:
    """An output's asset id: its job and its place among the job's outputs."""
    return f"{job_id}{OUTPUT_ID_SEPARATOR}{index}"


# The kind of an output as /history lists it, in the contract's words (anything else: a file).
OUTPUT_TYPES = {"images": "image", "gifs": "video", "videos": "video", "video": "video", "audio": "audio",
                "text": "text", "latents": "latent"}


def content_hash_of(output: Output) -> str | None:
    """The contract's `blake3:<hex>`, computed as the output streamed into storage (null for an output
    stored before the gateway kept it, as the contract allows)."""
    return None if output.blake3 is None else HASH_PREFIX + output.blake3


def outputs_of(job: Job) -> list[dict[str, Any]]:
    """A completed job's files as v2 outputs, each with its asset id (its place in `job.outputs`)."""
    if job.state is not JobState.COMPLETED:
        return []
    return [{"node_id": out.node_id, "name": out.filename, "type": OUTPUT_TYPES.get(out.kind, "file"),
             "content_type": out.content_type, "size_bytes": out.size, "id": output_id(job.id, n),
             "hash": content_hash_of(out)} for n, out in enumerate(job.outputs)]


@dataclass(frozen=True)
class OutputAsset:
    """A job's output seen as an asset: the job, the v2 view of the output, and its record."""

    job: Job
    output: dict[str, Any]
    record: Output


class GraphJobs:
    """Graph jobs through the JobService; their input and output assets."""

    def __init__(self, *, service: JobService, assets: AssetStore, tasks: TaskOwner) -> None:
        self._service = service
        self._tasks = tasks  # the interrupts of canceled running jobs
        self.assets = assets
        self.settings = service.settings

    async def submit(self, graph: Any, owner: Principal, *, idempotency_key: str | None,
                     extra_data: dict[str, Any] | None, metadata: dict[str, str] | None) -> Job:
        """A new queued job of `owner` for `graph`. A key `owner` used already, on either API, answers
        422: keys are single-use, and the key is claimed in the same write that creates the job, so a
        retry after a lost answer finds it claimed and can never run the graph twice."""
        self._service.check_admission(sync=False)
        graph = checked_graph(graph)
        self._check_runnable(graph)
        inputs = {asset_id: await self._input_source(asset_id, owner) for asset_id in asset_ids(graph)}
        params: dict[str, Any] = {"graph": graph, "inputs": inputs, "metadata": metadata or {}}
        if extra_data:
            params["extra_data"] = extra_data
        job = Job(id=new_job_id(), type=GRAPH_JOB_TYPE, params=params, input_meta={"nodes": len(graph)})
        named, created = await self._service.submit_job(job, owner, idempotency_key)
        if not created:
            raise IdempotencyKeyReuse("this Idempotency-Key was used already; keys are single-use: poll or "
                                      "list your jobs instead of submitting again", job_id=named.id)
        return job

    def _check_runnable(self, graph: dict[str, Any]) -> None:
        """The contract's answer for a graph no server can run: 422 `invalid_workflow`, per node."""
        try:
            self._service.check_runnable(GRAPH_JOB_TYPE, graph)
        except NoCapableServer as exc:
            missing, servers = exc.details.get("missing") or [], exc.details.get("servers") or {}
            # The nodes to blame: what every server lacks, else (each lacks something else) all of it.
            everywhere = set.intersection(*(set(lacks) for lacks in servers.values())) if servers else set()
            raise InvalidWorkflow(exc.message, node_errors=node_errors(graph, everywhere or set(missing)),
                                  missing=missing, servers=servers) from None

    async def _input_source(self, asset_id: str, owner: Principal) -> dict[str, Any]:
        """Where an input's bytes are, pinned at submit so the job does not depend on the record."""
        try:
            found = await self.asset(asset_id, owner)
        except NotFound:
            raise MissingAsset(f"no asset {asset_id[:80]!r}", missing_ids=[asset_id[:80]]) from None
        if isinstance(found, AssetRecord):
            return {"key": found.content_key, "hash": found.hash, "file_path": found.file_path}
        out = found.record  # in the result store, which may not be the blob store
        return {"key": out.key, "hash": content_hash_of(out) or out.sha256, "file_path": out.filename, "results": True}

    async def get(self, job_id: str, viewer: Principal) -> Job:
        return await self._service.get(job_id, viewer)

    async def queue_position(self, job: Job) -> int | None:
        return await self._service.queue_position(job)

    def updates(self, job_id: str) -> AsyncIterator[Job]:
        """The job now and after each change until it has finished (JobService.updates)."""
        return self._service.updates(job_id)

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job as it is when it finishes or when `timeout_s` has passed, whichever comes first."""
        return await self._service.wait(job_id, timeout_s)

    async def list(self, viewer: Principal, limit: int,
                   before: tuple[float, str] | None) -> tuple[list[Job], tuple[float, str] | None]:
        """Graph jobs `viewer` may see among `limit` of all, newest first, after the key `before`; and
        the key to go on from (None: no more)."""
        page = await self._service.list(JobFilter(type=GRAPH_JOB_TYPE, limit=limit, before=before))
        last = (page[-1].created_at, page[-1].id) if len(page) == limit else None
        return [job for job in page if viewer.may_see(job)], last

    async def add_asset(self, data: bytes, owner: Principal, *, idempotency_key: str | None, content_type: str,
                        file_path: str, tags: tuple[str, ...], expected_hash: str | None) -> tuple[AssetRecord, bool]:
        """A new asset of `owner` (see `AssetStore.add`). An Idempotency-Key is single-use, as for
        jobs: a reused one answers 422. Its key is given back only when the upload certainly minted
        nothing (the hash did not match); after an unknown outcome it stays taken."""
        key = None if idempotency_key is None else f"asset:{owner.name}/{idempotency_key}"
        if key is not None and not await self._service.claim_key(key):
            raise IdempotencyKeyReuse("this Idempotency-Key was used already; keys are single-use: look the "
                                      "asset up by its hash instead of uploading again")
        try:
            return await self.assets.add(data, tenant=owner.name, content_type=content_type, file_path=file_path,
                                         tags=tags, expected_hash=expected_hash)
        except HashMismatch:
            if key is not None:
                await self._service.release_key(key)
            raise

    async def cancel(self, job_id: str, viewer: Principal) -> Job:
        """Stop the job wherever it is; a job that has finished stays as it is.

        A queued job is canceled at once. A running one is `canceling` (recorded on the job, so
        every replica and its event stream show it) while its prompt is interrupted in the
        background, and then canceled."""
        error = {"code": CANCELED, "message": "the job was canceled on request"}
        job = await self._service.get(job_id, viewer)
        if await self._service.mark_canceling(job):
            self._tasks.spawn(self._service.cancel(job_id, viewer, error), name=f"cancel-{job_id}")
            return job
        return await self._service.cancel(job_id, viewer, error)

    async def output(self, asset_id: str, viewer: Principal) -> OutputAsset:
        job_id, _, index = asset_id.rpartition(OUTPUT_ID_SEPARATOR)
        if not job_id or not index.isdigit():
            raise NotFound(f"no asset {asset_id[:80]!r}")
        try:
            job = await self._service.get(job_id, viewer)
        except JobNotFound:
            raise NotFound(f"no asset {asset_id[:80]!r}") from None
        outputs = outputs_of(job)
        if int(index) >= len(outputs):
            raise NotFound(f"no asset {asset_id[:80]!r}")
        return OutputAsset(job, outputs[int(index)], job.outputs[int(index)])

    async def output_chunks(self, found: OutputAsset, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `[start, end)` of the output (410 once its job's results expired)."""
        self._service.outputs.check_readable(found.job)
        return await self._service.outputs.read(found.job, found.record, start, end)

    async def asset(self, asset_id: str, viewer: Principal) -> AssetRecord | OutputAsset:
        """An uploaded asset or a job's output, if `viewer` may see it (else 404, as unknown)."""
        record = await self.assets.get(asset_id)
        if record is None:
            return await self.output(asset_id, viewer)
        if not (viewer.is_admin or record.tenant == viewer.name):
            raise NotFound(f"no asset {asset_id[:80]!r}")
        return record

    async def delete_asset(self, asset_id: str, viewer: Principal) -> None:
        """Forget an uploaded asset of `viewer`; a job's output goes only with its job."""
        if isinstance(await self.asset(asset_id, viewer), OutputAsset):
            raise InvalidInput("a job's output is removed with its job, not on its own")
        await self.assets.delete(asset_id)

    def accepting(self) -> bool:
        """Whether a job submitted now would be taken and could start."""
        return not self._service.admission.stranded()
