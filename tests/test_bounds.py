"""The objective lower bound: valid below every plan, and the imbalance/energy dual tight."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest

from agentic_sched import cost, example_problem, generate_problem
from agentic_sched.examples import FAMILIES
from agentic_sched.model import Weights
from agentic_sched.planners import bounds as BD
from agentic_sched.planners import get_planner
from agentic_sched.planners.bounds import lower_bound


def _primal(c, rate, zero, B, kappa):  # type: ignore[no-untyped-def]
    """min kappa * ||v - mean(v)|| + c . v  s.t. rate . v = B, v >= 0, v[zero] = 0 (SLSQP)."""
    opt = pytest.importorskip("scipy.optimize")
    n = len(c)
    bounds = [(0.0, 0.0) if z else (0.0, None) for z in zero]
    f = lambda v: kappa * math.sqrt(float(((v - v.mean()) ** 2).sum()) + 1e-14) + float(c @ v)  # noqa: E731
    use = ~zero & (rate > 0)
    best = math.inf
    starts = [np.where(use, B / rate[use].sum(), 0.0)]
    k = int(np.argmin(np.where(use, c / np.where(rate > 0, rate, 1.0), np.inf)))
    starts.append(np.where(np.arange(n) == k, B / rate[k], 0.0))
    for v0 in starts:
        r = opt.minimize(f, v0, bounds=bounds, method="SLSQP",
                         constraints=[{"type": "eq", "fun": lambda v: (rate @ v - B) / B}],
                         options={"maxiter": 2000, "ftol": 1e-13})
        if abs(rate @ r.x - B) <= 1e-6 * B and (r.x >= -1e-9).all():
            best = min(best, f(np.maximum(r.x, 0.0)))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_balance_dual_is_below_and_close_to_the_primal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    rate = rng.choice([8.0, 16.0, 32.0, 10.0], n)
    c = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.0, 3.0, n))
    zero = rng.random(n) < 0.2
    if zero.all():
        zero[0] = False
    B = float(rng.uniform(10.0, 1000.0))
    kappa = float(rng.choice([0.0, 0.1, 1.0, 10.0]))
    lam_top = float(c.sum() / rate.sum() + 100.0)
    dual = BD._dual_value(c, rate, zero, B, kappa, lam_top)
    primal = _primal(c, rate, zero, B, kappa)
    assert dual <= primal + 1e-7 * max(1.0, primal)
    assert dual >= primal - 2e-3 * max(1.0, primal)


def _heavy(problem, **w):  # type: ignore[no-untyped-def]
    return attrs.evolve(problem, weights=attrs.evolve(Weights(), **w))


CASES = [
    ("deadline 500x50", generate_problem(500, 50, seed=7, family="deadline"), {}),
    ("tiny", example_problem("tiny"), {}),
    *[(f"{f} {s}", generate_problem(30, 4, seed=s, family=f, load_s=20.0), w)
      for f in FAMILIES for s in (1, 2)
      for w in ({}, {"imbalance": 20.0, "energy": 5.0}, {"imbalance": 200.0, "makespan": 0.1, "reliability": 30.0})],
]


@pytest.mark.parametrize(("label", "problem", "weights"), CASES, ids=[c[0] + str(c[2]) for c in CASES])
def test_bound_is_below_every_plan(label: str, problem, weights) -> None:  # type: ignore[no-untyped-def]
    problem = _heavy(problem, **weights) if weights else problem
    lb = lower_bound(problem)
    for name in ("eft", "spread", "pack", "lns", "portfolio"):
        plan = get_planner(name).plan(problem, 0.3)
        obj = cost(problem, plan)["objective"]
        assert lb <= obj + 1e-6 * max(1.0, abs(obj)), (name, lb, obj)


def test_bound_sees_imbalance_and_energy_on_the_deadline_problem() -> None:
    """500x50 deadline: the makespan bound alone is 288.6; the imbalance/energy part adds
    ~36 (workers with idle cost or health < 1 make perfect balance expensive)."""
    problem = generate_problem(500, 50, seed=7, family="deadline")
    lb = lower_bound(problem)
    assert 324.0 < lb < 325.0
    plan = get_planner("portfolio").plan(problem, 1.0)
    assert lb <= plan.objective
