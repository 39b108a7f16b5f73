"""The one exception hierarchy of agentic-sched.

Errors are raised only when the caller did something wrong (bad input, unknown ids,
using a closed scheduler). Outcomes such as "no worker fits" are values (a Plan's
``unassigned`` entries with reasons), never exceptions.
"""

from __future__ import annotations


class SchedError(Exception):
    """Base class of every error raised by agentic-sched."""


class InvalidProblem(SchedError, ValueError):
    """A problem (or task/worker spec) breaks the contract of FORMATS.md.

    ``path`` is the JSON path of the offending value, e.g. ``tasks[3].demand.cpu``;
    the message always starts with it so one line names the problem.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


class InvalidPlan(SchedError, ValueError):
    """A plan document is malformed (not merely invalid against a problem).

    Validity against a problem is reported by ``validate`` as a list of violations,
    not raised.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


class PlanRejected(SchedError):
    """The applier refused (part of) a plan against live state; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UnknownTask(SchedError, KeyError):
    """A task id that the scheduler does not know."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message plain
        return str(self.args[0]) if self.args else "unknown task"


class UnknownWorker(SchedError, KeyError):
    """A worker id that the registry does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown worker"


class PlannerError(SchedError):
    """A planner failed internally; portfolios catch it and fall back to greedy."""


class ProtocolError(SchedError):
    """A worker-protocol message is malformed, oversized, or out of place."""


class RemoteError(SchedError):
    """A remote host could not be reached, authenticated or provisioned."""
