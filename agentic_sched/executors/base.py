"""The transport seam: an executor opens a byte stream to a worker's agent.

An ``Executor`` knows how to reach (and if needed start) the agent of a worker and
how to fence it: ``open(spec, spawn=...)`` returns an anyio ``ByteStream`` speaking the JSON-lines
protocol of ``agents/protocol.py`` (``spawn`` False: reconnect only, never start a
new agent, so a dead agent is detected as a lost worker); ``fence(spec)`` makes sure a worker declared lost
can run nothing any more (kill the agent, or tear the host down); ``stop(spec)``
releases what ``open`` started; ``read_file(worker, path)`` returns the tail of a file
on the worker's host (task logs). The scheduler does the rest (handshake, heartbeats,
assignments) over ``Link``, so an SSH or Docker transport only implements these four.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import anyio
from anyio.abc import ByteStream

from ..agents import protocol

log = logging.getLogger("agentic_sched.executors")


class Executor(Protocol):
    kind: str

    async def open(self, spec: Any, *, spawn: bool = True) -> ByteStream: ...

    async def fence(self, spec: Any) -> None: ...

    async def stop(self, spec: Any) -> None: ...

    async def read_file(self, worker_id: str, path: str, max_bytes: int = 1 << 20) -> bytes: ...


async def tail_file(path: str, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of a local file (off the event loop); ``OSError`` if unreadable."""
    def read() -> bytes:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read()
    return await anyio.to_thread.run_sync(read)


class Link:
    """One JSON-lines session on a byte stream: ``send`` messages, iterate ``messages()``.

    ``messages()`` yields validated dicts or ``protocol.ProtocolError`` instances (a bad
    line is reported, never fatal); it ends at EOF. Lines over the protocol limit are
    skipped up to their newline and reported as oversized.
    """

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self._lock = anyio.Lock()
        self.closed = False

    async def send(self, msgs: list[dict[str, Any]]) -> bool:
        """Send messages in one write; False if the stream is gone."""
        data = b"".join(protocol.encode(m) for m in msgs)
        try:
            async with self._lock:
                await self.stream.send(data)
            return True
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            log.info("link: send failed: %s", exc)
            self.closed = True
            return False

    async def messages(self):  # -> AsyncIterator[dict | ProtocolError]
        buf = bytearray()
        skipping = False
        while True:
            try:
                chunk = await self.stream.receive(1 << 16)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self.closed = True
                return
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > protocol.MAX_MESSAGE_BYTES:
                        buf.clear()
                        if not skipping:
                            skipping = True
                            yield protocol.ProtocolError(
                                f"message exceeds the limit of {protocol.MAX_MESSAGE_BYTES} bytes; dropped")
                    break
                line = bytes(buf[:nl + 1])
                del buf[:nl + 1]
                if skipping:
                    skipping = False
                    continue
                if not line.strip():
                    continue
                try:
                    yield protocol.decode(line)
                except protocol.ProtocolError as exc:
                    yield exc

    async def aclose(self) -> None:
        self.closed = True
        try:
            await self.stream.aclose()
        except Exception:  # noqa: BLE001 - closing a broken stream
            pass
