"""What every planner shares: the Planner protocol and how a Plan is finished.

A planner is any object with a ``name`` and ``plan(problem, budget_s) -> Plan``; it
reads an immutable Problem and returns a Plan whose ``objective`` is what
``formats.cost`` gives (so outside checkers agree), never touching live state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

import attrs

from ..formats import cost
from ..model import Assignment, Plan, Problem, Unassigned, Worker

#: the reasons of tasks that some worker could host but a plan leaves out
NEVER = "no worker ever has room: running work holds it"
LEFT_OUT = ("left unassigned on purpose: every placement found costs more than the unassigned "
            "penalty ({penalty:g} = unassigned weight x priority)")


class Planner(Protocol):
    name: str

    def plan(self, problem: Problem, budget_s: float | None = None) -> Plan: ...


def objective_of(plan: Plan) -> float:
    """``plan.objective``; every planner's plan carries one (``finish_plan`` sets it), so
    a plan without one is a planner bug: ``ValueError`` naming the planner."""
    if plan.objective is None:
        raise ValueError(f"plan from {plan.planner!r} has no objective")
    return plan.objective


def finish_plan(
    problem: Problem,
    assignments: Iterable[Assignment],
    unassigned: Iterable[Unassigned],
    *,
    planner: str,
    started: float,
    status: str = "feasible",
    bound: float | None = None,
    detail: str = "",
) -> Plan:
    """Assemble a Plan with its objective computed by the contract's cost formulas.

    Assignments are sorted by (start, task) for readability; ``started`` is a
    ``time.perf_counter()`` reading taken when planning began.
    """
    draft = Plan(
        assignments=tuple(sorted(assignments, key=lambda a: (a.start, a.task))),
        unassigned=tuple(unassigned),
        planner=planner,
        status=status,
    )
    objective = cost(problem, draft)["objective"]
    if bound is not None:
        bound = min(bound, objective)
    return Plan(
        assignments=draft.assignments, unassigned=draft.unassigned, planner=planner,
        status=status, objective=objective, bound=bound,
        elapsed_s=time.perf_counter() - started, detail=detail,
    )


def overload_until(worker: Worker, now: float) -> tuple[float, set[str]]:
    """When running work on ``worker`` stops overloading its capacity (``now`` if it
    never does), and the resources it overloads. Running work only ends, so the
    overload is one window from ``now``; rule 4 holds at every instant, so no task,
    even one demanding nothing, may run on the worker inside it."""
    live = sorted((rw for rw in worker.running if rw.until > now), key=lambda rw: rw.until)
    used: dict[str, float] = {}
    for rw in live:
        for r, q in rw.demand:
            used[r] = used.get(r, 0.0) + q
    over = {r for r, q in used.items() if q > worker.capacity.get(r) + 1e-9}
    until = now
    for rw in live:
        if all(q <= worker.capacity.get(r) + 1e-9 for r, q in used.items()):
            break
        until = rw.until
        for r, q in rw.demand:
            used[r] -= q
    return until, over


def constrained_resources(problem: Problem) -> list[str]:
    """The resources a placement must check: those some task demands, plus any that
    running work alone overloads on some worker (see ``overload_until``)."""
    names = {r for t in problem.tasks for r, q in t.demand if q > 0}
    for w in problem.workers:
        names |= overload_until(w, problem.now)[1]
    return sorted(names)


def nothing_to_optimise(problem: Problem, planner: str, started: float) -> Plan | None:
    """The plan when there is no choice to make (no tasks, or no workers): every task
    unassigned with its reason, proved optimal. None when there is something to plan.

    Planners call this first, so degenerate problems never reach their solvers.
    """
    if problem.tasks and problem.workers:
        return None
    from .feasibility import Feasibility

    feas = Feasibility(problem)
    plan = finish_plan(problem, [], [Unassigned(t.id, feas.reason(t)) for t in problem.tasks],
                       planner=planner, started=started, status="optimal")
    return attrs.evolve(plan, bound=plan.objective)
