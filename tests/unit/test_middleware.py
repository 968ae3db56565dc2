from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from comfy_gateway.api.middleware import RequestContextMiddleware, UploadLimitMiddleware
from comfy_gateway.errors import GatewayError, JobNotFound
from comfy_gateway.observability.prometheus import PromMetrics

LIMIT = 1000


@dataclass
class Entry:
    level: str
    event: str
    fields: dict[str, Any]
    context: dict[str, Any]


@dataclass
class RecordingLogger:
    """Stands in for a structlog logger; keeps the contextvars bound at each call."""

    entries: list[Entry] = field(default_factory=list)

    def _log(self, level: str, event: str, **fields: Any) -> None:
        self.entries.append(Entry(level, event, fields, structlog.contextvars.get_contextvars()))

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log("exception", event, **fields)

    def access(self) -> list[Entry]:
        return [e for e in self.entries if e.event == "HTTP request"]


@dataclass
class Calls:
    handler_log: list[dict[str, Any]] = field(default_factory=list)
    upload_endpoint: int = 0


def build_app(prom: PromMetrics, logger: RecordingLogger, calls: Calls) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)

    @app.get("/api/jobs/{job_id}/status")
    async def status(job_id: str) -> dict[str, str]:
        calls.handler_log.append(structlog.contextvars.get_contextvars())
        return {"job_id": job_id}

    @app.get("/api/jobs/{job_id}/result")
    async def result(job_id: str) -> dict[str, str]:
        raise JobNotFound(f"no job {job_id}")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * 100

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = prom.render()
        return Response(body, media_type=content_type)

    @app.post("/api/upload")
    async def upload(request: Request) -> dict[str, int]:
        calls.upload_endpoint += 1
        return {"size": len(await request.body())}

    @app.post("/api/form")
    async def form(imageFile: UploadFile = File(...)) -> dict[str, int]:
        calls.upload_endpoint += 1
        return {"size": len(await imageFile.read())}

    @app.post("/other")
    async def other(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.add_middleware(UploadLimitMiddleware, max_bytes=LIMIT)
    app.add_middleware(RequestContextMiddleware, prom=prom, logger=logger)
    return app


@pytest.fixture
def prom() -> PromMetrics:
    return PromMetrics()


@pytest.fixture
def logger() -> RecordingLogger:
    return RecordingLogger()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def client(
    prom: PromMetrics, logger: RecordingLogger, calls: Calls
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(build_app(prom, logger, calls), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(autouse=True)
def _clean_context() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


def _http_requests(prom: PromMetrics) -> dict[tuple[str, str, str], float]:
    body, _ = prom.render()
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for f in text_string_to_metric_families(body.decode())
        if f.name == "comfy_gateway_http_requests"
        for s in f.samples
        if s.name.endswith("_total")
    }


# ---- request id ---------------------------------------------------------------------------------


async def test_a_request_id_is_made_bound_and_echoed(
    client: httpx.AsyncClient, logger: RecordingLogger, calls: Calls
) -> None:
    response = await client.get("/api/jobs/abc/status")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert str(uuid.UUID(request_id)) == request_id  # a hyphenated UUID, as the original sends
    assert calls.handler_log == [{"request_id": request_id}]
    [entry] = logger.access()
    assert entry.context == {"request_id": request_id}
    assert structlog.contextvars.get_contextvars() == {}


@pytest.mark.parametrize("incoming", ["abc-123", "trace:1.2_3", "x" * 128])
async def test_a_sane_incoming_request_id_is_kept(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/api/jobs/abc/status", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize("incoming", ["", "x" * 129, "has space", "<script>", "a/b"])
async def test_an_odd_incoming_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/api/jobs/abc/status", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] != incoming
    assert str(uuid.UUID(response.headers["x-request-id"])) == response.headers["x-request-id"]


async def test_every_response_carries_the_request_id(client: httpx.AsyncClient) -> None:
    responses = [
        await client.get("/nowhere"),
        await client.get("/api/jobs/abc/result"),
        await client.post("/api/jobs/abc/status"),
        await client.get("/boom"),
        await client.post("/api/upload", content=b"x" * (LIMIT + 1)),
        await client.get("/stream"),
    ]
    assert [r.status_code for r in responses] == [404, 404, 405, 500, 413, 200]
    for r in responses:
        assert r.headers.get("x-request-id")
    assert len({r.headers["x-request-id"] for r in responses}) == len(responses)


async def test_each_request_gets_its_own_id(client: httpx.AsyncClient, calls: Calls) -> None:
    one = await client.get("/api/jobs/a/status")
    two = await client.get("/api/jobs/b/status")
    assert one.headers["x-request-id"] != two.headers["x-request-id"]
    assert [c["request_id"] for c in calls.handler_log] == [
        one.headers["x-request-id"],
        two.headers["x-request-id"],
    ]


# ---- access log ---------------------------------------------------------------------------------


async def test_access_log_fields(client: httpx.AsyncClient, logger: RecordingLogger) -> None:
    response = await client.post(
        "/api/upload", content=b"hello", headers={"user-agent": "probe/1.0", "content-type": "text/plain"}
    )
    [entry] = logger.access()
    assert entry.level == "info"
    fields = entry.fields
    assert fields["method"] == "POST"
    assert fields["path"] == "/api/upload"
    assert fields["route"] == "/api/upload"
    assert fields["status"] == 200
    assert fields["response_size"] == len(response.content)
    assert fields["user_agent"] == "probe/1.0"
    assert fields["content_type"] == "text/plain"
    assert fields["client"] == "127.0.0.1"
    assert isinstance(fields["duration_ms"], float) and fields["duration_ms"] >= 0
    assert entry.context["request_id"] == response.headers["x-request-id"]


async def test_streaming_response_size_is_what_was_sent(
    client: httpx.AsyncClient, logger: RecordingLogger
) -> None:
    response = await client.get("/stream")
    assert response.content == b"x" * 300
    assert logger.access()[0].fields["response_size"] == 300


async def test_metrics_scrapes_log_at_debug_only(client: httpx.AsyncClient, logger: RecordingLogger) -> None:
    await client.get("/metrics")
    await client.get("/api/jobs/a/status")
    assert [(e.level, e.fields["path"]) for e in logger.access()] == [
        ("debug", "/metrics"),
        ("info", "/api/jobs/a/status"),
    ]


async def test_unhandled_error_is_answered_logged_and_counted(
    client: httpx.AsyncClient, logger: RecordingLogger, prom: PromMetrics
) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "error": f"internal error (reference {request_id})",
        "code": "internal_error",
        "reference": request_id,
        "request_id": request_id,
    }
    assert "kaput" not in response.text
    assert [e.level for e in logger.entries] == ["exception", "error"]
    assert logger.entries[0].context == {"request_id": response.headers["x-request-id"]}
    assert _http_requests(prom)[("GET", "/boom", "500")] == 1


async def test_unhandled_error_still_reaches_the_server(prom: PromMetrics, logger: RecordingLogger) -> None:
    transport = httpx.ASGITransport(build_app(prom, logger, Calls()))  # raises app exceptions
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(RuntimeError, match="kaput"):
            await c.get("/boom")


# ---- http metrics -------------------------------------------------------------------------------


async def test_metrics_use_route_templates(client: httpx.AsyncClient, prom: PromMetrics) -> None:
    await client.get("/api/jobs/a/status")
    await client.get("/api/jobs/b/status")
    await client.get("/api/jobs/c/result")
    await client.get("/no/such/path")
    await client.get("/another/missing/one")
    assert _http_requests(prom) == {
        ("GET", "/api/jobs/{job_id}/status", "200"): 2,
        ("GET", "/api/jobs/{job_id}/result", "404"): 1,
        ("GET", "unmatched", "404"): 2,
    }
    body, _ = prom.render()
    assert b"/api/jobs/a/status" not in body


async def test_prometheus_is_optional(logger: RecordingLogger) -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RequestContextMiddleware, prom=None, logger=logger)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        response = await c.get("/ping")
    assert response.status_code == 200
    assert logger.access()[0].fields["route"] == "/ping"


# ---- upload limit -------------------------------------------------------------------------------

TOO_LARGE = {
    "error": f"Upload exceeds the limit of {LIMIT} bytes",
    "code": "payload_too_large",
    "limit_bytes": LIMIT,
}


async def test_declared_oversize_is_refused_before_the_app_runs(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    response = await client.post("/api/upload", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert calls.upload_endpoint == 0


async def test_within_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/upload", content=b"x" * LIMIT)
    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def _chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b"y" * n


async def test_chunked_upload_is_capped_while_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/upload", content=_chunks(LIMIT * 5))
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_chunked_upload_within_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/upload", content=_chunks(LIMIT))
    assert response.json() == {"size": LIMIT}


async def test_lying_content_length_is_capped(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/upload", content=b"z" * (LIMIT * 3), headers={"Content-Length": "10"})
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_multipart_form_over_the_limit_is_413_not_400(client: httpx.AsyncClient) -> None:
    # FastAPI turns errors while parsing a form into 400; the middleware answers 413 instead.
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="imageFile"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:  # streamed: no Content-Length to refuse up front
        yield head
        async for chunk in _chunks(LIMIT * 4):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/api/form", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_multipart_form_within_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/form", files={"imageFile": ("a.png", b"p" * 100, "image/png")})
    assert response.json() == {"size": 100}


async def test_only_body_methods_under_the_prefix_are_limited(client: httpx.AsyncClient) -> None:
    response = await client.post("/other", content=b"x" * (LIMIT * 2))
    assert response.json() == {"size": LIMIT * 2}


async def test_413_is_logged_and_counted(
    client: httpx.AsyncClient, logger: RecordingLogger, prom: PromMetrics
) -> None:
    await client.post("/api/upload", content=_chunks(LIMIT * 2))
    assert logger.access()[0].fields["status"] == 413
    assert _http_requests(prom)[("POST", "/api/upload", "413")] == 1


# ---- upload limit against raw ASGI apps -----------------------------------------------------------


def _scope(path: str = "/api/x", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [], "query_string": b""}


def _receiver(chunks: list[bytes]) -> Receive:
    messages: list[Message] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


async def _read_all(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def test_without_an_exception_handler_the_middleware_answers_413() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await _read_all(receive)  # PayloadTooLarge escapes: nothing here handles it
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await UploadLimitMiddleware(app, max_bytes=10)(_scope(), _receiver([b"a" * 8, b"b" * 8]), send)
    assert sent[0]["status"] == 413
    assert b"payload_too_large" in sent[1]["body"]
    assert len(sent) == 2


async def test_once_the_response_started_it_just_stops() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await _read_all(receive)
        await send({"type": "http.response.body", "body": b"never"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await UploadLimitMiddleware(app, max_bytes=10)(_scope(), _receiver([b"a" * 8, b"b" * 8]), send)
    assert [m.get("status") or m.get("body") for m in sent] == [200, b"partial"]
