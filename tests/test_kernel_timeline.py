"""The timeline kernels against their plain-Python references on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agentic_sched.kernels import timeline as K


def _random_profile(rng: np.random.Generator, nres: int, ndev: int, m: int):  # type: ignore[no-untyped-def]
    C = nres + ndev
    T = np.zeros(m + 8)
    U = np.zeros((m + 8, C))
    cap = np.concatenate([rng.choice([2.0, 4.0, 8.0], nres), np.where(rng.random(ndev) < 0.8, 1000.0, 0.0)])
    n = 1
    for _ in range(m // 2):
        s = float(rng.integers(0, 20))
        e = s + float(rng.integers(1, 6))
        vec = np.concatenate([rng.choice([0.0, 1.0, 2.0], nres), rng.choice([0.0, 250.0, 500.0], ndev)])
        n = K.add_interval(T, U, n, s, e, vec)
    return T, U, n, cap


@pytest.mark.parametrize("seed", range(60))
def test_earliest_start_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nres, ndev = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    T, U, n, cap = _random_profile(rng, nres, ndev, int(rng.integers(2, 14)))
    dem = rng.choice([0.0, 1.0, 2.0, 3.0], nres)
    gcount = int(rng.integers(0, ndev + 1)) if ndev else 0
    gshare = float(rng.choice([250.0, 500.0, 1000.0])) if gcount == 1 else 1000.0
    release, dur = float(rng.uniform(0, 15)), float(rng.uniform(0.5, 6))
    fast = K.earliest_start(T, U, n, cap, dem, nres, gcount, gshare, release, dur)
    slow = K.earliest_start_ref(T, U, n, cap, dem, nres, gcount, gshare, release, dur)
    assert (math.isinf(fast) and math.isinf(slow)) or fast == pytest.approx(slow)


@pytest.mark.parametrize("seed", range(30))
def test_add_interval_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    T, U, n, _ = _random_profile(rng, 2, 1, 8)
    segs = [(T[k], T[k + 1] if k + 1 < n else math.inf, list(U[k])) for k in range(n)]
    s = float(rng.integers(0, 25))
    e = s + float(rng.integers(1, 5))
    vec = np.array([1.0, 2.0, 300.0])
    n2 = K.add_interval(T, U, n, s, e, vec)
    got = [(T[k], list(U[k])) for k in range(n2)]
    want = [(a, u) for a, _, u in K.add_interval_ref(segs, s, e, vec)]
    # the kernel merges equal breakpoints; compare the step functions at every breakpoint
    for t in sorted({a for a, _ in got} | {a for a, _ in want}):
        k1 = max(i for i, (a, _) in enumerate(got) if a <= t)
        k2 = max(i for i, (a, _) in enumerate(want) if a <= t)
        assert got[k1][1] == pytest.approx(want[k2][1])


def test_pick_devices_tightest_share_and_lowest_whole() -> None:
    T = np.zeros(8)
    U = np.zeros((8, 3))
    cap = np.array([8.0, 1000.0, 1000.0])
    n = K.add_interval(T, U, 1, 0.0, 10.0, np.array([0.0, 0.0, 600.0]))
    assert list(K.pick_devices(T, U, n, cap, 1, 1, 300.0, 0.0, 1.0)) == [1]  # tightest: device with 600 used
    assert list(K.pick_devices(T, U, n, cap, 1, 1, 1000.0, 0.0, 1.0)) == [0]
    assert list(K.pick_devices(T, U, n, cap, 1, 2, 1000.0, 10.0, 1.0)) == [0, 1]
