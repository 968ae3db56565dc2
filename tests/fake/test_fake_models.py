"""Start options of a fake server for placement: node classes left out, the model files offered, and
a model-load time paid when a prompt uses other models than the previous one."""

from __future__ import annotations

import json
import urllib.request

import pytest
from fakekit import Events, Http, b64, b64_workflow, get_json, png, post_prompt, submit, upscale_workflow

from fake_comfyui import FakeComfyUI
from fake_comfyui.process import FakeProcess


def rembg_workflow(data: bytes) -> dict[str, object]:
    return {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": b64(data)}},
        "2": {"class_type": "InspyrenetRembg", "inputs": {"image": ["1", 0], "torchscript_jit": "default"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "rembg"}},
    }


async def test_a_node_class_left_out_is_unknown(http: Http) -> None:
    async with FakeComfyUI(without_nodes=["InspyrenetRembg"]) as fake:
        info = await get_json(http, fake.url, "/object_info")
        assert "InspyrenetRembg" not in info and "SaveImage" in info
        assert await get_json(http, fake.url, "/object_info/InspyrenetRembg") == {}
        status, body = await post_prompt(http, fake.url, rembg_workflow(png()))
        assert status == 400
        assert body["error"]["message"] == "Cannot execute because node InspyrenetRembg does not exist."


async def test_only_the_listed_model_files_are_offered(http: Http) -> None:
    async with FakeComfyUI(models=["mine.pth"]) as fake:
        info = await get_json(http, fake.url, "/object_info/UpscaleModelLoader")
        assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] == ["mine.pth"]
        assert await get_json(http, fake.url, "/models/upscale_models") == ["mine.pth"]
        status, body = await post_prompt(http, fake.url, upscale_workflow(png(), model="4x_NMKD-Siax_200k.pth"))
        assert status == 400
        assert body["node_errors"]["2"]["errors"][0]["type"] == "value_not_in_list"
        await submit(http, fake.url, upscale_workflow(png(), model="mine.pth"))


async def test_the_model_load_time_is_paid_only_when_the_models_change(http: Http) -> None:
    async with FakeComfyUI(model_load_time=0.3) as fake:
        events = await Events.connect(http, fake.url, "loads")
        durations = []
        for prompt in (upscale_workflow(png()), upscale_workflow(png()), rembg_workflow(png()),
                       b64_workflow(png()), upscale_workflow(png())):
            prompt_id = await submit(http, fake.url, prompt, client_id="loads")
            await events.until_done(prompt_id)
            entry = (await get_json(http, fake.url, f"/history/{prompt_id}"))[prompt_id]
            stamps = {name: data["timestamp"] for name, data in entry["status"]["messages"]}
            durations.append((stamps["execution_success"] - stamps["execution_start"]) / 1000)
        # loads: first upscale, the switch to rembg, and upscale again after a prompt with no model
        assert fake.stats()["model_loads"] == 3
        assert durations[0] >= 0.3 and durations[2] >= 0.3 and durations[4] >= 0.3


def test_the_command_line_takes_the_placement_options() -> None:
    fake = FakeProcess.start(options=("--without-nodes", "InspyrenetRembg, MaskToImage", "--models", "a.pth,b.pth",
                                      "--model-load-time", "0.2"))
    try:
        with urllib.request.urlopen(f"{fake.url}/object_info", timeout=10) as resp:
            info = json.loads(resp.read())
    finally:
        fake.stop()
    assert "InspyrenetRembg" not in info and "MaskToImage" not in info and "LoadImage" in info
    assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] == ["a.pth", "b.pth"]


async def test_leaving_out_an_unknown_node_class_is_refused() -> None:
    with pytest.raises(ValueError, match="NoSuchNode"):
        FakeComfyUI(without_nodes=["NoSuchNode"])
