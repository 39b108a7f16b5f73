"""Kernels for local search on step-function timelines (layout of ``timeline.py``).

- ``compact_rows(T, U, n)``: merge adjacent segments whose usage is equal (within
  EPS) in place and return the new breakpoint counts; removing booked intervals
  leaves such redundant breakpoints behind, and they slow every later search.

``*_ref`` functions are plain-Python references tested against the kernels.
Nothing here imports agentic_sched.
"""

from __future__ import annotations

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
