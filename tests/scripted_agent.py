"""A real unix-socket worker agent for tests: speaks protocol v1, scripted per test.

Subclasses implement ``on_message(msg, send)``; ``send(*msgs)`` writes protocol
messages, ``send_raw(data)`` writes bytes as they are (for malformed input).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from agentic_sched.agents import protocol

from agentic_sched.executors._unix import AsyncioStream

Send = Callable[..., Awaitable[None]]


class ScriptedAgentBase:
    def __init__(self, path: str) -> None:
        self.path = path

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Accept connections until cancelled, one ``session`` task each (asyncio streams:
        anyio's raw UNIX streams are not safe to cancel, see executors/_unix.py)."""
        async with anyio.create_task_group() as tg:
            def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                tg.start_soon(self.session, AsyncioStream(reader, writer))

            server = await asyncio.start_unix_server(accepted, self.path)
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                server.close()

    async def session(self, stream: Any) -> None:
        async def send(*msgs: dict[str, Any], raw: bytes = b"") -> None:
            await stream.send(b"".join(protocol.encode(m) for m in msgs) + raw)

        buf = b""
        async with stream:
            while True:
                try:
                    buf += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    await self.on_message(protocol.decode(line), send)

    async def on_message(self, msg: dict[str, Any], send: Send) -> None:
        raise NotImplementedError
