"""Scheduler events and the fan-out to subscribers.

``Event.kind`` is one of ``EVENT_KINDS``. Preemption: ``preempting`` when the applier
decides to stop an attempt (``data``: ``preemptor``, ``priority``, ``grace_s``),
``preempted`` when that attempt has ended and the task is pending again. Subscribers get an async iterator with a
bounded buffer; a subscriber that falls ``buffer`` events behind loses the newest
events (counted in ``Subscription.dropped``) rather than slowing the scheduler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
from anyio.streams.memory import MemoryObjectSendStream

EVENT_KINDS = (
    "submitted", "planned", "reserved", "started", "finished", "failed", "cancelled", "lost",
    "released", "rejected", "worker_up", "worker_down", "worker_lost", "planner_fallback",
    "predictor_fitted", "preempting", "preempted",
)


@attrs.frozen
class Event:
    """Something that happened; ``time`` is on the scheduler clock, ``reason`` says why."""

    kind: str
    time: float
    task: str | None = None
    worker: str | None = None
    attempt: int | None = None
    reason: str = ""
    data: dict[str, Any] = attrs.field(factory=dict, hash=False)


class Subscription:
    """An async iterator of events; close it (or leave ``async with``) to unsubscribe."""

    def __init__(self, bus: EventBus, buffer: int) -> None:
        self._bus = bus
        self._send: MemoryObjectSendStream[Event]
        self._send, self._recv = anyio.create_memory_object_stream[Event](buffer)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            self.dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._bus._subs.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._bus._subs.discard(self)
        self._send.close()
        self._recv.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, buffer: int = 10_000) -> Subscription:
        sub = Subscription(self, buffer)
        self._subs.add(sub)
        return sub

    def emit(self, event: Event) -> None:
        for sub in list(self._subs):
            sub._offer(event)

    def close(self) -> None:
        """End every subscription's iteration (after the events already buffered)."""
        for sub in list(self._subs):
            sub._send.close()
        self._subs.clear()
