"""One test per validity rule (FORMATS.md 1-5) and per cost metric, with hand-computed numbers."""

from __future__ import annotations

import math

import pytest
from helpers_problems import problem_doc

from agentic_sched import Assignment, Plan, Problem, Unassigned, cost, validate


def _problem(**changes):  # type: ignore[no-untyped-def]
    return Problem.from_json(problem_doc(**changes))


def _plan(*assignments: Assignment, unassigned=(), objective=None) -> Plan:  # type: ignore[no-untyped-def]
    return Plan(assignments=assignments, unassigned=unassigned, objective=objective)


GOOD = (Assignment("t1", "w1", 0.0, 5.0, (1,)), Assignment("t2", "w2", 1.0, 3.0))


def _rules(problem: Problem, plan: Plan) -> list[object]:
    return [v.rule for v in validate(problem, plan)]


def test_good_plan_is_valid() -> None:
    assert validate(_problem(), _plan(*GOOD)) == []


def test_rule1_ids_and_coverage() -> None:
    p = _problem()
    assert _rules(p, _plan(GOOD[0])) == [1]  # t2 missing
    assert _rules(p, _plan(*GOOD, unassigned=(Unassigned("t2", "no"),))) == [1]  # twice
    assert _rules(p, _plan(*GOOD, Assignment("ghost", "w1", 0, 1))) == [1]
    assert _rules(p, _plan(GOOD[0], Assignment("t2", "w9", 1.0, 3.0))) == [1]


def test_rule2_requires() -> None:
    p = _problem()
    plan = _plan(Assignment("t1", "w2", 0.0, 5.0, ()), GOOD[1])
    assert 2 in _rules(p, plan)


def test_rule3_release_now_and_end() -> None:
    assert _rules(_problem(), _plan(GOOD[0], Assignment("t2", "w2", 0.9, 2.9))) == [3]  # before release 1.0
    assert _rules(_problem(now=0.5), _plan(*GOOD)) == [3]  # t1 starts before now 0.5
    assert _rules(_problem(), _plan(GOOD[0], Assignment("t2", "w2", 1.0, 3.5))) == [3]  # end != start+dur


def test_rule3_speed_scales_duration() -> None:
    doc = problem_doc()
    doc["workers"][1]["speed"] = 2.0
    p = Problem.from_json(doc)
    assert validate(p, _plan(GOOD[0], Assignment("t2", "w2", 1.0, 2.0))) == []


def test_rule4_capacity_including_running_work() -> None:
    doc = problem_doc()
    doc["tasks"].append({"id": "t3", "demand": {"cpu": 1}, "duration": 1.0})
    p = Problem.from_json(doc)
    # w1: cpu 4, running r1 holds 1 until 3; t1 (2) + t3 (1) + r1 (1) = 4 fits at t=0 ...
    ok = _plan(*GOOD, Assignment("t3", "w1", 0.0, 1.0))
    assert validate(p, ok) == []
    # ... but t3 on w2 (cpu 2) beside t2 (1) at t=1: 2 fits; at w2 with a 2-cpu t3 it would not
    doc["tasks"][2]["demand"]["cpu"] = 2
    p2 = Problem.from_json(doc)
    assert _rules(p2, _plan(*GOOD, Assignment("t3", "w1", 0.0, 1.0))) == [4]  # 2+2+1 = 5 > 4
    assert validate(p2, _plan(*GOOD, Assignment("t3", "w1", 3.0, 4.0))) == []  # r1 gone at 3


def test_rule4_resource_not_listed_has_capacity_zero() -> None:
    doc = problem_doc()
    doc["tasks"][1]["demand"]["fpga"] = 1
    assert 4 in _rules(Problem.from_json(doc), _plan(*GOOD))


def test_rule5_devices() -> None:
    p = _problem()
    assert 5 in _rules(p, _plan(Assignment("t1", "w1", 0.0, 5.0, ()), GOOD[1]))  # count
    assert 5 in _rules(p, _plan(Assignment("t1", "w1", 0.0, 5.0, (2,)), GOOD[1]))  # no such device
    # device 0 holds 500 from r1 until 3: t1 (500) fits exactly; a 600 share would not
    assert validate(p, _plan(Assignment("t1", "w1", 0.0, 5.0, (0,)), GOOD[1])) == []
    doc = problem_doc()
    doc["tasks"][0]["gpu"]["share"] = 600
    assert _rules(Problem.from_json(doc), _plan(Assignment("t1", "w1", 0.0, 5.0, (0,)), GOOD[1])) == [5]
    assert validate(Problem.from_json(doc), _plan(Assignment("t1", "w1", 3.0, 8.0, (0,)), GOOD[1])) == []


def test_objective_mismatch_reported() -> None:
    p = _problem()
    true = cost(p, _plan(*GOOD))["objective"]
    assert validate(p, _plan(*GOOD, objective=true)) == []
    assert _rules(p, _plan(*GOOD, objective=true + 1)) == ["objective"]


# ---------------------------------------------------------------- cost, by hand


def _cost_problem() -> Problem:
    return Problem.from_json({
        "format": "agentic-sched/problem/v1", "now": 1.0,
        "workers": [
            {"id": "a", "capacity": {"cpu": 4}, "health": 0.9, "idle_cost": 2.0},
            {"id": "b", "capacity": {"cpu": 2}, "speed": 2.0},
            {"id": "c", "capacity": {"mem_mb": 10}},  # no cpu: not in imbalance
        ],
        "tasks": [
            {"id": "x", "demand": {"cpu": 2}, "duration": 4.0, "deadline": 4.0, "priority": 3},
            {"id": "y", "demand": {"cpu": 1}, "duration": 4.0, "deadline": 10.0},
            {"id": "z", "demand": {"cpu": 1}, "duration": 1.0, "priority": 5},
        ],
        "weights": {"lateness": 1, "misses": 1, "makespan": 1, "imbalance": 1, "energy": 1,
                    "reliability": 1, "unassigned": 1},
    })


def test_each_cost_metric_by_hand() -> None:
    p = _cost_problem()
    # x on a [1, 5): late by 1 (deadline 4), priority 3; y on b [1, 3) (speed 2); z unassigned
    plan = _plan(Assignment("x", "a", 1.0, 5.0), Assignment("y", "b", 1.0, 3.0),
                 unassigned=(Unassigned("z", "held back"),))
    c = cost(p, plan)
    assert c["lateness"] == pytest.approx(3 * 1.0)
    assert c["misses"] == 1
    assert c["makespan"] == pytest.approx(5.0 - 1.0)
    # u_a = 2*4 / (4*4) = 0.5, u_b = 1*2 / (2*4) = 0.25 -> population std 0.125 -> 12.5
    assert c["imbalance"] == pytest.approx(12.5)
    # energy: a has idle_cost 2 and last end 5 -> 2 * (5 - 1) = 8; b has idle cost 0
    assert c["energy"] == pytest.approx(8.0)
    # reliability: (1 - 0.9) * 4 on a + 0 on b
    assert c["reliability"] == pytest.approx(0.4)
    assert c["unassigned"] == 5
    assert c["objective"] == pytest.approx(3 + 1 + 4 + 12.5 + 8 + 0.4 + 5)


def test_cost_weights_apply_and_empty_plan() -> None:
    p = _cost_problem()
    empty = _plan(unassigned=tuple(Unassigned(t.id, "r") for t in p.tasks))
    c = cost(p, empty)
    assert c["makespan"] == 0 and c["imbalance"] == 0 and c["energy"] == 0
    assert c["objective"] == pytest.approx(3 + 1 + 5)
    default = Problem(p.workers, p.tasks, p.now)  # default weights: unassigned 1000
    assert cost(default, empty)["objective"] == pytest.approx(1000 * 9)
    assert math.isfinite(cost(default, empty)["objective"])
