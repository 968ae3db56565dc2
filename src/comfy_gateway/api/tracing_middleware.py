"""Pure ASGI middleware: one SERVER span per HTTP request, continuing the client's W3C traceparent.

Installed only when tracing is on, outermost, so every log line of the request carries its trace id.
Probes and scrapes, asked every few seconds, make no traces.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..observability.tracing import Tracing
from .middleware import route_template

UNTRACED_PATHS = frozenset({"/live", "/ready", "/metrics"})


class TracingMiddleware:
    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracing.server_span(scope["method"], Headers(scope=scope)) as span:
            try:
                await self.app(scope, receive, send_with_status)
            finally:
                span.finish(scope["method"], route_template(scope), status)
