"""Every error becomes JSON here, in one place: `{"error": ..., "code": ...}`, never an HTML page."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    GatewayError,
    InternalError,
    RangeNotSatisfiable,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from .v2 import errors as v2


def _json_safe(errors: list[Any]) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]


def error_headers(exc: GatewayError) -> dict[str, str]:
    """The headers an error's answer carries: when to retry, how to authenticate, how big a file is."""
    if isinstance(exc, ServiceUnavailable | TooManyRequests):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": exc.challenge}
    if isinstance(exc, RangeNotSatisfiable):
        return {"Content-Range": f"bytes */{exc.size}"}
    return {}


async def gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    if v2.is_v2(request.url.path):
        return v2.gateway_error(exc, error_headers(exc))
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=error_headers(exc) or None)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _json_safe(list(exc.errors()))
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    if v2.is_v2(request.url.path):
        return v2.http_error(400, f"invalid request: {where}: {first['msg']}", details={"errors": details})
    return JSONResponse({"error": f"invalid request: {where}: {first['msg']}", "code": "validation_error",
                         "details": details}, status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    if v2.is_v2(request.url.path):
        return v2.http_error(exc.status_code, message, getattr(exc, "headers", None))
    return JSONResponse({"error": message, "code": f"http_{exc.status_code}"}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Already logged, with its request id, by RequestContextMiddleware: that id is the reference.
    internal = InternalError(request.headers.get("x-request-id"))
    if v2.is_v2(request.url.path):
        return JSONResponse(v2.envelope(internal.code, internal.message), status_code=internal.status_code)
    return JSONResponse(internal.to_dict(), status_code=internal.status_code)


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
