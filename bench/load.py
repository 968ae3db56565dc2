"""HTTP load helpers: uploads to the gateway, a direct ComfyUI client for baselines, percentiles."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
import uuid
from datetime import datetime
from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=300)
TERMINAL = ("completed", "failed")

# The gateway's `upscale-image` workflow, as a ComfyUI client would post it itself (the baseline).
UPSCALE_GRAPH: dict[str, Any] = {
    "8": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": ""}},
    "3": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x_NMKD-Siax_200k.pth"}},
    "5": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["3", 0], "image": ["8", 0]}},
    "7": {"class_type": "ImageScaleBy", "inputs": {"upscale_method": "bicubic", "scale_by": 0.5, "image": ["5", 0]}},
    "10": {"class_type": "SaveImage", "inputs": {"filename_prefix": "direct", "images": ["7", 0]}},
}


def session(limit: int = 100) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=limit))


def form(image: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("imageFile", image, filename="image.png", content_type="image/png")
    return data


async def submit_async(http: aiohttp.ClientSession, base: str, task: str, image: bytes) -> tuple[int, str | None]:
    async with http.post(f"{base}/api/async/{task}", data=form(image)) as resp:
        body = await resp.json(content_type=None)
        return resp.status, body.get("job_id") if isinstance(body, dict) else None


async def run_sync(http: aiohttp.ClientSession, base: str, task: str, image: bytes,
                   raw_answer: bool = False, timings: dict[str, float] | None = None) -> tuple[int, dict[str, Any]]:
    """One sync request. `raw_answer`: ask for the image bytes (Accept: image/png) instead of JSON.
    `timings` gets `parse_s`: how long the JSON answer took this client to parse."""
    headers = {"Accept": "image/png"} if raw_answer else {}
    async with http.post(f"{base}/api/{task}", data=form(image), headers=headers) as resp:
        raw = await resp.read()
        status = resp.status
        prompt_id = resp.headers.get("X-Prompt-ID")
    body: dict[str, Any] = {}
    parse_start = time.perf_counter()
    if status == 200:
        body = {"promptId": prompt_id, "bytes": len(raw)} if raw_answer else json.loads(raw)
    if timings is not None:
        timings["parse_s"] = time.perf_counter() - parse_start
    return status, body


async def job_info(http: aiohttp.ClientSession, base: str, job_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/jobs/{job_id}/info") as resp:
        resp.raise_for_status()
        return await resp.json()


async def wait_job(http: aiohttp.ClientSession, base: str, job_id: str, poll: float = 0.01,
                   first_poll: float = 0.02, timeout: float = 60) -> dict[str, Any]:
    await asyncio.sleep(first_poll)
    deadline = time.monotonic() + timeout
    while True:
        info = await job_info(http, base, job_id)
        if info["status"] in TERMINAL or time.monotonic() > deadline:
            return info
        await asyncio.sleep(poll)


async def finished_count(http: aiohttp.ClientSession, base: str) -> tuple[int, int]:
    """(completed, failed) over all jobs the gateway knows."""
    async with http.get(f"{base}/api/jobs/stats") as resp:
        resp.raise_for_status()
        by_status = (await resp.json()).get("by_status") or {}
    return int(by_status.get("completed", 0)), int(by_status.get("failed", 0))


def epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def direct_upscale(http: aiohttp.ClientSession, fake_url: str, image: bytes) -> tuple[float, float]:
    """Run the upscale workflow straight on a ComfyUI server, as a bare client would: WebSocket,
    POST /prompt, wait for the end, GET /history and GET /view. Returns (seconds, server execution)."""
    client_id = uuid.uuid4().hex
    start = time.perf_counter()
    async with http.ws_connect(f"{fake_url}/ws?clientId={client_id}", max_msg_size=0) as ws:
        graph = copy.deepcopy(UPSCALE_GRAPH)
        graph["8"]["inputs"]["image"] = base64.b64encode(image).decode("ascii")
        async with http.post(f"{fake_url}/prompt", json={"prompt": graph, "client_id": client_id}) as resp:
            resp.raise_for_status()
            prompt_id = (await resp.json())["prompt_id"]
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = msg.json()
            data = event.get("data") or {}
            if data.get("prompt_id") == prompt_id and event.get("type") in ("execution_success", "execution_error"):
                break
    async with http.get(f"{fake_url}/history/{prompt_id}") as resp:
        entry = (await resp.json())[prompt_id]
    ref = entry["outputs"]["10"]["images"][0]
    async with http.get(f"{fake_url}/view", params={k: ref[k] for k in ("filename", "subfolder", "type")}) as resp:
        resp.raise_for_status()
        await resp.read()
    elapsed = time.perf_counter() - start
    return elapsed, execution_seconds(entry)


def execution_seconds(history_entry: dict[str, Any]) -> float:
    """execution_start to execution_success of a /history entry (ComfyUI's millisecond stamps)."""
    begun, ended = execution_span(history_entry)
    return ended - begun


def execution_span(history_entry: dict[str, Any]) -> tuple[float, float]:
    """(execution_start, execution_success) of a /history entry, epoch seconds."""
    stamps = {m[0]: m[1].get("timestamp") for m in history_entry["status"]["messages"]}
    return stamps["execution_start"] / 1000, stamps["execution_success"] / 1000


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
