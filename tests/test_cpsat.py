"""CP-SAT: agrees with the exhaustive optimum on regular objectives; bounds are valid."""

from __future__ import annotations

import pytest
from _tiny import exhaustive, tiny_problem

from agentic_sched import example_problem, generate_problem, validate
from agentic_sched.planners import CpSatPlanner
from agentic_sched.planners.bounds import lower_bound
from agentic_sched.planners.cpsat import CpSatLns
from agentic_sched.planners.insertion import ProblemArrays
from agentic_sched.planners.lns import best_construction


@pytest.mark.parametrize("seed", range(4))
def test_cpsat_agrees_with_exhaustive(seed: int) -> None:
    problem = tiny_problem(seed, imbalance=0.0)
    plan = CpSatPlanner(num_workers=2).plan(problem, 20)
    assert plan is not None and validate(problem, plan) == []
    assert plan.status == "optimal"
    assert plan.objective == pytest.approx(exhaustive(problem), rel=1e-6)


def test_cpsat_bound_is_below_objective_with_imbalance_and_rounding() -> None:
    problem = example_problem("tiny")  # speed 1.5: off the grid, sizes rounded up
    plan = CpSatPlanner().plan(problem, 5)
    assert plan is not None and validate(problem, plan) == []
    assert plan.bound <= plan.objective
    assert "rounded up" in plan.detail


def test_cpsat_window_lns_keeps_plan_valid_and_not_worse() -> None:
    problem = generate_problem(60, 8, seed=3, family="deadline")
    a = ProblemArrays(problem)
    import time

    import numpy as np
    s = best_construction(a, time.perf_counter() + 1, np.random.default_rng(0))
    before = s.objective()
    CpSatLns(num_workers=2, window_s=0.2).improve(s, time.perf_counter() + 1.5)
    plan = s.to_plan(planner="cpsat-lns", started=time.perf_counter())
    assert validate(problem, plan) == []
    assert plan.objective <= before + 1e-6
    assert lower_bound(problem) <= plan.objective
