"""WebSocket event order and routing (protocol §6.1, §6.2)."""

from __future__ import annotations

from fakekit import Events, Http, b64_workflow, get_json, png, scale_workflow, submit, upload

from fake_comfyui import FakeComfyUI
from support.waiting import eventually


async def test_successful_run_event_sequence(fake: FakeComfyUI, http: Http) -> None:
    status, uploaded = await upload(http, fake.url, png((64, 64)))
    assert status == 200
    events = await Events.connect(http, fake.url, "gwA")
    prompt_id = await submit(http, fake.url, scale_workflow(uploaded["name"]), client_id="gwA")

    frames = await events.until_done(prompt_id)
    history = await get_json(http, fake.url, f"/history/{prompt_id}")

    assert events.types(frames, skip=("progress_state",)) == [
        "status", "status", "execution_start", "execution_cached",
        "executing", "executing", "executing", "executed",
        "execution_success", "status", "executing",
    ]
    statuses = [f["data"]["status"]["exec_info"]["queue_remaining"] for f in frames if f["type"] == "status"]
    assert statuses == [1, 1, 0]
    executing = [f["data"] for f in frames if f["type"] == "executing"]
    assert [e["node"] for e in executing] == ["1", "2", "3", None]
    assert executing[0] == {"node": "1", "display_node": "1", "prompt_id": prompt_id}
    assert executing[-1] == {"node": None, "prompt_id": prompt_id}
    cached = next(f["data"] for f in frames if f["type"] == "execution_cached")
    assert cached["nodes"] == [] and cached["prompt_id"] == prompt_id and isinstance(cached["timestamp"], int)
    executed = next(f["data"] for f in frames if f["type"] == "executed")
    image_ref = {"filename": "gw_scale_00001_.png", "subfolder": "", "type": "output"}
    assert executed["output"] == {"images": [image_ref]}
    # a progress_state announces each node as running before its `executing`
    first_state = frames.index(next(f for f in frames if f["type"] == "progress_state"))
    assert frames[first_state]["data"]["nodes"]["1"]["state"] == "running"
    assert frames[first_state + 1]["type"] == "executing"
    # history is written before the final `executing` null
    entry = history[prompt_id]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached",
                                                           "execution_success"]
    assert entry["outputs"] == {"3": executed["output"]}
    assert entry["prompt"][1] == prompt_id and entry["prompt"][3] == {"client_id": "gwA"}
    assert entry["prompt"][4] == ["3"]
    assert entry["meta"]["3"] == {"node_id": "3", "display_node": "3", "parent_node": None,
                                  "real_node_id": "3"}


async def test_welcome_frame_carries_sid(fake: FakeComfyUI, http: Http) -> None:
    async with http.ws_connect(f"{fake.url}/ws?clientId=hello") as ws:
        first = await ws.receive_json(timeout=5)
    assert first == {"type": "status",
                     "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "hello"}}
    async with http.ws_connect(f"{fake.url}/api/ws") as ws:
        generated = await ws.receive_json(timeout=5)
    assert len(generated["data"]["sid"]) == 32


async def test_other_client_sees_only_status(fake: FakeComfyUI, http: Http) -> None:
    owner = await Events.connect(http, fake.url, "owner")
    other = await Events.connect(http, fake.url, "other")
    prompt_id = await submit(http, fake.url, b64_workflow(png()), client_id="owner")
    await owner.until_done(prompt_id)
    seen = await other.quiet(0.2)
    assert other.types(seen) == ["status", "status", "status"]


async def test_prompt_without_client_id_broadcasts_only_progress(
    fake: FakeComfyUI, http: Http,
) -> None:
    listener = await Events.connect(http, fake.url, "listener")
    prompt_id = await submit(http, fake.url, b64_workflow(png()))
    await listener.until("status")
    await listener.until("status")
    frames = [await listener.until("status")]  # the status after completion
    frames += await listener.quiet(0.2)
    history = await get_json(http, fake.url, f"/history/{prompt_id}")
    assert history[prompt_id]["status"]["status_str"] == "success"
    kinds = set(listener.types())
    assert "progress_state" in kinds
    assert not kinds & {"execution_start", "executing", "executed", "execution_success"}


async def test_same_client_id_pitfall(fake: FakeComfyUI, http: Http) -> None:
    old = await Events.connect(http, fake.url, "shared")
    new = await Events.connect(http, fake.url, "shared")
    first = await submit(http, fake.url, b64_workflow(png()), client_id="shared")
    await new.until_done(first)
    assert await old.quiet(0.1) == []  # replaced in the routing table: not even status

    await old.close()
    await eventually(lambda: fake.stats()["sockets_open"] == 1)
    second = await submit(http, fake.url, b64_workflow(png()), client_id="shared")

    async def finished() -> bool:
        return bool(await get_json(http, fake.url, f"/history/{second}"))

    await eventually(finished)
    assert await new.quiet(0.1) == []  # the id was dropped when the old socket closed
    assert not new.ws.closed


async def test_feature_flags_reply(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "flags")
    await events.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    reply = await events.next()
    assert reply == {"type": "feature_flags",
                     "data": {"supports_preview_metadata": True, "max_upload_size": 104857600}}


async def test_reconnect_mid_job_announces_current_node(
    fake: FakeComfyUI, http: Http,
) -> None:
    fake.hang_next(1)
    first = await Events.connect(http, fake.url, "again")
    prompt_id = await submit(http, fake.url, b64_workflow(png()), client_id="again")
    await first.until("executing")
    hanging = await first.until("executing")
    await first.close()
    async with http.ws_connect(f"{fake.url}/ws?clientId=again") as ws:
        welcome = await ws.receive_json(timeout=5)
        current = await ws.receive_json(timeout=5)
    assert welcome["type"] == "status"
    assert current == {"type": "executing", "data": {"node": hanging["data"]["node"]}}
    assert fake.interrupt(prompt_id)
