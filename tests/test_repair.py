"""Repair: unaffected assignments stay, affected tasks are re-planned, the diff is exact."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentic_sched import Task, generate_problem, validate
from agentic_sched.planners import Events, get_planner, repair


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), family=st.sampled_from(["mixed", "deadline", "gpu"]),
       lose=st.integers(0, 2), add=st.integers(0, 3), cancel=st.integers(0, 3))
def test_repair_keeps_unaffected_and_is_valid(seed: int, family: str, lose: int, add: int, cancel: int) -> None:
    problem = generate_problem(30, 6, seed=seed, family=family, load_s=20.0)
    prev = get_planner("eft").plan(problem)
    lost = [w.id for w in problem.workers[:lose]]
    cancelled = [t.id for t in problem.tasks[-cancel:]] if cancel else []
    new = [Task(f"new{k}", {"cpu": 1.0}, 2.0, deadline=30.0) for k in range(add)]
    out = repair(problem, prev, Events(lost_workers=lost, new_tasks=new, cancelled=cancelled))
    assert validate(out.problem, out.plan) == []
    after = out.plan.by_task()
    for a in prev.assignments:
        if a.worker not in lost and a.task not in cancelled:
            assert after[a.task] == a  # unaffected: unmoved
    moved = {a.task for a in out.diff.moved}
    assert moved == {a.task for a in prev.assignments if a.worker in lost and a.task not in cancelled
                     and a.task in after}
    assert {a.task for a in out.diff.added} <= {t.id for t in new} | {u.task for u in prev.unassigned}
    assert set(cancelled) & set(prev.by_task()) <= set(out.diff.removed)


def test_repair_after_losing_one_worker_of_many() -> None:
    problem = generate_problem(200, 40, seed=2, family="deadline")
    prev = get_planner("portfolio").plan(problem, 0.5)
    lost = prev.assignments[0].worker
    out = repair(problem, prev, lost_workers=[lost])
    assert validate(out.problem, out.plan) == []
    assert out.diff.unchanged == sum(1 for a in prev.assignments if a.worker != lost)
    assert all(a.worker != lost for a in out.plan.assignments)
    assert not out.diff.added and not out.diff.removed


def test_repair_refuses_duplicate_new_task_ids() -> None:
    problem = generate_problem(5, 2, seed=0)
    prev = get_planner("eft").plan(problem)
    with pytest.raises(ValueError, match="repeat"):
        repair(problem, prev, new_tasks=[Task(problem.tasks[0].id, {"cpu": 1}, 1.0)])
