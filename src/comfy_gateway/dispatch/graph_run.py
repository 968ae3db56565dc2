"""One attempt of a graph job: its input assets put on THIS server, the graph run, every output kept.

Input assets go to the server the attempt landed on (POST /upload/image), under a name derived from
their content, so a retry elsewhere uploads them there and a second run here overwrites the same
file with the same bytes. No other server receives them.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable
from typing import Any

from ..comfyui.instance import Instance
from ..comfyui.models import ImageRef, RunResult
from ..comfyui.runner import attach, run_prompt
from ..errors import WorkflowFailed
from ..jobs.assets import content_hash
from ..jobs.blobs import BlobStore
from ..jobs.model import Job
from ..workflows.graph import render_graph

# ComfyUI's output lists by kind (history `outputs[node][kind]`), and the kind the v2 contract names.
OUTPUT_KINDS = {"images": "image", "gifs": "video", "videos": "video", "audio": "audio", "text": "text",
                "files": "file", "latents": "latent"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# What an attempt leaves: the blob key of its first output ("" for none) and the result metadata.
Kept = tuple[str, dict[str, Any]]


def output_key(job_id: str, attempt: int, index: int) -> str:
    base = f"results/{job_id}-{attempt}"  # the first output is where a task job keeps its result
    return base if index == 0 else f"{base}.{index}"


def server_filename(hash_: str, file_path: str) -> str:
    name = _UNSAFE.sub("_", file_path.rsplit("/", 1)[-1]).strip("._") or "input"
    digest = _UNSAFE.sub("_", hash_.removeprefix("blake3:"))[-16:]
    return f"cg_{digest}_{name[-80:]}"


class GraphRun:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    async def run(self, job: Job, instance: Instance, on_progress: Callable[[float], None]) -> Kept:
        assert job.prompt_id is not None
        names = await self._upload_inputs(job, instance)
        graph = render_graph(job.params["graph"], names, run_tag=f"{job.id[:8]}_{job.attempt}")
        extra = {**job.params.get("extra_data", {}), "gateway_job": job.id, "attempt": job.attempt}
        result = await run_prompt(instance.client, instance.hub, graph, prompt_id=job.prompt_id,
                                  extra_data=extra, on_progress=on_progress)
        return await self.collect(job, instance, result)

    async def reattach(self, job: Job, instance: Instance, on_progress: Callable[[float], None]) -> Kept:
        assert job.prompt_id is not None
        result = await attach(instance.client, instance.hub, job.prompt_id, on_progress=on_progress)
        return await self.collect(job, instance, result)

    async def _upload_inputs(self, job: Job, instance: Instance) -> dict[str, str]:
        names: dict[str, str] = {}
        for asset_id, source in job.params.get("inputs", {}).items():
            try:
                data = await self.blobs.get(source["key"])
            except KeyError:
                raise WorkflowFailed(f"input asset {asset_id} is no longer stored", asset_id=asset_id) from None
            ref = await instance.client.upload_image(data, server_filename(source["hash"], source["file_path"]),
                                                     overwrite=True)
            names[asset_id] = ref.load_image_name
        return names

    async def collect(self, job: Job, instance: Instance, result: RunResult) -> Kept:
        """Every file the run's nodes produced, fetched and kept in the blob store."""
        outputs: list[dict[str, Any]] = []
        for node_id, node_output in (result.history.get("outputs") or {}).items():
            for kind, items in (node_output or {}).items():
                if kind not in OUTPUT_KINDS or not isinstance(items, list):
                    continue
                for item in items:
                    if isinstance(item, dict) and "filename" in item:
                        outputs.append(await self._keep(job, instance, str(node_id), OUTPUT_KINDS[kind],
                                                        ImageRef.from_wire(item), len(outputs)))
        first = outputs[0]["blob"] if outputs else ""
        return first, {"outputs": outputs, "prompt_id": result.prompt_id}

    async def _keep(self, job: Job, instance: Instance, node_id: str, kind: str, ref: ImageRef,
                    index: int) -> dict[str, Any]:
        data = await instance.client.view(ref)
        key = output_key(job.id, job.attempt, index)
        await self.blobs.put(key, data)
        return {"node_id": node_id, "name": ref.filename, "type": kind, "blob": key,
                "content_type": mimetypes.guess_type(ref.filename)[0] or "application/octet-stream",
                "size_bytes": len(data), "hash": content_hash(data)}
