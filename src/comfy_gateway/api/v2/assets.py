"""Asset routes of the Comfy API v2: upload (multipart), mint from a hash, probe, read, download."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from ...errors import BlobNotFound, InvalidInput, UnsupportedMediaType
from ...jobs.assets import AssetRecord, checked_hash
from ..deps import Caller
from ..file_bodies import file_response
from ..ranges import byte_range
from ..uploads import parsed_form
from .deps import Jobs, base_url, checked_key, json_body
from .models import ERRORS, AssetBody
from .views import PREFIX, asset_body, output_asset_body

router = APIRouter(prefix=PREFIX, tags=["v2"])
MAX_TAGS = 32
BINARY = {"type": "string", "format": "binary"}


async def _read_form(request: Request) -> tuple[bytes, dict[str, str], list[str]]:
    """The file's bytes, the text fields (`file_path` defaults to the file's name) and the tags."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("send the asset as multipart/form-data with a 'file' part")
    form = await parsed_form(request, max_files=1, max_fields=MAX_TAGS + 8)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the multipart body needs a 'file' part")
        data = await upload.read()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "tags"}
        tags = [v.strip() for k, v in form.multi_items() if k == "tags" and isinstance(v, str)]
        filename = upload.filename
        part_type = upload.content_type
    finally:
        await form.close()
    fields.setdefault("file_path", filename or "")
    if part_type and "content_type" not in fields:
        fields["content_type"] = part_type
    return data, fields, tags


def _content_type(declared: str | None, file_path: str) -> str:
    if declared and declared != "application/octet-stream":
        return declared[:200]
    return mimetypes.guess_type(file_path)[0] or declared or "application/octet-stream"


@router.post("/assets", status_code=201, summary="Upload an asset (stored once per content)",
             response_model=None, responses={201: {"model": AssetBody}, 200: {"model": AssetBody}, **ERRORS})
async def upload_asset(request: Request, jobs: Jobs, caller: Caller,
                       idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> JSONResponse:
    data, fields, tags = await _read_form(request)
    file_path = fields["file_path"].strip()[:500]
    if not file_path:
        raise InvalidInput("'file_path' (the asset's name) is required")
    expected = fields.get("expected_hash")
    record, created_new = await jobs.add_asset(
        data, caller, idempotency_key=checked_key(idempotency_key),
        content_type=_content_type(fields.get("content_type"), file_path), file_path=file_path,
        tags=tuple(tags[:MAX_TAGS]), expected_hash=checked_hash(expected) if expected else None)
    body = asset_body(record, base_url(request), jobs.settings, created_new=created_new)
    return JSONResponse(body, status_code=201 if created_new else 200)


@router.post("/assets/from-hash", status_code=201, summary="A new asset over bytes stored already",
             response_model=None, responses={201: {"model": AssetBody}, **ERRORS})
async def asset_from_hash(request: Request, jobs: Jobs, caller: Caller) -> JSONResponse:
    body = await json_body(request)
    raw_hash, file_path, tags = body.get("hash"), body.get("file_path"), body.get("tags") or []
    if not isinstance(raw_hash, str):
        raise InvalidInput("'hash' is required: `blake3:<hex>`")
    if (file_path is not None and not isinstance(file_path, str)) or not isinstance(tags, list):
        raise InvalidInput("'file_path' is a string and 'tags' a list of strings")
    name = (file_path or "")[:500] or None
    record = await jobs.assets.from_hash(
        checked_hash(raw_hash), tenant=caller.name, file_path=name,
        content_type=mimetypes.guess_type(name)[0] if name else None,
        tags=tuple(str(t) for t in tags[:MAX_TAGS]))
    return JSONResponse(asset_body(record, base_url(request), jobs.settings, created_new=False), status_code=201)


@router.head("/assets/by-hash/{hash_}", summary="Whether bytes with this hash are stored")
async def head_by_hash(hash_: str, jobs: Jobs, caller: Caller) -> Response:
    """200 or 404 (a HEAD answer carries the headers of the JSON error, not its body)."""
    if not await jobs.assets.has_hash(checked_hash(hash_), caller.name):
        raise BlobNotFound(f"no stored bytes have the hash {hash_[:80]}")
    return Response(status_code=200)


@router.get("/assets/{asset_id}", summary="An asset (an upload or a job output)", response_model=None,
            responses={200: {"model": AssetBody}, **ERRORS})
async def get_asset(asset_id: str, request: Request, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    found = await jobs.asset(asset_id, caller)
    base, settings = base_url(request), jobs.settings
    if isinstance(found, AssetRecord):
        return asset_body(found, base, settings)
    return output_asset_body(found, base, settings)


@router.delete("/assets/{asset_id}", status_code=204, summary="Forget an uploaded asset")
async def delete_asset(asset_id: str, jobs: Jobs, caller: Caller) -> Response:
    await jobs.delete_asset(asset_id, caller)
    return Response(status_code=204)


@router.get("/assets/{asset_id}/content", summary="An asset's bytes (Range requests answered 206)",
            responses={200: {"content": {"application/octet-stream": {"schema": BINARY}}},
                       206: {"content": {"application/octet-stream": {"schema": BINARY}}}, **ERRORS})
async def asset_content(asset_id: str, jobs: Jobs, caller: Caller,
                        range_: Annotated[str | None, Header(alias="Range")] = None) -> Response:
    found = await jobs.asset(asset_id, caller)
    if isinstance(found, AssetRecord):
        data = await jobs.assets.content(found)
        size, media = len(data), found.content_type
    else:
        size, media = found.record.size, found.record.content_type
    selected = byte_range(range_, size)
    start, end = selected or (0, size)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start)}
    if selected is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    status = 206 if selected else 200
    if isinstance(found, AssetRecord):
        return Response(data[start:end], status_code=status, media_type=media, headers=headers)
    return await file_response(await jobs.output_chunks(found, start, end), end - start, status_code=status,
                               media_type=media, headers=headers)
