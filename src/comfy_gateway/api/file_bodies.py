"""A stored file's bytes as an answer: a range of one chunk or less goes out whole, a larger one is
streamed (a small output needs none of the streaming machinery, a large one never sits in memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse

from ..jobs.blobs import CHUNK_BYTES


async def file_response(chunks: AsyncIterator[bytes], length: int, *, status_code: int, media_type: str,
                        headers: dict[str, str]) -> Response:
    """`length`: the bytes the chunks make up (the answer's Content-Length)."""
    if length <= CHUNK_BYTES:
        body = b"".join([chunk async for chunk in chunks])
        return Response(body, status_code=status_code, media_type=media_type, headers=headers)
    return StreamingResponse(chunks, status_code=status_code, media_type=media_type, headers=headers)
