"""The HTTP server: uvicorn with limits on what a client may send and how long it may take.

uvicorn's httptools protocol accepts a header of any size (a 100 MiB header stalls the event loop
while it is parsed), never times out a connection that is half-way through its request, has no cap
on open connections short of the process's descriptor limit, and answers parser errors in plain
text. `GuardedHttpProtocol` adds those limits and answers each refusal in the gateway's JSON error
shape, then closes the connection:

    431 headers larger than MAX_HEADER_BYTES or more than MAX_HEADERS of them
    414 a request target longer than MAX_URL_BYTES
    408 a client silent for CLIENT_READ_TIMEOUT in the middle of a request (or before its first byte)
    503 more than MAX_CONNECTIONS open connections
    400 anything the HTTP parser cannot read
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http_writes import HeldWrites
from .settings import Settings

ANSWER_FLUSH_S = 1  # after the drain: how long open answers may take to be written before connections close
LINGER_S = 2.0  # how long a refused connection's further input is read and dropped before closing
REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_url_bytes: int = 8 * 1024
    read_timeout_s: float = 30.0
    max_connections: int = 900

    @classmethod
    def from_settings(cls, s: Settings) -> ConnectionLimits:
        return cls(max_header_bytes=s.max_header_bytes, max_headers=s.max_headers, max_url_bytes=s.max_url_bytes,
                   read_timeout_s=s.client_read_timeout / 1000, max_connections=s.max_connections)


def error_response(status: int, message: str, code: str) -> bytes:
    """A complete HTTP/1.1 response in the gateway's error shape, closing the connection."""
    body = json.dumps({"error": message, "code": code}).encode()
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n")
    if status == 503:
        head += "retry-after: 1\r\n"
    return head.encode("ascii") + b"\r\n" + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """httptools' protocol with the limits of `ConnectionLimits` (set per server by `guarded_protocol`)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes of the current request read before its headers were complete
        self._header_count = 0
        self._in_head = True  # reading a request line and headers (also before the first byte)
        self._started = False  # the first byte of the current request has come
        self._read_timer: asyncio.TimerHandle | None = None
        self._refused = False  # answered with an error: input is dropped until the connection closes

    # --- connections ---

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, HeldWrites(transport)))  # one write per answer
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "too many open connections; retry shortly", "too_many_connections")
            return
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._cancel_read_timer()
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"request headers larger than {self.limits.max_header_bytes} bytes", "headers_too_large")
        elif self._awaiting_client():
            self._arm_read_timer()

    # --- parser callbacks ---

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._started = True, True

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._refuse(414, f"request target longer than {self.limits.max_url_bytes} bytes", "url_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._refused:
            return
        if self._header_count > self.limits.max_headers:
            self._refuse(431, f"more than {self.limits.max_headers} request headers", "too_many_headers")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.cycle is not None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head, self._started, self._head_bytes, self._header_count = True, False, 0, 0  # the next request
        if self.cycle is not None:
            super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "the request is not valid HTTP", "bad_request")

    # --- limits ---

    def _awaiting_client(self) -> bool:
        """Whether the server is waiting for the client: a request begun and not all read, or none yet
        on a connection that has not had its first answer (uvicorn's keep-alive timer covers the rest)."""
        if self._in_head:
            return self._started or self.cycle is None
        return self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete

    def _arm_read_timer(self) -> None:
        self._read_timer = self.loop.call_later(self.limits.read_timeout_s, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self._refused or self.transport.is_closing() or not self._awaiting_client():
            return
        if self.flow.read_paused:  # the application has not read what came: not the client's silence
            self._arm_read_timer()
            return
        if not self._started:
            self.transport.close()  # an idle connection: nothing to answer
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        self._refuse(408, f"the client sent nothing for {self.limits.read_timeout_s:g} s", "request_timeout")

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answer, then close without losing the answer to a reset.

        Closing a socket with unread input makes the kernel send a reset, which can destroy the answer
        before the client reads it; so the write side is shut first and whatever the client still sends
        is read and dropped (unparsed) until it closes too, for LINGER_S at most."""
        self._cancel_read_timer()
        if self.cycle is not None:
            self.cycle.disconnected = True  # the application's answer, if any, goes nowhere
            self.cycle.message_event.set()
        self._refused = True
        self.transport.write(error_response(status, message, code))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().eof_received()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    return type("GatewayHttpProtocol", (GuardedHttpProtocol,), {"limits": limits})


def uvicorn_config(app: Any, settings: Settings, *, host: str | None = None, port: int | None = None) -> uvicorn.Config:
    """The one uvicorn configuration, used by `serve`, `demo` and the tests' gateway."""
    return uvicorn.Config(
        app, host=host or settings.host, port=settings.port if port is None else port,
        log_config=None, access_log=False, lifespan="on",
        http=guarded_protocol(ConnectionLimits.from_settings(settings)),
        timeout_keep_alive=max(1, settings.keep_alive_timeout // 1000),
        # The drain (SHUTDOWN_GRACE) happens before uvicorn's own shutdown, with the listener open;
        # by then every answer is ready and only needs writing.
        timeout_graceful_shutdown=ANSWER_FLUSH_S)
