"""A lying server: answers about chosen prompts that a real ComfyUI should never send.

`lie_next(how, n, size)` picks the next `n` prompts to start; what is said about them:

    history_types  GET /history/{id}: wrong types where the outputs and status are
    history_deep   GET /history/{id}: the entry nested 200,000 arrays deep
    history_huge   GET /history/{id}: `size` bytes of valid JSON, streamed without a length
    view_huge      GET /view of its files: `size` bytes, streamed without a length
    image_huge     GET /view of its files: a valid 12000x12000 PNG (small on the wire, huge decoded)
    ws_frame       one event frame of `size` bytes to its client, before its `executed` frames

The history lies also keep the prompt's `executed` frames back, so a client that wants its
outputs has to read /history.
"""

from __future__ import annotations

import enum
import functools
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web

DEFAULT_SIZE = 100 * 1024 * 1024
DEEP_NESTING = 200_000
HUGE_SIDE = 12_000
_CHUNK = 1024 * 1024


class Lie(enum.Enum):
    NONE = "none"
    HISTORY_TYPES = "history_types"
    HISTORY_DEEP = "history_deep"
    HISTORY_HUGE = "history_huge"
    VIEW_HUGE = "view_huge"
    IMAGE_HUGE = "image_huge"
    WS_FRAME = "ws_frame"

    @property
    def about_history(self) -> bool:
        return self in (Lie.HISTORY_TYPES, Lie.HISTORY_DEEP, Lie.HISTORY_HUGE)

    @property
    def about_view(self) -> bool:
        return self in (Lie.VIEW_HUGE, Lie.IMAGE_HUGE)


class Lies:
    """Which prompts and files are lied about, and how often each lie was told."""

    def __init__(self) -> None:
        self._next = Lie.NONE
        self._remaining = 0
        self.size = DEFAULT_SIZE
        self._prompts: dict[str, Lie] = {}
        self._files: dict[str, Lie] = {}
        self.told: Counter[str] = Counter()

    def lie_next(self, how: str, n: int = 1, size: int = DEFAULT_SIZE) -> None:
        """Raises ValueError for an unknown `how`."""
        self._next, self._remaining, self.size = Lie(how), max(0, n), max(1, size)

    def take(self) -> Lie:
        """The lie for a prompt that starts now (NONE once the pending ones are used up)."""
        if self._remaining <= 0:
            return Lie.NONE
        self._remaining -= 1
        return self._next

    def record(self, prompt_id: str, lie: Lie, outputs: dict[str, Any]) -> None:
        """Remember the prompt's lie, and its files' (named in its node outputs)."""
        if lie is Lie.NONE:
            return
        self._prompts[prompt_id] = lie
        for payload in outputs.values():
            for values in payload.values():
                for value in values if isinstance(values, list) else []:
                    if isinstance(value, dict) and "filename" in value:
                        self._files[str(value["filename"])] = lie

    def about_prompt(self, prompt_id: str) -> Lie:
        lie = self._prompts.get(prompt_id, Lie.NONE)
        return lie if lie.about_history else Lie.NONE

    def about_file(self, filename: str) -> Lie:
        lie = self._files.get(filename, Lie.NONE)
        return lie if lie.about_view else Lie.NONE

    def frame(self, prompt_id: str) -> dict[str, Any]:
        """The data of the oversized event frame (a `progress_text` frame, as ComfyUI sends some)."""
        self.told[Lie.WS_FRAME.value] += 1
        return {"prompt_id": prompt_id, "node_id": "0", "text": "x" * self.size}

    async def history_answer(self, request: web.Request, lie: Lie, prompt_id: str) -> web.StreamResponse:
        self.told[lie.value] += 1
        if lie is Lie.HISTORY_TYPES:
            entry = {"prompt": "none", "status": "success", "meta": 7,
                     "outputs": {"9": {"images": [{"filename": 7, "subfolder": None, "type": ["output"]}]}}}
            return web.json_response({prompt_id: entry})
        if lie is Lie.HISTORY_DEEP:
            deep = "[" * DEEP_NESTING + "]" * DEEP_NESTING
            return web.Response(text=f'{{"{prompt_id}": {{"outputs": {deep}}}}}', content_type="application/json")
        head = f'{{"{prompt_id}": {{"status": {{"status_str": "success"}}, "outputs": {{}}, "pad": "'.encode()
        return await _stream(request, "application/json", [head, *_filler(b"x", self.size), b'"}}'])

    async def view_answer(self, request: web.Request, lie: Lie) -> web.StreamResponse:
        self.told[lie.value] += 1
        if lie is Lie.IMAGE_HUGE:
            return web.Response(body=huge_png(), content_type="image/png")
        return await _stream(request, "image/png", [b"\x89PNG\r\n\x1a\n", *_filler(b"\0", self.size)])


def _filler(byte: bytes, size: int) -> Iterator[bytes]:
    chunk = byte * _CHUNK
    for start in range(0, size, _CHUNK):
        yield chunk[: min(_CHUNK, size - start)]


async def _stream(request: web.Request, content_type: str, parts: Iterator[bytes] | list[bytes]) -> web.StreamResponse:
    """Chunked, with no Content-Length: the client learns the size only by reading."""
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        for part in parts:
            await resp.write(part)
    except (ConnectionResetError, RuntimeError):  # the client gave up reading, as it should
        return resp
    await resp.write_eof()
    return resp


@functools.cache
def huge_png() -> bytes:
    """A black 12000x12000 PNG, one bit a pixel: about 20 KB to send, 144 M pixels to decode."""
    row = b"\0" + bytes((HUGE_SIDE + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(HUGE_SIDE)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", HUGE_SIDE, HUGE_SIDE, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")

