"""A* expansion kernel: earliest feasible start of one task on every worker of a state.

A search state is a set of booked intervals (running work and placed tasks), flat:
``iw[k]`` worker, ``st[k]``/``en[k]`` interval, ``dem[k, :nres]`` resource use,
``dev[k, :ndev]`` milli held on each GPU device slot; ``m`` intervals are live.
``cap[w, :nres]`` resource capacities, ``capdev[w, :ndev]`` device capacities (1000
for a real GPU, 0 for a missing slot).

``child_starts(...)`` returns ``(starts[W], slots[W, gcount])``: per worker the earliest
``t >= release`` at which the task fits for ``[t, t + dur[w])`` (+inf when ineligible
or never) and the device slots it would take (a shared GPU takes the tightest-fitting
device, whole GPUs the lowest-index free ones: the rule of ``timeline.pick_devices``).
Candidate starts are ``release`` and every interval end after it (the left end of a
feasible region is always one of those); usage only rises at interval starts, so a
window is checked at its start and at every interval start inside it.

``child_starts_ref`` is the plain-Python reference. Nothing here imports agentic_sched.
Complexity: O(W * K^2 * (nres + ndev)) for K intervals.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

EPS = 1e-9


@njit(cache=True)
def _active(st, en, k, p):
    return st[k] <= p + EPS and p < en[k] - EPS


@njit(cache=True)
def _earliest_one(w, iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, release, dur, slots,
                  cands, peak):
    # cands (>= m + 1) and peak (>= ndev) are caller-owned scratch buffers (no allocation here)
    nres = tdem.shape[0]
    ndev = capdev.shape[0]
    nc = 0
    cands[nc] = release
    nc += 1
    for k in range(m):
        if iw[k] == w and en[k] > release:
            x = en[k]  # insertion sort: the lists are short
            j = nc
            while j > 0 and cands[j - 1] > x:
                cands[j] = cands[j - 1]
                j -= 1
            cands[j] = x
            nc += 1
    for ci in range(nc):
        t = cands[ci]
        end = t + dur
        ok = True
        for d in range(ndev):
            peak[d] = 0.0
        for pi in range(-1, m):
            if pi >= 0:
                if iw[pi] != w or not (st[pi] > t and st[pi] < end - EPS):
                    continue
                p = st[pi]
            else:
                p = t
            for r in range(nres):
                used = 0.0
                for k in range(m):
                    if iw[k] == w and _active(st, en, k, p):
                        used += dem[k, r]
                if used + tdem[r] > cap[r] + EPS:
                    ok = False
                    break
            if not ok:
                break
            if gcount > 0:
                for d in range(ndev):
                    used = 0.0
                    for k in range(m):
                        if iw[k] == w and _active(st, en, k, p):
                            used += dev[k, d]
                    if used > peak[d]:
                        peak[d] = used
        if not ok:
            continue
        if gcount == 0:
            return t
        nfree = 0
        for d in range(ndev):
            if peak[d] + gshare <= capdev[d] + EPS:
                nfree += 1
        if nfree < gcount:
            continue
        if gcount == 1 and gshare < 1000.0:
            best = -1
            for d in range(ndev):
                if peak[d] + gshare <= capdev[d] + EPS:
                    if best < 0 or peak[d] > peak[best]:
                        best = d
            slots[0] = best
        else:
            j = 0
            for d in range(ndev):
                if j < gcount and peak[d] + gshare <= capdev[d] + EPS:
                    slots[j] = d
                    j += 1
        return t
    return np.inf


@njit(cache=True)
def child_starts(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, release, dur, eligible):
    """Earliest start and device slots of one task on every worker (see module doc)."""
    W = cap.shape[0]
    starts = np.full(W, np.inf)
    slots = np.full((W, max(gcount, 1)), -1, dtype=np.int64)
    cands = np.empty(m + 1)
    peak = np.zeros(capdev.shape[1])
    for w in range(W):
        if eligible[w]:
            starts[w] = _earliest_one(w, iw, st, en, dem, dev, m, cap[w], capdev[w], tdem, gcount,
                                      gshare, release, dur[w], slots[w], cands, peak)
    return starts, slots


@njit(cache=True)
def expand(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, release, dur, eligible):
    """``child_starts`` for T tasks at once (one A* expansion): ``tdem[T, nres]``,
    ``gcount[T]``, ``gshare[T]``, ``release[T]``, ``dur[T, W]``, ``eligible[T, W]`` ->
    ``(starts[T, W], slots[T, W, G])`` with ``G = max(1, max gcount)``."""
    T, W = dur.shape
    G = 1
    for j in range(T):
        if gcount[j] > G:
            G = gcount[j]
    starts = np.full((T, W), np.inf)
    slots = np.full((T, W, G), -1, dtype=np.int64)
    cands = np.empty(m + 1)
    peak = np.zeros(capdev.shape[1])
    for j in range(T):
        for w in range(W):
            if eligible[j, w]:
                starts[j, w] = _earliest_one(w, iw, st, en, dem, dev, m, cap[w], capdev[w], tdem[j],
                                             gcount[j], gshare[j], release[j], dur[j, w], slots[j, w],
                                             cands, peak)
    return starts, slots


def expand_ref(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, release, dur, eligible):
    """Plain-Python reference of ``expand``."""
    T, W = dur.shape
    G = max(1, int(max(gcount, default=1)))
    starts = np.full((T, W), np.inf)
    slots = np.full((T, W, G), -1, dtype=np.int64)
    for j in range(T):
        s, sl = child_starts_ref(iw, st, en, dem, dev, m, cap, capdev, tdem[j], int(gcount[j]),
                                 float(gshare[j]), float(release[j]), dur[j], eligible[j])
        starts[j] = s
        slots[j, :, : sl.shape[1]] = sl
    return starts, slots


def child_starts_ref(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, release, dur, eligible):
    """Plain-Python reference of ``child_starts`` (same contract, naive loops)."""
    W = cap.shape[0]
    nres, ndev = len(tdem), capdev.shape[1]
    starts = [math.inf] * W
    slots = [[-1] * max(gcount, 1) for _ in range(W)]
    for w in range(W):
        if not eligible[w]:
            continue
        mine = [k for k in range(m) if iw[k] == w]
        for t in sorted({release} | {en[k] for k in mine if en[k] > release}):
            points = [t] + [st[k] for k in mine if t < st[k] < t + dur[w] - EPS]

            def use(p, col, rows, mine=mine):
                return sum(rows[k][col] for k in mine if st[k] <= p + EPS and p < en[k] - EPS)

            if any(use(p, r, dem) + tdem[r] > cap[w][r] + EPS
                   for p in points for r in range(nres)):
                continue
            peak = [max(use(p, d, dev) for p in points) for d in range(ndev)]
            free = [d for d in range(ndev) if peak[d] + gshare <= capdev[w][d] + EPS]
            if len(free) < gcount:
                continue
            if gcount == 1 and gshare < 1000.0:
                best = free[0]
                for d in free:
                    if peak[d] > peak[best]:
                        best = d
                slots[w][0] = best
            elif gcount > 0:
                slots[w][:gcount] = free[:gcount]
            starts[w] = t
            break
    return np.array(starts), np.array(slots, dtype=np.int64)
