"""ComfyClient against a server that answers with the wrong shapes, over a real loopback socket.

Every malformed answer (wrong types, not JSON, nested past the parser, past the size cap) is the
server's fault: UpstreamUnavailable, which the dispatcher retries elsewhere. Never a TypeError,
AttributeError or RecursionError.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from comfy_gateway.comfyui import ComfyClient, ImageRef
from comfy_gateway.comfyui.models import ClientLimits
from comfy_gateway.errors import ResultTooLarge, UpstreamUnavailable, WorkflowRejected

pytestmark = pytest.mark.timeout(30)

DEEP = "[" * 200_000 + "]" * 200_000
PID = "p1"


class Liar:
    """Answers every request with the body (and status) it was given last."""

    def __init__(self) -> None:
        self.body: bytes = b"{}"
        self.status = 200
        self.chunked = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.chunked:
            return web.Response(body=self.body, status=self.status, content_type="application/json")
        resp = web.StreamResponse(status=self.status)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for start in range(0, len(self.body), 64 * 1024):
                await resp.write(self.body[start:start + 64 * 1024])
        except (ConnectionResetError, RuntimeError):
            return resp
        await resp.write_eof()
        return resp


@pytest.fixture
async def liar() -> AsyncIterator[tuple[Liar, str]]:
    state = Liar()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(liar: tuple[Liar, str]) -> AsyncIterator[ComfyClient]:
    limits = ClientLimits(max_json_bytes=1024 * 1024, max_result_bytes=1024 * 1024)
    async with aiohttp.ClientSession() as session:
        yield ComfyClient(liar[1], session, limits=limits)


Call = Callable[[ComfyClient], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "prompt": lambda c: c.submit({"1": {"class_type": "X", "inputs": {}}}, client_id="c", prompt_id=PID),
    "history": lambda c: c.history(PID),
    "queue": lambda c: c.queue(),
    "system_stats": lambda c: c.system_stats(),
    "upload": lambda c: c.upload_image(b"png", "a.png"),
    "object_info": lambda c: c.object_info(),
}
LIES: list[tuple[str, Any]] = [
    ("prompt", []), ("prompt", {"prompt_id": 5}), ("prompt", {"prompt_id": "x", "node_errors": []}),
    ("prompt", {"prompt_id": "x", "node_errors": {"1": {"errors": "bad"}}}),
    ("history", ["x"]), ("history", {PID: {"outputs": []}}), ("history", {PID: {"status": "success"}}),
    ("history", {PID: {"outputs": {"9": {"images": [{"filename": 7}]}}}}),
    ("history", {PID: {"outputs": {"9": ["images"]}}}),
    ("history", {PID: {"outputs": {"9": {"images": [{"filename": "a.png", "subfolder": 3}]}}}}),
    ("history", {PID: {"status": {"messages": [1]}}}),
    ("queue", {}), ("queue", {"queue_running": "x", "queue_pending": []}),
    ("queue", {"queue_running": [[0]], "queue_pending": []}),
    ("queue", {"queue_running": [], "queue_pending": [[0, 5]]}),
    ("system_stats", []), ("system_stats", "ok"), ("system_stats", {"devices": 3}),
    ("system_stats", {"devices": [{"vram_total": "lots"}]}),
    ("object_info", []), ("object_info", {"X": 5}), ("object_info", {"X": {"input": []}}),
    ("object_info", {"X": {"input": {"required": ["a"]}}}),
    ("upload", {"name": 5}), ("upload", []),
]


@pytest.mark.parametrize(("call", "answer"), LIES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(LIES)])
async def test_wrong_types_are_the_servers_fault(liar: tuple[Liar, str], client: ComfyClient, call: str,
                                                 answer: Any) -> None:
    liar[0].body = json.dumps(answer).encode()
    with pytest.raises(UpstreamUnavailable, match="malformed answer"):
        await CALLS[call](client)


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("body", [DEEP.encode(), b"<html>oops</html>", b"\xff\xfe"], ids=["deep", "html", "bytes"])
async def test_unreadable_json_is_the_servers_fault(liar: tuple[Liar, str], client: ComfyClient, call: str,
                                                    body: bytes) -> None:
    liar[0].body = body
    with pytest.raises(UpstreamUnavailable, match="malformed answer"):
        await CALLS[call](client)


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "counted"])
async def test_a_json_answer_past_the_cap_is_refused(liar: tuple[Liar, str], client: ComfyClient,
                                                     chunked: bool) -> None:
    liar[0].body = b'{"p1": {"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    liar[0].chunked = chunked
    with pytest.raises(UpstreamUnavailable, match="larger than 1048576 bytes"):
        await client.history(PID)


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "counted"])
async def test_a_file_past_max_result_bytes_is_result_too_large(liar: tuple[Liar, str], client: ComfyClient,
                                                               chunked: bool) -> None:
    liar[0].body = b"\0" * (2 * 1024 * 1024)
    liar[0].chunked = chunked
    with pytest.raises(ResultTooLarge, match="MAX_RESULT_BYTES"):
        await client.view(ImageRef("big.png"))


async def test_a_well_formed_history_entry_passes_unchanged(liar: tuple[Liar, str], client: ComfyClient) -> None:
    entry = {"prompt": [1, PID, {}, {}, ["9"]], "meta": {"9": {}},
             "outputs": {"9": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}],
                               "animated": [True], "text": ["hi"], "custom": 5}},
             "status": {"status_str": "success", "completed": True, "messages": [["execution_start", {}]]}}
    liar[0].body = json.dumps({PID: entry}).encode()
    assert await client.history(PID) == entry


@pytest.mark.parametrize("answer", [b"[]", b'{"error": "x"}', b'{"error": {"message": 5}}',
                                    b'{"error": {"message": "m"}, "node_errors": {"1": []}}', DEEP.encode()])
async def test_an_unreadable_400_to_prompt_is_a_plain_rejection(liar: tuple[Liar, str], client: ComfyClient,
                                                                answer: bytes) -> None:
    liar[0].body, liar[0].status = answer, 400
    with pytest.raises(WorkflowRejected, match=r"workflow rejected \(HTTP 400\)"):
        await CALLS["prompt"](client)
