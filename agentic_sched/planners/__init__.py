"""Planners: read an immutable Problem, return a Plan. None touches live state.

``get_planner(name)`` is how the CLI and the runtime pick one: a greedy name
(``spread``, ``pack``, ``balanced``, ``eft``), ``astar``, ``cpsat``, ``lns``, or
``portfolio`` (the default; ``auto`` is an alias). Every planner is synchronous and
CPU-bound: async callers run ``planner.plan(problem, budget_s)`` in a thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .astar import AStarPlanner
from .base import Planner, finish_plan
from .bounds import lower_bound
from .greedy import GREEDY, GreedyPlanner, best_greedy, greedy
from .lns import LnsPlanner
from .portfolio import PortfolioPlanner, summary
from .repair import Events, PlanDiff, Repair, apply_events, repair

if TYPE_CHECKING:  # loaded lazily at runtime (module ``__getattr__`` below)
    from .cpsat import CpSatLns, CpSatPlanner

DEFAULT_PLANNER = "portfolio"
PLANNER_NAMES: tuple[str, ...] = ("portfolio", "auto", "astar", "cpsat", "lns", *GREEDY)


def get_planner(name: str = DEFAULT_PLANNER, *, num_workers: int = 2) -> Planner:
    """The planner called ``name``; ``num_workers`` is CP-SAT's thread count.

    Raises ``ValueError`` naming the choices for an unknown name.
    """
    if name in ("portfolio", "auto"):
        return PortfolioPlanner(num_workers=num_workers)
    if name == "astar":
        return AStarPlanner()
    if name == "cpsat":
        from .cpsat import CpSatPlanner

        return CpSatPlanner(num_workers=num_workers)
    if name == "lns":
        return LnsPlanner()
    if name in GREEDY:
        return GREEDY[name]
    raise ValueError(f"unknown planner {name!r} (choose from {', '.join(PLANNER_NAMES)})")


def __getattr__(name: str) -> Any:
    """``CpSatPlanner`` / ``CpSatLns`` load OR-Tools (~0.3 s) only when first used."""
    if name in ("CpSatPlanner", "CpSatLns"):
        from . import cpsat

        return getattr(cpsat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_PLANNER",
    "GREEDY",
    "PLANNER_NAMES",
    "AStarPlanner",
    "CpSatLns",
    "CpSatPlanner",
    "Events",
    "GreedyPlanner",
    "LnsPlanner",
    "PlanDiff",
    "Planner",
    "PortfolioPlanner",
    "Repair",
    "apply_events",
    "best_greedy",
    "finish_plan",
    "get_planner",
    "greedy",
    "lower_bound",
    "repair",
    "summary",
]
