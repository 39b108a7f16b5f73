"""A*: kernel vs reference, proved optimality vs an independent exhaustive search."""

from __future__ import annotations

import numpy as np
import pytest
from _tiny import exhaustive, tiny_problem
from agentic_sched.kernels import astar as KA

from agentic_sched import validate
from agentic_sched.planners import AStarPlanner


def _random_state(rng: np.random.Generator):
    W, nres, ndev = int(rng.integers(1, 4)), 2, int(rng.integers(0, 3))
    m = int(rng.integers(0, 10))
    iw = rng.integers(0, W, m).astype(np.int64)
    st = np.round(rng.uniform(0, 10, m), 1)
    en = st + np.round(rng.uniform(0.5, 5, m), 1)
    dem = rng.integers(0, 3, (m, nres)).astype(float)
    dev = (rng.integers(0, 3, (m, ndev)) * 250).astype(float)
    cap = rng.integers(2, 6, (W, nres)).astype(float)
    capdev = np.full((W, ndev), 1000.0)
    return iw, st, en, dem, dev, m, cap, capdev, ndev


@pytest.mark.parametrize("seed", range(60))
def test_child_starts_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    iw, st, en, dem, dev, m, cap, capdev, ndev = _random_state(rng)
    W = cap.shape[0]
    tdem = rng.integers(0, 3, cap.shape[1]).astype(float)
    gcount = int(rng.integers(0, ndev + 1))
    gshare = float(rng.choice([250.0, 500.0, 1000.0])) if gcount == 1 else 1000.0
    release = float(np.round(rng.uniform(0, 6), 1))
    dur = np.round(rng.uniform(0.5, 4, W), 1)
    elig = rng.random(W) < 0.8
    got = KA.child_starts(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, release, dur, elig)
    ref = KA.child_starts_ref(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, release, dur, elig)
    np.testing.assert_allclose(got[0], ref[0])
    fin = np.isfinite(ref[0])
    if gcount:
        np.testing.assert_array_equal(got[1][fin, :gcount], ref[1][fin, :gcount])


@pytest.mark.parametrize("seed", range(5))
def test_astar_optimal_on_regular_objective_matches_exhaustive(seed: int) -> None:
    problem = tiny_problem(seed, imbalance=0.0)
    plan = AStarPlanner().plan(problem, 60)
    assert validate(problem, plan) == []
    assert plan.status == "optimal"
    assert plan.bound == pytest.approx(plan.objective)
    assert plan.objective == pytest.approx(exhaustive(problem), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_astar_full_objective_equals_exhaustive_list_search(seed: int) -> None:
    problem = tiny_problem(seed, imbalance=1.0)
    plan = AStarPlanner(order="demand").plan(problem, 60)
    assert validate(problem, plan) == []
    assert "complete" in plan.detail
    assert plan.objective == pytest.approx(exhaustive(problem), rel=1e-9)
    assert plan.bound is not None and plan.bound <= plan.objective + 1e-9


def test_astar_anytime_returns_valid_plan_with_bound() -> None:
    problem = tiny_problem(11, n_tasks=8, n_workers=3)
    plan = AStarPlanner(max_nodes=5).plan(problem, 60)
    assert validate(problem, plan) == []
    assert plan.bound is not None and plan.bound <= plan.objective
    assert plan.status in ("feasible", "optimal")


def test_shared_gpu_is_not_claimed_optimal_beyond_its_bound() -> None:
    problem = tiny_problem(2, shared_gpu=True)
    plan = AStarPlanner().plan(problem, 60)
    assert validate(problem, plan) == []
    assert plan.objective == pytest.approx(exhaustive(problem), rel=1e-9)
    assert plan.bound <= plan.objective


@pytest.mark.parametrize("seed", range(20))
def test_compact_rows_matches_reference(seed: int) -> None:
    from agentic_sched.kernels import lns as KL

    rng = np.random.default_rng(seed)
    W, room, C = 3, 12, 2
    T = np.sort(rng.uniform(0, 10, (W, room)), axis=1)
    U = rng.integers(0, 2, (W, room, C)).astype(float)
    U[rng.random((W, room, C)) < 0.1] = 1e-12
    n = rng.integers(1, room + 1, W).astype(np.int64)
    T2, U2 = T.copy(), U.copy()
    got = KL.compact_rows(T, U, n)
    ref = KL.compact_rows_ref(T2, U2, n)
    np.testing.assert_array_equal(got, ref)
    for w in range(W):
        np.testing.assert_allclose(T[w, : got[w]], T2[w, : ref[w]])
        np.testing.assert_allclose(U[w, : got[w]], U2[w, : ref[w]])


@pytest.mark.parametrize("seed", range(15))
def test_expand_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    iw, st, en, dem, dev, m, cap, capdev, ndev = _random_state(rng)
    W, T = cap.shape[0], int(rng.integers(1, 5))
    tdem = rng.integers(0, 3, (T, cap.shape[1])).astype(float)
    gcount = rng.integers(0, ndev + 1, T).astype(np.int64)
    gshare = np.where(gcount == 1, rng.choice([250.0, 1000.0], T), 1000.0)
    rel = np.round(rng.uniform(0, 6, T), 1)
    dur = np.round(rng.uniform(0.5, 4, (T, W)), 1)
    elig = rng.random((T, W)) < 0.8
    got = KA.expand(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, rel, dur, elig)
    ref = KA.expand_ref(iw, st, en, dem, dev, m, cap, capdev, tdem, gcount, gshare, rel, dur, elig)
    np.testing.assert_allclose(got[0], ref[0])
    np.testing.assert_array_equal(np.where(np.isfinite(ref[0])[..., None], got[1], 0),
                                  np.where(np.isfinite(ref[0])[..., None], ref[1], 0))
