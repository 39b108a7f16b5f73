"""A cheap, always valid lower bound on the FORMATS.md objective of any plan.

Relaxation: every task is placed alone on its cheapest eligible worker at its
release (no capacity interaction) or left unassigned at its unassigned price;
imbalance and energy are bounded by 0; makespan by the largest single release +
fastest duration and by the cpu area (total cpu-seconds over total cpu rate) when
every placeable task must be placed. Valid over *all* schedules (delays included),
so it may be reported as a plan's ``bound``.

Complexity: O(N * W + N log N).
"""

from __future__ import annotations

import numpy as np

from ..model import Problem
from .insertion import ProblemArrays


def placement_costs(a: ProblemArrays) -> np.ndarray:
    """Per task, the least lateness + miss + reliability cost of running it anywhere."""
    wt = a.w
    fin = a.rel[:, None] + a.dur_on
    over = np.maximum(0.0, fin - a.dl[:, None])
    c = (wt.reliability * (1.0 - a.health)[None, :] * a.dur_on
         + wt.lateness * a.prio[:, None] * over + wt.misses * (over > 1e-9))
    return np.where(a.eligible, c, np.inf).min(axis=1)


def lower_bound(problem: Problem, arrays: ProblemArrays | None = None) -> float:
    """A proved lower bound on the objective of every valid plan of ``problem``."""
    a = ProblemArrays(problem) if arrays is None else arrays
    wt = a.w
    ok = a.eligible.any(axis=1)
    U = wt.unassigned * a.prio
    fixed = float(U[~ok].sum())
    if not ok.any():
        return fixed
    P = placement_costs(a)[ok]
    Uo = U[ok]
    fastest = np.where(a.eligible, a.dur_on, np.inf).min(axis=1)[ok]
    m = a.rel[ok] + fastest - a.now
    # bound 1: choose the assigned set A; cost >= sum_A P + sum_notA U + w_mk * max_A m
    order = np.argsort(m)
    ms, Ps, Us = m[order], P[order], Uo[order]
    prefix = np.concatenate([[0.0], np.cumsum(np.minimum(Ps, Us))])
    suffix_u = np.concatenate([np.cumsum(Us[::-1])[::-1], [0.0]])
    # k = the assigned task with the largest m (ties: any order is still a valid bound)
    with_k = prefix[:-1] + Ps + suffix_u[1:] + wt.makespan * np.maximum(0.0, ms)
    best = min(float(Us.sum()), float(with_k.min()))
    # bound 2: when leaving any task out costs more than the whole makespan term
    area = a.makespan_lower_bound()
    if float((Uo - P).min()) >= wt.makespan * area:
        best = max(best, float(P.sum()) + wt.makespan * area)
    return fixed + best
