"""An answer's writes go out together: one system call for a small answer instead of two.

uvicorn writes a response's status line and headers to the socket, then its body, each at once;
the socket write and the kernel's loopback or network work behind it are the costliest part of a
small answer. `HeldWrites` keeps what is written during one turn of the event loop and hands it
on at the end of that turn (or at once past `FLUSH_BYTES`, or before the connection closes), as one
`writelines`, which uvloop sends with one vectored write without copying the pieces together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

FLUSH_BYTES = 64 * 1024  # held past this, the writes go out now: a large body is not kept waiting


class HeldWrites:
    """Wraps a connection's transport; everything but writing and closing passes through."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            asyncio.get_running_loop().call_soon(self.flush)
        self._held.append(bytes(data) if not isinstance(data, bytes) else data)
        self._held_bytes += len(data)
        if self._held_bytes >= FLUSH_BYTES:
            self.flush()

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self._held:
            return
        held, self._held, self._held_bytes = self._held, [], 0
        if not self._transport.is_closing():
            self._transport.writelines(held)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._held_bytes

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held, self._held_bytes = [], 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
