"""Kernels for local search on step-function timelines (layout of ``timeline.py``).

- ``compact_rows(T, U, n)``: merge adjacent segments whose usage is equal (within
  EPS) in place and return the new breakpoint counts; removing booked intervals
  leaves such redundant breakpoints behind, and they slow every later search.
- ``marginal_costs(...)``: the objective increase of placing one task at a given
  start on each worker (the scoring of cost-aware insertion), from the schedule's
  ``worker/start/end`` arrays in one O(N + W) pass.

``*_ref`` functions are plain-Python references tested against the kernels.
Nothing here imports agentic_sched.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

EPS = 1e-9


@njit(cache=True)
def compact_rows(T, U, n):
    """Merge equal-usage neighbours of every row; snap |usage| < EPS to 0. Returns new ``n``.

    Complexity: O(W * m * C).
    """
    W, _, C = U.shape
    out = n.copy()
    for w in range(W):
        m = n[w]
        for k in range(m):
            for c in range(C):
                if abs(U[w, k, c]) < EPS:
                    U[w, k, c] = 0.0
        j = 0
        for k in range(1, m):
            same = True
            for c in range(C):
                if abs(U[w, k, c] - U[w, j, c]) > EPS:
                    same = False
                    break
            if not same:
                j += 1
                T[w, j] = T[w, k]
                for c in range(C):
                    U[w, j, c] = U[w, k, c]
        out[w] = j + 1
    return out


def compact_rows_ref(T, U, n):
    """Plain-Python reference: same contract as ``compact_rows`` (mutates T, U)."""
    out = np.array(n, copy=True)
    for w in range(U.shape[0]):
        segs = []
        for k in range(int(n[w])):
            row = [0.0 if abs(x) < EPS else float(x) for x in U[w, k]]
            if segs and all(abs(x - y) <= EPS for x, y in zip(row, segs[-1][1], strict=True)):
                continue
            segs.append((float(T[w, k]), row))
        for k, (t, row) in enumerate(segs):
            T[w, k] = t
            U[w, k, :] = row
        out[w] = len(segs)
    return out


@njit(cache=True)
def marginal_costs(starts, dur, dl, prio, cpu_i, worker, start, end, cpu, health, idle, cpucap, now, target,
                   weights):
    """Objective increase of placing one task at ``starts[w]`` on each worker ``w``.

    ``starts`` (+inf: does not fit), ``dur`` (duration on each worker), ``dl``/``prio``/
    ``cpu_i`` describe the task; ``worker/start/end/cpu`` the schedule (``worker`` -1:
    not placed); ``health/idle/cpucap`` the workers; ``weights`` = (lateness, misses,
    makespan, imbalance, energy, reliability). Terms: reliability, lateness and a miss
    at the finish, energy past the worker's last end, makespan past
    ``max(target, current makespan)`` and the exact change of ``100 * std(u)`` at that
    horizon (imbalance). Returns +inf where ``starts`` is not finite.
    Complexity: O(N + W).
    """
    W = starts.shape[0]
    wl, wm, wmk, wimb, wen, wrel = weights[0], weights[1], weights[2], weights[3], weights[4], weights[5]
    last = np.full(W, -np.inf)
    work = np.zeros(W)
    mkend = now
    anyp = False
    for t in range(worker.shape[0]):
        w = worker[t]
        if w >= 0:
            if end[t] > last[w]:
                last[w] = end[t]
            work[w] += cpu[t] * (end[t] - start[t])
            if not anyp or end[t] > mkend:
                mkend = end[t]
            anyp = True
    horizon = max(target, mkend - now)
    out = np.empty(W)
    ncw = 0
    for w in range(W):
        if cpucap[w] > 0:
            ncw += 1
    imb = wimb != 0.0 and cpu_i > 0 and ncw > 0
    mean = 0.0
    S = 0.0
    mk = max(horizon, 1e-9)
    if imb:
        for w in range(W):
            if cpucap[w] > 0:
                mean += work[w] / cpucap[w] / mk
        mean /= ncw
        for w in range(W):
            if cpucap[w] > 0:
                d = work[w] / cpucap[w] / mk - mean
                S += d * d
    base_sd = math.sqrt(S / ncw) if imb else 0.0
    for w in range(W):
        s = starts[w]
        if not math.isfinite(s):
            out[w] = math.inf
            continue
        fin = s + dur[w]
        c = wrel * (1.0 - health[w]) * dur[w]
        over = max(0.0, fin - dl)
        c += wl * prio * over
        if over > 1e-9:
            c += wm
        b = last[w] if last[w] > -math.inf else now
        c += wen * idle[w] * max(0.0, fin - b)
        c += wmk * max(0.0, fin - now - horizon)
        if imb and cpucap[w] > 0:
            u = work[w] / cpucap[w] / mk
            delta = cpu_i * dur[w] / cpucap[w] / mk
            S2 = S + 2.0 * delta * (u - mean) + delta * delta * (1.0 - 1.0 / ncw)
            c += wimb * 100.0 * (math.sqrt(max(S2, 0.0) / ncw) - base_sd)
        out[w] = c
    return out


def marginal_costs_ref(starts, dur, dl, prio, cpu_i, worker, start, end, cpu, health, idle, cpucap, now, target,
                       weights):
    """Plain-Python reference of ``marginal_costs`` (per worker: recompute the whole
    objective-relevant sums with and without the task, no incremental formulas)."""
    wl, wm, wmk, wimb, wen, wrel = (float(x) for x in weights)
    W = len(starts)
    placed = [t for t in range(len(worker)) if worker[t] >= 0]
    mkend = max((float(end[t]) for t in placed), default=float(now))
    horizon = max(float(target), mkend - now)
    mk = max(horizon, 1e-9)
    cws = [w for w in range(W) if cpucap[w] > 0]

    def std_of(work: list[float]) -> float:
        us = [work[w] / cpucap[w] / mk for w in cws]
        m = sum(us) / len(us)
        return math.sqrt(sum((x - m) ** 2 for x in us) / len(us))

    work = [0.0] * W
    for t in placed:
        work[worker[t]] += float(cpu[t]) * float(end[t] - start[t])
    out = []
    for w in range(W):
        s = float(starts[w])
        if not math.isfinite(s):
            out.append(math.inf)
            continue
        fin = s + float(dur[w])
        c = wrel * (1.0 - float(health[w])) * float(dur[w])
        over = max(0.0, fin - float(dl))
        c += wl * float(prio) * over + (wm if over > 1e-9 else 0.0)
        ends = [float(end[t]) for t in placed if worker[t] == w]
        c += wen * float(idle[w]) * max(0.0, fin - (max(ends) if ends else float(now)))
        c += wmk * max(0.0, fin - now - horizon)
        if wimb != 0.0 and cpu_i > 0 and cws and cpucap[w] > 0:
            after = list(work)
            after[w] += float(cpu_i) * float(dur[w])
            c += wimb * 100.0 * (std_of(after) - std_of(work))
        out.append(c)
    return np.array(out)
