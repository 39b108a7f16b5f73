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
from ._spec import TaskSpec, TaskStatus, WorkerSpec
from .events import Event
from .planners import GREEDY, PLANNER_NAMES, PlanDiff, best_greedy, get_planner, greedy, repair
from .scheduler import Scheduler, SchedulerConfig, TaskHandle, WorkerInfo

__version__ = "0.1.0"

__all__ = [
    "Assignment",
    "Device",
    "Event",
    "GREEDY",
    "GpuDemand",
    "InvalidPlan",
    "InvalidProblem",
    "PLANNER_NAMES",
    "Plan",
    "PlanDiff",
    "PlanRejected",
    "PlannerError",
    "Problem",
    "ProtocolError",
    "RemoteError",
    "Resources",
    "RunningWork",
    "SchedError",
    "Scheduler",
    "SchedulerConfig",
    "Task",
    "TaskHandle",
    "TaskSpec",
    "TaskStatus",
    "Unassigned",
    "UnknownTask",
    "UnknownWorker",
    "Violation",
    "Weights",
    "Worker",
    "WorkerInfo",
    "WorkerSpec",
    "__version__",
    "best_greedy",
    "cost",
    "example_problem",
    "generate_problem",
    "get_planner",
    "greedy",
    "repair",
    "validate",
]
