"""Fault-injection knobs, stats, the control endpoint and the command line."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from fakekit import Events, Http, b64_workflow, get_json, png, submit

from fake_comfyui import FakeComfyUI
from support.waiting import eventually

SRC = Path(__file__).resolve().parents[2] / "src"


async def _control(http: Http, fake_url: str, **body: object) -> tuple[int, dict]:
    async with http.post(f"{fake_url}/fake/control", json=body) as response:
        return response.status, await response.json()


async def test_fail_next_fails_first_non_loader_node(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "fail")
    fake.fail_next(1, message="boom")
    failed = await submit(http, fake.url, b64_workflow(png()), client_id="fail")
    frames = await events.until_done(failed)
    error = next(f["data"] for f in frames if f["type"] == "execution_error")
    assert (error["node_id"], error["node_type"], error["exception_message"]) == ("2", "SaveImage", "boom")
    assert error["executed"] == ["1"]
    ok = await submit(http, fake.url, b64_workflow(png()), client_id="fail")
    assert "execution_success" in events.types(await events.until_done(ok))
    stats = fake.stats()
    assert (stats["failed"], stats["completed"]) == (1, 1)


async def test_pause_and_resume(fake: FakeComfyUI, http: Http) -> None:
    fake.pause()
    prompt_id = await submit(http, fake.url, b64_workflow(png()))
    await asyncio.sleep(0.2)
    queue = await get_json(http, fake.url, "/queue")
    assert queue["queue_running"] == [] and [i[1] for i in queue["queue_pending"]] == [prompt_id]
    assert await get_json(http, fake.url, f"/history/{prompt_id}") == {}
    fake.resume()

    async def finished() -> bool:
        return bool(await get_json(http, fake.url, f"/history/{prompt_id}"))

    await eventually(finished, timeout=2.0)


async def test_service_time_and_fast_interrupt(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "slow")
    fake.set_service_time(0.3)
    started = time.monotonic()
    slow = await submit(http, fake.url, b64_workflow(png()), client_id="slow")
    await events.until_done(slow)
    took = time.monotonic() - started
    assert 0.3 <= took < 1.0  # (bench: 201 ms per prompt at 200 ms, the work counted in)

    fake.set_service_time(30.0)
    long = await submit(http, fake.url, b64_workflow(png()), client_id="slow")
    await events.until("execution_start", long)
    await asyncio.sleep(0.05)
    asked = time.monotonic()
    async with http.post(f"{fake.url}/interrupt", json={}) as response:
        assert response.status == 200
    frames = await events.until_done(long, limit=2.0)
    assert time.monotonic() - asked < 1.0
    assert "execution_interrupted" in events.types(frames)


async def test_drop_sockets(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "drop")
    assert fake.stats()["sockets_open"] == 1
    await fake.drop_sockets()
    message = await events.ws.receive(timeout=2)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await eventually(lambda: fake.stats()["sockets_open"] == 0)
    assert fake.stats()["sockets_seen"] == 1


async def test_stop_and_start_on_the_same_port(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "restart")
    done = await submit(http, fake.url, b64_workflow(png()), client_id="restart")
    await events.until_done(done)
    fake.hang_next(1)
    lost = await submit(http, fake.url, b64_workflow(png()))
    port = fake.port

    await fake.stop()
    message = await events.ws.receive(timeout=2)
    while message.type == aiohttp.WSMsgType.TEXT:  # status frames of the submit above
        message = await events.ws.receive(timeout=2)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    with pytest.raises(aiohttp.ClientConnectorError):
        async with aiohttp.ClientSession() as fresh, fresh.get(f"{fake.url}/system_stats"):
            pass

    await fake.start()
    assert fake.port == port
    assert (await get_json(http, fake.url, "/system_stats"))["devices"]
    assert done in await get_json(http, fake.url, f"/history/{done}")  # history survives
    assert await get_json(http, fake.url, f"/history/{lost}") == {}  # the running prompt is gone
    assert await get_json(http, fake.url, "/queue") == {"queue_running": [], "queue_pending": []}


async def test_stats_peak_queue_depth_and_reset(fake: FakeComfyUI, http: Http) -> None:
    fake.pause()
    ids = [await submit(http, fake.url, b64_workflow(png()), client_id="s") for _ in range(3)]
    stats = fake.stats()
    assert stats["peak_queue_depth"] == 3 and stats["queue_depth"] == 3
    assert stats["prompts_received"] == 3 and [p["prompt_id"] for p in stats["prompts"]] == ids
    assert {p["client_id"] for p in stats["prompts"]} == {"s"}
    assert [p["number"] for p in stats["prompts"]] == [0, 1, 2]
    fake.reset_stats()
    stats = fake.stats()
    assert stats["prompts"] == [] and stats["prompts_received"] == 0 and stats["peak_queue_depth"] == 3
    fake.resume()
    await eventually(lambda: fake.stats()["completed"] == 3)
    assert fake.stats()["queue_depth"] == 0


async def test_control_endpoint(fake: FakeComfyUI, http: Http) -> None:
    assert await _control(http, fake.url, action="pause") == (200, {"ok": True})
    prompt_id = await submit(http, fake.url, b64_workflow(png()))
    await asyncio.sleep(0.1)
    assert (await get_json(http, fake.url, "/fake/stats"))["queue_depth"] == 1
    reply = await _control(http, fake.url, action="fail_next", n=1, message="via control")
    assert reply == (200, {"ok": True})
    assert (await _control(http, fake.url, action="service_time", seconds=0.0))[0] == 200
    assert (await _control(http, fake.url, action="view_delay", seconds=0.0))[0] == 200
    assert (await _control(http, fake.url, action="hang_next", n=0))[0] == 200
    assert (await _control(http, fake.url, action="resume"))[0] == 200

    async def finished() -> dict:
        return await get_json(http, fake.url, f"/history/{prompt_id}")

    entry = (await eventually(finished))[prompt_id]
    assert entry["status"]["messages"][-1][1]["exception_message"] == "via control"
    stats = await get_json(http, fake.url, "/fake/stats")
    assert stats["failed"] == 1 and stats["name"] == "under-test"
    assert (await _control(http, fake.url, action="reset_stats"))[0] == 200
    assert (await get_json(http, fake.url, "/fake/stats"))["failed"] == 0
    status, body = await _control(http, fake.url, action="explode")
    assert status == 400 and body["ok"] is False
    assert (await _control(http, fake.url, action="fail_next", n="x"))[0] == 400

    await Events.connect(http, fake.url, "ctl")
    assert (await _control(http, fake.url, action="drop_sockets"))[0] == 200
    await eventually(lambda: fake.stats()["sockets_open"] == 0)
    assert await _control(http, fake.url, action="exit") == (200, {"ok": True})
    await asyncio.wait_for(fake.wait_exit(), 2)
    with pytest.raises(aiohttp.ClientConnectorError):
        await get_json(http, fake.url, "/system_stats")


async def test_command_line_server(http: Http) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fake_comfyui", "--port", "0", "--name", "sub", "--paused",
        stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert line.startswith("fake_comfyui listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        stats = await get_json(http, url, "/system_stats")
        assert stats["system"]["fake_name"] == "sub"
        await submit(http, url, b64_workflow(png()))
        assert (await get_json(http, url, "/queue"))["queue_running"] == []  # --paused
        assert (await _control(http, url, action="exit"))[0] == 200
        assert await asyncio.wait_for(process.wait(), 5) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
