"""Portfolio and get_planner: every plan valid (property tests), fallback with a reason."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentic_sched import Problem, cost, example_problem, generate_problem, validate
from agentic_sched.examples import FAMILIES
from agentic_sched.planners import PLANNER_NAMES, PortfolioPlanner, get_planner, greedy, summary
from agentic_sched.planners import portfolio as P

FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):  # type: ignore[no-untyped-def]
    family = draw(st.sampled_from(FAMILIES))
    n = draw(st.integers(1, 25))
    w = draw(st.integers(1, 5))
    return generate_problem(n, w, seed=draw(st.integers(0, 10_000)), family=family, load_s=20.0)


@pytest.mark.parametrize("name", PLANNER_NAMES)
@FAST
@given(problem=problems())
def test_every_planner_returns_a_valid_plan(name: str, problem) -> None:  # type: ignore[no-untyped-def]
    plan = get_planner(name).plan(problem, 0.3)
    assert plan is not None
    assert validate(problem, plan) == []
    assert plan.objective == pytest.approx(cost(problem, plan)["objective"], rel=1e-6)
    if plan.bound is not None:
        assert plan.bound <= plan.objective + 1e-6 * max(1.0, abs(plan.objective))
    assert plan.status in ("optimal", "feasible", "fallback")


def test_portfolio_is_default_and_unknown_names_are_refused() -> None:
    assert isinstance(get_planner(), PortfolioPlanner)
    assert isinstance(get_planner("auto"), PortfolioPlanner)
    with pytest.raises(ValueError, match="choose from"):
        get_planner("nope")


def test_portfolio_not_worse_than_eft_on_deadline_family() -> None:
    problem = generate_problem(120, 12, seed=5, family="deadline")
    plan = get_planner("portfolio").plan(problem, 1.0)
    assert validate(problem, plan) == []
    assert plan.objective <= greedy(problem, "eft").objective + 1e-9
    assert "gap" in summary(plan)


def test_failing_stage_gives_fallback_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self, *args):  # type: ignore[no-untyped-def]
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(P.PortfolioPlanner, "_lns", boom)
    problem = generate_problem(60, 30, seed=1, family="deadline")
    plan = PortfolioPlanner().plan(problem, 0.5)
    assert plan.status == "fallback"
    assert "solver exploded" in plan.detail
    assert validate(problem, plan) == []


def test_invalid_candidate_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = example_problem("tiny")

    def bad(self, problem, run):  # type: ignore[no-untyped-def]
        good = greedy(problem, "eft")
        a = good.assignments[0]
        broken = attrs.evolve(a, start=a.start - 100.0, end=a.end - 100.0)
        return attrs.evolve(good, assignments=(broken, *good.assignments[1:]), objective=0.0, planner="astar")

    monkeypatch.setattr(P.PortfolioPlanner, "_astar", bad)
    plan = PortfolioPlanner().plan(problem, 1.0)
    assert plan.status == "fallback"
    assert "invalid plan" in plan.detail
    assert validate(problem, plan) == []


@pytest.mark.parametrize("name", PLANNER_NAMES)
def test_degenerate_problems_every_planner(name: str) -> None:
    """No workers, no tasks, running work on a non-GPU device: every planner answers validly."""
    F = "agentic-sched/problem/v1"
    docs = [
        {"format": F, "workers": [], "tasks": [{"id": "a", "duration": 1}]},
        {"format": F, "workers": [{"id": "w", "capacity": {"cpu": 1}}], "tasks": []},
        {"format": F, "workers": [{"id": "w", "capacity": {"cpu": 4}, "devices": [{"kind": "fpga"}, {"kind": "gpu"}],
                                   "running": [{"task": "r", "devices": {"0": 1000, "1": 500}, "until": 5}]}],
         "tasks": [{"id": "a", "duration": 1, "gpu": {"count": 1, "share": 600}}]},
    ]
    for doc in docs:
        problem = Problem.from_json(doc)
        plan = get_planner(name).plan(problem, 0.3)
        assert validate(problem, plan) == [], (name, doc)
    no_workers = get_planner(name).plan(Problem.from_json(docs[0]), 0.3)
    assert no_workers.unassigned[0].reason == "0/0 workers fit: the problem has no workers"
