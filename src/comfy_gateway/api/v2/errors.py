"""The error body of /api/v2: `{"error": {"code", "message", "details"}}` with the contract's codes.

The status comes from the exception tree as everywhere else; only the shape and a few names differ
(the contract says `not_found` for any unknown id and `invalid_request` for a malformed request).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from ...errors import (
    BlobNotFound,
    Forbidden,
    GatewayError,
    HashMismatch,
    IdempotencyKeyReuse,
    InvalidInput,
    InvalidWorkflow,
    MetadataInvalid,
    MissingAsset,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

PREFIX = "/api/v2"
# Codes the contract defines, kept as the gateway spells them.
_OWN_CODES = (InvalidWorkflow, MissingAsset, IdempotencyKeyReuse, MetadataInvalid, HashMismatch, BlobNotFound,
              PayloadTooLarge, UnsupportedMediaType, Unauthorized, Forbidden, TooManyRequests)
STATUS_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
                416: "range_not_satisfiable", 422: "invalid_request", 429: "queue_full", 503: "service_unavailable",
                507: "insufficient_storage"}


def is_v2(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or None}}


def code_of(exc: GatewayError) -> str:
    if isinstance(exc, _OWN_CODES):
        return exc.code
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, InvalidInput):
        return "invalid_request"
    return STATUS_CODES.get(exc.status_code, "internal_error")


def body_of(exc: GatewayError) -> dict[str, Any]:
    details = {k: v for k, v in exc.details.items() if v is not None}
    return envelope(code_of(exc), exc.message, details)


def gateway_error(exc: GatewayError, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(body_of(exc), status_code=exc.status_code, headers=headers or None)


def http_error(status: int, message: str, headers: dict[str, str] | None = None,
               details: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse(envelope(STATUS_CODES.get(status, f"http_{status}"), message, details),
                        status_code=status, headers=headers)
