"""CORS for the browsers of CORS_ORIGINS (explicit origins only), with JSON refusals.

Starlette's middleware answers a refused preflight in plain text; here it is JSON like every
other error. Credentials are allowed, so `*` is never an option (Settings refuses it).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

ALLOWED_HEADERS = ("Content-Type", "Authorization", "X-API-Key", "X-Request-ID", "Idempotency-Key")
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "Location", "Idempotent-Replayed")


class JsonCORSMiddleware(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, allow_origins: Sequence[str]) -> None:
        super().__init__(app, allow_origins=allow_origins, allow_credentials=True,
                         allow_methods=("GET", "POST", "PUT", "DELETE", "OPTIONS"),
                         allow_headers=ALLOWED_HEADERS, expose_headers=EXPOSED_HEADERS, max_age=600)

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
        return JSONResponse({"error": bytes(answer.body).decode(), "code": "cors_refused"},
                            status_code=answer.status_code, headers=headers)
