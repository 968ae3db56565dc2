"""Node behaviour: real image work and runtime errors (protocol §6.2, §6.4, §14)."""

from __future__ import annotations

from typing import Any

from fakekit import (
    Events,
    Http,
    b64,
    b64_workflow,
    get_json,
    open_png,
    png,
    square_on_background,
    submit,
    upscale_workflow,
    view,
)

from fake_comfyui import FakeComfyUI


async def _run(fake: FakeComfyUI, http: Http, graph: dict[str, Any]) -> tuple[list[dict[str, Any]], dict]:
    events = await Events.connect(http, fake.url, "nodes")
    prompt_id = await submit(http, fake.url, graph, client_id="nodes")
    frames = await events.until_done(prompt_id)
    history = await get_json(http, fake.url, f"/history/{prompt_id}")
    await events.close()
    return frames, history[prompt_id]


async def _output_image(fake: FakeComfyUI, http: Http, entry: dict[str, Any], node: str):
    [ref] = entry["outputs"][node]["images"]
    return open_png(await view(http, fake.url, ref))


async def test_upscale_with_model_is_4x_with_tile_progress(fake: FakeComfyUI, http: Http) -> None:
    frames, entry = await _run(fake, http, upscale_workflow(png((520, 40))))
    progress = [f["data"] for f in frames if f["type"] == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [(1, 2, "3"), (2, 2, "3")]
    image = await _output_image(fake, http, entry, "4")
    assert image.size == (2080, 160)


async def test_scale_by_half_halves(fake: FakeComfyUI, http: Http) -> None:
    graph = b64_workflow(png((64, 48)))
    graph["3"] = {"class_type": "ImageScaleBy",
                  "inputs": {"image": ["1", 0], "upscale_method": "area", "scale_by": 0.5}}
    graph["2"]["inputs"]["images"] = ["3", 0]
    _, entry = await _run(fake, http, graph)
    assert (await _output_image(fake, http, entry, "2")).size == (32, 24)


async def test_rembg_makes_background_transparent(fake: FakeComfyUI, http: Http) -> None:
    graph = {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": b64(square_on_background(64, 28))}},
        "2": {"class_type": "InspyrenetRembg", "inputs": {"image": ["1", 0], "torchscript_jit": "default"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cut"}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "mask"}},
    }
    _, entry = await _run(fake, http, graph)
    cutout = await _output_image(fake, http, entry, "3")
    assert cutout.mode == "RGBA"
    alpha = cutout.getchannel("A")
    assert alpha.getpixel((1, 1)) == 0 and alpha.getpixel((62, 62)) == 0
    assert alpha.getpixel((32, 32)) == 255 and alpha.getpixel((20, 20)) == 255
    assert cutout.getpixel((32, 32))[:3] == (220, 20, 20)
    low, high = alpha.getextrema()
    assert (low, high) == (0, 255)
    mask = await _output_image(fake, http, entry, "5")
    assert mask.mode == "RGB"
    assert mask.getpixel((32, 32)) == (255, 255, 255) and mask.getpixel((0, 0)) == (0, 0, 0)


async def test_invert_and_alpha_mask_of_loader(fake: FakeComfyUI, http: Http) -> None:
    graph = {
        "1": {"class_type": "ETN_LoadImageBase64",
              "inputs": {"image": b64(png((8, 8), (10, 100, 200, 0), mode="RGBA"))}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 1]}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
    }
    _, entry = await _run(fake, http, graph)
    inverted = await _output_image(fake, http, entry, "3")
    assert inverted.getpixel((0, 0)) == (245, 155, 55)
    [preview] = entry["outputs"]["5"]["images"]
    assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")
    mask = await _output_image(fake, http, entry, "5")
    assert mask.getpixel((3, 3)) == (255, 255, 255)  # fully transparent pixel: mask 1, like ComfyUI


async def test_save_image_counter_per_prefix(fake: FakeComfyUI, http: Http) -> None:
    names = []
    for prefix in ("same", "same", "other"):
        _, entry = await _run(fake, http, b64_workflow(png(), prefix=prefix))
        names.append(entry["outputs"]["2"]["images"][0]["filename"])
    assert names == ["same_00001_.png", "same_00002_.png", "other_00001_.png"]


async def test_bad_base64_is_a_runtime_error(fake: FakeComfyUI, http: Http) -> None:
    graph = b64_workflow(png())
    graph["1"]["inputs"]["image"] = "data:image/png;base64," + b64(png())
    frames, entry = await _run(fake, http, graph)
    error = next(f["data"] for f in frames if f["type"] == "execution_error")
    assert error["node_id"] == "1" and error["node_type"] == "ETN_LoadImageBase64"
    assert error["exception_message"].startswith("Invalid base64-encoded string")
    assert set(error) == {"prompt_id", "node_id", "node_type", "executed", "exception_message",
                          "exception_type", "traceback", "current_inputs", "current_outputs", "timestamp"}
    assert "execution_success" not in [f["type"] for f in frames]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_error"
    assert entry["outputs"] == {}


async def test_empty_base64_cannot_identify(fake: FakeComfyUI, http: Http) -> None:
    graph = b64_workflow(png())
    graph["1"]["inputs"]["image"] = ""
    frames, _ = await _run(fake, http, graph)
    error = next(f["data"] for f in frames if f["type"] == "execution_error")
    assert error["exception_message"].startswith("cannot identify image file")


async def test_broken_model_fails_at_the_loader(fake: FakeComfyUI, http: Http) -> None:
    frames, entry = await _run(fake, http, upscale_workflow(png(), model="broken.pth"))
    assert entry["status"]["status_str"] == "error"
    types = [f["type"] for f in frames if f["type"] != "progress_state"]
    assert types[-3:] == ["execution_error", "status", "executing"]
    error = next(f["data"] for f in frames if f["type"] == "execution_error")
    assert error["node_id"] == "2" and error["node_type"] == "UpscaleModelLoader"
    assert error["exception_type"] == "_pickle.UnpicklingError"
    assert error["current_inputs"] == {"model_name": ["broken.pth"]}
    assert error["executed"] == ["1"]
    assert isinstance(error["traceback"], list) and error["traceback"]
