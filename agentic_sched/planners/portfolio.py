"""The default planner: greedy first, then A* / CP-SAT / LNS as the size suggests.

``PortfolioPlanner.plan(problem, budget_s)`` runs within one wall-clock budget:

1. every greedy policy (always answers, milliseconds);
2. tiny problems (<= ``ASTAR_MAX_TASKS`` tasks): A* over list schedules;
3. small problems (tasks x workers <= ``CPSAT_MAX_CELLS``): the exact CP-SAT model,
   hinted with the best plan so far;
4. the rest of the budget: cost-aware construction + LNS (ruin and recreate), seeded
   with the best plan so far; with a budget of several seconds on larger problems,
   CP-SAT windows re-optimise a few workers at a time (``cpsat.CpSatLns``).

Every candidate is checked with ``formats.validate`` before it is accepted. The best
valid plan wins; its ``bound`` is the best proved bound any stage found (never above
the objective) and ``status`` is ``optimal`` only when that bound meets the objective.
If the stage the size called for raised, returned an invalid plan or found nothing,
the answer is the best other plan with ``status`` ``fallback`` and ``detail`` saying why.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import attrs
import numpy as np

from ..formats import validate
from ..model import Plan, Problem, Unassigned
from .base import finish_plan, objective_of
from .bounds import lower_bound
from .greedy import GREEDY
from .insertion import ProblemArrays, Schedule
from .lns import best_construction, improve

DEFAULT_BUDGET_S = 2.0
ASTAR_MAX_TASKS = 8
CPSAT_MAX_CELLS = 1500
CPSAT_LNS_MIN_BUDGET_S = 4.0
LNS_PASSES = 3.5  # an LNS construction costs about this many EFT passes
TOL = 1e-6


class _Run:
    """Bookkeeping of one portfolio run: candidates, failures, the best bound."""

    def __init__(self, problem: Problem, started: float, until: float) -> None:
        self.problem = problem
        self.started = started
        self.until = until
        self.best: Plan | None = None
        self.bound: float | None = None
        self.failures: list[str] = []
        self.log: list[str] = []

    def left(self) -> float:
        return self.until - time.perf_counter()

    def offer(self, plan: Plan) -> bool:
        bad = validate(self.problem, plan)
        if bad:
            self.failures.append(f"{plan.planner}: invalid plan ({bad[0]})")
            return False
        objective = objective_of(plan)
        self.log.append(f"{plan.planner}={objective:.6g}")
        if plan.bound is not None and plan.status in ("optimal", "feasible"):
            self.bound = plan.bound if self.bound is None else max(self.bound, plan.bound)
        if self.best is None or objective < objective_of(self.best) - TOL * max(1.0, abs(objective)):
            self.best = plan
        return True

    def attempt(self, name: str, fn: Callable[[], Plan | None]) -> bool:
        """Run one stage; record an exception or an invalid plan as a failure."""
        try:
            plan = fn()
        except Exception as exc:  # a failing stage must not sink the portfolio
            self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            return False
        if plan is None:
            self.failures.append(f"{name}: no plan within the budget")
            return False
        return self.offer(plan)


class PortfolioPlanner:
    """Greedy, then A*, CP-SAT and LNS within one budget; returns the best valid plan."""

    name = "portfolio"

    def __init__(self, *, num_workers: int = 2, seed: int = 0) -> None:
        self.num_workers = num_workers
        self.seed = seed

    def plan(self, problem: Problem, budget_s: float | None = None) -> Plan:
        started = time.perf_counter()
        budget = DEFAULT_BUDGET_S if budget_s is None else max(0.0, budget_s)
        run = _Run(problem, started, started + 0.95 * budget - 0.02)
        # EFT first (the usual winner); the other greedy policies only while the budget
        # still holds one more pass, the bound/arrays set-up (~2 passes) and an LNS construction
        eft_s = 0.0
        for g in sorted(GREEDY.values(), key=lambda g: g.name != "eft"):
            if run.best is not None and run.left() < (1.5 + 2.0 + LNS_PASSES) * eft_s:
                run.log.append(f"{g.name} skipped (budget)")
                continue
            t0 = time.perf_counter()
            run.attempt(g.name, functools.partial(g.plan, problem))
            eft_s = eft_s or time.perf_counter() - t0
        if run.left() <= 0:  # the first greedy pass took the whole budget: answer now
            return self._answer(run, "eft")
        arrays = ProblemArrays(problem)
        try:
            run.bound = max(run.bound or 0.0, lower_bound(problem, arrays))
        except Exception as exc:
            run.failures.append(f"bound: {exc}")
        N, W = len(problem.tasks), len(problem.workers)
        primary = "lns"
        if 0 < N <= ASTAR_MAX_TASKS:
            primary = "astar"
            run.attempt("astar", lambda: self._astar(problem, run))
        if 0 < N and N * W <= CPSAT_MAX_CELLS and run.left() > 0.05:
            primary = "cpsat" if primary == "lns" else primary
            run.attempt("cpsat", lambda: self._cpsat(problem, run))
        astar_done = run.best is not None and run.best.planner == "astar" and "complete" in run.best.detail
        # LNS starts with a construction that costs a few greedy passes: skip it when
        # the budget cannot hold one (very large problems on short budgets)
        if N > 0 and run.left() > LNS_PASSES * eft_s and not self._proved(run) and not astar_done:
            run.attempt("lns", lambda: self._lns(problem, arrays, run))
        return self._answer(run, primary)

    # ------------------------------------------------------------------ stages
    def _astar(self, problem: Problem, run: _Run) -> Plan | None:
        from .astar import AStarPlanner

        return AStarPlanner(incumbent=run.best).plan(problem, max(0.0, run.left() * 0.5))

    def _cpsat(self, problem: Problem, run: _Run) -> Plan | None:
        from .cpsat import CpSatPlanner

        planner = CpSatPlanner(num_workers=self.num_workers, hint=run.best)
        plan = planner.plan(problem, max(0.05, run.left() * 0.6))
        if plan.status == "fallback":
            raise RuntimeError(plan.detail)
        return plan

    def _lns(self, problem: Problem, arrays: ProblemArrays, run: _Run) -> Plan:
        start = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        s = best_construction(arrays, run.until, rng)
        if run.best is not None and objective_of(run.best) < s.objective():
            seeded = Schedule(arrays)
            seeded.load_plan(run.best)
            s = seeded
        target = arrays.makespan_lower_bound()
        cells = len(problem.tasks) * len(problem.workers)
        total = run.until - run.started
        if total >= CPSAT_LNS_MIN_BUDGET_S and cells > CPSAT_MAX_CELLS:
            split = time.perf_counter() + 0.5 * run.left()
            _, iters = improve(s, split, rng, target=target)
            from .cpsat import CpSatLns

            CpSatLns(num_workers=self.num_workers, seed=self.seed).improve(s, run.until)
            _, more = improve(s, run.until, rng, target=target)
            iters += more
        else:
            _, iters = improve(s, run.until, rng, target=target)
        return s.to_plan(planner="lns", started=start, detail=f"{iters} LNS iterations")

    # ------------------------------------------------------------------ answer
    def _proved(self, run: _Run) -> bool:
        if run.best is None or run.bound is None:
            return False
        objective = objective_of(run.best)
        return objective <= run.bound + TOL * max(1.0, abs(objective))

    def _answer(self, run: _Run, primary: str) -> Plan:
        best = run.best
        elapsed = time.perf_counter() - run.started
        if best is None:  # nothing valid at all (a bug or a degenerate problem): still answer
            why = "no planner produced a valid plan: " + "; ".join(run.failures)
            plan = finish_plan(run.problem, [], [Unassigned(t.id, why) for t in run.problem.tasks],
                               planner="portfolio", started=run.started, status="fallback")
            return attrs.evolve(plan, detail=why)
        bound = None if run.bound is None else min(run.bound, objective_of(best))
        primary_failed = any(f.startswith(primary + ":") for f in run.failures)
        if primary_failed:
            status = "fallback"
        elif self._proved(run):
            status = "optimal"
        else:
            status = "feasible"
        detail = f"best of {', '.join(run.log)}"
        if run.failures:
            detail += "; failed: " + "; ".join(run.failures)
        return Plan(
            assignments=best.assignments, unassigned=best.unassigned,
            planner=f"portfolio[{best.planner}]", status=status, objective=best.objective,
            bound=bound, elapsed_s=elapsed, detail=detail,
        )


def summary(plan: Plan) -> str:
    """One line for people: planner, status, objective, bound and relative gap."""
    gap = ""
    if plan.bound is not None and plan.objective is not None:
        denom = max(abs(plan.objective), 1e-9)
        gap = f"  gap {100.0 * (plan.objective - plan.bound) / denom:.2f}%"
    bound = "-" if plan.bound is None else f"{plan.bound:.6g}"
    obj = "-" if plan.objective is None else f"{plan.objective:.6g}"
    return f"planner {plan.planner}  status {plan.status}  objective {obj}  bound {bound}{gap}"
