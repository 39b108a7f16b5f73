"""A cheap, always valid lower bound on the FORMATS.md objective of any plan.

Relaxation: every task is placed alone on its cheapest eligible worker at its
release (no capacity interaction) or left unassigned at its unassigned price;
makespan is bounded by the largest single release + fastest duration and by the cpu
area (total cpu-seconds over total cpu rate) when every placeable task must be placed.

When leaving any task out costs more than the rest of the bound, imbalance, energy
and the extra reliability/lateness of worse workers are bounded together
(``balance_bound``): with ``v_w`` = the cpu-seconds on worker ``w`` over its cpu
rate (``speed * cpu``), ``u_w = v_w / M``, energy is at least ``idle_w * v_w`` (the
worker is busy that long) and each cpu-second on ``w`` costs at least ``r_w`` more
than the task's cheapest placement; what is left is the convex problem
``min_v  w_imb * 100 * std(v) / M + c . v  s.t.  sum_w rate_w v_w = B, v >= 0``,
bounded through its Lagrange dual (any dual-feasible point is a valid bound), at the
makespan lower bound ``M0`` when a longer makespan provably cannot pay off, else
minimised over ``M >= M0`` on a grid. Valid over *all* schedules
(delays included), so it may be reported as a plan's ``bound``.

Complexity: O(N * W + N log N + G * I * W log W) for G makespan grid points and I
bisection steps.
"""

from __future__ import annotations

import math

import numpy as np

from ..model import Problem
from .insertion import ProblemArrays


def placement_cost_matrix(a: ProblemArrays) -> np.ndarray:
    """Per task and worker, the least lateness + miss + reliability cost of running it
    there (started at its release); +inf where the worker is not eligible."""
    wt = a.w
    fin = a.rel[:, None] + a.dur_on
    over = np.maximum(0.0, fin - a.dl[:, None])
    c = (wt.reliability * (1.0 - a.health)[None, :] * a.dur_on
         + wt.lateness * a.prio[:, None] * over + wt.misses * (over > 1e-9))
    return np.where(a.eligible, c, np.inf)


def placement_costs(a: ProblemArrays) -> np.ndarray:
    """Per task, the least lateness + miss + reliability cost of running it anywhere."""
    return placement_cost_matrix(a).min(axis=1)


SAFETY = 1e-9  # relative slack on every floating-point feasibility test of the dual


def _residual_norm(y: np.ndarray, free: np.ndarray) -> float:
    """min ||r|| s.t. sum(r) = 0, r_w <= y_w where ``free`` is False (r_w free where True).

    The minimiser is r_w = min(y_w, tau) (tau where free) with tau the root of
    sum(r) = 0; +inf if there is none (no free coordinate and sum(y) < 0).
    """
    k_free = int(free.sum())
    ys = np.sort(y[~free])
    k = ys.shape[0]
    if k_free == 0 and (k == 0 or float(ys.sum()) < 0.0):
        return 0.0 if k == 0 else math.inf
    # for tau in [ys[j-1], ys[j]]: sum = prefix[j] + (k - j + k_free) * tau
    prefix = np.concatenate([[0.0], np.cumsum(ys)])
    cnt = (k - np.arange(k + 1) + k_free).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(cnt > 0, -prefix / np.where(cnt > 0, cnt, 1.0), math.inf)
    lo = np.concatenate([[-math.inf], ys])
    hi = np.concatenate([ys, [math.inf]])
    ok = (tau >= lo - 1e-12 * np.abs(lo).clip(1.0)) & (tau <= hi + 1e-12 * np.abs(hi).clip(1.0))
    if not ok.any():
        return math.inf
    t = float(tau[np.flatnonzero(ok)[0]])
    r = np.minimum(y[~free], t)
    return float(math.sqrt(float((r * r).sum()) + k_free * t * t))


def _dual_value(c: np.ndarray, rate: np.ndarray, free: np.ndarray, B: float, kappa: float,
                lam_hi: float, iters: int = 48) -> float:
    """A lower bound on ``min kappa * ||P v|| + c . v  s.t. rate . v = B, v >= 0`` (v_w = 0
    where ``free``; P centres): ``lam * B`` for the largest ``lam`` found with a dual
    certificate (``_residual_norm(c - lam * rate) <= kappa``), by bisection below ``lam_hi``."""
    pos = (~free) & (rate > 0)
    lam_lo = float((c[pos] / rate[pos]).min()) if pos.any() else 0.0
    lam_lo = min(lam_lo, lam_hi)
    limit = kappa * (1.0 - SAFETY)
    if _residual_norm(c - lam_lo * rate, free) > limit:
        lam_lo = min(lam_lo, 0.0)
        if _residual_norm(c - lam_lo * rate, free) > limit:
            return 0.0
    if _residual_norm(c - lam_hi * rate, free) <= limit:
        return lam_hi * B * (1.0 - SAFETY)
    for _ in range(iters):
        if lam_hi - lam_lo <= 1e-7 * max(abs(lam_hi), 1e-300):
            break
        mid = 0.5 * (lam_lo + lam_hi)
        if _residual_norm(c - mid * rate, free) <= limit:
            lam_lo = mid
        else:
            lam_hi = mid
    return lam_lo * B * (1.0 - SAFETY)


def balance_bound(a: ProblemArrays, pc: np.ndarray, ok: np.ndarray, m0: float, grid: int = 16) -> float:
    """Lower bound on ``w_mk * M + w_imb * imbalance + w_en * energy + excess`` over plans
    that place every task of ``ok``, where excess is what their lateness + miss +
    reliability costs beyond each task's cheapest placement (``pc``: per task and
    worker); ``m0`` is a makespan lower bound for such plans (> 0)."""
    wt = a.w
    cw = a.cpu_workers
    n = int(cw.sum())
    work = a.cpu * a.dur
    carry = ok & (work > 0)
    B = float(work[carry].sum())
    if n == 0 or B <= 0 or m0 <= 0:
        return wt.makespan * max(m0, 0.0)
    P = pc.min(axis=1)
    # r_w: least extra cost per cpu-second of any work-carrying task that may run on w
    with np.errstate(invalid="ignore"):
        extra = (pc[carry] - P[carry, None]) / work[carry, None]
    extra = np.where(a.eligible[carry], extra, np.inf)
    r = extra.min(axis=0)[cw]
    zero = ~np.isfinite(r)  # no work can run there: v_w = 0
    rate = (a.speed * a.cpucap)[cw]
    c = np.where(zero, 0.0, wt.energy * a.idle[cw] + np.where(zero, 0.0, r) * rate)
    c = np.maximum(c, 0.0)
    beta = wt.imbalance * 100.0 / math.sqrt(n)
    # primal value of an even spread over the usable workers: the dual can never exceed it
    use = (~zero) & (rate > 0)
    if not use.any():
        return wt.makespan * m0
    v = np.where(use, B / float(rate[use].sum()), 0.0)
    spread = float(c @ v)
    lam_top = spread / B + beta * float(np.linalg.norm(v - v.mean())) / (m0 * B)
    pos = use & (rate > 0)
    g_inf = B * float((c[pos] / rate[pos]).min()) * (1.0 - SAFETY)  # kappa = 0: a linear programme
    if wt.makespan <= 0:
        return g_inf
    g0 = _dual_value(c, rate, zero, B, beta / m0, lam_top)
    if g0 - g_inf <= 1e-12 * max(1.0, g0):
        return wt.makespan * m0 + g_inf
    # a longer makespan cannot pay off: a pair (M, v) below w_mk * m0 + g0 has
    # beta * ||P v|| / M <= g0 and M <= m0 + g0 / w_mk, so beta * ||P v|| <= (m0 + g0 / w_mk) * g0;
    # when that is <= w_mk * m0^2, w_mk * M + beta * ||P v|| / M grows with M >= m0, so the
    # pair costs at least its value at m0, which is >= w_mk * m0 + g0: a contradiction
    if (m0 + g0 / wt.makespan) * g0 <= wt.makespan * m0 * m0 * (1.0 - SAFETY):
        return wt.makespan * m0 + g0
    # grid M_0 < M_1 < ... < M_K with w_mk * (M_K - M_0) >= g0 - g_inf; on [M_k, M_k+1] the
    # total is >= w_mk * M_k + G(M_k+1) (G does not increase with M); past M_K >= w_mk * M_K + g_inf
    step = (g0 - g_inf) / (wt.makespan * grid)
    best = wt.makespan * (m0 + grid * step) + g_inf
    lam = lam_top
    for k in range(grid):
        m_next = m0 + (k + 1) * step
        g = _dual_value(c, rate, zero, B, beta / m_next, lam)
        lam = g / B / (1.0 - SAFETY) if g > 0 else lam
        best = min(best, wt.makespan * (m0 + k * step) + g)
    return best


def lower_bound(problem: Problem, arrays: ProblemArrays | None = None) -> float:
    """A proved lower bound on the objective of every valid plan of ``problem``."""
    a = ProblemArrays(problem) if arrays is None else arrays
    wt = a.w
    ok = np.asarray(a.eligible.any(axis=1), dtype=bool)
    U = wt.unassigned * a.prio
    fixed = float(U[~ok].sum())
    if not ok.any():
        return fixed
    pc = placement_cost_matrix(a)
    P = pc.min(axis=1)[ok]
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
        # bound 3: imbalance, energy and the cost of worse workers on top (same argument:
        # a plan leaving task k out pays at least sum P + U_k - P_k)
        if area > 0:
            extra = balance_bound(a, pc, ok, area)
            if float((Uo - P).min()) >= extra:
                best = max(best, float(P.sum()) + extra)
    return fixed + best
