"""Uploads, /view and /history (protocol §4, §7, §8)."""

from __future__ import annotations

import time

import pytest
from fakekit import Events, Http, b64_workflow, get_json, png, submit, upload, view

from fake_comfyui import FakeComfyUI


async def test_upload_naming_rules(fake: FakeComfyUI, http: Http) -> None:
    first, second = png(colour=(1, 2, 3)), png(colour=(9, 9, 9))
    expected = {"name": "gw_test.png", "subfolder": "", "type": "input"}
    assert await upload(http, fake.url, first) == (200, expected)
    assert (await upload(http, fake.url, first))[1]["name"] == "gw_test.png"  # identical bytes: same name
    assert (await upload(http, fake.url, second))[1]["name"] == "gw_test (1).png"
    assert (await upload(http, fake.url, second))[1]["name"] == "gw_test (1).png"
    third = png(colour=(50, 50, 50))
    assert (await upload(http, fake.url, third))[1]["name"] == "gw_test (2).png"
    assert (await upload(http, fake.url, third, overwrite="true"))[1]["name"] == "gw_test.png"
    assert (fake.storage.input_dir / "gw_test.png").read_bytes() == third


async def test_upload_subfolder_type_and_rejections(fake: FakeComfyUI, http: Http) -> None:
    status, body = await upload(http, fake.url, png(), filename="gw_sub.png", subfolder="gwsub")
    assert (status, body) == (200, {"name": "gw_sub.png", "subfolder": "gwsub", "type": "input"})
    assert (await upload(http, fake.url, png(), type="temp"))[1]["type"] == "temp"
    assert (await upload(http, fake.url, png(), type="output"))[1]["type"] == "output"
    assert await upload(http, fake.url, png(), field_name="file") == (400, None)
    assert await upload(http, fake.url, png(), subfolder="../../x") == (400, None)
    # a file in a subfolder is usable by LoadImage as "sub/name"
    events = await Events.connect(http, fake.url, "sub")
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "gwsub/gw_sub.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "s"}}}
    prompt_id = await submit(http, fake.url, graph, client_id="sub")
    frames = await events.until_done(prompt_id)
    assert "execution_success" in events.types(frames)


async def test_view_serves_outputs_and_rejects_bad_paths(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "view")
    prompt_id = await submit(http, fake.url, b64_workflow(png((20, 10)), prefix="sub/dir/gw_inv"),
                             client_id="view")
    await events.until_done(prompt_id)
    history = await get_json(http, fake.url, f"/history/{prompt_id}")
    [ref] = history[prompt_id]["outputs"]["2"]["images"]
    assert ref == {"filename": "gw_inv_00001_.png", "subfolder": "sub/dir", "type": "output"}
    data = await view(http, fake.url, ref)
    assert data.startswith(b"\x89PNG") and len(data) > 50

    async with http.get(f"{fake.url}/api/view", params={**ref}) as response:
        assert response.headers["Content-Disposition"] == 'filename="gw_inv_00001_.png"'
    cases = [
        ({"filename": "gw_inv_00001_.png", "subfolder": "sub/dir", "type": "bogus"}, 400),
        ({"filename": "nope.png", "type": "output"}, 404),
        ({"type": "output"}, 404),
        ({"filename": "../x.png", "type": "output"}, 400),
        ({"filename": "/etc/passwd", "type": "output"}, 400),
        ({"filename": "passwd", "subfolder": "../../../etc", "type": "output"}, 403),
    ]
    for params, expected in cases:
        async with http.get(f"{fake.url}/view", params=params) as response:
            assert response.status == expected, params


async def test_view_of_uploaded_input_and_delay(fake: FakeComfyUI, http: Http) -> None:
    data = png(colour=(7, 7, 7))
    await upload(http, fake.url, data, filename="in.png")
    assert await view(http, fake.url, {"filename": "in.png", "subfolder": "", "type": "input"}) == data
    fake.set_view_delay(0.3)
    started = time.monotonic()
    await view(http, fake.url, {"filename": "in.png", "subfolder": "", "type": "input"})
    assert time.monotonic() - started >= 0.3


async def test_history_listing_delete_and_clear(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "hist")
    ids = []
    for _ in range(3):
        ids.append(await submit(http, fake.url, b64_workflow(png()), client_id="hist"))
        await events.until_done(ids[-1])
    assert list(await get_json(http, fake.url, "/history")) == ids
    assert list(await get_json(http, fake.url, "/history", max_items=2)) == ids[1:]
    assert list(await get_json(http, fake.url, "/api/history", max_items=1, offset=0)) == ids[:1]
    assert await get_json(http, fake.url, "/history/unknown-id") == {}

    async with http.post(f"{fake.url}/history", json={"delete": [ids[0]]}) as response:
        assert response.status == 200 and await response.read() == b""
    assert list(await get_json(http, fake.url, "/history")) == ids[1:]
    async with http.post(f"{fake.url}/history", json={"clear": True}) as response:
        assert response.status == 200
    assert await get_json(http, fake.url, "/history") == {}


@pytest.mark.parametrize("prefix", ["../escape", "/abs/escape"])
async def test_save_outside_output_folder_is_a_runtime_error(
    fake: FakeComfyUI, http: Http, prefix: str,
) -> None:
    events = await Events.connect(http, fake.url, "esc")
    prompt_id = await submit(http, fake.url, b64_workflow(png(), prefix=prefix), client_id="esc")
    frames = await events.until_done(prompt_id)
    error = next(f["data"] for f in frames if f["type"] == "execution_error")
    assert error["node_type"] == "SaveImage"
    assert "outside the output folder" in error["exception_message"]
