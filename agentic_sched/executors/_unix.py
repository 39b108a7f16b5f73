"""``connect_unix``: a unix-socket ``ByteStream`` that is safe to cancel on asyncio.

anyio's asyncio ``UNIXSocketStream`` (4.16) waits for readability with
``loop.add_reader(sock, future.set_result, None)``. When a pending ``receive`` is
cancelled in the same loop iteration in which the socket turns readable, the reader
callback still runs and raises ``InvalidStateError`` into the loop's exception handler
(reproduced in tests/test_unix_stream.py). Scheduler shutdown and worker loss cancel
pending receives all the time, so on asyncio we go through asyncio's own transport
(``asyncio.open_unix_connection``), whose waiters are cancellation-safe; on other
backends anyio's stream is used as is.
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio
from anyio.abc import ByteStream


async def connect_unix(path: str) -> ByteStream:
    """Connect to the unix socket at ``path``; raises ``OSError`` when nobody listens."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not on asyncio (trio)
        return await anyio.connect_unix(path)
    reader, writer = await asyncio.open_unix_connection(path)
    return AsyncioStream(reader, writer)


class AsyncioStream(ByteStream):
    """An anyio ``ByteStream`` over an asyncio ``StreamReader`` / ``StreamWriter`` pair.

    ``receive`` raises ``EndOfStream`` at EOF, ``BrokenResourceError`` when the peer
    resets the connection and ``ClosedResourceError`` after ``aclose``.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            data = await self._reader.read(max_bytes)
        except ConnectionError as exc:
            raise anyio.BrokenResourceError from exc
        if not data:
            raise anyio.ClosedResourceError if self._closed else anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            self._writer.write(item)
            await self._writer.drain()
        except ConnectionError as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        self._writer.write_eof()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(OSError), anyio.CancelScope(shield=True):
            await self._writer.wait_closed()
