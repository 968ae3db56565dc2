"""The key client tests against a real ComfyUI server (core nodes only).

Set COMFYUI_TEST_URL (e.g. http://127.0.0.1:8188) to run them.
"""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image
from yarl import URL

from comfy_gateway.comfyui import CancelOutcome, ComfyClient, EventHub, ImageRef, run_prompt
from comfy_gateway.errors import WorkflowFailed, WorkflowRejected

COMFYUI_URL = os.environ.get("COMFYUI_TEST_URL", "")

pytestmark = [
    pytest.mark.skipif(not COMFYUI_URL, reason="COMFYUI_TEST_URL not set: real-server tests skipped"),
    pytest.mark.realcomfy,
    pytest.mark.timeout(120),
]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def client(session: aiohttp.ClientSession) -> ComfyClient:
    return ComfyClient(COMFYUI_URL, session)


@pytest.fixture
async def hub(client: ComfyClient, session: aiohttp.ClientSession) -> AsyncIterator[EventHub]:
    async with EventHub(client, session) as events:
        yield events


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def tag() -> str:
    return f"cgtest_{uuid.uuid4().hex[:10]}"


def scale_graph(image: ImageRef, prefix: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image.load_image_name}},
        "2": {"class_type": "ImageScaleBy",
              "inputs": {"image": ["1", 0], "upscale_method": "lanczos", "scale_by": 2.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


async def test_upload_scale_save(client: ComfyClient, hub: EventHub) -> None:
    name = f"{tag()}.png"
    ref = await client.upload_image(png(64, 48, (10, 120, 200)), name)
    assert (ref.filename, ref.type) == (name, "input")
    renamed = await client.upload_image(png(64, 48, (200, 120, 10)), name)
    assert renamed.filename != name

    seen: list[float] = []
    result = await run_prompt(client, hub, scale_graph(ref, tag()), on_progress=seen.append)
    [out] = result.outputs["3"]
    data = await client.view(out)
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (128, 96)
    assert seen[-1] == 1.0 and seen == sorted(seen)


async def test_unknown_node_is_rejected(client: ComfyClient, hub: EventHub) -> None:
    ref = await client.upload_image(png(16, 16, (1, 2, 3)), f"{tag()}.png")
    graph = scale_graph(ref, tag())
    graph["2"]["class_type"] = "NoSuchNode"
    with pytest.raises(WorkflowRejected) as info:
        await run_prompt(client, hub, graph)
    assert info.value.details["error_type"] == "invalid_prompt"


async def test_missing_input_is_rejected_with_node_errors(client: ComfyClient, hub: EventHub) -> None:
    ref = await client.upload_image(png(16, 16, (1, 2, 3)), f"{tag()}.png")
    graph = scale_graph(ref, tag())
    del graph["2"]["inputs"]["scale_by"]
    with pytest.raises(WorkflowRejected) as info:
        await run_prompt(client, hub, graph)
    assert "2" in info.value.details["node_errors"]


async def test_interrupt_a_running_upscale(
    client: ComfyClient, hub: EventHub, session: aiohttp.ClientSession
) -> None:
    async with session.get(URL(client.base_url).join(URL("models/upscale_models"))) as resp:
        models = await resp.json() if resp.status == 200 else []
    if not models:
        pytest.skip("the server has no upscale model to run an interruptible job with")
    ref = await client.upload_image(png(1536, 1536, (90, 90, 90)), f"{tag()}.png")
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": ref.load_image_name}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": models[0]}},
        "3": {"class_type": "ImageUpscaleWithModel",
              "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": tag()}},
    }
    prompt_id = str(uuid.uuid4())
    started = asyncio.Event()
    run = asyncio.create_task(
        run_prompt(client, hub, graph, prompt_id=prompt_id, on_progress=lambda _: started.set())
    )
    await asyncio.wait_for(started.wait(), 60)
    assert await client.cancel(prompt_id) in (CancelOutcome.INTERRUPTED, CancelOutcome.DEQUEUED)
    with pytest.raises(WorkflowFailed) as info:
        await asyncio.wait_for(run, 60)
    assert info.value.details.get("interrupted") is True
