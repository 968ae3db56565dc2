"""Who may call what: API keys checked before any route runs, one rule per path.

With API_KEYS_FILE set, every `/api` path needs a key (`Authorization: Bearer <key>` or
`X-API-Key: <key>`), else 401 with `WWW-Authenticate`; the routes of `ADMIN_ROUTES` need an admin
key, else 403; metrics (`/metrics`, `/api/metrics*`, `/status/metrics`) need an admin key unless
METRICS_PUBLIC. `/health`, `/status`, `/docs`, `/openapi.json` and the dashboard's page stay open
(the page sends the key its user types with each read).
Without keys every caller is the anonymous admin, as before keys existed. Which jobs a key may
see is the JobService's business; this only says who is calling (`request.state.principal`).
A key never reaches a log line; its name is bound to the request's (`api_key`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..access import ANONYMOUS, KeyRing, Principal
from ..errors import Forbidden, GatewayError, Unauthorized
from .deps import REALM
from .errors import error_headers
from .middleware import send_json
from .v2 import errors as v2_errors


class Rule(Enum):
    OPEN = "open"
    KEY = "key"
    ADMIN = "admin"


# The admin routes: (method, path pattern). Anything else under /api needs only a key.
ADMIN_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((method, re.compile(path)) for method, path in (
    ("GET", r"/api/jobs/stats"),
    ("GET", r"/api/jobs/processor/stats"),
    ("GET", r"/api/jobs/list"),
    ("POST", r"/api/jobs/cleanup"),
    ("POST", r"/api/metrics/save"),
    ("POST", r"/api/circuit-breakers/[^/]+/(open|close)"),
))
V2_HEALTH = "/api/v2/health"
# The dashboard's page is not here: it holds no data (a browser cannot send a key to open it); what it reads is.
METRICS_PATHS = re.compile(r"/metrics|/status/metrics|/api/metrics(/.*)?")


def rule_for(method: str, path: str, *, metrics_public: bool) -> Rule:
    if any(m == method and pattern.fullmatch(path) for m, pattern in ADMIN_ROUTES):
        return Rule.ADMIN
    if METRICS_PATHS.fullmatch(path):
        return Rule.OPEN if metrics_public else Rule.ADMIN
    if path == V2_HEALTH:  # the Comfy API v2 keeps its probe open, as the contract's self-hosted proxy does
        return Rule.OPEN
    if path == "/api" or path.startswith("/api/"):
        return Rule.KEY
    return Rule.OPEN


def presented_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


RateCheck = Callable[[Principal], Awaitable[None]]


class AuthMiddleware:
    """Pure ASGI: answers 401/403/429 itself, before routing, so no route can be left unguarded."""

    def __init__(self, app: ASGIApp, *, keys: KeyRing, metrics_public: bool, check_rate: RateCheck) -> None:
        self.app = app
        self.keys = keys
        self.metrics_public = metrics_public
        self.check_rate = check_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._admit(scope)
        except GatewayError as exc:
            body = v2_errors.body_of(exc) if v2_errors.is_v2(scope["path"]) else exc.to_dict()
            await send_json(send, exc.status_code, body, error_headers(exc))
            return
        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _admit(self, scope: Scope) -> Principal | None:
        """The caller, or the error that answers it."""
        if not self.keys.enabled:
            return ANONYMOUS
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # behind a proxy's prefix, the rules are about the app's own paths
            path = path[len(root):]
        rule = rule_for(scope["method"], path, metrics_public=self.metrics_public)
        key = presented_key(Headers(scope=scope))
        principal = self.keys.authenticate(key) if key is not None else None
        if principal is not None:
            structlog.contextvars.bind_contextvars(api_key=principal.name)
        if rule is Rule.OPEN:
            return principal
        if principal is None:
            if key is None:
                raise Unauthorized("an API key is required: Authorization: Bearer <key>, or X-API-Key", REALM)
            raise Unauthorized("the API key is not valid", f'{REALM}, error="invalid_token"')
        if rule is Rule.ADMIN and not principal.is_admin:
            raise Forbidden(f"key {principal.name!r} may not use this route: it needs an admin key")
        await self.check_rate(principal)
        return principal


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def document_keys(schema: dict[str, Any], *, metrics_public: bool) -> dict[str, Any]:
    """The OpenAPI document with the two ways to send a key, on each operation that needs one."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if rule_for(method.upper(), path, metrics_public=metrics_public) is not Rule.OPEN:
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
    return schema
