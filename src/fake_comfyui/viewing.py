"""File transfer routes: POST /upload/image (§4) and GET /view (§8)."""

from __future__ import annotations

import asyncio
import mimetypes

from aiohttp import web

from .errors import RequestRejected
from .storage import Storage, StoredFile

UPLOAD_TYPES = ("input", "temp", "output")
RISKY_TYPES = frozenset({"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"})


async def store_upload(request: web.Request, storage: Storage) -> StoredFile:
    """Read the multipart form; the file must be in the field `image`."""
    form = await request.post()
    image = form.get("image")
    if not isinstance(image, web.FileField):
        raise RequestRejected(400, "no image field")
    try:
        data = await asyncio.to_thread(image.file.read)
    finally:
        image.file.close()
    folder_type = str(form.get("type", "input"))
    if folder_type not in UPLOAD_TYPES:
        folder_type = "input"
    return await asyncio.to_thread(
        storage.store_upload, data, image.filename, subfolder=str(form.get("subfolder", "")),
        folder_type=folder_type, overwrite=str(form.get("overwrite", "")) in ("true", "1"),
    )


async def serve_view(request: web.Request, storage: Storage, delay: float) -> web.StreamResponse:
    """Serve a file of the input/output/temp folders; statuses follow ComfyUI."""
    query = request.query
    filename = query.get("filename")
    if not filename:
        raise RequestRejected(404, "no filename")
    if delay > 0:
        await asyncio.sleep(delay)
    path = storage.resolve_view(filename, query.get("subfolder", ""), query.get("type", "output"))
    # As ComfyUI: the type from the name, never one a browser would run.
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type in RISKY_TYPES:
        content_type = "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Disposition": f'filename="{path.name}"',
                                           "Content-Type": content_type})
