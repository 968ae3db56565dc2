"""A job's outputs: every file its workflow's output nodes reported, as stored by the gateway.

An `Output` is the record kept on the Job (in its JSON data, never the bytes): which node made it,
its name, content type, size, SHA-256 and blake3, and the key of its bytes in the result store. Outputs are
numbered by their place in `Job.outputs` (0, 1, ...), in the order /history lists them.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from blake3 import blake3

# Types the standard table may lack on a slim system; ComfyUI registers the same ones.
_EXTRA_TYPES = {".webp": "image/webp", ".webm": "video/webm", ".mkv": "video/x-matroska", ".flac": "audio/flac",
                ".opus": "audio/opus", ".mp4": "video/mp4", ".txt": "text/plain"}
TEXT_TYPE = "text/plain; charset=utf-8"
BIG_CHUNK = 1024 * 1024
THREAD_HASH_BYTES = 256 * 1024  # a chunk past this is hashed in a thread: the hop costs less than the hash


@dataclass(frozen=True, slots=True)
class Output:
    """One stored output file of a job."""

    node_id: str  # the output node that reported it
    kind: str  # the key it was listed under in /history: images, gifs, audio, text, ...
    filename: str  # the name ComfyUI gave it (for text: made up from node and position)
    content_type: str
    size: int  # bytes
    sha256: str  # hex digest of the bytes; also the download's ETag
    key: str  # where the bytes are in the result store
    subfolder: str = ""
    blake3: str | None = None  # hex digest too, the Comfy API v2's content hash (None: stored before it was kept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Output:
        return cls(**data)


OUTPUT_PREFIX = "outputs/"


def output_key(job_id: str, attempt: int, index: int) -> str:
    """Per attempt, like the result: an abandoned attempt never overwrites the files of the real one.
    No folder per job: on a directory store each would be made for one job and left empty after it."""
    return f"{OUTPUT_PREFIX}{job_id}-{attempt}-{index}"


def is_output_key(key: str) -> bool:
    """Whether a job's result is one of its stored outputs (as it came from the server), not a file of its own."""
    return key.startswith(OUTPUT_PREFIX)


def content_type_of(filename: str) -> str:
    suffix = filename[filename.rfind("."):].lower() if "." in filename else ""
    guessed = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return TEXT_TYPE if guessed == "text/plain" else guessed


def content_disposition(filename: str) -> str:
    """`inline` with the file's name, safe for any name ComfyUI may have given (RFC 6266)."""
    plain = filename.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_")
    return f"inline; filename=\"{plain}\"; filename*=UTF-8''{quote(filename)}"


class Digest:
    """Size, SHA-256 and blake3 of bytes as they stream past (`measured(chunks)` passes them on unchanged)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._blake3 = blake3()
        self.size = 0

    def _update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._blake3.update(chunk)

    async def measured(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """Each chunk is passed on at once; a large one is hashed in a thread meanwhile (both hashes
        let go of the GIL), so hashing a file overlaps receiving and writing it, and the loop goes on."""
        hashing: asyncio.Future[None] | None = None
        async for chunk in chunks:
            if hashing is not None:
                await hashing  # in order: the one before is hashed first (usually done by now)
                hashing = None
            if len(chunk) >= THREAD_HASH_BYTES:
                hashing = asyncio.ensure_future(asyncio.to_thread(self._update, chunk))
            else:
                self._update(chunk)
            self.size += len(chunk)
            yield chunk
        if hashing is not None:
            await hashing

    async def whole(self, data: bytes) -> None:
        """Both hashes of bytes already in memory; large ones side by side in two threads (each lets go of the GIL)."""
        if len(data) > BIG_CHUNK:
            await asyncio.gather(asyncio.to_thread(self._hash.update, data),
                                 asyncio.to_thread(self._blake3.update, data))
        else:
            self._update(data)
        self.size += len(data)

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    @property
    def blake3_hexdigest(self) -> str:
        return self._blake3.hexdigest()
