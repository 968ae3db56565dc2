"""A job's outputs: the list with URLs, and each file with its type, ETag and byte ranges.

With RESULT_STORE=s3 the listed URLs are presigned (valid RESULT_URL_TTL) and a download answers
307 to one of them (RESULT_REDIRECT=false streams the object through the gateway instead).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from ..job_outputs import JobOutputs
from ..jobs.model import Job
from ..jobs.outputs import Output, content_disposition
from .deps import Caller, Service
from .file_bodies import file_response
from .models import ErrorBody, JobOutputsBody
from .ranges import byte_range
from .views import iso

router = APIRouter(prefix="/api/jobs", tags=["outputs"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 409, 410)}
Index = Annotated[int, Path(ge=0, le=100_000)]
BINARY = {"type": "string", "format": "binary"}


async def _entry(outputs: JobOutputs, request: Request, job: Job, index: int, output: Output) -> dict[str, Any]:
    gateway_url = str(request.url_for("job_output", job_id=job.id, index=index))
    direct = await outputs.direct_url(job, output)
    return {"index": index, "node_id": output.node_id, "kind": output.kind, "filename": output.filename,
            "subfolder": output.subfolder, "content_type": output.content_type, "size": output.size,
            "sha256": output.sha256, "url": direct or gateway_url, "gateway_url": gateway_url}


@router.get("/{job_id}/outputs", response_model=JobOutputsBody, responses=ERRORS)
async def job_outputs(job_id: str, request: Request, service: Service, caller: Caller) -> dict[str, Any]:
    """Every output file of the job, in the order ComfyUI's /history lists them."""
    outputs = service.outputs
    job = await service.readable_outputs(job_id, caller)
    entries = [await _entry(outputs, request, job, n, output) for n, output in enumerate(job.outputs)]
    return {"job_id": job.id, "status": job.state.value, "expires_at": iso(job.expires_at),
            "count": len(entries), "outputs": entries}


@router.head("/{job_id}/outputs/{index}", include_in_schema=False)  # the GET's headers, no body
@router.get("/{job_id}/outputs/{index}", name="job_output",
            responses={**ERRORS, 416: {"model": ErrorBody}, 307: {"description": "to a presigned URL"},
                       200: {"content": {"application/octet-stream": {"schema": BINARY}}, "description": "the file"},
                       206: {"content": {"application/octet-stream": {"schema": BINARY}}, "description": "one range"}})
async def job_output(job_id: str, index: Index, request: Request, service: Service, caller: Caller) -> Response:
    outputs = service.outputs
    job = await service.readable_outputs(job_id, caller)
    output = outputs.pick(job, index)
    if outputs.redirect and (direct := await outputs.direct_url(job, output)) is not None:
        return RedirectResponse(direct, status_code=307)
    etag = f'"{output.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600",
               "Content-Disposition": content_disposition(output.filename)}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    selected = byte_range(wanted, output.size) if if_range in (None, etag) else None
    start, end = selected or (0, output.size)
    headers["Content-Length"] = str(end - start)
    if selected is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{output.size}"
    status = 206 if selected else 200
    if request.method == "HEAD":
        return Response(status_code=status, media_type=output.content_type, headers=headers)
    chunks = await outputs.read(job, output, start, end)
    return await file_response(chunks, end - start, status_code=status, media_type=output.content_type,
                               headers=headers)
