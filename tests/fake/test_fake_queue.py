"""One prompt at a time, execution order, queue edits and interrupts (protocol §3, §9, §10)."""

from __future__ import annotations

import asyncio

from fakekit import Events, Http, b64_workflow, get_json, png, submit

from fake_comfyui import FakeComfyUI
from support.waiting import eventually


async def _queue(http: Http, fake: FakeComfyUI) -> tuple[list[str], list[str]]:
    queue = await get_json(http, fake.url, "/queue")
    return [i[1] for i in queue["queue_running"]], [i[1] for i in queue["queue_pending"]]


async def test_one_at_a_time_in_number_order(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "order")
    fake.pause()
    ids = [await submit(http, fake.url, b64_workflow(png()), client_id="order") for _ in range(3)]
    front = await submit(http, fake.url, b64_workflow(png()), client_id="order", front=True)
    queue = await get_json(http, fake.url, "/queue")
    assert queue["queue_running"] == []
    assert sorted(item[0] for item in queue["queue_pending"]) == [-3, 0, 1, 2]
    assert await get_json(http, fake.url, "/prompt") == {"exec_info": {"queue_remaining": 4}}

    fake.resume()
    for prompt_id in [front, *ids]:
        await events.until_done(prompt_id)
    lifecycle = [(f["type"], f["data"]["prompt_id"]) for f in events.frames
                 if f["type"] == "execution_start"
                 or (f["type"] == "executing" and f["data"]["node"] is None)]
    expected = []
    for prompt_id in [front, *ids]:
        expected += [("execution_start", prompt_id), ("executing", prompt_id)]
    assert lifecycle == expected  # each prompt finishes before the next one starts


async def test_queue_delete_and_clear_touch_pending_only(fake: FakeComfyUI, http: Http) -> None:
    fake.hang_next(1)
    running = await submit(http, fake.url, b64_workflow(png()))
    await eventually(lambda: fake.stats()["queue_depth"] == 1)
    pending = [await submit(http, fake.url, b64_workflow(png())) for _ in range(3)]
    await eventually(_running_is(http, fake, running))

    async with http.post(f"{fake.url}/queue", json={"delete": [pending[0], running]}) as response:
        assert response.status == 200 and await response.read() == b""
    assert await _queue(http, fake) == ([running], pending[1:])
    async with http.post(f"{fake.url}/api/queue", json={"clear": True}) as response:
        assert response.status == 200
    assert await _queue(http, fake) == ([running], [])
    assert await get_json(http, fake.url, f"/history/{pending[0]}") == {}
    assert fake.interrupt(running)


def _running_is(http: Http, fake: FakeComfyUI, prompt_id: str):
    async def check() -> bool:
        running, _ = await _queue(http, fake)
        return running == [prompt_id]
    return check


async def test_interrupt_only_the_named_running_prompt(fake: FakeComfyUI, http: Http) -> None:
    events = await Events.connect(http, fake.url, "intr")
    fake.hang_next(1)
    hung = await submit(http, fake.url, b64_workflow(png()), client_id="intr")
    waiting = await submit(http, fake.url, b64_workflow(png()), client_id="intr")
    await eventually(_running_is(http, fake, hung))

    async with http.post(f"{fake.url}/interrupt", json={"prompt_id": waiting}) as response:
        assert response.status == 200 and await response.read() == b""
    await asyncio.sleep(0.15)
    assert await _queue(http, fake) == ([hung], [waiting])

    async with http.post(f"{fake.url}/interrupt", json={"prompt_id": hung}) as response:
        assert response.status == 200
    frames = await events.until_done(hung, limit=2.0)
    interrupted = next(f["data"] for f in frames if f["type"] == "execution_interrupted")
    assert interrupted["prompt_id"] == hung and interrupted["node_id"] == "2"
    assert interrupted["node_type"] == "SaveImage" and interrupted["executed"] == ["1"]
    assert events.types(frames)[-3:] == ["execution_interrupted", "status", "executing"]
    await events.until_done(waiting)
    history = await get_json(http, fake.url, f"/history/{hung}")
    status = history[hung]["status"]
    assert status["status_str"] == "error" and status["completed"] is False
    assert status["messages"][-1][0] == "execution_interrupted"
    later = await get_json(http, fake.url, f"/history/{waiting}")
    assert later[waiting]["status"]["status_str"] == "success"


async def test_global_interrupt_without_body(fake: FakeComfyUI, http: Http) -> None:
    fake.hang_next(1)
    prompt_id = await submit(http, fake.url, b64_workflow(png()))
    await eventually(_running_is(http, fake, prompt_id))
    async with http.post(f"{fake.url}/interrupt") as response:
        assert response.status == 200

    async def finished() -> bool:
        return bool(await get_json(http, fake.url, f"/history/{prompt_id}"))

    await eventually(finished, timeout=1.0)
    assert fake.stats()["interrupted"] == 1


async def test_history_is_empty_while_queued_or_running(fake: FakeComfyUI, http: Http) -> None:
    fake.hang_next(1)
    running = await submit(http, fake.url, b64_workflow(png()))
    queued = await submit(http, fake.url, b64_workflow(png()))
    await eventually(_running_is(http, fake, running))
    assert await get_json(http, fake.url, f"/history/{running}") == {}
    assert await get_json(http, fake.url, f"/history/{queued}") == {}
    assert await get_json(http, fake.url, "/prompt") == {"exec_info": {"queue_remaining": 2}}
    fake.interrupt()
