"""Pure ASGI middleware: request context + access log + HTTP metrics, and the upload size cap.

Pure ASGI (not `BaseHTTPMiddleware`) so responses stream through untouched and unbuffered.

`RequestContextMiddleware` belongs outermost among the app's middleware; `UploadLimitMiddleware`
inside it, so a 413 still carries the request id and is logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comfy_gateway.errors import InternalError, PayloadTooLarge
from comfy_gateway.observability.prometheus import UNMATCHED_ROUTE, PromMetrics

from .v2 import errors as v2_errors

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_QUIET_PATHS = frozenset({"/metrics", "/live", "/ready"})
# Their 503 answers a probe ("servers degraded"), it is no failure of the request: a warning, so that
# load balancers polling a degraded gateway do not flood error.log and rotate real errors out of it.
_PROBE_PATHS = frozenset({"/health", "/status", "/ready"})
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before it could be answered
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def request_id_from(headers: Headers) -> str:
    """The caller's X-Request-ID when it is 1-128 chars of [A-Za-z0-9._:-], else a fresh one."""
    incoming = headers.get(REQUEST_ID_HEADER)
    if incoming is not None and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())


def route_template(scope: Scope) -> str:
    """The matched route's template (`/api/jobs/{job_id}/status`), or "unmatched"."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Request id (bound for every log line, echoed on every response), access log, HTTP metrics.

    An exception escaping the app before a response started is answered here with a JSON 500
    that carries the request id, logged with its stack, then re-raised for the server to see
    (Starlette's outer error middleware sees the response started and sends nothing more).
    """

    def __init__(self, app: ASGIApp, *, prom: PromMetrics | None, logger: Any,
                 draining: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.prom = prom
        self.logger = logger
        self.draining = draining  # while the gateway drains, every answer closes its connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_headers = Headers(scope=scope)
        request_id = request_id_from(request_headers)
        started = time.perf_counter()
        status = 500
        response_size = 0
        response_started = False
        body = _BodyTracker(receive, scope["method"] in _BODY_METHODS)

        async def send_with_context(message: Message) -> None:
            nonlocal status, response_size, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                if self.draining():
                    headers["connection"] = "close"  # so the client's next request goes to another replica
                    await body.drain()
            elif message["type"] == "http.response.body":
                response_size += len(message.get("body", b""))
            await send(message)

        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, body.receive, send_with_context)
        except ClientDisconnect:
            # The client went away before its request was read (an upload cut off): nothing can be
            # answered, and nothing went wrong here. Logged (once, below) as nginx's 499.
            status = CLIENT_CLOSED_REQUEST
        except Exception:
            # Logged with the request id, which the answer names as its reference; no exception text.
            self.logger.exception(
                "Unhandled error while answering request", method=scope["method"], path=scope["path"]
            )
            if not response_started:
                internal = InternalError(request_id)
                await send_json(send_with_context, internal.status_code,
                                {**internal.to_dict(), "request_id": request_id})
            raise
        finally:
            duration_s = time.perf_counter() - started
            route = route_template(scope)
            if self.prom is not None:
                self.prom.observe_request(scope["method"], route, status, duration_s)
            self._access_log(scope, request_headers, status, duration_s, response_size, route)
            structlog.contextvars.clear_contextvars()

    def _access_log(
        self, scope: Scope, headers: Headers, status: int, duration_s: float, size: int, route: str
    ) -> None:
        path = scope["path"]
        if status == 503 and path in _PROBE_PATHS:
            log = self.logger.warning
        elif status == CLIENT_CLOSED_REQUEST:
            log = self.logger.info
        elif status >= 500:
            log = self.logger.error
        elif path in _QUIET_PATHS:
            log = self.logger.debug
        else:
            log = self.logger.info
        client = scope.get("client")
        log(
            "HTTP request",
            method=scope["method"],
            path=path,
            route=route,
            status=status,
            duration_ms=round(duration_s * 1000, 2),
            response_size=size,
            user_agent=headers.get("user-agent"),
            client=client[0] if client else None,
            content_type=headers.get("content-type"),
        )


class _BodyTracker:
    """Knows whether the request body was read to its end, and can read what is left.

    An answer that closes the connection before the client has sent its whole body reaches it as
    a reset, not as the answer: what is left is read and dropped first (at most DRAIN_BYTES, for
    at most DRAIN_S)."""

    DRAIN_BYTES = 64 * 1024 * 1024
    DRAIN_S = 1.0

    def __init__(self, receive: Receive, has_body: bool) -> None:
        self._receive = receive
        self.done = not has_body

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message

    async def drain(self) -> None:
        left = self.DRAIN_BYTES
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.DRAIN_S):
                while not self.done and left > 0:
                    left -= len((await self.receive()).get("body", b""))


class UploadLimitMiddleware:
    """Caps request bodies of POST/PUT/PATCH under `paths_prefix` at `max_bytes`.

    A declared Content-Length over the cap is answered 413 at once, before any body is read.
    Otherwise the bytes are counted as the app reads them (chunked uploads, or a client whose
    Content-Length lies): past the cap, `receive` raises `PayloadTooLarge`. Whatever the app does
    with that exception (FastAPI turns body-parsing errors into 400s), the caller gets the 413
    here if no response has started; if one has, the response simply stops.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, paths_prefix: tuple[str, ...] = ("/api",)) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths_prefix = paths_prefix

    def _error(self) -> PayloadTooLarge:
        limit = self.max_bytes
        return PayloadTooLarge(f"Upload exceeds the limit of {limit} bytes", limit_bytes=limit)

    def _error_body(self, scope: Scope) -> dict[str, Any]:
        return v2_errors.body_of(self._error()) if v2_errors.is_v2(scope["path"]) else self._error().to_dict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not scope["path"].startswith(self.paths_prefix)
        ):
            await self.app(scope, receive, send)
            return

        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, self._error_body(scope))
            return

        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise self._error()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise self._error()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                # The app answered after the cap tripped (maybe with its own 400): say 413 instead.
                response_started = True
                await send_json(send, 413, self._error_body(scope))
                return
            if exceeded:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except PayloadTooLarge:
            if not response_started:
                response_started = True
                await send_json(send, 413, self._error_body(scope))


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode("utf-8")
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
