"""ComfyClient, EventHub and run_prompt against the fake ComfyUI over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from PIL import Image

from comfy_gateway.comfyui import (
    CancelOutcome,
    ClientTimeouts,
    ComfyClient,
    EventHub,
    ImageRef,
    PollPolicy,
    WatchOutcome,
    attach,
    outputs_of,
    run_prompt,
)
from comfy_gateway.comfyui.socket import EventSocket
from comfy_gateway.errors import UpstreamError, UpstreamUnavailable, WorkflowFailed, WorkflowRejected
from fake_comfyui import FakeComfyUI
from support.proxy import FaultProxy
from support.waiting import eventually

pytestmark = pytest.mark.timeout(30)

FAST = ClientTimeouts(connect=1.0, submit=5.0, history=2.0, view=5.0, probe=1.0)


# ------------------------------------------------------------------ fixtures and graphs


@pytest.fixture
async def fake() -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(host="127.0.0.1", port=0, service_time=0.0) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def client(fake: FakeComfyUI, session: aiohttp.ClientSession) -> ComfyClient:
    return ComfyClient(fake.url, session, timeouts=FAST)


@pytest.fixture
async def hub(client: ComfyClient, session: aiohttp.ClientSession) -> AsyncIterator[EventHub]:
    async with EventHub(client, session, poll_policy=PollPolicy(grace=1.5)) as events:
        yield events


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def scale_graph(image: bytes, *, scale: float = 2.0, prefix: str = "cg_scale") -> dict[str, Any]:
    return {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": base64.b64encode(image).decode()}},
        "2": {
            "class_type": "ImageScaleBy",
            "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "scale_by": scale},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def upscale_graph(image: bytes, *, model: str = "4x_NMKD-Siax_200k.pth") -> dict[str, Any]:
    return {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": base64.b64encode(image).decode()}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "cg_up"}},
    }


def unique(prefix: str = "cg") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def size_of(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as img:
        return img.size




# --------------------------------------------------------------------------- success


async def test_scale_run_returns_outputs_and_progress(client: ComfyClient, hub: EventHub) -> None:
    seen: list[float] = []
    result = await run_prompt(client, hub, scale_graph(png(64, 48), prefix=unique()), on_progress=seen.append)

    assert result.instance == client.name
    assert result.history["status"]["status_str"] == "success"
    assert list(result.outputs) == ["3"]
    [ref] = result.outputs["3"]
    assert ref.type == "output"
    assert size_of(await client.view(ref)) == (128, 96)
    # node 1 starts (0), node 2 starts (1/3), node 3 starts (2/3), success (1.0)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert hub.watching == 0


def test_frames_no_prompt_reads_are_skipped_unparsed(hub: EventHub, caplog: pytest.LogCaptureFixture) -> None:
    """A `progress_state` or `execution_start` frame is not even parsed; any other frame is."""
    no_socket = cast(EventSocket, None)  # neither frame gets as far as a prompt's socket
    with caplog.at_level(logging.WARNING, logger="comfy_gateway.comfyui.events"):
        hub._dispatch(no_socket, '{"type": "progress_state", "data": {"prompt_id": "p", "nodes": {')
        hub._dispatch(no_socket, '{"type": "execution_start", "data": ')
        assert caplog.records == []
        hub._dispatch(no_socket, '{"type": "executing", "data": {"node": ')
    assert [r.getMessage().startswith("unreadable event frame") for r in caplog.records] == [True]


async def test_progress_follows_upscale_tiles(client: ComfyClient, hub: EventHub) -> None:
    seen: list[float] = []
    result = await run_prompt(client, hub, upscale_graph(png(600, 520)), on_progress=seen.append)

    [ref] = result.outputs["4"]
    assert size_of(await client.view(ref)) == (2400, 2080)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    # the upscale node reports per-tile progress, so there are fractions between whole nodes
    assert any(round(f * 4, 6) != round(f * 4) for f in seen if f < 0.99), seen


async def test_view_stream_yields_the_same_bytes(client: ComfyClient, hub: EventHub) -> None:
    result = await run_prompt(client, hub, scale_graph(png(), prefix=unique()))
    [ref] = outputs_of(result.history, "3")
    chunks = [chunk async for chunk in client.view_stream(ref)]
    assert b"".join(chunks) == await client.view(ref)


async def test_upload_names_and_load_image_run(client: ComfyClient, hub: EventHub) -> None:
    name = f"{unique('up')}.png"
    first = await client.upload_image(png(colour=(1, 2, 3)), name)
    assert first == ImageRef(name, "", "input")
    assert (await client.upload_image(png(colour=(1, 2, 3)), name)).filename == name  # same bytes
    renamed = await client.upload_image(png(colour=(9, 9, 9)), name)
    assert renamed.filename != name and renamed.filename.endswith(" (1).png")
    assert (await client.upload_image(png(colour=(7, 7, 7)), name, overwrite=True)).filename == name
    sub = await client.upload_image(png(32, 32), name, subfolder="cgsub")
    assert (sub.subfolder, sub.type) == ("cgsub", "input")

    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": sub.load_image_name}},
        "2": {"class_type": "ImageScaleBy", "inputs": {"image": ["1", 0], "upscale_method": "area",
                                                       "scale_by": 0.5}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": unique()}},
    }
    result = await run_prompt(client, hub, graph)
    assert size_of(await client.view(result.outputs["3"][0])) == (16, 16)


async def test_system_stats(client: ComfyClient) -> None:
    stats = await client.system_stats()
    assert "comfyui_version" in stats["system"]


# ------------------------------------------------------------------------ rejection


async def test_unknown_node_is_rejected(client: ComfyClient, hub: EventHub) -> None:
    graph = scale_graph(png())
    graph["2"]["class_type"] = "NoSuchNode"
    with pytest.raises(WorkflowRejected) as info:
        await run_prompt(client, hub, graph)
    assert info.value.details["error_type"] == "invalid_prompt"
    assert "NoSuchNode" in info.value.message
    assert info.value.details["instance"] == client.name
    assert hub.watching == 0


async def test_invalid_input_is_rejected_with_node_errors(client: ComfyClient, hub: EventHub) -> None:
    graph = scale_graph(png())
    del graph["2"]["inputs"]["scale_by"]
    with pytest.raises(WorkflowRejected) as info:
        await run_prompt(client, hub, graph)
    details = info.value.details
    assert details["error_type"] == "prompt_outputs_failed_validation"
    assert details["node_errors"]["2"]["errors"][0]["type"] == "required_input_missing"
    assert "node 2 (ImageScaleBy)" in info.value.message


async def test_partially_valid_prompt_is_rejected_and_taken_back(
    client: ComfyClient, hub: EventHub, fake: FakeComfyUI
) -> None:
    graph = scale_graph(png(), prefix=unique())
    graph["4"] = {"class_type": "ImageScaleBy",
                  "inputs": {"image": ["1", 0], "upscale_method": "foo", "scale_by": 2.0}}
    graph["5"] = {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "bad"}}
    fake.pause()
    with pytest.raises(WorkflowRejected) as info:
        await run_prompt(client, hub, graph)
    assert info.value.details["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"
    state = await client.queue()
    assert info.value.details["prompt_id"] not in state  # the valid half was queued, then deleted


async def test_malformed_request_500_is_upstream_unavailable(client: ComfyClient) -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        await client.submit([1, 2], client_id="x")  # type: ignore[arg-type]
    assert info.value.retryable and info.value.details["status"] == 500


# ----------------------------------------------------------------------- run failures


async def test_broken_model_fails_with_node_details(client: ComfyClient, hub: EventHub) -> None:
    seen: list[float] = []
    with pytest.raises(WorkflowFailed) as info:
        await run_prompt(client, hub, upscale_graph(png(), model="broken.pth"), on_progress=seen.append)
    details = info.value.details
    assert (details["node_id"], details["node_type"]) == ("2", "UpscaleModelLoader")
    assert details["exception_type"] and info.value.message
    assert not info.value.retryable
    assert 1.0 not in seen


async def test_injected_failure_carries_the_message(
    client: ComfyClient, hub: EventHub, fake: FakeComfyUI
) -> None:
    fake.fail_next(1, message="boom from the fake")
    with pytest.raises(WorkflowFailed) as info:
        await run_prompt(client, hub, scale_graph(png(), prefix=unique()))
    assert "boom from the fake" in info.value.message
    assert info.value.details["node_id"] in {"1", "2", "3"}
    # the next one is fine again
    await run_prompt(client, hub, scale_graph(png(), prefix=unique()))


async def test_cancel_interrupts_a_hung_prompt(client: ComfyClient, hub: EventHub, fake: FakeComfyUI) -> None:
    fake.hang_next(1)
    prompt_id = str(uuid.uuid4())
    graph = scale_graph(png(), prefix=unique())
    run = asyncio.create_task(run_prompt(client, hub, graph, prompt_id=prompt_id))
    await wait_until_running(client, prompt_id)
    assert await client.cancel(prompt_id) is CancelOutcome.INTERRUPTED
    with pytest.raises(WorkflowFailed) as info:
        await asyncio.wait_for(run, 5)
    assert info.value.details["interrupted"] is True
    assert info.value.message == "Execution interrupted"


async def wait_until_running(client: ComfyClient, prompt_id: str) -> None:
    async def running() -> bool:
        return prompt_id in (await client.queue()).running

    await eventually(running)


async def test_deadline_cancellation_leaves_nothing_behind(
    client: ComfyClient, hub: EventHub, fake: FakeComfyUI
) -> None:
    fake.hang_next(1)
    prompt_id = str(uuid.uuid4())
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await run_prompt(client, hub, scale_graph(png(), prefix=unique()), prompt_id=prompt_id)
    assert hub.watching == 0
    ours = {t for t in asyncio.all_tasks() - before if "comfy_gateway" in t.get_coro().cr_code.co_filename}
    assert {t.get_name() for t in ours if not t.get_name().startswith("comfyui-events-")} == set()
    assert await client.cancel(prompt_id) is CancelOutcome.INTERRUPTED
    entry = await eventually(lambda: client.history(prompt_id))
    assert entry["status"]["status_str"] == "error"


# ------------------------------------------------------------------ sockets and servers


async def test_dropped_socket_mid_run_still_succeeds_quickly(
    client: ComfyClient, session: aiohttp.ClientSession, fake: FakeComfyUI
) -> None:
    fake.set_service_time(1.0)
    reconnected: list[str] = []
    async with EventHub(client, session, on_reconnect=reconnected.append) as hub:
        started = time.monotonic()
        run = asyncio.create_task(run_prompt(client, hub, scale_graph(png(), prefix=unique())))
        await asyncio.sleep(0.3)
        await fake.drop_sockets()
        result = await asyncio.wait_for(run, 5)
        elapsed = time.monotonic() - started
        assert result.outputs["3"]
        assert elapsed < 2.5, elapsed  # a 1 s job; the alternative is the 30 s timeout
        await eventually(lambda: hub.reconnects >= 1)
        assert reconnected == [client.name]
        assert hub.sockets_open == 1


async def test_socket_lost_between_watch_and_submit(
    client: ComfyClient, hub: EventHub, fake: FakeComfyUI
) -> None:
    prompt_id = str(uuid.uuid4())
    watch = await hub.watch(prompt_id, total_nodes=3)
    await fake.drop_sockets()
    await eventually(lambda: watch.reconciling)
    await asyncio.sleep(0.3)  # not posted yet: absence from the queue must not count as lost
    assert watch.outcome is None
    await client.submit(scale_graph(png(), prefix=unique()), client_id=watch.client_id, prompt_id=prompt_id)
    watch.mark_submitted()
    assert await asyncio.wait_for(watch.wait(), 3) is WatchOutcome.FINISHED
    assert watch.succeeded and watch.history is not None
    await watch.aclose()
    assert hub.watching == 0


async def test_client_id_is_never_reused(client: ComfyClient, hub: EventHub, fake: FakeComfyUI) -> None:
    first = await hub.watch("p-1")
    first_id = first.client_id
    for round_ in range(1, 3):
        await fake.drop_sockets()
        await eventually(lambda n=round_: hub.reconnects >= n and hub.sockets_open == 1)
    second = await hub.watch("p-2")
    assert first.reconciling
    assert len(set(hub.client_ids_used)) == len(hub.client_ids_used) == 3
    assert second.client_id == hub.client_ids_used[-1] != first_id
    assert all(cid.startswith("cg-") for cid in hub.client_ids_used)
    # and the new socket really receives our events
    second.close()
    result = await run_prompt(client, hub, scale_graph(png(), prefix=unique()))
    assert result.outputs["3"]
    first.close()


async def test_many_concurrent_runs_are_routed_by_prompt_id(client: ComfyClient, hub: EventHub) -> None:
    scales = [1.0 + i / 4 for i in range(10)]
    progress: dict[int, list[float]] = {i: [] for i in range(10)}
    results = await asyncio.gather(*(
        run_prompt(client, hub, scale_graph(png(40, 40), scale=s, prefix=unique()),
                   on_progress=progress[i].append)
        for i, s in enumerate(scales)
    ))
    assert len({r.prompt_id for r in results}) == 10
    for i, (result, scale) in enumerate(zip(results, scales, strict=True)):
        assert size_of(await client.view(result.outputs["3"][0])) == (int(40 * scale), int(40 * scale))
        assert progress[i][-1] == 1.0
    assert 1 <= hub.sockets_open <= 3
    assert hub.watching == 0


async def test_server_stopped_mid_run_is_upstream_unavailable_fast(
    client: ComfyClient, hub: EventHub, fake: FakeComfyUI
) -> None:
    fake.set_service_time(5.0)
    run = asyncio.create_task(run_prompt(client, hub, scale_graph(png(), prefix=unique())))
    await eventually(lambda: fake.stats()["queue_depth"] >= 1, timeout=10, what="the prompt running")
    started = time.monotonic()
    await fake.stop()
    with pytest.raises(UpstreamUnavailable) as info:
        await asyncio.wait_for(run, 15)
    # Grace 1.5 s + a poll when idle; well below the 5 s the prompt would run, with room for a loaded machine.
    assert time.monotonic() - started < 4.9
    assert info.value.message == "prompt lost" and info.value.retryable


async def test_unreachable_server_is_upstream_unavailable(session: aiohttp.ClientSession) -> None:
    sock_server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = sock_server.sockets[0].getsockname()[1]
    sock_server.close()
    await sock_server.wait_closed()
    dead = ComfyClient(f"http://127.0.0.1:{port}", session, timeouts=FAST)
    with pytest.raises(UpstreamUnavailable):
        await dead.system_stats()
    async with EventHub(dead, session) as hub:
        with pytest.raises(UpstreamUnavailable):
            await run_prompt(dead, hub, scale_graph(png()))
        assert hub.watching == 0


async def test_missing_output_is_a_non_retryable_upstream_error(client: ComfyClient) -> None:
    with pytest.raises(UpstreamError) as info:
        await client.view(ImageRef("nope_00001_.png", "", "output"))
    assert not isinstance(info.value, UpstreamUnavailable)


# ------------------------------------------------------------------------ queue, attach


async def test_cancel_removes_a_pending_prompt(client: ComfyClient, fake: FakeComfyUI) -> None:
    fake.pause()
    one = await client.submit(scale_graph(png(), prefix=unique()), client_id="cg-test")
    two = await client.submit(scale_graph(png(), prefix=unique()), client_id="cg-test")
    assert two.number > one.number
    state = await client.queue()
    assert state.pending == [one.prompt_id, two.prompt_id] and state.running == []

    assert await client.cancel(two.prompt_id) is CancelOutcome.DEQUEUED
    assert (await client.queue()).pending == [one.prompt_id]
    assert await client.cancel(two.prompt_id) is CancelOutcome.NOT_FOUND
    await client.clear_queue()
    assert (await client.queue()).pending == []
    fake.resume()
    assert await client.history(two.prompt_id) is None


async def test_attach_to_finished_prompt(client: ComfyClient, hub: EventHub) -> None:
    done = await run_prompt(client, hub, scale_graph(png(), prefix=unique()))
    again = await attach(client, hub, done.prompt_id)
    assert again.outputs == done.outputs and again.prompt_id == done.prompt_id


async def test_attach_to_pending_prompt(client: ComfyClient, hub: EventHub, fake: FakeComfyUI) -> None:
    fake.pause()
    submitted = await client.submit(
        scale_graph(png(), prefix=unique()), client_id="cg-old-process", extra_data={"job": "j1"}
    )
    seen: list[float] = []
    attached = asyncio.create_task(attach(client, hub, submitted.prompt_id, on_progress=seen.append))
    await asyncio.sleep(0.3)
    assert not attached.done()
    fake.resume()
    result = await asyncio.wait_for(attached, 5)
    assert result.outputs["3"] and seen == [1.0]
    assert result.history["prompt"][3]["job"] == "j1"


async def test_attach_to_unknown_prompt_is_lost(client: ComfyClient, hub: EventHub) -> None:
    with pytest.raises(UpstreamUnavailable, match="prompt lost"):
        await attach(client, hub, str(uuid.uuid4()))
    assert hub.watching == 0


# --------------------------------------------------------------------------- lifecycle


async def test_hub_close_is_idempotent_and_final(client: ComfyClient, session: aiohttp.ClientSession) -> None:
    hub = EventHub(client, session)
    watch = await hub.watch("p-close")
    assert hub.sockets_open == 1
    await hub.aclose()
    await hub.aclose()
    assert watch.outcome is not None and watch.lost_reason == "event hub closed"
    assert hub.sockets_open == 0
    with pytest.raises(RuntimeError):
        await hub.watch("p-after")


async def test_lazy_pool_opens_up_to_max(client: ComfyClient, session: aiohttp.ClientSession) -> None:
    async with EventHub(client, session, max_connections=2) as hub:
        assert hub.sockets_open == 0
        watches = [await hub.watch(f"p-{i}") for i in range(2)]
        # The first socket is busy: a second one opens in the background, for the prompts after.
        await eventually(lambda: hub.sockets_open == 2)
        watches += [await hub.watch(f"p-{i}") for i in range(2, 4)]
        assert hub.sockets_open == 2
        assert len({w.client_id for w in watches}) == 2
        with pytest.raises(ValueError):
            await hub.watch("p-0")
        for w in watches:
            w.close()
            w.close()
        assert hub.watching == 0


async def test_a_slow_connect_does_not_delay_prompts_while_a_socket_is_up(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    async with FaultProxy(fake.url) as proxy:
        client = ComfyClient(f"http://{proxy.host_port}", session,
                             timeouts=ClientTimeouts(connect=20.0, submit=5.0, history=2.0, view=5.0, probe=1.0))
        async with EventHub(client, session, max_connections=3) as hub:
            first = await hub.watch("p-first")
            proxy.ws_delay = 15.0  # from now on every new socket takes 15 s to connect
            # Busy sockets make the hub open more, but the prompts go on the one that is up meanwhile.
            second = await asyncio.wait_for(hub.watch("p-second"), 5)
            result = await asyncio.wait_for(run_prompt(client, hub, scale_graph(png(), prefix=unique())), 5)
            assert second.client_id == first.client_id
            assert result.outputs["3"]
            assert hub.sockets_open == 1  # the slow one is still connecting
            first.close()
            second.close()


async def test_origin_header_is_refused() -> None:
    async with aiohttp.ClientSession(headers={"Origin": "http://evil.example"}) as http:
        with pytest.raises(ValueError, match="Origin"):
            ComfyClient("http://127.0.0.1:8188", http)
