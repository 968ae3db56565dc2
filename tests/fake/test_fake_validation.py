"""POST /prompt validation shapes and request rules (protocol §0, §5)."""

from __future__ import annotations

from typing import Any

import pytest
from fakekit import (
    Events,
    Http,
    b64_workflow,
    get_json,
    png,
    post_prompt,
    scale_workflow,
    submit,
    upload,
    upscale_workflow,
)

from fake_comfyui import FakeComfyUI


def _scale_graph(**scale_inputs: Any) -> dict[str, Any]:
    graph = b64_workflow(png())
    graph["2"]["inputs"]["images"] = ["3", 0]
    graph["3"] = {"class_type": "ImageScaleBy",
                  "inputs": {"image": ["1", 0], "upscale_method": "lanczos", "scale_by": 2.0, **scale_inputs}}
    return graph


async def _rejected(http: Http, fake: FakeComfyUI, prompt: Any) -> dict[str, Any]:
    status, body = await post_prompt(http, fake.url, prompt)
    assert status == 400, body
    return body


async def test_no_prompt_key(fake: FakeComfyUI, http: Http) -> None:
    async with http.post(f"{fake.url}/prompt", json={"client_id": "x"}) as response:
        assert response.status == 400
        body = await response.json()
    assert body == {"error": {"type": "no_prompt", "message": "No prompt provided",
                              "details": "No prompt provided", "extra_info": {}}, "node_errors": {}}


async def test_unknown_class(fake: FakeComfyUI, http: Http) -> None:
    graph = b64_workflow(png())
    graph["2"]["class_type"] = "NoSuchNode"
    body = await _rejected(http, fake, graph)
    assert body == {"error": {"type": "invalid_prompt",
                              "message": "Cannot execute because node NoSuchNode does not exist.",
                              "details": "Node ID '#2'", "extra_info": {}}, "node_errors": {}}


async def test_missing_class_type(fake: FakeComfyUI, http: Http) -> None:
    graph = b64_workflow(png())
    del graph["1"]["class_type"]
    body = await _rejected(http, fake, graph)
    assert body["error"]["type"] == "invalid_prompt"
    assert body["error"]["message"] == "Cannot execute because a node is missing the class_type property."
    assert body["error"]["details"] == "Node ID '#1'"


async def test_no_output_node(fake: FakeComfyUI, http: Http) -> None:
    graph = b64_workflow(png())
    del graph["2"]
    body = await _rejected(http, fake, graph)
    assert body == {"error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                              "extra_info": {}}, "node_errors": {}}


async def test_missing_required_input(fake: FakeComfyUI, http: Http) -> None:
    graph = _scale_graph()
    del graph["3"]["inputs"]["scale_by"]
    body = await _rejected(http, fake, graph)
    assert body["error"] == {"type": "prompt_outputs_failed_validation",
                             "message": "Prompt outputs failed validation", "details": "", "extra_info": {}}
    assert body["node_errors"] == {"3": {
        "errors": [{"type": "required_input_missing", "message": "Required input is missing",
                    "details": "scale_by", "extra_info": {"input_name": "scale_by"}}],
        "dependent_outputs": ["2"], "class_type": "ImageScaleBy"}}


async def test_link_to_missing_node(fake: FakeComfyUI, http: Http) -> None:
    graph = b64_workflow(png())
    graph["2"]["inputs"]["images"] = ["99", 0]
    body = await _rejected(http, fake, graph)
    error = body["node_errors"]["2"]["errors"][0]
    assert error["type"] == "exception_during_inner_validation"
    assert error["message"] == "Exception when validating inner node"
    assert error["details"] == "'99'"
    assert error["extra_info"]["exception_type"] == "KeyError"


@pytest.mark.parametrize(("inputs", "kind", "message", "details"), [
    ({"upscale_method": "foo"}, "value_not_in_list", "Value not in list",
     "upscale_method: 'foo' not in ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']"),
    ({"scale_by": -1.0}, "value_smaller_than_min", "Value -1.0 smaller than min of 0.01", "scale_by"),
    ({"scale_by": 9}, "value_bigger_than_max", "Value 9.0 bigger than max of 8.0", "scale_by"),
    ({"scale_by": "abc"}, "invalid_input_type", "Failed to convert an input value to a FLOAT value",
     "scale_by, abc, could not convert string to float: 'abc'"),
])
async def test_widget_value_errors(
    fake: FakeComfyUI, http: Http, inputs: dict[str, Any], kind: str, message: str,
    details: str,
) -> None:
    body = await _rejected(http, fake, _scale_graph(**inputs))
    [error] = body["node_errors"]["3"]["errors"]
    assert (error["type"], error["message"], error["details"]) == (kind, message, details)
    assert error["extra_info"]["input_name"] == next(iter(inputs))


async def test_model_name_not_in_list(fake: FakeComfyUI, http: Http) -> None:
    body = await _rejected(http, fake, upscale_workflow(png(), model="nope.pth"))
    [error] = body["node_errors"]["2"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["details"].startswith("model_name: 'nope.pth' not in ['4x_NMKD-Siax_200k.pth'")
    assert body["node_errors"]["2"]["dependent_outputs"] == ["4"]


async def test_type_mismatch_on_output_node_fills_details(
    fake: FakeComfyUI, http: Http,
) -> None:
    graph = b64_workflow(png())
    graph["2"]["inputs"]["images"] = ["1", 1]
    body = await _rejected(http, fake, graph)
    assert body["error"]["details"] == ("Return type mismatch between linked nodes: images, "
                                        "received_type(MASK) mismatch input_type(IMAGE)")
    assert body["node_errors"]["2"]["errors"][0]["type"] == "return_type_mismatch"


async def test_load_image_missing_file(fake: FakeComfyUI, http: Http) -> None:
    body = await _rejected(http, fake, scale_workflow("does_not_exist.png"))
    [error] = body["node_errors"]["1"]["errors"]
    assert error == {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                     "details": "image - Invalid image file: does_not_exist.png",
                     "extra_info": {"input_name": "image"}}


async def test_partially_valid_prompt_is_queued(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "partial")
    graph = b64_workflow(png())
    graph["3"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    graph["4"] = {"class_type": "ImageScaleBy",
                  "inputs": {"image": ["3", 0], "upscale_method": "bogus", "scale_by": 1.0}}
    graph["5"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "dropped"}}
    status, body = await post_prompt(http, fake.url, graph, client_id="partial")
    assert status == 200
    assert body["node_errors"]["4"]["dependent_outputs"] == ["5"]
    assert body["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"
    frames = await events.until_done(body["prompt_id"])
    ran = [f["data"]["node"] for f in frames if f["type"] == "executing" and f["data"]["node"]]
    assert ran == ["1", "2"]
    history = await get_json(http, fake.url, f"/history/{body['prompt_id']}")
    assert history[body["prompt_id"]]["prompt"][4] == ["2"]


async def test_number_counts_every_post(fake: FakeComfyUI, http: Http) -> None:
    fake.pause()
    first = await post_prompt(http, fake.url, b64_workflow(png()))
    await post_prompt(http, fake.url, {"1": {"class_type": "Nope"}})
    async with http.post(f"{fake.url}/prompt", json={}) as response:
        assert response.status == 400
    third = await post_prompt(http, fake.url, b64_workflow(png()))
    front = await post_prompt(http, fake.url, b64_workflow(png()), front=True)
    assert [first[1]["number"], third[1]["number"], front[1]["number"]] == [0, 3, -4]


async def test_client_chosen_id_and_extra_data(fake: FakeComfyUI, http: Http) -> None:
    fake.pause()
    status, body = await post_prompt(http, fake.url, b64_workflow(png()), prompt_id="my-own-id-7876a8",
                                     client_id="cx", extra_data={"gateway_job": "j1"})
    assert status == 200 and body["prompt_id"] == "my-own-id-7876a8" and body["node_errors"] == {}
    queue = await get_json(http, fake.url, "/queue")
    [item] = queue["queue_pending"]
    assert item[1] == "my-own-id-7876a8"
    assert item[3] == {"gateway_job": "j1", "client_id": "cx"}
    assert item[4] == ["2"]


@pytest.mark.parametrize("body", [b"{not json", b'{"prompt": [1, 2]}', b"[1]"])
async def test_malformed_body_is_500_text(
    fake: FakeComfyUI, http: Http, body: bytes,
) -> None:
    async with http.post(f"{fake.url}/prompt", data=body) as response:
        assert response.status == 500
        assert response.content_type == "text/plain"
        assert await response.text() == "500 Internal Server Error\n\nServer got itself in trouble"
    async with http.post(f"{fake.url}/queue", data=b"nope") as response:
        assert response.status == 500


async def test_origin_check(fake: FakeComfyUI, http: Http) -> None:
    async with http.get(f"{fake.url}/system_stats", headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
        assert await response.read() == b""
    async with http.get(f"{fake.url}/system_stats", headers={"Origin": fake.url}) as response:
        assert response.status == 200


async def test_routes_under_api_prefix_and_info(fake: FakeComfyUI, http: Http) -> None:
    status, uploaded = await upload(http, fake.url, png(), filename="listed.png")
    assert status == 200
    stats = await get_json(http, fake.url, "/api/system_stats")
    assert stats["system"]["comfyui_version"].startswith("0.3.64")
    assert stats["devices"][0]["type"] == "cpu"
    info = await get_json(http, fake.url, "/api/object_info")
    assert info["LoadImage"]["input"]["required"]["image"] == [["listed.png"], {"image_upload": True}]
    assert info["UpscaleModelLoader"]["input"]["required"]["model_name"][0] == "COMBO"
    assert info["SaveImage"]["output_node"] is True and info["ImageInvert"]["output"] == ["IMAGE"]
    assert set(info) >= {"ETN_LoadImageBase64", "PreviewImage", "MaskToImage", "InspyrenetRembg",
                         "ImageUpscaleWithModel", "ImageScaleBy"}
    assert await get_json(http, fake.url, "/object_info/NoSuchNode") == {}
    one = await get_json(http, fake.url, "/object_info/ImageScaleBy")
    assert one["ImageScaleBy"]["input"]["required"]["scale_by"][1]["max"] == 8.0
    assert await get_json(http, fake.url, "/prompt") == {"exec_info": {"queue_remaining": 0}}
    async with http.get(f"{fake.url}/interrupt") as response:
        assert response.status == 405
    prompt_id = await submit(http, fake.url, scale_workflow(uploaded["name"]))
    assert prompt_id
