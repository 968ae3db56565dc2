"""Small previews of a job's input and result, for the dashboard's thumbnails and timeline."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ..errors import JobNotFinished
from ..images import thumbnail
from ..jobs.model import JobState
from .deps import Caller, Service
from .models import ErrorBody

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 409)}


BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get("/{job_id}/preview/{which}", response_class=Response,
            responses={**ERRORS, 200: {"content": {"image/webp": BINARY}, "description": "a WEBP preview"}})
async def preview(job_id: str, which: Literal["input", "result"], service: Service, caller: Caller,
                  size: Annotated[int, Query(ge=16, le=1024)] = 160) -> Response:
    """The job's input or result scaled down to at most `size` pixels a side, as WEBP."""
    job = await service.get(job_id, caller)  # another tenant's job is not found
    if which == "input":
        data = await service.input_bytes(job)
    elif job.state is JobState.COMPLETED and job.result_blob:
        data = await service.result_bytes(job)
    else:
        raise JobNotFinished(f"job {job_id} is {job.state.value}; it has no result to preview",
                             job_id=job_id, status=job.state.value)
    small = await asyncio.to_thread(thumbnail, data, size)  # decoding a large image would hold the loop
    return Response(small, media_type="image/webp", headers={"Cache-Control": "private, max-age=300"})
