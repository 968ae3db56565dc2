"""HeldWrites on a real connected socket pair: a lone write waits for the end of the loop's turn, a
second one sends both at once, in order; a large write, a close or an end of input flush at once;
an abort drops what is held."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from comfy_gateway.http_writes import FLUSH_BYTES, HeldWrites


@pytest.fixture
async def pair() -> AsyncIterator[tuple[HeldWrites, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    yield HeldWrites(transport), peer
    transport.close()
    peer.close()


def _available(peer: socket.socket) -> bytes:
    try:
        return peer.recv(1 << 20)
    except BlockingIOError:
        return b""


async def _read_all(peer: socket.socket, size: int) -> bytes:
    got = b""
    async with asyncio.timeout(5):
        while len(got) < size:
            got += _available(peer)
            await asyncio.sleep(0.001)
    return got


async def test_a_lone_write_waits_for_the_end_of_the_turn(pair: tuple[HeldWrites, socket.socket]) -> None:
    writes, peer = pair
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert writes.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\n")
    assert _available(peer) == b""  # still held: the turn has not ended
    await asyncio.sleep(0)
    assert await _read_all(peer, 19) == b"HTTP/1.1 200 OK\r\n\r\n"


async def test_the_next_write_sends_both_at_once(pair: tuple[HeldWrites, socket.socket]) -> None:
    writes, peer = pair
    writes.write(b"HTTP/1.1 200 OK\r\n\r\n")
    writes.writelines([b"hello ", bytearray(b"world")])
    assert writes.get_write_buffer_size() == 0  # handed on within this turn
    assert await _read_all(peer, 30) == b"HTTP/1.1 200 OK\r\n\r\nhello world"


async def test_a_large_write_is_not_held(pair: tuple[HeldWrites, socket.socket]) -> None:
    writes, peer = pair
    writes.write(b"head")
    writes.write(b"x" * FLUSH_BYTES)
    assert writes.get_write_buffer_size() <= FLUSH_BYTES + 4
    assert _available(peer).startswith(b"headxxx")  # sent before the turn ends


async def test_close_and_end_of_input_send_what_is_held(pair: tuple[HeldWrites, socket.socket]) -> None:
    writes, peer = pair
    writes.write(b"last words")
    writes.write_eof()
    assert await _read_all(peer, 10) == b"last words"
    writes.close()
    assert writes.is_closing()  # passed through to the transport


async def test_abort_drops_what_is_held(pair: tuple[HeldWrites, socket.socket]) -> None:
    writes, peer = pair
    writes.write(b"never sent")
    writes.abort()
    assert writes.get_write_buffer_size() == 0  # dropped, not kept for the end of the turn
    await asyncio.sleep(0.01)
    assert _available(peer) == b""
