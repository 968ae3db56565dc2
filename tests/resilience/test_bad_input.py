"""Bad input over real sockets: every answer is a 4xx JSON body with an `error` field and an
X-Request-ID, never a 5xx and never an HTML page."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from fake_comfyui import FakeComfyUI
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import encode, png

MAX_UPLOAD = 256 * 1024
MAX_PIXELS = 1_000_000
TASK = "/api/upscale-image"


# One gateway for the whole module: none of these requests changes what the next one sees.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(tmp_path_factory):
    async with FakeComfyUI(host="127.0.0.1", port=0) as fake:
        tmp = tmp_path_factory.mktemp("bad-input")
        settings = gateway_settings(tmp, hosts_of([fake]), max_upload_bytes=MAX_UPLOAD, max_image_pixels=MAX_PIXELS)
        async with running_gateway(settings) as running:
            running.fakes = [fake]
            yield running


def prompts(gw) -> int:
    return int(gw.fakes[0].stats()["prompts_received"])


def assert_error(resp: httpx.Response, statuses: set[int] | int, *words: str) -> dict:
    statuses = {statuses} if isinstance(statuses, int) else statuses
    assert resp.status_code in statuses, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers["content-type"]
    assert resp.headers.get("x-request-id"), "no X-Request-ID"
    body = resp.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    text = f"{body['error']} {body.get('details') or ''}".lower()  # the original's words, then ours
    for word in words:
        assert word.lower() in text, (word, body)
    return body


def with_ihdr_size(data: bytes, width: int, height: int) -> bytes:
    """The same PNG claiming another size in its header (a valid CRC, the pixels left as they are)."""
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return data[:16] + ihdr + crc + data[33:]


def image_file(data: bytes, name: str = "in.png", mime: str = "image/png") -> dict:
    return {"imageFile": (name, data, mime)}


# --- the file itself ---


async def test_no_file_in_the_form_is_400_naming_the_field(gw):
    resp = await gw.client.post(TASK, data={"format": "png"}, files={"other": ("x.txt", b"", "text/plain")})
    assert_error(resp, 400, "imageFile")


async def test_a_file_under_the_wrong_field_is_400_naming_both_fields(gw):
    resp = await gw.client.post(TASK, files={"image": ("in.png", png(), "image/png")})
    body = assert_error(resp, 400, "imageFile", "'image'")
    assert body["code"] == "invalid_input"


async def test_no_body_at_all_is_400(gw):
    resp = await gw.client.post(TASK)
    assert_error(resp, 400, "imageFile")


async def test_a_json_body_instead_of_a_form_is_415(gw):
    resp = await gw.client.post(TASK, content=b'{"imageFile": "abc', headers={"content-type": "application/json"})
    assert_error(resp, 415, "multipart/form-data")


async def test_a_multipart_body_without_boundary_or_broken_is_400(gw):
    resp = await gw.client.post(TASK, content=b"--x\r\nnonsense", headers={"content-type": "multipart/form-data"})
    assert_error(resp, 400, "multipart")
    broken = b"--b\r\nContent-Disposition: form-data; name=\"imageFile\"; filename=\"a.png\"\r\n\r\n" + png()[:20]
    resp = await gw.client.post(TASK, content=broken, headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(resp, 400)
    junk = await gw.client.post(TASK, content=b"0" * 5000, headers={"content-type": "multipart/form-data; boundary=b"})
    assert assert_error(junk, 400, "multipart")["code"] == "invalid_input"


async def test_two_files_in_one_request_is_400(gw):
    files = [("imageFile", ("a.png", png(), "image/png")), ("imageFile", ("b.png", png(), "image/png"))]
    assert_error(await gw.client.post(TASK, files=files), 400)


async def test_zero_bytes_is_400_saying_empty(gw):
    assert_error(await gw.client.post(TASK, files=image_file(b"")), 400, "empty")


async def test_not_an_image_is_415(gw):
    resp = await gw.client.post(TASK, files=image_file(b"hello, I am a text file\n" * 20, "in.png"))
    assert_error(resp, 415, "not an image")


async def test_a_truncated_image_is_400_saying_truncated(gw):
    data = png(200, 200)
    resp = await gw.client.post(TASK, files=image_file(data[: len(data) // 2]))
    assert_error(resp, 400, "truncated")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
async def test_an_unsupported_format_is_415_naming_it(gw, fmt):
    data = encode(Image.new("RGB", (32, 32), (10, 200, 30)), fmt)
    assert_error(await gw.client.post(TASK, files=image_file(data, f"in.{fmt.lower()}", "image/png")), 415, fmt)


async def test_more_pixels_than_allowed_is_413_naming_the_limit(gw):
    resp = await gw.client.post(TASK, files=image_file(png(1200, 1000)))
    body = assert_error(resp, 413, "pixels", str(MAX_PIXELS))
    assert body["code"] == "payload_too_large"


@pytest.mark.parametrize("size", [(5_000, 5_000), (100_000, 100_000)])
async def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(gw, size):
    """A tiny file declaring a huge image: its pixel data is garbage, so only a refusal made from
    the header (before decoding) can answer 413; decoding would have said 'truncated' (400)."""
    bomb = with_ihdr_size(png(8, 8), *size)
    assert len(bomb) < 1024
    before = prompts(gw)
    started = time.monotonic()
    resp = await gw.client.post(TASK, files=image_file(bomb))
    assert_error(resp, 413, "pixels")
    assert time.monotonic() - started < 2.0
    assert prompts(gw) == before


async def test_a_real_compressed_bomb_is_413(gw):
    """Zeros compress about 1000:1: a 3000x3000 PNG (27 MB decoded) in a few kB."""
    img = Image.new("L", (3000, 3000), 0)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < MAX_UPLOAD
    assert_error(await gw.client.post(TASK, files=image_file(buf.getvalue())), 413, "pixels")


# --- size of the body ---


async def test_a_declared_body_over_the_limit_is_413_before_any_byte_of_it_is_sent(gw):
    port = int(gw.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((f"POST {TASK} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      f"Content-Length: {50 * 1024 * 1024}\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode().split("\r\n")
            headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
            body = await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
    assert status_line.split()[1] == "413"
    assert headers.get("x-request-id") and headers["content-type"].startswith("application/json")
    assert b'"error"' in body and str(MAX_UPLOAD).encode() in body


async def test_an_undeclared_body_over_the_limit_is_413_and_is_not_read_to_its_end(gw):
    """Chunked upload of 20 MB against a 256 kB cap: the app stops pulling the body at the cap."""
    pulled = 0
    chunk = b"x" * 65536
    total = 20 * 1024 * 1024
    sent: list[dict] = []
    boundary = b"b"
    preamble = b"--b\r\nContent-Disposition: form-data; name=\"imageFile\"; filename=\"a.png\"\r\n\r\n"

    async def receive() -> dict:
        nonlocal pulled
        if pulled == 0:
            pulled += len(preamble)
            return {"type": "http.request", "body": preamble, "more_body": True}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pulled < total}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": TASK, "raw_path": TASK.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"x"), (b"content-type", b"multipart/form-data; boundary=" + boundary),
                         (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    await gw.app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 413
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    assert headers.get("x-request-id")
    assert pulled <= MAX_UPLOAD + 2 * len(chunk), f"read {pulled} bytes of a {MAX_UPLOAD}-byte cap"


async def test_an_undeclared_body_over_the_limit_over_a_real_socket_is_413(gw):
    async def body():
        yield b"--b\r\nContent-Disposition: form-data; name=\"imageFile\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(40):
            yield b"0" * 65536

    resp = await gw.client.post(TASK, content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(resp, 413, str(MAX_UPLOAD))


# --- jobs, queries, routes ---


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/jobs/no-such-job/status"), ("GET", "/api/jobs/no-such-job/result"),
    ("GET", "/api/jobs/no-such-job/info"), ("DELETE", "/api/jobs/no-such-job"),
    ("GET", "/api/jobs/00000000-0000-0000-0000-000000000000/status"),
    ("POST", "/api/circuit-breakers/nowhere:1/open"), ("POST", "/api/circuit-breakers/nowhere:1/close"),
    ("POST", "/api/run/no-such-workflow"), ("GET", "/api/metrics/instances/nowhere:1"),
])
async def test_unknown_things_are_404(gw, method, path):
    resp = await gw.client.request(method, path, files=image_file(png()) if method == "POST" else None)
    assert_error(resp, 404)


@pytest.mark.parametrize("method,path", [
    ("GET", "/no/such/route"), ("GET", "/api/nothing-here"), ("POST", "/"), ("GET", "/%ff%fe"),
    ("GET", "/api/jobs/x/y/z"), ("PUT", "/api/jobs/stats"), ("DELETE", "/health"), ("GET", "/api/upscale-image"),
])
async def test_unknown_routes_and_methods_answer_json_not_html(gw, method, path):
    resp = await gw.client.request(method, path)
    assert_error(resp, {404, 405})
    assert "<html" not in resp.text.lower()


@pytest.mark.parametrize("query", [
    "?format=gif", "?format=jpg", "?async=maybe", "?mode=later", "?async=true&format=bmp",
])
async def test_bad_query_values_on_a_task_are_4xx(gw, query):
    before = prompts(gw)
    assert_error(await gw.client.post(TASK + query, files=image_file(png())), {400, 422})
    assert prompts(gw) == before


@pytest.mark.parametrize("query", [
    "?limit=0", "?limit=abc", "?limit=100000", "?offset=-1", "?status=" + "x" * 30, "?type=" + "x" * 300,
    "?offset=" + "9" * 30, "?limit=1e3", "?status=completed&offset=10207334322296164969432244981730377728",
])
async def test_bad_query_values_on_the_job_list_are_422(gw, query):
    assert_error(await gw.client.get("/api/jobs/list" + query), 422)


async def test_a_bad_format_in_the_form_is_400(gw):
    resp = await gw.client.post(TASK, data={"format": "tiff"}, files=image_file(png()))
    assert_error(resp, {400, 422}, "format")


@pytest.mark.parametrize("headers", [
    {"content-type": "application/json"}, {"content-type": "text/plain"},
    {"content-type": "application/x-www-form-urlencoded"},
])
async def test_bad_json_or_other_bodies_on_json_less_endpoints_are_never_5xx(gw, headers):
    for method, path in (("POST", TASK), ("POST", "/api/jobs/cleanup"), ("POST", "/api/metrics/save"),
                         ("POST", "/api/async/remove-background")):
        resp = await gw.client.request(method, path, content=b"{not json", headers=headers)
        assert resp.status_code < 500, (path, resp.status_code, resp.text)
        assert resp.headers.get("x-request-id")
        if resp.status_code >= 400:
            assert_error(resp, resp.status_code)


async def test_a_caller_request_id_is_echoed_and_a_bad_one_replaced(gw):
    good = await gw.client.get("/api/jobs/nope/status", headers={"X-Request-ID": "abc-123"})
    assert good.headers["x-request-id"] == "abc-123"
    bad = await gw.client.get("/api/jobs/nope/status", headers={"X-Request-ID": "<script>" * 40})
    assert bad.headers["x-request-id"] and "<" not in bad.headers["x-request-id"]


async def test_after_all_that_the_gateway_still_runs_jobs(gw):
    for data in (b"", b"junk", with_ihdr_size(png(8, 8), 100_000, 100_000)):
        await gw.client.post(TASK, files=image_file(data))
    before = prompts(gw)
    resp = await gw.client.post(TASK, files=image_file(png(20, 20)))
    assert resp.status_code == 200, resp.text
    assert prompts(gw) == before + 1
