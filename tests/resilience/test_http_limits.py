"""Limits on what a client connection may send, over raw loopback sockets against the real server:
oversized or too many headers (431), a long request target (414), a client gone silent (408, or
closed when it never sent a byte), too many connections (503), unparseable HTTP (400). Each
refusal is a JSON error, the connection is closed, and the gateway keeps serving."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import pytest_asyncio

from fake_comfyui import FakeComfyUI
from support.gateway import gateway_settings, hosts_of, running_gateway

READ_TIMEOUT_MS = 600
MAX_CONNECTIONS = 30

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory):
    async with FakeComfyUI(host="127.0.0.1", port=0) as fake:
        settings = gateway_settings(tmp_path_factory.mktemp("http-limits"), hosts_of([fake]),
                                    client_read_timeout=READ_TIMEOUT_MS, max_connections=MAX_CONNECTIONS,
                                    max_header_bytes=16 * 1024, max_headers=50, max_url_bytes=2048)
        async with running_gateway(settings) as running:
            yield running


async def connect(gw) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response, read until the server closes the connection."""
    raw = await asyncio.wait_for(reader.read(), timeout=20)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


async def send_and_read(gw, *chunks: bytes) -> tuple[int, dict[str, str], dict]:
    reader, writer = await connect(gw)
    try:
        for chunk in chunks:
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break  # refused half-way: the answer is already waiting to be read
        status, headers, body = await answer(reader)
    finally:
        writer.close()
    assert headers["content-type"] == "application/json", headers
    assert headers.get("connection") == "close"
    parsed = json.loads(body)
    assert isinstance(parsed["error"], str) and parsed["code"]
    return status, headers, parsed


async def assert_still_serving(gw) -> None:
    resp = await gw.client.get("/health")
    assert resp.status_code in (200, 503) and resp.json()["status"]


async def test_huge_header_gets_431_and_health_keeps_answering(gw):
    reader, writer = await connect(gw)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    slowest = 0.0
    try:
        for _ in range(100):  # a 100 MiB header, in 1 MiB pieces, /health asked between them
            writer.write(b"a" * 1024 * 1024)
            await writer.drain()
            started = time.monotonic()
            await assert_still_serving(gw)
            slowest = max(slowest, time.monotonic() - started)
    except ConnectionError:
        pass  # the server closed after its answer: the rest of the header is never read
    status, _, body = await answer(reader)
    writer.close()
    assert status == 431
    assert json.loads(body)["code"] == "headers_too_large"
    assert slowest < 1.0, f"/health took {slowest:.2f} s while the header was being sent"
    await assert_still_serving(gw)


async def test_too_many_headers_get_431(gw):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    status, _, body = await send_and_read(gw, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert (status, body["code"]) == (431, "too_many_headers")


async def test_long_request_target_gets_414(gw):
    status, _, body = await send_and_read(gw, b"GET /health?" + b"q" * 4096 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body["code"]) == (414, "url_too_long")


async def test_parser_error_is_json_400(gw):
    status, _, body = await send_and_read(gw, b"THIS IS NOT HTTP\r\n\r\n")
    assert (status, body["code"]) == (400, "bad_request")
    await assert_still_serving(gw)


async def test_client_silent_after_request_line_gets_408(gw):
    status, _, body = await send_and_read(gw, b"GET /health HTTP/1.1\r\n")
    assert (status, body["code"]) == (408, "request_timeout")


async def test_client_silent_mid_body_gets_408(gw):
    head = b"POST /api/upscale-image HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    part = (b'--b\r\nContent-Disposition: form-data; name="imageFile"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n\x89PNG")
    status, _, body = await send_and_read(gw, head + b"Content-Length: 100000\r\n\r\n" + part)
    assert (status, body["code"]) == (408, "request_timeout")
    await assert_still_serving(gw)


async def test_connection_that_never_speaks_is_closed(gw):
    reader, writer = await connect(gw)
    try:
        assert await asyncio.wait_for(reader.read(), timeout=20) == b""  # closed, nothing to answer
    finally:
        writer.close()


async def test_connections_past_the_cap_get_503_and_the_rest_still_work(gw):
    held = [await connect(gw) for _ in range(MAX_CONNECTIONS + 5)]
    try:  # the refused ones are answered at once; those within the cap are closed when their read times out
        firsts = await asyncio.gather(*(asyncio.wait_for(reader.read(), timeout=20) for reader, _ in held))
    finally:
        for _, writer in held:
            writer.close()
    refused = [first for first in firsts if first]
    assert len(refused) >= 5, f"{len(refused)} of {len(held)} refused"
    assert all(first.startswith(b"HTTP/1.1 503 ") and b'"too_many_connections"' in first for first in refused)
    assert len(refused) < len(held) - MAX_CONNECTIONS // 2, "connections within the cap were refused too"
    await assert_still_serving(gw)


async def test_a_normal_keep_alive_client_is_unaffected(gw):
    for _ in range(3):
        resp = await gw.client.get("/health")
        assert resp.headers["content-type"].startswith("application/json")
    await asyncio.sleep(READ_TIMEOUT_MS / 1000 * 1.5)  # idle between requests longer than the read timeout
    resp = await gw.client.get("/health")
    assert resp.status_code in (200, 503)


async def test_client_gone_mid_upload_is_not_a_server_error(gw, caplog):
    head = b"POST /api/upscale-image HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    part = (b'--b\r\nContent-Disposition: form-data; name="imageFile"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n\x89PNG")
    _, writer = await connect(gw)
    writer.write(head + b"Content-Length: 100000\r\n\r\n" + part)
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.sleep(0.5)
    http = [r.msg for r in caplog.records if r.name == "comfy_gateway.http" and isinstance(r.msg, dict)]
    assert [(m["event"], m["status"]) for m in http if m.get("path") == "/api/upscale-image"] == [
        ("HTTP request", 499)], http
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    metrics = (await gw.client.get("/metrics")).text
    assert 'status="500"' not in metrics
    await assert_still_serving(gw)
