"""The immutable data model shared by planners, the scheduler, the CLI and benchmarks.

Everything here is plain frozen data (attrs). It mirrors ../FORMATS.md one to one:
``Problem`` is what a planner reads, ``Plan`` is what it returns. JSON reading and
writing, validation and cost live in ``formats.py``; nothing here knows a planner.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

import attrs

PROBLEM_FORMAT = "agentic-sched/problem/v1"
PLAN_FORMAT = "agentic-sched/plan/v1"

GPU_KIND = "gpu"
MILLI_PER_DEVICE = 1000

PlanStatus = Literal["optimal", "feasible", "fallback", "infeasible"]
PLAN_STATUSES: tuple[str, ...] = ("optimal", "feasible", "fallback", "infeasible")


# Typed tuple converters (a bare ``tuple`` converter loses the element type for mypy).
def _devices(items: Iterable[Device]) -> tuple[Device, ...]:
    return tuple(items)


def _running(items: Iterable[RunningWork]) -> tuple[RunningWork, ...]:
    return tuple(items)


def _workers(items: Iterable[Worker]) -> tuple[Worker, ...]:
    return tuple(items)


def _tasks(items: Iterable[Task]) -> tuple[Task, ...]:
    return tuple(items)


def _ints(items: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in items)


def _assignments(items: Iterable[Assignment]) -> tuple[Assignment, ...]:
    return tuple(items)


def _unassigned(items: Iterable[Unassigned]) -> tuple[Unassigned, ...]:
    return tuple(items)


def _freeze_amounts(value: Mapping[str, float] | Resources | None) -> tuple[tuple[str, float], ...]:
    if value is None:
        return ()
    if isinstance(value, Resources):
        return value.items
    return tuple(sorted((str(k), float(v)) for k, v in value.items()))


@attrs.frozen
class Resources:
    """A bag of named, non-negative quantities (``cpu``, ``mem_mb``, anything).

    A resource that is not listed has quantity 0. Hashable and ordered by name.
    """

    items: tuple[tuple[str, float], ...] = attrs.field(converter=_freeze_amounts, default=())

    @classmethod
    def of(cls, **amounts: float) -> Resources:
        return cls(amounts)

    def get(self, name: str) -> float:
        for key, qty in self.items:
            if key == name:
                return qty
        return 0.0

    def names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.items)

    def as_dict(self) -> dict[str, float]:
        return dict(self.items)

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _freeze_labels(
    value: Mapping[str, str] | tuple[tuple[str, str], ...] | None,
) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, tuple):
        return value
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


def _freeze_requires(
    value: Mapping[str, str | Iterable[str]] | tuple[tuple[str, tuple[str, ...]], ...] | None,
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if value is None:
        return ()
    if isinstance(value, tuple):
        return value
    out = []
    for key, allowed in value.items():
        vals = (allowed,) if isinstance(allowed, str) else tuple(allowed)
        out.append((str(key), vals))
    return tuple(sorted(out))


@attrs.frozen
class Device:
    """One device of a worker; only devices of kind ``gpu`` carry GPU demands."""

    kind: str = GPU_KIND


@attrs.frozen
class RunningWork:
    """Work already on a worker at ``now``: holds ``demand`` and device shares until ``until``.

    ``devices`` maps a device index (into ``Worker.devices``) to the milli it holds.
    """

    task: str
    demand: Resources = attrs.field(converter=Resources, factory=Resources)
    devices: tuple[tuple[int, float], ...] = attrs.field(
        converter=lambda d: tuple(sorted(d.items())) if isinstance(d, Mapping) else tuple(d),
        default=(),
    )
    until: float = 0.0


@attrs.frozen
class Worker:
    """A machine that runs tasks: capacity, labels, devices, speed, health, idle cost."""

    id: str
    capacity: Resources = attrs.field(converter=Resources, factory=Resources)
    labels: tuple[tuple[str, str], ...] = attrs.field(converter=_freeze_labels, default=())
    devices: tuple[Device, ...] = attrs.field(converter=_devices, default=())
    speed: float = 1.0
    health: float = 1.0
    idle_cost: float = 0.0
    running: tuple[RunningWork, ...] = attrs.field(converter=_running, default=())

    def label(self, key: str) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return None

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        """Indices (into ``devices``) of the devices of kind ``gpu``."""
        return tuple(i for i, d in enumerate(self.devices) if d.kind == GPU_KIND)


@attrs.frozen
class GpuDemand:
    """``count`` whole GPUs (share 1000 each), or 1 GPU with ``share`` milli of it."""

    count: int = 1
    share: int = MILLI_PER_DEVICE

    @property
    def is_shared(self) -> bool:
        return self.count == 1 and self.share < MILLI_PER_DEVICE


@attrs.frozen
class Task:
    """A unit of work to place. ``release`` None means "at the problem's ``now``"."""

    id: str
    demand: Resources = attrs.field(converter=Resources, factory=Resources)
    duration: float = 1.0
    release: float | None = None
    deadline: float | None = None
    priority: float = 1.0
    gpu: GpuDemand | None = None
    requires: tuple[tuple[str, tuple[str, ...]], ...] = attrs.field(
        converter=_freeze_requires, default=()
    )

    def earliest(self, now: float) -> float:
        """The earliest start the contract allows: ``max(now, release)``."""
        return now if self.release is None else max(now, self.release)

    def gpu_count(self) -> int:
        return 0 if self.gpu is None else self.gpu.count


@attrs.frozen
class Weights:
    """Objective weights (FORMATS.md defaults)."""

    lateness: float = 2.0
    misses: float = 10.0
    makespan: float = 1.0
    imbalance: float = 1.0
    energy: float = 0.5
    reliability: float = 1.0
    unassigned: float = 1000.0

    def as_dict(self) -> dict[str, float]:
        return attrs.asdict(self)


WEIGHT_KEYS: tuple[str, ...] = tuple(f.name for f in attrs.fields(Weights))


@attrs.frozen
class Problem:
    """A planning problem: workers, tasks, the current time and objective weights."""

    workers: tuple[Worker, ...] = attrs.field(converter=_workers, default=())
    tasks: tuple[Task, ...] = attrs.field(converter=_tasks, default=())
    now: float = 0.0
    weights: Weights = attrs.field(factory=Weights)

    def worker(self, worker_id: str) -> Worker:
        return self.worker_index[worker_id][1]

    @property
    def worker_index(self) -> dict[str, tuple[int, Worker]]:
        """``{id: (position, worker)}``; built on each call, cache it in hot loops."""
        return {w.id: (i, w) for i, w in enumerate(self.workers)}

    @property
    def task_index(self) -> dict[str, tuple[int, Task]]:
        return {t.id: (i, t) for i, t in enumerate(self.tasks)}

    # JSON round trip lives in formats.py; these are the documented entry points.
    @classmethod
    def from_json(cls, text: str | bytes | Mapping[str, object]) -> Problem:
        """Parse and strictly validate a problem document; raises ``InvalidProblem``."""
        from .formats import problem_from_json

        return problem_from_json(text)

    def to_json(self, *, indent: int | None = None) -> str:
        from .formats import problem_to_json

        return problem_to_json(self, indent=indent)


@attrs.frozen
class Assignment:
    """Task ``task`` runs on ``worker`` over ``[start, end)`` on GPU ``devices``."""

    task: str
    worker: str
    start: float
    end: float
    devices: tuple[int, ...] = attrs.field(converter=_ints, default=())


@attrs.frozen
class Unassigned:
    """A task the plan does not place, with a reason a person can act on."""

    task: str
    reason: str


@attrs.frozen
class Plan:
    """What every planner returns (FORMATS.md).

    ``bound`` is a proved lower bound on ``objective`` or None. ``detail`` is a
    human note (e.g. why a fallback happened); it is not part of the JSON contract.
    """

    assignments: tuple[Assignment, ...] = attrs.field(converter=_assignments, default=())
    unassigned: tuple[Unassigned, ...] = attrs.field(converter=_unassigned, default=())
    planner: str = "unknown"
    status: str = "feasible"
    objective: float | None = None
    bound: float | None = None
    elapsed_s: float = 0.0
    detail: str = ""

    @classmethod
    def from_json(cls, text: str | bytes | Mapping[str, object]) -> Plan:
        """Parse a plan document; raises ``InvalidPlan`` if it is malformed."""
        from .formats import plan_from_json

        return plan_from_json(text)

    def to_json(self, *, indent: int | None = None) -> str:
        from .formats import plan_to_json

        return plan_to_json(self, indent=indent)

    def by_task(self) -> dict[str, Assignment]:
        return {a.task: a for a in self.assignments}
