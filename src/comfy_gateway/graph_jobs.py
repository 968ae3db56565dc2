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
from .errors import IdempotencyKeyReuse, InvalidInput, JobNotFound, MissingAsset, NotFound
from .jobs.assets import AssetRecord, AssetStore
from .jobs.model import Job, JobState, new_job_id
from .jobs.outputs import Output
from .jobs.store import JobFilter
from .service import JobService
from .workflows.graph import GRAPH_JOB_TYPE, asset_ids, checked_graph

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


def outputs_of(job: Job) -> list[dict[str, Any]]:
    """A completed job's files as v2 outputs, each with its asset id (its place in `job.outputs`).

    The stored digest is SHA-256, not the contract's blake3: `hash` is null, as the contract allows."""
    if job.state is not JobState.COMPLETED:
        return []
    return [{"node_id": out.node_id, "name": out.filename, "type": OUTPUT_TYPES.get(out.kind, "file"),
             "content_type": out.content_type, "size_bytes": out.size, "id": output_id(job.id, n), "hash": None}
            for n, out in enumerate(job.outputs)]


@dataclass(frozen=True)
class OutputAsset:
    """A job's output seen as an asset: the job, the v2 view of the output, and its record."""

    job: Job
    output: dict[str, Any]
    record: Output


class GraphJobs:
    """Graph jobs through the JobService; their input and output assets."""

    def __init__(self, *, service: JobService, assets: AssetStore) -> None:
        self._service = service
        self.assets = assets
        self.settings = service.settings

    async def submit(self, graph: Any, owner: Principal, *, idempotency_key: str | None,
                     extra_data: dict[str, Any] | None, metadata: dict[str, str] | None) -> Job:
        """A new queued job of `owner` for `graph`. A key `owner` used already, on either API, answers
        422: keys are single-use, and the key is claimed in the same write that creates the job, so a
        retry after a lost answer finds it claimed and can never run the graph twice."""
        self._service.check_admission(sync=False)
        graph = checked_graph(graph)
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

    async def _input_source(self, asset_id: str, owner: Principal) -> dict[str, Any]:
        """Where an input's bytes are, pinned at submit so the job does not depend on the record."""
        try:
            found = await self.asset(asset_id, owner)
        except NotFound:
            raise MissingAsset(f"no asset {asset_id[:80]!r}", missing_ids=[asset_id[:80]]) from None
        if isinstance(found, AssetRecord):
            return {"key": found.content_key, "hash": found.hash, "file_path": found.file_path}
        out = found.record  # in the result store, which may not be the blob store
        return {"key": out.key, "hash": out.sha256, "file_path": out.filename, "results": True}

    async def get(self, job_id: str, viewer: Principal) -> Job:
        return await self._service.get(job_id, viewer)

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job as it is when it finishes or when `timeout_s` has passed, whichever comes first."""
        return await self._service.wait(job_id, timeout_s)

    async def list(self, viewer: Principal, limit: int, offset: int) -> tuple[list[Job], bool]:
        """Graph jobs `viewer` may see among `limit` of all, newest first, from `offset`; and whether
        there may be more."""
        page = await self._service.list(JobFilter(type=GRAPH_JOB_TYPE, limit=limit, offset=offset))
        return [job for job in page if viewer.may_see(job)], len(page) == limit

    async def cancel(self, job_id: str, viewer: Principal) -> Job:
        """Stop the job wherever it is; a job that has finished stays as it is."""
        error = {"code": CANCELED, "message": "the job was canceled on request"}
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
