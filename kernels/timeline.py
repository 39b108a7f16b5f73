"""Per-worker resource timelines as step functions: the hot loop of every list scheduler.

Layout (all float64, one row per worker):
- ``T[w, :n[w]]`` sorted breakpoints, ``T[w, 0]`` = the plan's ``now``;
- ``U[w, k, c]`` usage of column ``c`` on ``[T[w, k], T[w, k+1])`` (the last segment
  extends to +inf); columns ``0..nres-1`` are resources, ``nres..`` are GPU device
  slots holding milli (capacity 1000 for a real GPU, 0 for a missing slot);
- ``cap[w, c]`` the capacity of each column.

Kernels take arrays and return arrays or scalars; ``*_ref`` functions are plain-Python
references with a deliberately naive algorithm, tested against the kernels.
Nothing here imports agentic_sched.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

EPS = 1e-9


@njit(cache=True)
def _fits(used, dem, cap):
    return used + dem <= cap + EPS * max(1.0, cap)


@njit(cache=True)
def earliest_start(T, U, n, cap, dem, nres, gcount, gshare, release, dur):
    """Earliest ``t >= release`` at which a task fits on one worker for ``[t, t+dur)``.

    ``dem[:nres]`` is the resource demand; ``gcount`` devices each need ``gshare``
    milli free over the whole window. Returns +inf if it never fits.
    Complexity: O(m * C) typical, O(m^2 * C) worst case, m = breakpoints.
    """
    ndev = U.shape[1] - nres
    maxdev = np.zeros(ndev)
    k0 = 0
    while k0 + 1 < n and T[k0 + 1] <= release:
        k0 += 1
    t = max(release, T[k0])
    while True:
        end = t + dur
        fail = -1
        for d in range(ndev):
            maxdev[d] = 0.0
        k = k0
        while k < n and (k == k0 or T[k] < end - EPS):
            for r in range(nres):
                if not _fits(U[k, r], dem[r], cap[r]):
                    fail = k
                    break
            if fail >= 0:
                break
            if gcount > 0:
                for d in range(ndev):
                    if U[k, nres + d] > maxdev[d]:
                        maxdev[d] = U[k, nres + d]
            k += 1
        if fail < 0:
            if gcount == 0:
                return t
            free = 0
            for d in range(ndev):
                if _fits(maxdev[d], gshare, cap[nres + d]):
                    free += 1
            if free >= gcount:
                return t
            fail = k0
        if fail + 1 >= n:
            return np.inf
        k0 = fail + 1
        t = T[k0]


@njit(cache=True)
def earliest_starts(T, U, n, cap, dem, nres, gcount, gshare, release, dur, eligible):
    """``earliest_start`` for every worker ``w`` with ``eligible[w]`` (else +inf).

    ``dur[w]`` is the task's duration on worker ``w`` (duration / speed).
    """
    W = T.shape[0]
    out = np.full(W, np.inf)
    for w in range(W):
        if eligible[w]:
            out[w] = earliest_start(T[w], U[w], n[w], cap[w], dem, nres, gcount, gshare, release, dur[w])
    return out


@njit(cache=True)
def pick_devices(T, U, n, cap, nres, gcount, gshare, start, dur):
    """Device slots for a task placed at ``start`` (which must be feasible).

    A shared GPU (``gshare`` < 1000) takes the tightest-fitting device; whole GPUs take
    the lowest-index free devices. Returns int64[gcount] (slot numbers, 0-based).
    """
    ndev = U.shape[1] - nres
    maxdev = np.zeros(ndev)
    end = start + dur
    for k in range(n):
        seg_end = T[k + 1] if k + 1 < n else np.inf
        if seg_end > start + EPS and T[k] < end - EPS:
            for d in range(ndev):
                if U[k, nres + d] > maxdev[d]:
                    maxdev[d] = U[k, nres + d]
    out = np.full(gcount, -1, dtype=np.int64)
    if gcount == 1 and gshare < 1000.0:
        best = -1
        for d in range(ndev):
            if _fits(maxdev[d], gshare, cap[nres + d]):
                if best < 0 or maxdev[d] > maxdev[best]:
                    best = d
        out[0] = best
        return out
    j = 0
    for d in range(ndev):
        if j < gcount and _fits(maxdev[d], gshare, cap[nres + d]):
            out[j] = d
            j += 1
    return out


@njit(cache=True)
def _split(T, U, n, x):
    k = n - 1
    while k > 0 and T[k] > x + EPS:
        k -= 1
    if abs(T[k] - x) <= EPS or x < T[k]:
        return n
    for j in range(n, k + 1, -1):
        T[j] = T[j - 1]
        U[j, :] = U[j - 1, :]
    T[k + 1] = x
    U[k + 1, :] = U[k, :]
    return n + 1


@njit(cache=True)
def add_interval(T, U, n, start, end, vec):
    """Add ``vec`` (length C) to usage on ``[start, end)``; returns the new breakpoint count.

    The caller guarantees room for two more breakpoints (``T.shape[0] >= n + 2``).
    """
    n = _split(T, U, n, start)
    if end < np.inf:
        n = _split(T, U, n, end)
    for k in range(n):
        if T[k] >= start - EPS and T[k] < end - EPS:
            for c in range(U.shape[1]):
                U[k, c] += vec[c]
    return n


@njit(cache=True)
def usage_at(T, U, n, t):
    """Usage row of the segment containing ``t``."""
    k = 0
    while k + 1 < n and T[k + 1] <= t + EPS:
        k += 1
    return U[k]


# ------------------------------------------------------------------ plain-Python references


def _segments(T, U, n):
    return [(T[k], T[k + 1] if k + 1 < n else math.inf, list(U[k])) for k in range(n)]


def earliest_start_ref(T, U, n, cap, dem, nres, gcount, gshare, release, dur):
    """Naive reference: try every candidate start, check every overlapping segment."""
    segs = _segments(T, U, n)
    candidates = sorted({max(release, T[0])} | {s for s, _, _ in segs if s > release})
    for t in candidates:
        window = [u for s, e, u in segs if e > t + EPS and s < t + dur - EPS]
        if not all(u[r] + dem[r] <= cap[r] + EPS * max(1.0, cap[r]) for u in window for r in range(nres)):
            continue
        ndev = len(cap) - nres
        free = sum(
            1 for d in range(ndev)
            if max(u[nres + d] for u in window) + gshare <= cap[nres + d] + EPS * max(1.0, cap[nres + d])
        )
        if gcount == 0 or free >= gcount:
            return t
    return math.inf


def add_interval_ref(segments, start, end, vec):
    """Reference for ``add_interval`` on a list of ``(start, end, usage)`` segments."""
    cuts = sorted({s for s, _, _ in segments} | {start} | ({end} if end < math.inf else set()))
    out = []
    for i, s in enumerate(cuts):
        e = cuts[i + 1] if i + 1 < len(cuts) else math.inf
        base = next(u for a, b, u in segments if a <= s < b)
        inside = start <= s < end
        out.append((s, e, [x + (vec[c] if inside else 0.0) for c, x in enumerate(base)]))
    return out


@njit(cache=True)
def usage_rows(T, U, n, t, idx):
    """Usage rows at time ``t`` of the workers listed in ``idx`` -> float64[len(idx), C]."""
    out = np.empty((idx.shape[0], U.shape[2]))
    for i in range(idx.shape[0]):
        w = idx[i]
        out[i, :] = usage_at(T[w], U[w], n[w], t)
    return out
