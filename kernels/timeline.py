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
    return used + dem <= cap + EPS


@njit(cache=True)
def _segment_of(T, n, t):
    """Index k of the segment of row ``T`` containing ``t`` (0 if ``t`` < ``T[0]``)."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if T[mid] <= t:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True)
def earliest_start(T, U, n, cap, w, dem, nres, gcount, gshare, release, dur, lastblock):
    """Earliest ``t >= release`` at which a task fits on worker ``w`` for ``[t, t+dur)``.

    ``T, U, n, cap`` are the all-worker arrays (indexed in place: no per-worker views);
    ``dem[:nres]`` is the resource demand; ``gcount`` devices each need ``gshare``
    milli free over the whole window; ``lastblock`` is int64 scratch (>= device slots).
    Returns +inf if it never fits. A failing resource skips past the failing segment;
    failing devices skip to where enough blocked devices could have freed up.
    Complexity: O(log m + m * C) typical, m = breakpoints of ``w``.
    """
    m = n[w]
    ndev = U.shape[2] - nres
    k0 = _segment_of(T[w], m, release)
    t = max(release, T[w, k0])
    while True:
        end = t + dur
        fail = -1
        k = k0
        limit = end - EPS
        while True:
            for r in range(nres):
                if U[w, k, r] + dem[r] > cap[w, r] + EPS:
                    fail = k
                    break
            k += 1
            if fail >= 0 or k >= m or T[w, k] >= limit:
                break
        if fail < 0:
            if gcount == 0:
                return t
            free = 0
            for d in range(ndev):
                c = nres + d
                if not _fits(0.0, gshare, cap[w, c]):
                    lastblock[d] = m  # can never host the share
                    continue
                lastblock[d] = -1
                for j in range(k0, k):
                    if not _fits(U[w, j, c], gshare, cap[w, c]):
                        lastblock[d] = j
                if lastblock[d] < 0:
                    free += 1
            if free >= gcount:
                return t
            # the (gcount - free)-th soonest-unblocked device decides the next candidate
            need = gcount - free
            blocked = np.sort(lastblock[:ndev])
            fail = blocked[free + need - 1]
            if fail >= m:
                return np.inf
        if fail + 1 >= m:
            return np.inf
        k0 = fail + 1
        t = T[w, k0]


@njit(cache=True)
def earliest_starts(T, U, n, cap, dem, nres, gcount, gshare, release, dur, eligible):
    """``earliest_start`` for every worker ``w`` with ``eligible[w]`` (else +inf).

    ``dur[w]`` is the task's duration on worker ``w`` (duration / speed).
    """
    W = T.shape[0]
    out = np.full(W, np.inf)
    lastblock = np.zeros(U.shape[2] - nres + 1, dtype=np.int64)
    for w in range(W):
        if eligible[w]:
            out[w] = earliest_start(T, U, n, cap, w, dem, nres, gcount, gshare, release, dur[w], lastblock)
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
def add_booking(T, U, n, peak, w, start, end, vec):
    """``add_interval`` on worker ``w`` of the all-worker arrays, then refresh ``peak[w]``.

    Updates ``n[w]`` and ``peak[w]`` in place; same room precondition as ``add_interval``.
    """
    n[w] = add_interval(T[w], U[w], n[w], start, end, vec)
    peak[w] = peak_usage(U[w], n[w])


@njit(cache=True)
def usage_at(T, U, n, t):
    """Usage row of the segment containing ``t``."""
    return U[_segment_of(T, n, t + EPS)]


@njit(cache=True)
def peak_usage(U, n):
    """Per-column maximum of ``U[:n]`` (one worker's peak usage over its timeline)."""
    out = np.zeros(U.shape[1])
    for k in range(n):
        for c in range(U.shape[1]):
            if U[k, c] > out[c]:
                out[c] = U[k, c]
    return out


@njit(cache=True)
def _pruned_into(T, U, n, cap, peak, dem, nres, gcount, gshare, release, duration, speed, eligible,
                 bounds, bucket, now, lb_dem, lb_share, edge, by_finish, out, evaluated):
    """The body of ``earliest_pruned``: fills ``out`` (pre-set to +inf), lists the
    evaluated workers in ``evaluated`` and returns how many there are."""
    W = T.shape[0]
    NB = bounds.shape[0]
    row = bounds[bucket]
    lastblock = np.zeros(U.shape[2] - nres + 1, dtype=np.int64)
    # the K most promising workers (smallest bounds, kept sorted) are tried first,
    # so that ``best`` is tight before the pruning pass over everyone
    K = 8
    top = np.full(K, -1, dtype=np.int64)
    topv = np.full(K, np.inf)
    for w in range(W):
        if eligible[w]:
            lb = max(release, row[w]) + (duration / speed[w] if by_finish else 0.0)
            if lb < topv[K - 1]:
                j = K - 1
                while j > 0 and topv[j - 1] > lb:
                    topv[j] = topv[j - 1]
                    top[j] = top[j - 1]
                    j -= 1
                topv[j] = lb
                top[j] = w
    if top[0] < 0:
        return 0
    best = np.inf
    count = 0
    for step in range(K + W):
        if step < K:
            w = top[step]
            if w < 0:
                continue
        else:
            w = step - K
            if not eligible[w] or out[w] < np.inf:
                continue
        dur = duration / speed[w]
        extra = dur if by_finish else 0.0
        lb = max(release, row[w])
        if lb + extra > best + 1e-9 * max(1.0, abs(best)):
            continue
        # does the task fit beside the worker's peak usage (then at any time)? Written
        # out: a call with array arguments costs more than the check in this loop
        fits = True
        for r in range(nres):
            if not (peak[w, r] + dem[r] <= cap[w, r] + EPS):
                fits = False
                break
        if fits and gcount > 0:
            free = 0
            for d in range(nres, peak.shape[1]):
                if peak[w, d] + gshare <= cap[w, d] + EPS:
                    free += 1
            fits = free >= gcount
        if fits:
            s = max(release, T[w, 0])  # fits beside everything the worker ever holds
        else:
            s = earliest_start(T, U, n, cap, w, dem, nres, gcount, gshare, release, dur, lastblock)
        out[w] = s
        evaluated[count] = w
        count += 1
        if s > lb + EPS:  # the bound was loose here: refresh it
            fit = earliest_start(T, U, n, cap, w, lb_dem, nres, gcount, lb_share, now, edge / speed[w], lastblock)
            for b in range(bucket, NB):
                if fit > bounds[b, w]:
                    bounds[b, w] = fit
        if s + extra < best:
            best = s + extra
    return count


@njit(cache=True)
def earliest_pruned(T, U, n, cap, peak, dem, nres, gcount, gshare, release, duration, speed, eligible,
                    bounds, bucket, now, lb_dem, lb_share, edge, by_finish):
    """Like ``earliest_starts`` but only evaluates workers that can still win.

    The task takes ``duration / speed[w]`` on worker ``w``.
    ``peak[w]`` is the worker's peak usage (``peak_usage``): a task that fits beside it
    starts at once without a scan. ``bounds[b, w]`` is a lower bound on the earliest
    start on ``w`` of any task whose
    demand is at least (``lb_dem``, ``gcount`` x ``lb_share``), release at least ``now``
    and duration in bucket ``b`` or above; this task is in ``bucket`` and ``edge``
    (<= ``duration``) is that bucket's lower edge. Bounds stay valid because
    timelines only ever gain usage; every worker evaluated here gets its bound
    refreshed exactly (and carried to the higher buckets).
    The key (start, or start + duration when ``by_finish``) is exact for every worker
    whose key is within 1e-9 (relative) of the minimum; pruned workers get +inf.
    Complexity: O(W) plus two scans per worker that could still win.
    """
    W = T.shape[0]
    out = np.full(W, np.inf)
    evaluated = np.empty(W, dtype=np.int64)
    _pruned_into(T, U, n, cap, peak, dem, nres, gcount, gshare, release, duration, speed, eligible,
                 bounds, bucket, now, lb_dem, lb_share, edge, by_finish, out, evaluated)
    return out


@njit(cache=True)
def _choose_among(T, U, n, cap, nres, starts, duration, speed, load, dem, gpu_milli, mode, cand, count):
    """``choose_worker`` restricted to workers ``cand[:count]`` (all others have +inf)."""
    key = np.inf
    for i in range(count):
        w = cand[i]
        v = starts[w] + (duration / speed[w] if mode == 0 else 0.0)
        if v < key:
            key = v
    if key == np.inf:
        return -1
    tie = key + 1e-9 * max(1.0, abs(key))
    best = -1
    best_score = -np.inf
    ndev = U.shape[2] - nres
    ncols = nres + (1 if ndev > 0 else 0)
    fr = np.zeros(ncols)
    seg_t = key + EPS
    for i in range(count):
        w = cand[i]
        v = starts[w] + (duration / speed[w] if mode == 0 else 0.0)
        if v > tie:
            continue
        if mode == 0:
            score = -load[w]
        else:
            # written out (a call with array arguments per worker costs more than the
            # score); sums run left to right like ``ndarray.mean``, so the scores are
            # bit-identical to the array expressions this replaced
            k, hi = 0, n[w] - 1  # _segment_of(T[w], n[w], key + EPS)
            if hi > 0 and T[w, 1] > seg_t:  # the common case: the first segment
                hi = 0
            while k < hi:
                mid = (k + hi + 1) // 2
                if T[w, mid] <= seg_t:
                    k = mid
                else:
                    hi = mid - 1
            for r in range(nres):
                fr[r] = (U[w, k, r] + dem[r]) / cap[w, r] if cap[w, r] > 0 else 0.0
            if ndev > 0:
                used = gpu_milli
                total = 0.0
                for c in range(nres, nres + ndev):
                    used += U[w, k, c]
                    total += cap[w, c]
                fr[nres] = used / total if total > 0 else 0.0
            acc = 0.0
            for c in range(ncols):
                acc += fr[c]
            mean = acc / ncols if ncols > 0 else 0.0  # no resource column: every worker ties
            if mode == 1:
                score = -mean
            elif mode == 2:
                score = mean
            else:
                acc = 0.0
                for c in range(ncols):
                    d = fr[c] - mean
                    acc += d * d
                score = (-np.sqrt(acc / ncols) if ncols > 0 else 0.0) - 1e-3 * mean
        # ties to the lowest index whatever the visiting order
        if best < 0 or score > best_score or (score == best_score and w < best):
            best = w
            best_score = score
    return best


@njit(cache=True)
def choose_worker(T, U, n, cap, nres, starts, duration, speed, load, dem, gpu_milli, mode):
    """Pick a worker from ``starts`` (+inf = infeasible); -1 if none.

    The task takes ``duration / speed[w]`` on worker ``w``.
    ``mode`` 0 = earliest finish (``starts + duration``), ties to the least ``load`` then
    the lowest index. Modes 1-3 take the workers that can start earliest (within
    1e-9) and score the allocated fractions after placing the task at that time
    (resources in column order, GPU devices pooled into one column when the problem
    has devices): 1 least allocated (spread), 2 most allocated (pack), 3 most even
    fractions (balanced; ties to least allocated). Ties go to the lowest index.
    """
    cand = np.arange(starts.shape[0])
    return _choose_among(T, U, n, cap, nres, starts, duration, speed, load, dem, gpu_milli, mode,
                         cand, starts.shape[0])


@njit(cache=True)
def greedy_pick(T, U, n, cap, peak, dem, nres, gcount, gshare, gpu_milli, release, duration, speed, eligible,
                bounds, bucket, now, lb_dem, lb_share, edge, load, mode):
    """One greedy step: ``choose_worker`` over the starts of ``earliest_pruned``.

    Arguments as for those two kernels (``by_finish`` is ``mode == 0``); the choice
    only visits the workers the pruned pass evaluated (all others are +inf).
    Returns ``(worker, start)``, ``(-1, inf)`` when no worker can host the task.
    """
    W = T.shape[0]
    out = np.full(W, np.inf)
    cand = np.empty(W, dtype=np.int64)
    count = _pruned_into(T, U, n, cap, peak, dem, nres, gcount, gshare, release, duration, speed, eligible,
                         bounds, bucket, now, lb_dem, lb_share, edge, mode == 0, out, cand)
    w = _choose_among(T, U, n, cap, nres, out, duration, speed, load, dem, gpu_milli, mode, cand, count)
    return w, (out[w] if w >= 0 else np.inf)


# ------------------------------------------------------------------ plain-Python references


def _segments(T, U, n):
    return [(T[k], T[k + 1] if k + 1 < n else math.inf, list(U[k])) for k in range(n)]


def earliest_start_ref(T, U, n, cap, dem, nres, gcount, gshare, release, dur):
    """Naive reference: try every candidate start, check every overlapping segment."""
    segs = _segments(T, U, n)
    candidates = sorted({max(release, T[0])} | {s for s, _, _ in segs if s > release})
    for t in candidates:
        window = [u for s, e, u in segs if e > t + EPS and s < t + dur - EPS]
        if not all(u[r] + dem[r] <= cap[r] + EPS for u in window for r in range(nres)):
            continue
        ndev = len(cap) - nres
        free = sum(
            1 for d in range(ndev)
            if max(u[nres + d] for u in window) + gshare <= cap[nres + d] + EPS
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


def choose_worker_ref(usage_rows_at, cap, nres, starts, dur, load, dem, gpu_milli, mode):
    """Reference for ``choose_worker``; ``usage_rows_at(w, t)`` returns worker w's usage row."""
    ndev = len(cap[0]) - nres
    keys = [s + (d if mode == 0 else 0.0) for s, d in zip(starts, dur, strict=True)]
    key = min(keys)
    if math.isinf(key):
        return -1
    cands = [w for w, k in enumerate(keys) if k <= key + 1e-9 * max(1.0, abs(key))]

    def score(w):
        if mode == 0:
            return -load[w]
        row = usage_rows_at(w, key)
        fr = [(row[r] + dem[r]) / cap[w][r] if cap[w][r] > 0 else 0.0 for r in range(nres)]
        if ndev:
            total = sum(cap[w][nres:])
            fr.append((gpu_milli + sum(row[nres:])) / total if total > 0 else 0.0)
        if not fr:  # no resource column: every worker ties
            return 0.0
        mean = sum(fr) / len(fr)
        std = math.sqrt(sum((x - mean) ** 2 for x in fr) / len(fr))
        return {1: -mean, 2: mean, 3: -std - 1e-3 * mean}[mode]

    return max(cands, key=lambda w: (score(w), -w))
