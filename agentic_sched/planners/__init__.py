"""Planners: read an immutable Problem, return a Plan. None touches live state."""

from .base import Planner, finish_plan
from .greedy import GREEDY, GreedyPlanner, best_greedy, greedy

__all__ = ["GREEDY", "GreedyPlanner", "Planner", "best_greedy", "finish_plan", "greedy"]
