"""Reading the one image a task request carries, with every check that keeps bad input out."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..errors import InvalidInput, UnsupportedMediaType
from ..images import ImageInfo, inspect_image

FIELD = "imageFile"
NO_FILE = "No image file provided."  # the original's words; the details say what was wrong
INLINE_CHECK_BYTES = 256 * 1024

# The request body of every task endpoint, for the OpenAPI document (the handler parses it itself
# so a missing file is a clear 400 rather than a generic validation error).
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": [FIELD],
            "properties": {FIELD: {"type": "string", "format": "binary",
                                   "description": "PNG, JPEG or WEBP image"}},
        }}},
    }
}


@dataclass
class Upload:
    data: bytes
    info: ImageInfo
    fields: dict[str, str]
    filename: str = ""


class _InMemoryParser(MultiPartParser):
    """Starlette's parser, with files kept in memory however large.

    A body is capped at MAX_UPLOAD_BYTES and read whole right after parsing anyway. Spooled to a
    temporary file past 1 MB, a file was written and read back in worker threads, and each read
    left its buffer in that thread's malloc arena: the process kept several megabytes per thread."""

    spool_max_size = sys.maxsize


async def parsed_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The multipart form of `request`; a malformed body is a clear 400."""
    try:
        return await _InMemoryParser(request.headers, request.stream(), max_files=max_files,
                                     max_fields=max_fields).parse()
    except MultiPartException as exc:
        raise InvalidInput(f"malformed multipart body: {exc.message}") from None


async def read_upload(request: Request, max_pixels: int) -> Upload:
    content_type = request.headers.get("content-type", "")
    if not content_type and request.headers.get("content-length", "0").strip() in ("", "0") \
            and "transfer-encoding" not in request.headers:
        # No body at all: no file, rather than a body of the wrong type.
        raise InvalidInput(NO_FILE, details=f"the multipart field {FIELD!r} with an image file is required "
                                            "(got no body)", field=FIELD)
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType(
            f"send the image as multipart/form-data in the field {FIELD!r} (got {content_type or 'no type'})")
    form = await parsed_form(request, max_files=1, max_fields=50)
    try:
        upload = form.get(FIELD)
        if not isinstance(upload, UploadFile):
            other = [k for k, v in form.multi_items() if isinstance(v, UploadFile)]
            hint = f"; got a file in {other[0]!r}" if other else ""
            raise InvalidInput(NO_FILE, details=f"the multipart field {FIELD!r} with an image file is required{hint}",
                               field=FIELD)
        data = await upload.read()
        filename = upload.filename or ""
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    finally:
        await form.close()
    # Checking a small image takes microseconds: a thread hop would cost more than it saves.
    if len(data) <= INLINE_CHECK_BYTES:
        info = inspect_image(data, max_pixels)
    else:
        info = await asyncio.to_thread(inspect_image, data, max_pixels)
    return Upload(data, info, fields, filename)
