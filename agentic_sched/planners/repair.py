"""Plan repair after cluster events: keep what is unaffected, re-plan only the rest.

``repair(problem, previous_plan, events)`` applies ``Events`` (lost workers, new
tasks, cancelled tasks) to ``problem`` (same ``now``), keeps every assignment whose
task and worker survive exactly as it was, and inserts only the affected tasks (those
on lost workers, the new ones, and previously unassigned ones) with the cost-aware
insertion of ``insertion.Schedule`` at their earliest feasible starts. Kept
assignments stay valid: removing workers and tasks only frees capacity.

Returns a ``Repair``: the updated problem, the new plan and a ``PlanDiff`` that an
applier can apply with minimal changes (``moved`` / ``added`` / ``removed``).

Complexity: O(K log K) to book K kept assignments plus one kernel call per affected
task (O(W * m)).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import attrs

from ..model import Assignment, Plan, Problem, Task
from .insertion import ProblemArrays, Schedule, slack_order


# Typed tuple converters (a bare ``tuple`` converter loses the element type for mypy).
def _ids(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _tasks(items: Iterable[Task]) -> tuple[Task, ...]:
    return tuple(items)


@attrs.frozen
class Events:
    """What changed since ``previous_plan`` was made (ids of workers / tasks)."""

    lost_workers: tuple[str, ...] = attrs.field(converter=_ids, default=())
    new_tasks: tuple[Task, ...] = attrs.field(converter=_tasks, default=())
    cancelled: tuple[str, ...] = attrs.field(converter=_ids, default=())


@attrs.frozen
class PlanDiff:
    """Changes from the previous plan to the repaired one.

    ``moved``: new assignments of tasks that were assigned before (their worker was
    lost); ``added``: assignments of tasks that were not assigned before (new tasks
    or previously unassigned); ``removed``: ids of tasks that had an assignment and
    no longer have one (cancelled, or now unassigned); ``unchanged``: count kept.
    """

    moved: tuple[Assignment, ...] = ()
    added: tuple[Assignment, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.moved or self.added or self.removed)


@attrs.frozen
class Repair:
    problem: Problem
    plan: Plan
    diff: PlanDiff


def apply_events(problem: Problem, events: Events) -> Problem:
    """The problem after ``events``: lost workers and cancelled tasks gone, new tasks added."""
    lost, gone = set(events.lost_workers), set(events.cancelled)
    workers = tuple(w for w in problem.workers if w.id not in lost)
    tasks = tuple(t for t in problem.tasks if t.id not in gone) + tuple(
        t for t in events.new_tasks if t.id not in gone)
    return Problem(workers=workers, tasks=tasks, now=problem.now, weights=problem.weights)


def repair(problem: Problem, previous_plan: Plan, events: Events | None = None, *,
           lost_workers: Iterable[str] = (), new_tasks: Iterable[Task] = (),
           cancelled: Iterable[str] = ()) -> Repair:
    """Repair ``previous_plan`` (made for ``problem``) after ``events``.

    Events may be given as an ``Events`` or as the keyword lists. Raises ``ValueError``
    when a new task repeats an existing id.
    """
    started = time.perf_counter()
    ev = events or Events(tuple(lost_workers), tuple(new_tasks), tuple(cancelled))
    known = {t.id for t in problem.tasks}
    clash = [t.id for t in ev.new_tasks if t.id in known]
    if clash:
        raise ValueError(f"new tasks repeat existing ids: {', '.join(clash[:5])}")
    new_problem = apply_events(problem, ev)
    arrays = ProblemArrays(new_problem)
    s = Schedule(arrays)
    tindex = new_problem.task_index
    windex = new_problem.worker_index
    before = previous_plan.by_task()
    kept: set[int] = set()
    for asg in previous_plan.assignments:
        if asg.task in tindex and asg.worker in windex:
            i, w = tindex[asg.task][0], windex[asg.worker][0]
            s.book_as(i, w, asg.start, asg.devices, asg)
            kept.add(i)
    todo = [i for i in range(arrays.N) if i not in kept]
    target = max(arrays.makespan_lower_bound(), s._makespan_end() - arrays.now)
    if todo:
        order = [int(i) for i in slack_order(arrays, target) if int(i) not in kept]
        for i in order:
            s.insert(i, target)
    plan = s.to_plan(planner="repair", started=started,
                     detail=f"kept {len(kept)}, re-planned {len(todo)}")
    return Repair(new_problem, plan, _diff(before, plan, kept_count=len(kept)))


def _diff(before: dict[str, Assignment], plan: Plan, *, kept_count: int) -> PlanDiff:
    after = plan.by_task()
    moved, added = [], []
    for tid, asg in after.items():
        old = before.get(tid)
        if old is None:
            added.append(asg)
        elif old != asg:
            moved.append(asg)
    removed = tuple(sorted(tid for tid in before if tid not in after))
    return PlanDiff(tuple(moved), tuple(added), removed, kept_count)
