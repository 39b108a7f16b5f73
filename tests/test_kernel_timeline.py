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


@pytest.mark.parametrize("seed", range(200))
def test_earliest_start_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nres, ndev = int(rng.integers(1, 3)), int(rng.integers(0, 3))
    T, U, n, cap = _random_profile(rng, nres, ndev, int(rng.integers(2, 14)))
    dem = rng.choice([0.0, 1.0, 2.0, 3.0], nres)
    gcount = int(rng.integers(0, ndev + 1)) if ndev else 0
    gshare = float(rng.choice([250.0, 500.0, 1000.0])) if gcount == 1 else 1000.0
    release, dur = float(rng.uniform(0, 15)), float(rng.uniform(0.5, 6))
    fast = K.earliest_start(T[None], U[None], np.array([n]), cap[None], 0, dem, nres, gcount, gshare, release, dur,
                             np.zeros(ndev + 1, dtype=np.int64))
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


def _random_cluster(seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1000 + seed)
    W, nres, ndev, M = int(rng.integers(1, 7)), 2, int(rng.integers(0, 3)), 40
    T, U, n, cap = np.zeros((W, M)), np.zeros((W, M, nres + ndev)), np.ones(W, dtype=np.int64), []
    for w in range(W):
        Tw, Uw, nw, capw = _random_profile(rng, nres, ndev, int(rng.integers(2, 12)))
        T[w, : len(Tw)], U[w, : len(Tw)], n[w] = Tw, Uw, nw
        cap.append(capw)
    return rng, T, U, n, np.array(cap), nres, ndev


@pytest.mark.parametrize("seed", range(80))
def test_earliest_pruned_exact_for_every_possible_winner(seed: int) -> None:
    rng, T, U, n, cap, nres, ndev = _random_cluster(seed)
    W = T.shape[0]
    bounds = np.zeros((4, W))  # one bounds table per task shape, reused across calls
    dem = rng.choice([0.0, 1.0, 2.0], nres)
    gcount = int(rng.integers(0, ndev + 1)) if ndev else 0
    gshare = 500.0 if gcount == 1 else 1000.0
    speed = rng.choice([0.5, 1.0, 2.0], W)
    for _ in range(4):  # bounds from earlier calls must stay valid as usage grows
        release, duration = float(rng.uniform(0, 10)), float(rng.uniform(0.5, 5))
        dur = duration / speed
        by_finish = bool(rng.integers(0, 2))
        eligible = rng.random(W) < 0.9
        peak = np.array([K.peak_usage(U[w], n[w]) for w in range(W)])
        got = K.earliest_pruned(T, U, n, cap, peak, dem, nres, gcount, gshare, release, duration, speed, eligible,
                                bounds, 2, 0.0, dem, gshare, 0.25, by_finish)
        want = np.array([K.earliest_start_ref(T[w], U[w], n[w], cap[w], dem, nres, gcount, gshare, release, dur[w])
                         if eligible[w] else math.inf for w in range(W)])
        key = want + (dur if by_finish else 0)
        if np.isfinite(key).any():
            winners = key <= key.min() + 1e-9 * max(1.0, abs(key.min()))
            assert np.allclose(got[winners], want[winners])
        assert (got[np.isfinite(got)] >= want[np.isfinite(got)] - 1e-9).all()
        w = int(rng.integers(0, W))
        n[w] = K.add_interval(T[w], U[w], n[w], release, release + 2.0, np.concatenate([dem, np.zeros(ndev)]))


@pytest.mark.parametrize("seed", range(60))
def test_choose_worker_matches_reference(seed: int) -> None:
    rng, T, U, n, cap, nres, ndev = _random_cluster(seed)
    W = T.shape[0]
    starts = np.where(rng.random(W) < 0.8, rng.choice([0.0, 1.0, 2.0], W), np.inf)
    speed, load = rng.choice([1.0, 2.0], W), rng.choice([0.0, 1.0, 3.0], W)
    dur = 2.0 / speed
    dem, gpu_milli, mode = rng.choice([0.0, 1.0], nres), float(rng.choice([0.0, 500.0])), int(rng.integers(0, 4))
    got = K.choose_worker(T, U, n, cap, nres, starts, 2.0, speed, load, dem, gpu_milli, mode)
    want = K.choose_worker_ref(lambda w, t: K.usage_at(T[w], U[w], n[w], t), cap, nres, starts, dur, load, dem,
                               gpu_milli, mode)
    assert got == want


@pytest.mark.parametrize("seed", range(80))
def test_greedy_pick_is_choose_over_exact_starts(seed: int) -> None:
    """The fused step picks what the reference choice picks over the reference starts."""
    rng, T, U, n, cap, nres, ndev = _random_cluster(2000 + seed)
    W = T.shape[0]
    bounds = np.zeros((4, W))
    speed = rng.choice([0.5, 1.0, 2.0], W)
    load = np.zeros(W)
    gcount = int(rng.integers(0, ndev + 1)) if ndev else 0  # one bounds table: one device count
    for _ in range(6):  # bookings in between: bounds carried across steps must stay valid
        dem = rng.choice([0.0, 1.0, 2.0], nres)
        gshare = float(rng.choice([500.0, 1000.0])) if gcount == 1 else 1000.0
        gpu_milli = gcount * gshare
        release, duration = float(rng.choice([0.0, 0.0, rng.uniform(0, 10)])), float(rng.choice([1.0, 2.5]))
        eligible = rng.random(W) < 0.9
        mode = int(rng.integers(0, 4))
        peak = np.array([K.peak_usage(U[w], n[w]) for w in range(W)])
        w, start = K.greedy_pick(T, U, n, cap, peak, dem, nres, gcount, gshare, gpu_milli, release, duration, speed,
                                 eligible, bounds, 2, 0.0, np.zeros(nres), 0.0, 0.25, load, mode)
        exact = [K.earliest_start_ref(T[v], U[v], n[v], cap[v], dem, nres, gcount, gshare, release, duration / speed[v])
                 if eligible[v] else math.inf for v in range(W)]
        want = K.choose_worker_ref(lambda v, t: K.usage_at(T[v], U[v], n[v], t), cap, nres, exact,
                                   list(duration / speed), load, dem, gpu_milli, mode)
        assert w == want
        if w < 0:
            assert math.isinf(start)
            continue
        assert start == pytest.approx(exact[w])
        load[w] += duration / speed[w]
        vec = np.concatenate([dem, np.zeros(ndev)])
        n[w] = K.add_interval(T[w], U[w], n[w], start, start + duration / speed[w], vec)
