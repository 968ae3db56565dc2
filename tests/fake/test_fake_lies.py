"""The lying server (lies.py): each lie is told about the next prompt only, and is what it says."""

from __future__ import annotations

import io
import json

import pytest
from fakekit import Events, Http, b64_workflow, get_json, png, submit
from PIL import Image

from fake_comfyui import FakeComfyUI


async def _history_text(http: Http, url: str, prompt_id: str) -> str:
    async with http.get(f"{url}/history/{prompt_id}") as response:
        assert response.status == 200
        return await response.text()


async def _run(http: Http, fake: FakeComfyUI, client_id: str) -> tuple[str, list[dict]]:
    events = await Events.connect(http, fake.url, client_id)
    prompt_id = await submit(http, fake.url, b64_workflow(png()), client_id=client_id)
    frames = await events.until_done(prompt_id)
    await events.close()
    return prompt_id, frames


async def test_history_lies_hide_the_executed_frames_and_the_next_prompt_is_told_the_truth(
        fake: FakeComfyUI, http: Http) -> None:
    fake.lie_next("history_types", n=1)
    lied, frames = await _run(http, fake, "lies")
    assert "executed" not in [f["type"] for f in frames]
    entry = json.loads(await _history_text(http, fake.url, lied))[lied]
    assert entry["status"] == "success" and entry["outputs"]["9"]["images"][0]["filename"] == 7
    honest, frames = await _run(http, fake, "lies")
    assert "executed" in [f["type"] for f in frames]
    assert (await get_json(http, fake.url, f"/history/{honest}"))[honest]["status"]["status_str"] == "success"
    assert fake.stats()["lies_told"] == {"history_types": 1}


async def test_deep_history_is_past_the_parsers_depth(fake: FakeComfyUI, http: Http) -> None:
    fake.lie_next("history_deep")
    prompt_id, _ = await _run(http, fake, "deep")
    with pytest.raises(RecursionError):
        json.loads(await _history_text(http, fake.url, prompt_id))


async def test_huge_history_and_view_stream_the_size_asked_for_without_a_length(fake: FakeComfyUI, http: Http) -> None:
    fake.lie_next("history_huge", size=3 * 1024 * 1024)
    prompt_id, _ = await _run(http, fake, "big")
    async with http.get(f"{fake.url}/history/{prompt_id}") as response:
        assert response.content_length is None
        body = json.loads(await response.read())
    assert len(body[prompt_id]["pad"]) == 3 * 1024 * 1024
    fake.lie_next("view_huge", size=2 * 1024 * 1024 + 5)
    _, frames = await _run(http, fake, "view")
    image = next(f["data"]["output"]["images"][0] for f in frames if f["type"] == "executed")
    async with http.get(f"{fake.url}/view", params=image) as response:
        assert response.content_length is None
        data = await response.read()
    assert len(data) == 8 + 2 * 1024 * 1024 + 5 and data.startswith(b"\x89PNG")


async def test_image_huge_serves_a_12000_square_png_that_is_small_on_the_wire(fake: FakeComfyUI, http: Http) -> None:
    fake.lie_next("image_huge")
    _, frames = await _run(http, fake, "huge")
    image = next(f["data"]["output"]["images"][0] for f in frames if f["type"] == "executed")
    async with http.get(f"{fake.url}/view", params=image) as response:
        data = await response.read()
    assert len(data) < 1024 * 1024
    with pytest.warns(Image.DecompressionBombWarning), Image.open(io.BytesIO(data)) as img:
        assert img.size == (12000, 12000)


async def test_ws_frame_sends_one_frame_of_the_size_asked_for(fake: FakeComfyUI, http: Http) -> None:
    fake.lie_next("ws_frame", size=1024 * 1024)
    _, frames = await _run(http, fake, "frame")
    big = [f for f in frames if f["type"] == "progress_text"]
    assert len(big) == 1 and len(big[0]["data"]["text"]) == 1024 * 1024


async def test_lie_next_over_the_control_endpoint(fake: FakeComfyUI, http: Http) -> None:
    async with http.post(f"{fake.url}/fake/control", json={"action": "lie_next", "how": "nonsense"}) as response:
        assert response.status == 400
    async with http.post(f"{fake.url}/fake/control",
                         json={"action": "lie_next", "how": "history_deep", "n": 2}) as response:
        assert response.status == 200
    for _ in range(2):
        prompt_id, _ = await _run(http, fake, "ctl")
        assert (await _history_text(http, fake.url, prompt_id)).count("[") > 100_000
    assert fake.stats()["lies_told"] == {"history_deep": 2}
