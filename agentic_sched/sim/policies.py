"""Scheduling policies for the simulator, all behind ``Policy.schedule(sim)``.

- ``KubePolicy("spread"|"binpack")``: kube-scheduler style, one pod at a time. Queue
  order = priority (high first), then arrival (PrioritySort). Each pending task is
  filtered (up, labels, capacity, GPU devices free now) and scored: LeastAllocated
  (spread) or MostAllocated (binpack) on the mean allocated fraction after placement;
  ties go to the lowest worker index. A task that fits nowhere stays queued and does
  not block the tasks behind it.
- ``SlurmBackfillPolicy``: Slurm-like priority queue with EASY backfill. Tasks start in
  queue order while they fit (best-fit worker). The first that does not fit (the head)
  gets a reservation: the earliest time and worker at which it fits once running work
  ends at its *estimated* end. Later tasks may start now only if they fit and do not
  delay that reservation (another worker, or estimated end <= the reservation, or the
  head still fits on the reserved worker at the reserved time with them running).
- ``PlannerPolicy``: our batched planner. Pending tasks accumulate until ``batch_k`` new
  ones are unplanned, the oldest unplanned one has waited ``batch_t`` seconds, or a
  worker went down/up; then the planner (``get_planner(name)`` or greedy) is called with
  ``budget_s`` on ``Simulation.snapshot`` (all pending tasks, running work as
  RunningWork until its estimated end) and its plan replaces the previous one. The
  batch also closes at once when an unplanned task could start now (work-conserving:
  on an idle cluster batching only adds waiting; under contention batches accumulate).
  Such early batches use the ``fast`` greedy planner (``eft``) unless ``batch_t`` has
  passed since the budgeted planner last ran, which bounds the budgeted calls to about
  n/K + horizon/T per run.
  **Applying the plan (the documented choice):** every planned task is held for its
  planned worker. At each decision point, per worker in planned-start order, a task
  starts when its planned start has come and it fits; a task planned for later starts
  *early* if it already fits and no earlier-planned task on that worker is blocked
  (runtimes shorter than estimated free capacity early). A task whose time has come
  but does not fit (work overran its estimate) blocks its worker and causes a replan
  once ``batch_t`` has passed since the last plan. Tasks are never moved between
  workers without a replan, except one: a waiting planned task starts at once on a
  worker that has no planned tasks if that finishes it before its planned finish.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs
import numpy as np

from .._config import online_weights
from ..model import Plan, Problem
from .engine import EPS, Policy, SimTask, Simulation

if TYPE_CHECKING:  # the planners package loads lazily (kernels, OR-Tools) in resolve_planner
    from ..planners.base import Planner

POLICIES = ("kube-spread", "kube-binpack", "slurm-backfill", "planner")


def _queue(sim: Simulation) -> list[SimTask]:
    return sorted(sim.pending.values(), key=lambda st: (-st.task.priority, st.arrival, st.index))


def _signature(st: SimTask) -> tuple[object, ...]:
    return (st.task.requires, st.task.demand, st.task.gpu)


class KubePolicy:
    """Filter + score, one pending task at a time (see module docstring)."""

    def __init__(self, mode: str = "spread") -> None:
        if mode not in ("spread", "binpack"):
            raise ValueError(f"unknown kube scoring {mode!r} (choose spread or binpack)")
        self.mode = mode
        self.name = f"kube-{mode}"

    def schedule(self, sim: Simulation) -> None:
        blocked: set[tuple[object, ...]] = set()  # shapes that fit nowhere this round
        for st in _queue(sim):
            sig = _signature(st)
            if sig in blocked:
                continue
            mask = sim.cluster.fit_mask(st)
            if not mask.any():
                blocked.add(sig)
                continue
            cands = np.flatnonzero(mask)
            frac = sim.cluster.allocated_after(st, cands)
            score = frac if self.mode == "binpack" else -frac
            sim.start(st, int(cands[int(np.argmax(score))]))


class SlurmBackfillPolicy:
    """Priority queue with EASY backfill on runtime estimates (see module docstring)."""

    name = "slurm-backfill"

    def schedule(self, sim: Simulation) -> None:
        c = sim.cluster
        reservation: tuple[int, float, SimTask] | None = None
        for st in _queue(sim):
            mask = c.fit_mask(st)
            if reservation is None:
                if mask.any():
                    self._start_best_fit(sim, st, mask)
                    continue
                res = self._reserve(sim, st)
                if res is not None:
                    reservation = (res[0], res[1], st)
                continue
            w_res, shadow, head = reservation
            if mask[w_res]:
                ends = sim.now + st.task.duration / c.speed[w_res]
                if ends > shadow + EPS and self._earliest_on(sim, head, w_res, extra=st) > shadow + EPS:
                    mask[w_res] = False
            if mask.any():
                self._start_best_fit(sim, st, mask)

    @staticmethod
    def _start_best_fit(sim: Simulation, st: SimTask, mask: np.ndarray) -> None:
        cands = np.flatnonzero(mask)
        frac = sim.cluster.allocated_after(st, cands)
        sim.start(st, int(cands[int(np.argmax(frac))]))

    def _reserve(self, sim: Simulation, head: SimTask) -> tuple[int, float] | None:
        """The (worker, time) at which ``head`` can start earliest on estimates."""
        c = sim.cluster
        best: tuple[float, int] | None = None
        for w in np.flatnonzero(c.up & c.feas.mask(head.task)):
            t = self._earliest_on(sim, head, int(w))
            if best is None or t < best[0] - EPS:
                best = (t, int(w))
        return None if best is None or math.isinf(best[0]) else (best[1], best[0])

    @staticmethod
    def _earliest_on(sim: Simulation, st: SimTask, w: int, extra: SimTask | None = None) -> float:
        """Earliest time ``st`` fits on ``w`` as running work (plus ``extra``, started
        now) ends at its estimated end (``now`` if it overran); inf if never."""
        c, now = sim.cluster, sim.now
        held = [(max(r.est_end, now), r.dem, r.devices, r.share) for r in c.running[w].values()]
        free = c.cap[w] - c.used[w]
        dev_free = c.dev_cap[w] - c.dev_used[w]
        if extra is not None:
            slots = c.pick_devices(extra, w) or ()
            free = free - extra.dem
            dev_free = dev_free.copy()
            for s in slots:
                dev_free[s] -= extra.share
            held.append((now + extra.task.duration / c.speed[w], extra.dem, slots, extra.share))
        free, dev_free = free.copy(), dev_free.copy()
        held.sort(key=lambda h: h[0])
        t, i = now, 0
        while True:
            if _fits(st, free, dev_free):
                return t
            if i >= len(held):
                return math.inf
            t = held[i][0]
            while i < len(held) and held[i][0] <= t + EPS:
                _, dem, slots, share = held[i]
                free += dem
                for s in slots:
                    dev_free[s] += share
                i += 1


def _fits(st: SimTask, free: np.ndarray, dev_free: np.ndarray) -> bool:
    if np.any(st.dem > free + 1e-9):
        return False
    g = st.task.gpu
    if g is None:
        return True
    if g.is_shared:
        return bool((dev_free >= g.share - 1e-9).any())
    return int((dev_free >= 1000 - 1e-9).sum()) >= g.count


# --------------------------------------------------------------------------- planner


class _BestGreedy:
    """Stand-in portfolio while ``planners.get_planner`` is absent: every greedy policy,
    the lowest objective wins (``planners.best_greedy``)."""

    name = "best-greedy"

    def plan(self, problem: Problem, budget_s: float | None = None) -> Plan:
        from ..planners import best_greedy

        return best_greedy(problem)


def resolve_planner(name: str) -> Planner:
    """The planner object for ``name`` (the one seam): a greedy policy by name, else
    ``planners.get_planner(name)`` when that exists and knows it; ``portfolio`` falls
    back to the best of the greedy policies. ValueError for an unknown name."""
    from .. import planners

    if name in planners.GREEDY:
        return planners.GREEDY[name]
    get = getattr(planners, "get_planner", None)
    if get is not None:
        try:
            return get(name)
        except (KeyError, ValueError):
            pass
    if name in ("portfolio", "best-greedy"):
        return _BestGreedy()
    raise ValueError(f"unknown planner {name!r} (greedy: {', '.join(planners.GREEDY)}, or portfolio)")


class PlannerPolicy:
    """Batched planning (see module docstring for triggers and how plans are applied)."""

    def __init__(self, planner: str | None = None, *, batch_k: int = 8, batch_t: float = 10.0,
                 budget_s: float = 0.2, fast: str = "eft") -> None:
        if batch_k < 1 or not batch_t > 0 or not budget_s > 0:
            raise ValueError("planner policy: batch_k >= 1, batch_t > 0 and budget_s > 0 are required")
        self.planner_name = planner or "portfolio"
        self.planner = resolve_planner(self.planner_name)
        self.name = f"planner[{getattr(self.planner, 'name', self.planner_name)}]"
        self.batch_k, self.batch_t, self.budget_s = batch_k, batch_t, budget_s
        self.plan: dict[int, tuple[int, float]] = {}  # task index -> (worker, planned start)
        self.last_plan = -math.inf
        self._up: tuple[bool, ...] = ()
        self._blocked = False
        self.fast = resolve_planner(fast)
        self._last_slow = -math.inf

    def schedule(self, sim: Simulation) -> None:
        now, c = sim.now, sim.cluster
        self.plan = {i: p for i, p in self.plan.items() if i in sim.pending and (p[0] < 0 or c.up[p[0]])}
        unplanned = [st for st in sim.pending.values() if st.index not in self.plan]
        oldest = min((st.queued_at for st in unplanned), default=math.inf)
        fits_now = any(c.fit_mask(st).any() for st in unplanned)
        full = (len(unplanned) >= self.batch_k or now - oldest >= self.batch_t - EPS
                or tuple(c.up) != self._up
                or (self._blocked and now - self.last_plan >= self.batch_t - EPS))
        if full or fits_now:
            if sim.pending:
                # the budgeted planner for a full batch, at most once per batch_t otherwise
                slow = full or now - self._last_slow >= self.batch_t - EPS
                self._replan(sim, self.planner if slow else self.fast)
                if slow:
                    self._last_slow = now
            self._up = tuple(c.up)
            unplanned, oldest = [], math.inf
        self._blocked = self._apply(sim)
        wake = [oldest + self.batch_t]
        wake += [s for w, s in self.plan.values() if w >= 0 and s > now + EPS]
        if self._blocked:
            wake.append(self.last_plan + self.batch_t)
        sim.wake_at(min(wake))

    def _replan(self, sim: Simulation, planner: Planner) -> None:
        tasks = sorted(sim.pending.values(), key=lambda st: st.index)
        problem = sim.snapshot(tasks)
        problem = attrs.evolve(problem, weights=online_weights(problem.weights))  # as the Scheduler: nobody starves
        started = time.perf_counter()
        plan = planner.plan(problem, self.budget_s)
        sim.timing["planner_s"] += time.perf_counter() - started
        sim.timing["planner_calls"] += 1
        self.last_plan = sim.now
        by_id = {st.task.id: st for st in tasks}
        self.plan = {st.index: (-1, math.inf) for st in tasks}  # unassigned until placed
        for a in plan.assignments:
            self.plan[by_id[a.task].index] = (sim.cluster.index[a.worker], a.start)

    def _apply(self, sim: Simulation) -> bool:
        """Start what the plan allows now; True if some task is blocked on its worker."""
        now, c = sim.now, sim.cluster
        per_worker: dict[int, list[tuple[float, int]]] = {}
        for idx, (w, s) in self.plan.items():
            if w >= 0:
                per_worker.setdefault(w, []).append((s, idx))
        overdue = False
        for w in sorted(per_worker):
            held = False  # an earlier-planned task on w does not fit: no early starts past it
            for s, idx in sorted(per_worker[w]):
                due = s <= now + EPS
                if not due and held:
                    break
                st = sim.tasks[idx]
                if c.fit_mask(st)[w] and sim.start(st, w):
                    del self.plan[idx]
                    continue
                held = True
                overdue |= due
        self._migrate(sim)
        return overdue

    def _migrate(self, sim: Simulation) -> None:
        """Start a waiting planned task now on a worker with no planned tasks when that
        finishes it before its planned finish (estimates drifted since the plan)."""
        c, now = sim.cluster, sim.now
        busy = np.zeros(len(c.workers), dtype=bool)
        for w, _ in self.plan.values():
            if w >= 0:
                busy[w] = True
        for idx, (w, s) in sorted(self.plan.items(), key=lambda kv: (kv[1][1], kv[0])):
            if w < 0:
                continue
            st = sim.tasks[idx]
            mask = c.fit_mask(st) & ~busy
            if not mask.any():
                continue
            finish = np.where(mask, now + st.task.duration / c.speed, np.inf)
            best = int(np.argmin(finish))
            if finish[best] < s + st.task.duration / c.speed[w] - EPS and sim.start(st, best):
                del self.plan[idx]


def make_policy(name: str, *, planner: str | None = None, batch_k: int = 8, batch_t: float = 10.0,
                budget_s: float = 0.2) -> Policy:
    """A fresh policy for ``name`` (one of ``POLICIES``); ValueError otherwise."""
    if name == "kube-spread":
        return KubePolicy("spread")
    if name == "kube-binpack":
        return KubePolicy("binpack")
    if name == "slurm-backfill":
        return SlurmBackfillPolicy()
    if name == "planner":
        return PlannerPolicy(planner, batch_k=batch_k, batch_t=batch_t, budget_s=budget_s)
    raise ValueError(f"unknown policy {name!r} (choose from {', '.join(POLICIES)})")


def policy_names() -> Iterable[str]:
    return POLICIES
