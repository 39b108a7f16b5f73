"""agentic-sched: an embedded asyncio cluster scheduler that plans.

This module is the one public face; everything else is private. See FORMATS.md for
the problem/plan contract and DESIGN.md for the architecture.
"""

from ._errors import (
    InvalidPlan,
    InvalidProblem,
    PlannerError,
    PlanRejected,
    ProtocolError,
    RemoteError,
    SchedError,
    UnknownTask,
    UnknownWorker,
)
from .examples import example_problem, generate_problem
from .formats import Violation, cost, validate
from .model import (
    Assignment,
    Device,
    GpuDemand,
    Plan,
    Problem,
    Resources,
    RunningWork,
    Task,
    Unassigned,
    Weights,
    Worker,
)
from .planners import GREEDY, best_greedy, greedy

__version__ = "0.1.0"

__all__ = [
    "GREEDY",
    "Assignment",
    "Device",
    "GpuDemand",
    "InvalidPlan",
    "InvalidProblem",
    "Plan",
    "PlanRejected",
    "PlannerError",
    "Problem",
    "ProtocolError",
    "RemoteError",
    "Resources",
    "RunningWork",
    "SchedError",
    "Task",
    "Unassigned",
    "UnknownTask",
    "UnknownWorker",
    "Violation",
    "Weights",
    "Worker",
    "__version__",
    "best_greedy",
    "cost",
    "example_problem",
    "generate_problem",
    "greedy",
    "validate",
]
