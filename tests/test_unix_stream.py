"""The agent link's unix stream survives a receive cancelled as data arrives.

anyio's asyncio ``UNIXSocketStream`` raises ``InvalidStateError`` into the loop's
exception handler in that case (the first test shows the upstream behaviour, so we
notice when anyio fixes it); ``executors._unix.connect_unix`` must not.
"""

from __future__ import annotations

import asyncio
import os

import anyio
import pytest

from agentic_sched.executors._unix import connect_unix

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _cancel_receive_as_data_arrives(connect, path: str) -> list[dict]:
    """Cancel a pending ``receive`` in the very loop iteration the socket turns readable;
    return what reached the loop's exception handler."""
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    listener = await anyio.create_unix_listener(path)
    async with listener:
        client = await connect(path)
        server = await listener.accept()
        scopes: list[anyio.CancelScope] = []

        async def reader() -> None:
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                await client.receive()

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.sleep(0.05)
            await server.send(b"x")
            await asyncio.sleep(0)  # next iteration: the readable event is queued behind this step
            scopes[0].cancel()
        # the byte that arrived is still there for the next receive
        with anyio.fail_after(2):
            assert await client.receive() == b"x"
        await client.aclose()
        await server.aclose()
        await anyio.sleep(0.05)
    return errors


async def test_connect_unix_receive_is_cancellation_safe(tmp_path) -> None:
    errors = await _cancel_receive_as_data_arrives(connect_unix, str(tmp_path / "s.sock"))
    assert errors == []


async def test_upstream_anyio_unix_stream_still_races(tmp_path) -> None:
    errors = await _cancel_receive_as_data_arrives(anyio.connect_unix, str(tmp_path / "s.sock"))
    if not errors:
        pytest.skip("anyio's UNIXSocketStream no longer races; executors/_unix.py can go")
    assert isinstance(errors[0]["exception"], asyncio.InvalidStateError)


async def test_stream_reports_eof_and_close(tmp_path) -> None:
    path = str(tmp_path / "s.sock")
    listener = await anyio.create_unix_listener(path)
    async with listener:
        client = await connect_unix(path)
        server = await listener.accept()
        await client.send(b"ping\n")
        assert await server.receive() == b"ping\n"
        await server.aclose()
        with pytest.raises(anyio.EndOfStream):
            await client.receive()
        await client.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await client.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await client.send(b"x")
    with pytest.raises(OSError):
        await connect_unix(os.fspath(tmp_path / "nobody.sock"))
