"""Output nodes beyond one image: batches, animated WebP, MP4 (VHS), WAV audio and text."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path
from typing import Any

from fakekit import Events, Http, b64, get_json, png, submit, view
from PIL import Image

from fake_comfyui import FakeComfyUI

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "workflows"


def fixture_graph(name: str, image: bytes) -> dict[str, Any]:
    graph = json.loads((FIXTURES / f"{name}.json").read_text())["graph"]
    graph["1"]["inputs"]["image"] = b64(image)
    return graph


async def _history(fake: FakeComfyUI, http: Http, graph: dict[str, Any]) -> tuple[list[dict[str, Any]], dict]:
    events = await Events.connect(http, fake.url, "media")
    prompt_id = await submit(http, fake.url, graph, client_id="media")
    frames = await events.until_done(prompt_id)
    await events.close()
    return frames, (await get_json(http, fake.url, f"/history/{prompt_id}"))[prompt_id]


async def test_mixed_outputs_are_reported_as_comfyui_and_vhs_do(fake: FakeComfyUI, http: Http) -> None:
    frames, entry = await _history(fake, http, fixture_graph("mixed-outputs", png((64, 48))))
    outputs = entry["outputs"]
    assert [ref["filename"] for ref in outputs["3"]["images"]] == ["batch_00001_.png", "batch_00002_.png"]
    assert len(outputs["5"]["images"]) == 1
    [clip] = outputs["7"]["gifs"]
    assert clip["format"] == "video/h264-mp4" and clip["filename"] == "clip_00001_.mp4"
    assert clip["workflow"] == "clip_00001_.png" and clip["frame_rate"] == 8.0
    assert outputs["8"] == {"text": ["a caption"]}
    executed = {f["data"]["node"]: f["data"]["output"] for f in frames if f["type"] == "executed"}
    assert executed == outputs
    video = await view(http, fake.url, clip, "video/mp4")
    assert video[4:8] == b"ftyp" and len(video) > 1000  # an ISO media file (MP4)


async def test_animated_webp_has_every_frame(fake: FakeComfyUI, http: Http) -> None:
    graph = {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": b64(png((32, 32)))}},
        "4": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "2": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["4", 0]}},
        "3": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["2", 0], "filename_prefix": "anim", "fps": 10.0,
                                                           "lossless": False, "quality": 80, "method": "default"}},
    }
    _, entry = await _history(fake, http, graph)
    [ref] = entry["outputs"]["3"]["images"]
    assert entry["outputs"]["3"]["animated"] == [True]
    data = await view(http, fake.url, ref, "image/webp")
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert b"ANIM" in data and b"ANMF" in data  # the animation chunks
    image = Image.open(io.BytesIO(data))
    assert image.size == (32, 32) and image.n_frames == 2


async def test_audio_is_a_wav_of_the_asked_length(fake: FakeComfyUI, http: Http) -> None:
    graph = fixture_graph("long-audio", png((16, 16)))
    graph["3"]["inputs"]["seconds"] = 2.5
    _, entry = await _history(fake, http, graph)
    [ref] = entry["outputs"]["4"]["audio"]
    assert ref["subfolder"] == "audio" and ref["filename"].endswith(".wav")
    with wave.open(io.BytesIO(await view(http, fake.url, ref, "audio/x-wav"))) as sound:
        assert sound.getnframes() == 2.5 * 48000 and sound.getframerate() == 48000
