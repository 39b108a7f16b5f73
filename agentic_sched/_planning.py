"""The planner seam and planner health.

``resolve(name)`` turns a planner name into ``plan(problem, budget_s) -> Plan``: a greedy
policy (``eft``, ``spread``, ``pack``, ``balanced``) always; any other name through
``planners.get_planner`` (astar / cpsat / portfolio) once that exists.

``PlannerRunner`` runs the chosen planner off the event loop with its budget. If it
raises, or overruns ``budget_s * overrun_factor + grace``, that round is planned by
greedy (status ``fallback``); after ``max_failures`` consecutive failures the runner
stays on greedy for ``cooldown_s``. Every fallback is counted in metrics and
reported as a ``planner_fallback`` event with its reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import attrs

from .metrics import Metrics
from .model import Plan, Problem
from .planners import GREEDY

log = logging.getLogger("agentic_sched.scheduler")

PlanFn = Callable[[Problem, float | None], Plan]
FALLBACK = "eft"


def resolve(name: Any) -> PlanFn:
    """The planning function for ``name`` (or for a planner object with ``plan``);
    ``ValueError`` if no planner has that name."""
    if not isinstance(name, str) and callable(getattr(name, "plan", None)):
        return name.plan
    if name in GREEDY:
        return GREEDY[name].plan
    try:
        from .planners import get_planner
    except ImportError:
        raise ValueError(f"unknown planner {name!r} (available: {', '.join(GREEDY)})") from None
    return get_planner(name).plan


class PlannerRunner:
    def __init__(self, name: Any, budget_s: float, metrics: Metrics, on_fallback: Callable[[str], None],
                 *, max_failures: int = 3, cooldown_s: float = 30.0, overrun_factor: float = 2.0,
                 grace_s: float = 0.5) -> None:
        self.fn = resolve(name)
        self.name = name if isinstance(name, str) else str(getattr(name, "name", type(name).__name__))
        self.budget_s = budget_s
        self.metrics = metrics
        self.on_fallback = on_fallback
        self.max_failures, self.cooldown_s = max_failures, cooldown_s
        self.limit_s = budget_s * overrun_factor + grace_s
        self.failures = 0
        self.degraded_until = 0.0
        self.busy_abandoned = 0       # threads still running a planner we stopped waiting for
        self.lock = anyio.Lock()

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self.degraded_until

    async def run(self, problem: Problem) -> Plan:
        """Plan ``problem`` off the loop (one planner thread at a time: numba loading and
        compiling from two threads at once can deadlock)."""
        async with self.lock:
            return await self._run(problem)

    async def _run(self, problem: Problem) -> Plan:
        t0 = time.perf_counter()
        try:
            if self.name in GREEDY:
                return await anyio.to_thread.run_sync(self.fn, problem, self.budget_s)
            if self.degraded or self.busy_abandoned:
                return await self._greedy(problem, "planner degraded: using greedy until it recovers", count=False)
            failure = await self._try(problem)
            if isinstance(failure, Plan):
                self.failures = 0
                return failure
            self.failures += 1
            if self.failures >= self.max_failures:
                self.degraded_until = time.monotonic() + self.cooldown_s
                failure += f"; {self.failures} failures in a row, greedy for {self.cooldown_s:g}s"
                self.failures = 0
            return await self._greedy(problem, failure)
        finally:
            self.metrics.plan_latency.observe(time.perf_counter() - t0)

    async def _try(self, problem: Problem) -> Plan | str:
        lock = threading.Lock()
        flags = {"abandoned": False, "finished": False}

        def work() -> Plan:
            try:
                return self.fn(problem, self.budget_s)
            finally:
                with lock:
                    flags["finished"] = True
                    if flags["abandoned"]:
                        self.busy_abandoned -= 1

        try:
            with anyio.fail_after(self.limit_s):
                return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except TimeoutError:
            with lock:
                if not flags["finished"]:
                    flags["abandoned"] = True
                    self.busy_abandoned += 1
            return f"planner {self.name} overran its budget ({self.limit_s:g}s)"
        except Exception as exc:  # noqa: BLE001 - any planner bug becomes a fallback
            log.exception("planner %s failed", self.name)
            return f"planner {self.name} failed: {exc!r}"

    async def _greedy(self, problem: Problem, reason: str, count: bool = True) -> Plan:
        if count:
            self.metrics.fallbacks.labels("overrun" if "overran" in reason else "error").inc()
            self.on_fallback(reason)
        plan = await anyio.to_thread.run_sync(GREEDY[FALLBACK].plan, problem, None)
        return attrs.evolve(plan, status="fallback", planner=f"{FALLBACK} (fallback)", detail=reason)
