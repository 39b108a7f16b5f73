"""Edge cases of the FORMATS.md contract found by an independent re-implementation of it:
absolute tolerances, problems where no task demands anything, running work that
already overloads a worker, deadlines before ``now``, numbers beyond the float range.
Every planner must answer with a plan our validator (and a literal reader of the
contract) accepts."""

from __future__ import annotations

import json

import pytest

from agentic_sched import InvalidProblem, Plan, Problem, cost, validate
from agentic_sched.planners import PLANNER_NAMES, get_planner
from agentic_sched.planners import portfolio as portfolio_mod

PLANNERS = sorted(PLANNER_NAMES)


def _problem(doc: dict) -> Problem:
    return Problem.from_json(json.dumps({"format": "agentic-sched/problem/v1", **doc}))


def _plans(problem: Problem) -> dict[str, Plan]:
    out = {}
    for name in PLANNERS:
        plan = get_planner(name).plan(problem, 0.3)
        assert validate(problem, plan) == [], (name, validate(problem, plan))
        assert abs(cost(problem, plan)["objective"] - plan.objective) <= 1e-6 * max(1.0, plan.objective), name
        out[name] = plan
    return out


def test_every_planner_answers_when_no_task_demands_anything():
    p = _problem({"workers": [{"id": "w0", "capacity": {"cpu": 1}}],
                  "tasks": [{"id": "t0", "demand": {}, "duration": 1.0}, {"id": "t1", "duration": 2.0}]})
    for name, plan in _plans(p).items():
        assert len(plan.assignments) == 2, name


@pytest.mark.parametrize("task_demand", [{"cpu": 0}, {}, {"gpu_mem": 1}])
def test_running_work_that_overloads_a_worker_blocks_every_task_until_it_ends(task_demand):
    # 1.5 cpu (and 3 GB of a resource no task asks for) held on a 1 cpu / 2 GB worker until 0.5
    p = _problem({"workers": [{"id": "w0", "capacity": {"cpu": 1, "mem": 2, "gpu_mem": 4},
                               "running": [{"task": "r0", "demand": {"cpu": 0.5, "mem": 1}, "until": 7.0},
                                           {"task": "r1", "demand": {"cpu": 1, "mem": 2}, "until": 0.5}]}],
                  "tasks": [{"id": "t0", "demand": task_demand, "duration": 1.0}]})
    for name, plan in _plans(p).items():
        assert [a.start for a in plan.assignments] == [0.5], name


def test_cpsat_and_portfolio_handle_a_deadline_before_now():
    p = _problem({"now": 10.0, "workers": [{"id": "w0", "capacity": {"cpu": 1}}],
                  "tasks": [{"id": "t0", "demand": {"cpu": 1}, "duration": 1, "deadline": 0.0}]})
    plans = _plans(p)
    best = min(plan.objective for plan in plans.values())
    assert best == pytest.approx(33.0)  # lateness 2*11 + miss 10 + makespan 1
    for name in ("cpsat", "portfolio"):
        assert plans[name].objective == pytest.approx(best), name
        assert plans[name].bound is not None and plans[name].bound <= best + 1e-9, name


def test_validity_tolerance_is_absolute():
    late = _problem({"now": 1e6, "workers": [{"id": "w1", "capacity": {"cpu": 1}}],
                     "tasks": [{"id": "t1", "demand": {"cpu": 1}, "duration": 1.0}]})
    plan = Plan.from_json(json.dumps({"format": "agentic-sched/plan/v1", "assignments": [
        {"task": "t1", "worker": "w1", "start": 1e6, "end": 1e6 + 1.5, "devices": []}], "unassigned": []}))
    assert [v.rule for v in validate(late, plan)] == [3]
    over = _problem({"workers": [{"id": "w1", "capacity": {"mem_mb": 8192}}],
                     "tasks": [{"id": t, "demand": {"mem_mb": 4096.003}, "duration": 10} for t in "ab"]})
    both = Plan.from_json(json.dumps({"format": "agentic-sched/plan/v1", "assignments": [
        {"task": t, "worker": "w1", "start": 0.0, "end": 10.0, "devices": []} for t in "ab"], "unassigned": []}))
    assert [v.rule for v in validate(over, both)] == [4]


def test_planners_never_overfill_large_capacities():
    # 16 bytes over 16 GiB: a relative slack of 1e-9 would let both run at once
    p = _problem({"workers": [{"id": "w1", "capacity": {"cpu": 8, "mem_bytes": 17179869184}}],
                  "tasks": [{"id": t, "demand": {"cpu": 1, "mem_bytes": 8589934600}, "duration": 10} for t in "ab"]})
    for name, plan in _plans(p).items():
        starts = sorted(a.start for a in plan.assignments)
        assert len(starts) == 2 and starts[1] >= starts[0] + 10 - 1e-9, name


@pytest.mark.parametrize(("text", "path"), [
    ('"tasks": [{"id": "t", "duration": 1, "gpu": {"count": 1e400}}]', "tasks[0].gpu.count"),
    ('"tasks": [{"id": "t", "duration": 1, "demand": {"cpu": 1' + "0" * 400 + "}}]", "tasks[0].demand.cpu"),
])
def test_numbers_beyond_the_float_range_are_refused_with_their_path(text, path):
    doc = '{"format": "agentic-sched/problem/v1", "workers": [{"id": "w", "capacity": {"cpu": 1}}], ' + text + "}"
    with pytest.raises(InvalidProblem, match=path.replace("[", r"\[").replace("]", r"\]")):
        Problem.from_json(doc)


def test_device_indices_are_ascii_digits():
    doc = {"workers": [{"id": "w", "capacity": {"cpu": 1}, "devices": [{"kind": "gpu"}, {"kind": "gpu"}],
                        "running": [{"task": "r", "until": 5, "devices": {"²": 500}}]}], "tasks": []}
    with pytest.raises(InvalidProblem, match=r"running\[0\]\.devices"):
        _problem(doc)


def test_portfolio_answers_even_when_no_candidate_is_valid(monkeypatch):
    p = _problem({"workers": [{"id": "w", "capacity": {"cpu": 1}}],
                  "tasks": [{"id": "t", "demand": {"cpu": 1}, "duration": 1}]})
    monkeypatch.setattr(portfolio_mod, "validate", lambda problem, plan: ["rule 4: pretend"])
    plan = get_planner("portfolio").plan(p, 0.3)
    assert plan.status == "fallback" and not plan.assignments
    assert "no planner produced a valid plan" in plan.unassigned[0].reason
    assert validate(p, plan) == []
