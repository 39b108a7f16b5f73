"""Greedy list schedulers that always answer: ``spread``, ``pack``, ``balanced``, ``eft``.

All four walk the tasks once in a fixed order and place each at its earliest feasible
start (delaying it when capacity frees later, running work and GPU devices respected):

- ``spread``   kube-like: FIFO order; among workers where the task can start earliest,
               the least allocated after placement (LeastAllocated);
- ``pack``     FIFO; among those workers, the most allocated (best fit, MostAllocated);
- ``balanced`` FIFO; the worker whose resource fractions stay most even
               (BalancedAllocation), then least allocated;
- ``eft``      priority then deadline order (earliest deadline first within a
               priority); the worker on which the task *finishes* first (speed counts),
               ties to the worker with the least booked work.

A task no worker can ever host goes to ``unassigned`` with the aggregated reason.
Complexity: O(N * W * m) kernel work for N tasks, W workers, m breakpoints per worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ..model import Assignment, Plan, Problem, Task, Unassigned
from .base import NEVER, finish_plan
from .feasibility import Feasibility
from .timelines import Timelines

Order = Callable[[Problem], list[Task]]


def fifo_order(problem: Problem) -> list[Task]:
    """Arrival order: by release (``now`` when absent), then input order."""
    return sorted(problem.tasks, key=lambda t: t.earliest(problem.now))


def urgency_order(problem: Problem) -> list[Task]:
    """Higher priority first, then earliest deadline (none last), then release."""
    return sorted(
        problem.tasks,
        key=lambda t: (-t.priority, math.inf if t.deadline is None else t.deadline, t.earliest(problem.now)),
    )


MODES = {"eft": 0, "spread": 1, "pack": 2, "balanced": 3}


class GreedyPlanner:
    """One greedy policy: an order plus a rule for choosing among feasible workers.

    ``choice`` "eft" picks the earliest finish; "spread" / "pack" / "balanced" start
    the task at the earliest time any worker can take it and pick among those
    workers by allocated fractions (see ``kernels.timeline.choose_worker``); each task is
    one ``kernels.timeline.greedy_pick`` call (pruned starts and the choice fused).
    """

    def __init__(self, name: str, order: Order, choice: str) -> None:
        self.name = name
        self.order = order
        self.mode = MODES[choice]

    def plan(self, problem: Problem, budget_s: float | None = None) -> Plan:
        """Place every task (budget ignored: one pass always finishes)."""
        started = time.perf_counter()
        assignments, unassigned = self.place(problem, self.order(problem))
        return finish_plan(problem, assignments, unassigned, planner=self.name, started=started)

    def place(
        self, problem: Problem, tasks: list[Task], timelines: Timelines | None = None
    ) -> tuple[list[Assignment], list[Unassigned]]:
        """Place ``tasks`` in the given order onto ``timelines`` (fresh if None)."""
        tl = Timelines(problem) if timelines is None else timelines
        feas = Feasibility(problem)
        load = np.zeros(len(problem.workers))
        assignments: list[Assignment] = []
        unassigned: list[Unassigned] = []
        worker_ids = [w.id for w in problem.workers]
        speed = tl.speed
        for task in tasks:
            eligible, fits = feas.check(task)
            if not fits:
                unassigned.append(Unassigned(task.id, feas.reason(task)))
                continue
            w, start = tl.pick(task, eligible, load, self.mode)
            if w < 0:
                unassigned.append(Unassigned(task.id, NEVER))
                continue
            devices = tl.place(task, w, start)
            dur = task.duration / speed[w]
            load[w] += dur
            assignments.append(Assignment(task.id, worker_ids[w], start, start + dur, devices))
        return assignments, unassigned


GREEDY: dict[str, GreedyPlanner] = {
    "spread": GreedyPlanner("spread", fifo_order, "spread"),
    "pack": GreedyPlanner("pack", fifo_order, "pack"),
    "balanced": GreedyPlanner("balanced", fifo_order, "balanced"),
    "eft": GreedyPlanner("eft", urgency_order, "eft"),
}


def greedy(problem: Problem, policy: str = "eft") -> Plan:
    """Plan ``problem`` with the named greedy policy (``spread|pack|balanced|eft``)."""
    try:
        planner = GREEDY[policy]
    except KeyError:
        raise ValueError(f"unknown greedy policy {policy!r} (choose from {', '.join(GREEDY)})") from None
    return planner.plan(problem)


def best_greedy(problem: Problem) -> Plan:
    """Run every greedy policy and return the plan with the lowest objective."""
    started = time.perf_counter()
    plans = [p.plan(problem) for p in GREEDY.values()]
    best = min(plans, key=lambda p: (p.objective, p.planner))
    return Plan(
        assignments=best.assignments, unassigned=best.unassigned, planner=f"portfolio[{best.planner}]",
        status=best.status, objective=best.objective, bound=best.bound,
        elapsed_s=time.perf_counter() - started, detail=best.detail,
    )
