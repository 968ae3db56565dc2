"""One attempt of a graph job: its input assets put on THIS server, then the graph run.

Input assets go to the server the attempt landed on (POST /upload/image), under a name derived from
their content, so a retry elsewhere uploads them there, and a second run here finds the same bytes
under that name: ComfyUI keeps the file as it is (not overwritten, so never rewritten while another
prompt reads it). No other server receives them. The outputs are collected like every
job's (dispatch/outputs.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..comfyui.instance import Instance
from ..comfyui.models import RunResult
from ..comfyui.runner import run_prompt
from ..errors import WorkflowFailed
from ..jobs.blobs import BlobStore
from ..jobs.model import Job
from ..workflows.graph import render_graph

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def server_filename(hash_: str, file_path: str) -> str:
    name = _UNSAFE.sub("_", file_path.rsplit("/", 1)[-1]).strip("._") or "input"
    digest = _UNSAFE.sub("_", hash_.removeprefix("blake3:"))[-16:]
    return f"cg_{digest}_{name[-80:]}"


class GraphRun:
    def __init__(self, blobs: BlobStore, results: BlobStore) -> None:
        self.blobs = blobs  # uploaded assets
        self.results = results  # jobs' outputs, which a graph may take as inputs too

    async def run(self, job: Job, instance: Instance, on_progress: Callable[[float], None]) -> RunResult:
        assert job.prompt_id is not None
        names = await self._upload_inputs(job, instance)
        graph = render_graph(job.params["graph"], names, run_tag=f"{job.id[:8]}_{job.attempt}")
        extra = {**job.params.get("extra_data", {}), "gateway_job": job.id, "attempt": job.attempt}
        return await run_prompt(instance.client, instance.hub, graph, prompt_id=job.prompt_id,
                                extra_data=extra, on_progress=on_progress)

    async def _upload_inputs(self, job: Job, instance: Instance) -> dict[str, str]:
        names: dict[str, str] = {}
        for asset_id, source in job.params.get("inputs", {}).items():
            store = self.results if source.get("results") else self.blobs
            try:
                data = await store.get(source["key"])
            except KeyError:
                raise WorkflowFailed(f"input asset {asset_id} is no longer stored", asset_id=asset_id) from None
            ref = await instance.client.upload_image(data, server_filename(source["hash"], source["file_path"]),
                                                     overwrite=False)
            names[asset_id] = ref.load_image_name
        return names
