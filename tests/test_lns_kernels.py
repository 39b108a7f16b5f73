"""The LNS kernels against their plain-Python references on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from agentic_sched.kernels import lns as KL


def _random_schedule(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    N, W = int(rng.integers(0, 30)), int(rng.integers(1, 9))
    worker = np.where(rng.random(N) < 0.7, rng.integers(0, W, N), -1).astype(np.int64)
    start = np.round(rng.uniform(0, 50, N), 1)
    end = start + np.round(rng.uniform(0.5, 20, N), 1)
    cpu = rng.choice([0.0, 1.0, 2.0, 4.0], N)
    health = rng.choice([1.0, 0.99, 0.9], W)
    idle = rng.choice([0.0, 0.01, 0.5], W)
    cpucap = rng.choice([0.0, 4.0, 8.0, 16.0], W)
    return worker, start, end, cpu, health, idle, cpucap


@pytest.mark.parametrize("seed", range(150))
def test_marginal_costs_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    worker, start, end, cpu, health, idle, cpucap = _random_schedule(rng)
    W = len(health)
    starts = np.where(rng.random(W) < 0.8, np.round(rng.uniform(0, 60, W), 1), np.inf)
    dur = np.round(rng.uniform(0.5, 10, W), 1)
    dl = float(rng.choice([np.inf, float(rng.uniform(5, 70))]))
    prio, cpu_i = float(rng.integers(1, 4)), float(rng.choice([0.0, 1.0, 4.0]))
    weights = np.array([2.0, 10.0, 1.0, float(rng.choice([0.0, 1.0, 3.0])), 0.5, 1.0])
    now, target = float(rng.choice([0.0, 2.0])), float(rng.uniform(0, 80))
    args = (starts, dur, dl, prio, cpu_i, worker, start, end, cpu, health, idle, cpucap, now, target, weights)
    fast = KL.marginal_costs(*args)
    slow = KL.marginal_costs_ref(*args)
    assert np.array_equal(np.isinf(fast), np.isinf(slow))
    ok = np.isfinite(slow)
    assert fast[ok] == pytest.approx(slow[ok], rel=1e-9, abs=1e-9)


def test_marginal_cost_is_the_objective_change() -> None:
    """Placing a task changes the schedule's FORMATS.md objective by its marginal cost
    when the makespan does not move (imbalance included exactly)."""
    from agentic_sched import generate_problem
    from agentic_sched.planners.insertion import ProblemArrays, construct, slack_order

    problem = generate_problem(60, 8, seed=5, family="deadline")
    a = ProblemArrays(problem)
    target = a.makespan_lower_bound()
    s = construct(a, slack_order(a, target), target)
    checked = 0
    for i in range(0, a.N, 7):
        s.remove(i)
        before = s.objective()
        starts = s.earliest(i)
        c = s.marginal(i, starts, target)
        mk = s._makespan_end()
        if mk - a.now < target:
            s.insert(i, target)
            continue
        for w in np.flatnonzero(np.isfinite(c)):
            if starts[w] + a.dur_on[i, w] > mk:
                continue
            s.book(i, int(w), float(starts[w]))
            placed = s.objective() - before + problem.weights.unassigned * a.prio[i]
            assert placed == pytest.approx(c[w], rel=1e-7, abs=1e-6)
            s.remove(i)
            checked += 1
        s.insert(i, target)
    assert checked > 50


@pytest.mark.parametrize("seed", range(20))
def test_compact_rows_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    W, m, C = 3, 10, 2
    T = np.sort(rng.integers(0, 30, (W, m)).astype(float), axis=1)
    U = rng.choice([0.0, 1.0, 1e-12], (W, m, C))
    n = rng.integers(1, m + 1, W).astype(np.int64)
    T2, U2 = T.copy(), U.copy()
    got = KL.compact_rows(T, U, n)
    want = KL.compact_rows_ref(T2, U2, n)
    assert np.array_equal(got, want)
    for w in range(W):
        assert np.allclose(T[w, : got[w]], T2[w, : want[w]])
        assert np.allclose(U[w, : got[w]], U2[w, : want[w]])
