"""Greedy planners: always valid, cost agrees with an independent recomputation, reasons."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import problem_docs

from agentic_sched import (
    GREEDY,
    Problem,
    best_greedy,
    example_problem,
    generate_problem,
    greedy,
    validate,
)


def independent_objective(doc: dict, plan_doc: dict) -> float:  # type: ignore[type-arg]
    """FORMATS.md cost straight from the JSON documents (no library code)."""
    now = doc.get("now", 0.0)
    w = {x["id"]: x for x in doc["workers"]}
    t = {x["id"]: x for x in doc["tasks"]}
    weights = {"lateness": 2, "misses": 10, "makespan": 1, "imbalance": 1, "energy": 0.5,
               "reliability": 1, "unassigned": 1000, **doc.get("weights", {})}
    A = plan_doc["assignments"]
    late = sum(t[a["task"]].get("priority", 1) * max(0.0, a["end"] - t[a["task"]]["deadline"])
               for a in A if t[a["task"]].get("deadline") is not None)
    misses = sum(1 for a in A if t[a["task"]].get("deadline") is not None and a["end"] > t[a["task"]]["deadline"])
    mk = max((a["end"] for a in A), default=now) - now if A else 0.0
    imb = 0.0
    cpu_w = [x for x in doc["workers"] if x["capacity"].get("cpu", 0) > 0]
    if mk > 0 and cpu_w:
        us = [sum(t[a["task"]]["demand"].get("cpu", 0) * (a["end"] - a["start"]) for a in A if a["worker"] == x["id"])
              / (x["capacity"]["cpu"] * mk) for x in cpu_w]
        imb = 100 * statistics.pstdev(us)
    energy = sum(w[i].get("idle_cost", 0) * (max(a["end"] for a in A if a["worker"] == i) - now)
                 for i in {a["worker"] for a in A})
    rel = sum((1 - w[a["worker"]].get("health", 1)) * (a["end"] - a["start"]) for a in A)
    un = sum(t[u["task"]].get("priority", 1) for u in plan_doc["unassigned"])
    m = {"lateness": late, "misses": misses, "makespan": mk, "imbalance": imb, "energy": energy,
         "reliability": rel, "unassigned": un}
    return sum(weights[k] * m[k] for k in m)


@pytest.mark.parametrize("policy", sorted(GREEDY))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=problem_docs())
def test_greedy_plans_valid_and_cost_independent(policy: str, doc: dict) -> None:  # type: ignore[type-arg]
    problem = Problem.from_json(doc)
    plan = greedy(problem, policy)
    assert validate(problem, plan) == []
    plan_doc = json.loads(plan.to_json())
    assert {a["task"] for a in plan_doc["assignments"]} | {u["task"] for u in plan_doc["unassigned"]} == {
        x["id"] for x in doc["tasks"]}
    expected = independent_objective(doc, plan_doc)
    assert math.isclose(plan.objective, expected, rel_tol=1e-6, abs_tol=1e-6)


@pytest.mark.parametrize("family", ["mixed", "deadline", "gpu", "uniform"])
def test_generated_families_plan_valid(family: str) -> None:
    problem = generate_problem(120, 12, seed=5, family=family)
    for policy in GREEDY:
        plan = greedy(problem, policy)
        assert validate(problem, plan) == [], policy
        assert not plan.unassigned or all(u.reason for u in plan.unassigned)


def test_unassigned_reason_is_aggregated_kube_style() -> None:
    plan = greedy(example_problem("tiny"), "eft")
    reasons = {u.task: u.reason for u in plan.unassigned}
    assert reasons == {"v100-job": "0/3 workers fit: 3 missing label gpu_model=V100"}


def test_reason_counts_first_failing_filter_per_worker() -> None:
    doc = {"format": "agentic-sched/problem/v1",
           "workers": [{"id": f"c{i}", "capacity": {"cpu": 2}, "labels": {"gpu_model": "V100"}} for i in range(7)]
           + [{"id": f"g{i}", "capacity": {"cpu": 64}, "labels": {"gpu_model": "T4"}} for i in range(5)],
           "tasks": [{"id": "big", "demand": {"cpu": 16}, "duration": 1,
                      "requires": {"gpu_model": ["V100", "A100"]}}]}
    plan = greedy(Problem.from_json(doc))
    assert plan.unassigned[0].reason == (
        "0/12 workers fit: 7 insufficient cpu, 5 missing label gpu_model in [V100, A100]")


def test_eft_delays_start_until_capacity_frees() -> None:
    doc = {"format": "agentic-sched/problem/v1",
           "workers": [{"id": "w", "capacity": {"cpu": 2}, "devices": [{"kind": "gpu"}],
                        "running": [{"task": "r", "demand": {"cpu": 2}, "devices": {"0": 800}, "until": 4}]}],
           "tasks": [{"id": "a", "demand": {"cpu": 1}, "gpu": {"count": 1, "share": 300}, "duration": 2},
                     {"id": "b", "demand": {"cpu": 2}, "duration": 1, "priority": 2}]}
    p = Problem.from_json(doc)
    plan = greedy(p, "eft")
    by = plan.by_task()
    assert (by["b"].start, by["b"].end) == (4.0, 5.0)  # priority 2 first, after r frees cpu at 4
    assert (by["a"].start, by["a"].end, by["a"].devices) == (5.0, 7.0, (0,))
    assert validate(p, plan) == []


def test_spread_spreads_and_pack_packs() -> None:
    doc = {"format": "agentic-sched/problem/v1",
           "workers": [{"id": f"w{i}", "capacity": {"cpu": 4}} for i in range(3)],
           "tasks": [{"id": f"t{i}", "demand": {"cpu": 1}, "duration": 1} for i in range(3)]}
    p = Problem.from_json(doc)
    assert len({a.worker for a in greedy(p, "spread").assignments}) == 3
    assert len({a.worker for a in greedy(p, "pack").assignments}) == 1


def test_best_greedy_is_no_worse_than_each() -> None:
    p = generate_problem(80, 8, seed=2, family="deadline")
    best = best_greedy(p)
    assert validate(p, best) == []
    assert all(best.objective <= greedy(p, name).objective + 1e-9 for name in GREEDY)
