"""A real unix-socket worker agent for tests: speaks protocol v1, scripted per test.

Subclasses implement ``on_message(msg, send)``; ``send(*msgs)`` writes protocol
messages, ``send_raw(data)`` writes bytes as they are (for malformed input).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from agentic_sched.agents import protocol

Send = Callable[..., Awaitable[None]]


class ScriptedAgentBase:
    def __init__(self, path: str) -> None:
        self.path = path

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_unix_listener(self.path)
        task_status.started()
        await listener.serve(self.session)

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
