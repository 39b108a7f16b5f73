"""Large-neighbourhood search (ruin and recreate) on cost-aware insertion.

``improve(schedule, until, rng)`` repeatedly removes a neighbourhood of tasks (the
late ones, all tasks of a few workers, a time window, the most and least loaded
workers, the workers whose cpu-seconds cost the most (``work_gradient``: the
derivative of imbalance plus the energy and reliability rates) together with the
cheapest ones, the tasks of a used worker with an idle cost or health < 1, or a
random set) and re-inserts them with ``Schedule.insert`` (marginal FORMATS.md cost,
randomised order and a little score noise). A move is kept when the
objective does not get worse, otherwise the schedule is restored. Every intermediate
schedule is feasible by construction (tasks are only booked at feasible starts).

``LnsPlanner`` builds a few cost-aware constructions, keeps the best and improves it
until the budget runs out; ``bound`` is the relaxation bound of ``bounds.lower_bound``.
"""

from __future__ import annotations

import time

import numpy as np

from ..kernels import lns as KL
from ..model import Plan, Problem
from .base import nothing_to_optimise
from .bounds import lower_bound
from .insertion import ProblemArrays, Schedule, construct, slack_order

DEFAULT_BUDGET_S = 2.0


def _neighbourhood(s: Schedule, rng: np.random.Generator, size: int) -> np.ndarray:
    a = s.a
    placed = np.flatnonzero(s.worker >= 0)
    if len(placed) == 0:
        return placed
    kind = rng.integers(0, 9)
    if kind >= 6:
        return _costly_neighbourhood(s, rng, size, placed, kind == 8)
    if kind == 0:  # late tasks plus random company
        late = placed[s.end[placed] > a.dl[placed] + 1e-9]
        extra = rng.choice(placed, size=min(size, len(placed)), replace=False)
        return np.unique(np.concatenate([late[: size], extra]))[: 2 * size]
    if kind == 1:  # all tasks of a few random workers
        ws = rng.choice(a.W, size=min(a.W, int(rng.integers(2, 5))), replace=False)
        sel = placed[np.isin(s.worker[placed], ws)]
    elif kind == 2:  # a time window
        mid = rng.uniform(a.now, float(s.end[placed].max()))
        width = (float(s.end[placed].max()) - a.now) * rng.uniform(0.05, 0.25)
        sel = placed[(s.end[placed] > mid - width) & (s.start[placed] < mid + width)]
    elif kind == 3:  # most and least utilised workers (imbalance, reliability)
        work = s._work() / np.where(a.cpucap > 0, a.cpucap, 1.0)
        order = np.argsort(work)
        k = int(rng.integers(1, 4))
        ws = np.concatenate([order[:k], order[-k:]])
        sel = placed[np.isin(s.worker[placed], ws)]
    elif kind == 4:  # tasks ending last (makespan)
        sel = placed[np.argsort(-s.end[placed])[: size]]
    else:
        sel = placed
    if len(sel) > size:
        sel = rng.choice(sel, size=size, replace=False)
    return sel


def work_gradient(s: Schedule) -> np.ndarray:
    """Per worker, about what one more cpu-second of work there adds to the objective.

    The exact derivative of ``w_imb * 100 * std(u)`` with respect to the worker's
    cpu-seconds (makespan fixed), plus the energy rate of a worker whose tasks run
    side by side (``w_en * idle / cpu_cap``) and the reliability rate of an average
    task (``w_rel * (1 - health) / mean cpu``). Ranks workers for the balancing moves.
    """
    a = s.a
    cap = np.where(a.cpucap > 0, a.cpucap, 1.0)
    mean_cpu = float(a.cpu[a.cpu > 0].mean()) if (a.cpu > 0).any() else 1.0
    g = a.w.energy * a.idle / cap + a.w.reliability * (1.0 - a.health) / mean_cpu
    mk = s._makespan_end() - a.now
    cw = a.cpu_workers
    if mk > 0 and cw.any():
        u = s._work() / cap / mk
        uc = u[cw]
        sd = float(uc.std())
        if sd > 0:
            g = g + np.where(cw, a.w.imbalance * 100.0 * (u - uc.mean()) / (uc.shape[0] * sd * cap * mk), 0.0)
    return g


def _costly_neighbourhood(s: Schedule, rng: np.random.Generator, size: int, placed: np.ndarray,
                          idle_or_unhealthy: bool) -> np.ndarray:
    """Tasks of the used workers whose cpu-seconds cost the most plus some of the cheapest
    workers' (balancing), or the tasks of one used worker with an idle cost or health < 1
    (all of them or its last ending ones: energy and reliability; balancing if there is none)."""
    a = s.a
    used = np.unique(s.worker[placed])
    costly = used[(a.idle[used] > 0) | (a.health[used] < 1.0)]
    if idle_or_unhealthy and len(costly):
        on = placed[s.worker[placed] == rng.choice(costly)]
        if len(on) <= size or rng.random() < 0.5:
            return on
        return on[np.argsort(-s.end[on])[:size]]
    g = work_gradient(s)
    k = int(rng.integers(1, 4))
    hi = used[np.argsort(-g[used])[:k]]
    lo = np.argsort(g)[:k]
    sel = placed[np.isin(s.worker[placed], hi)]
    if len(sel) > size:
        sel = rng.choice(sel, size=size, replace=False)
    low = placed[np.isin(s.worker[placed], lo)]
    if len(low) > size // 2:
        low = rng.choice(low, size=max(1, size // 2), replace=False)
    return np.unique(np.concatenate([sel, low]))


def improve(s: Schedule, until: float, rng: np.random.Generator, *, target: float,
            max_iters: int | None = None) -> tuple[float, int]:
    """Ruin-and-recreate ``s`` in place until ``time.perf_counter() >= until``.

    Returns (objective, iterations). The schedule stays the best one found.
    """
    cur = s.objective()
    iters = stall = 0
    base = max(4, min(30, s.a.N // 10))
    stall_limit = max(300, 40 * s.a.N)  # small problems: stop once the neighbourhoods are exhausted
    while time.perf_counter() < until and (max_iters is None or iters < max_iters) and stall < stall_limit:
        iters += 1
        stall += 1
        size = int(rng.integers(2, base + 1))
        sel = _neighbourhood(s, rng, size)
        if len(sel) == 0:
            continue
        snap = s.snapshot()
        for i in sel:
            s.remove(int(i))
        order = _ordered(s.a, sel, target) if rng.random() < 0.5 else rng.permutation(sel)
        noise = 0.0 if rng.random() < 0.5 else 0.05
        for i in order:
            s.insert(int(i), target, rng, noise)
        new = s.objective()
        if new <= cur + 1e-9 * max(1.0, abs(cur)):
            if new < cur - 1e-9 * max(1.0, abs(cur)):
                stall = 0
            cur = new
            s.tl.n = KL.compact_rows(s.tl.T, s.tl.U, s.tl.n)
        else:
            s.restore(snap)
    return cur, iters


def _ordered(a: ProblemArrays, sel: np.ndarray, target: float) -> np.ndarray:
    fastest = np.where(a.eligible[sel], a.dur_on[sel], np.inf).min(axis=1)
    due = np.minimum(a.dl[sel], a.now + target)
    return sel[np.lexsort((-a.dur[sel], due - fastest))]


def best_construction(a: ProblemArrays, until: float, rng: np.random.Generator,
                      tries: int = 3) -> Schedule:
    """The best of a few cost-aware constructions (slack order first, then noisy ones);
    another one starts only if it can finish (by the first one's time) within the first
    half of the time left, so that ruin-and-recreate gets the rest."""
    target = a.makespan_lower_bound()
    t0 = time.perf_counter()
    best = construct(a, slack_order(a, target), target)
    one = time.perf_counter() - t0
    best_obj = best.objective()
    for _ in range(tries - 1):
        if time.perf_counter() + one >= until - 0.5 * (until - t0):  # leave half for LNS
            break
        s = construct(a, slack_order(a, target), target, rng, noise=0.1)
        obj = s.objective()
        if obj < best_obj:
            best, best_obj = s, obj
    return best


class LnsPlanner:
    """Cost-aware construction plus ruin-and-recreate LNS within ``budget_s``."""

    name = "lns"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def plan(self, problem: Problem, budget_s: float | None = None) -> Plan:
        started = time.perf_counter()
        if (trivial := nothing_to_optimise(problem, self.name, started)) is not None:
            return trivial
        until = started + (DEFAULT_BUDGET_S if budget_s is None else budget_s)
        rng = np.random.default_rng(self.seed)
        a = ProblemArrays(problem)
        s = best_construction(a, until, rng)
        obj, iters = improve(s, until, rng, target=a.makespan_lower_bound())
        lb = lower_bound(problem, a)
        return s.to_plan(planner=self.name, started=started, bound=lb,
                         detail=f"{iters} LNS iterations")
