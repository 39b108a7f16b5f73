"""agentic-sched: an embedded asyncio cluster scheduler that plans.

This module is the one public face; everything else is private. See FORMATS.md for
the problem/plan contract and DESIGN.md for the architecture.
"""

from ._config import SchedulerConfig
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
from ._spec import TaskSpec, TaskStatus, WorkerInfo, WorkerSpec
from .dashboard import BackgroundScheduler, Dashboard, plot_plan, run_in_background
from .events import Event
from .examples import example_problem, generate_problem
from .executors.ssh import SshExecutor, SshTarget
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
from .planners import (
    DEFAULT_PLANNER,
    GREEDY,
    PLANNER_NAMES,
    AStarPlanner,
    Events,
    LnsPlanner,
    PlanDiff,
    PortfolioPlanner,
    Repair,
    best_greedy,
    get_planner,
    greedy,
    lower_bound,
    repair,
)
from .predict import RuntimePredictor
from .scheduler import Scheduler, TaskHandle

__version__ = "0.1.0"

__all__ = [
    "AStarPlanner",
    "Assignment",
    "BackgroundScheduler",
    "CpSatPlanner",
    "DEFAULT_PLANNER",
    "Dashboard",
    "Device",
    "Event",
    "Events",
    "GREEDY",
    "GpuDemand",
    "InvalidPlan",
    "InvalidProblem",
    "LnsPlanner",
    "PLANNER_NAMES",
    "Plan",
    "PlanDiff",
    "PlanRejected",
    "PlannerError",
    "PortfolioPlanner",
    "Problem",
    "ProtocolError",
    "RemoteError",
    "Repair",
    "Resources",
    "RunningWork",
    "RuntimePredictor",
    "SchedError",
    "Scheduler",
    "SchedulerConfig",
    "SshExecutor",
    "SshTarget",
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
    "lower_bound",
    "plot_plan",
    "repair",
    "run_in_background",
    "validate",
]


def __getattr__(name: str) -> object:
    """``CpSatPlanner`` loads OR-Tools lazily (about 0.3 s), on first use."""
    if name == "CpSatPlanner":
        from .planners.cpsat import CpSatPlanner

        return CpSatPlanner
    raise AttributeError(f"module 'agentic_sched' has no attribute {name!r}")
