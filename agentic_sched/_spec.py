"""What the runtime accepts and reports: TaskSpec, WorkerSpec, TaskStatus.

A ``TaskSpec`` is a FORMATS.md task (demand, gpu, duration estimate, release,
deadline, priority, requires) plus what to run (``argv``, ``env``, ``cwd``,
``timeout``, ``runtime`` and runtime ``options``). The planning fields are checked by
the contract's own reader (``formats``), so the rules live in one place; the run
fields are checked here. Every error is an ``InvalidProblem`` naming the field.

Time: ``release`` and ``deadline`` are seconds *after submission*; the scheduler
stores them on its clock (seconds since the store was created, persisted).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._errors import InvalidProblem
from .formats import _read_task, _Reader
from .model import Resources, Task, Worker

SLOTS = "task_slots"  # synthetic resource: per-worker max concurrency
RUNTIMES = ("process", "noop", "docker", "vm")
STATES = ("pending", "reserved", "running", "done", "failed", "cancelled")
TERMINAL = frozenset({"done", "failed", "cancelled"})

_TASK_KEYS = {"id", "argv", "env", "cwd", "timeout", "runtime", "options", "demand", "gpu", "duration",
              "release", "deadline", "priority", "requires", "max_attempts", "preemptible"}


def _strs(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)  # typed converter: a bare ``tuple`` loses the element type for mypy


@attrs.frozen(hash=False)
class TaskSpec:
    """A task to run. ``id`` None gets a generated id; ``duration`` is an estimate (s).

    ``runtime`` is ``process`` (``argv`` run directly, never through a shell) or
    ``noop`` (completes at once, for overhead measurements); ``docker``/``vm`` pass
    ``options`` (``image``, ``template`` ...) through to agents that provide them.
    ``max_attempts`` bounds re-runs after a worker is lost or an attempt is released
    (preemptions do not count against it).

    ``preemptible`` lets the scheduler stop a running attempt for a waiting task of
    strictly higher priority (SIGTERM, then SIGKILL after
    ``SchedulerConfig.preempt_grace_s``); the task then goes back to pending and
    resumes as a new attempt. Every attempt sees the same directory in
    ``$AGSCHED_CHECKPOINT_DIR`` to save and resume from (docs/preemption.md).
    """

    argv: tuple[str, ...] = attrs.field(converter=_strs, default=())
    id: str | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)
    cwd: str | None = None
    timeout: float | None = None
    runtime: str = "process"
    options: Mapping[str, Any] = attrs.field(factory=dict)
    demand: Mapping[str, float] = attrs.field(factory=dict)
    gpu: Mapping[str, int] | None = None
    duration: float = 1.0
    release: float | None = None
    deadline: float | None = None
    priority: float = 1.0
    requires: Mapping[str, str | list[str]] = attrs.field(factory=dict)
    max_attempts: int = 3
    preemptible: bool = False

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TaskSpec:
        """Strict reading of a JSON task spec: unknown keys raise ``InvalidProblem``."""
        if not isinstance(doc, Mapping):
            raise InvalidProblem("task", "expected an object")
        for key in doc:
            if key not in _TASK_KEYS:
                raise InvalidProblem(f"task.{key}", f"unknown key {key!r} (allowed: {', '.join(sorted(_TASK_KEYS))})")
        if "argv" in doc and not isinstance(doc["argv"], list):
            raise InvalidProblem("task.argv", "expected a list of strings (never a shell string)")
        return cls(**doc)

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["argv"] = list(self.argv)
        d["env"], d["options"], d["demand"], d["requires"] = (
            dict(self.env), dict(self.options), dict(self.demand), dict(self.requires))
        d["gpu"] = None if self.gpu is None else dict(self.gpu)
        if not self.preemptible:  # specs stored before the field existed compare equal
            del d["preemptible"]
        return d


def check_spec(spec: TaskSpec, task_id: str, submitted: float) -> Task:
    """Validate ``spec`` and return the planning ``Task`` on the scheduler clock.

    Raises ``InvalidProblem`` naming the field (``task.argv``, ``task.demand.cpu`` ...).
    The task demands one ``task_slots`` besides its own demand; ``docker`` / ``vm`` tasks
    also require the label ``runtime.<name>: yes`` that agents offering it report.
    """
    if not isinstance(spec, TaskSpec):
        raise InvalidProblem("task", f"expected a TaskSpec, got {type(spec).__name__}")
    if spec.runtime not in RUNTIMES:
        raise InvalidProblem("task.runtime", f"unknown runtime {spec.runtime!r} (choose from {', '.join(RUNTIMES)})")
    if spec.runtime == "process":
        if not spec.argv:
            raise InvalidProblem("task.argv", "a process task needs a non-empty argv list")
    for i, arg in enumerate(spec.argv):
        if not isinstance(arg, str):
            raise InvalidProblem(f"task.argv[{i}]", f"expected a string, got {type(arg).__name__}")
        if "\0" in arg:
            raise InvalidProblem(f"task.argv[{i}]", "contains a NUL byte")
    if not isinstance(spec.env, Mapping):
        raise InvalidProblem("task.env", "expected a mapping of strings")
    for key, val in spec.env.items():
        if not isinstance(key, str) or not key or "=" in key or not isinstance(val, str):
            raise InvalidProblem(f"task.env.{key}", "environment names and values must be strings (no '=' in names)")
    if spec.cwd is not None and (not isinstance(spec.cwd, str) or not os.path.isabs(spec.cwd)):
        raise InvalidProblem("task.cwd", f"must be an absolute path, got {spec.cwd!r}")
    if spec.timeout is not None and (not isinstance(spec.timeout, (int, float)) or not spec.timeout > 0
                                     or not math.isfinite(spec.timeout)):
        raise InvalidProblem("task.timeout", f"must be a finite number > 0, got {spec.timeout!r}")
    if not isinstance(spec.preemptible, bool):
        raise InvalidProblem("task.preemptible", f"expected true or false, got {spec.preemptible!r}")
    if spec.preemptible and spec.runtime == "vm":
        raise InvalidProblem("task.preemptible", "vm tasks cannot be preempted: the vm runtime has no "
                             "checkpoint/resume (a stopped guest would lose its work); submit it non-preemptible")
    if not isinstance(spec.max_attempts, int) or spec.max_attempts < 1:
        raise InvalidProblem("task.max_attempts", f"must be an integer >= 1, got {spec.max_attempts!r}")
    if not isinstance(task_id, str) or not task_id or len(task_id) > 200:
        raise InvalidProblem("task.id", "must be a non-empty string of at most 200 characters")
    try:
        json.dumps(spec.options, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidProblem("task.options", f"must be JSON-serialisable: {exc}") from None
    requires = dict(spec.requires) if isinstance(spec.requires, Mapping) else spec.requires
    if spec.runtime in ("docker", "vm") and isinstance(requires, dict):
        # only hosts whose agent offers the runtime (label reported in its welcome) fit
        requires.setdefault(f"runtime.{spec.runtime}", "yes")
    doc: dict[str, Any] = {"id": task_id, "demand": spec.demand, "duration": spec.duration,
                           "priority": spec.priority, "requires": requires}
    if spec.gpu is not None:
        doc["gpu"] = spec.gpu
    for key in ("release", "deadline"):
        value = getattr(spec, key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidProblem(f"task.{key}", f"expected seconds after submission, got {value!r}")
            doc[key] = submitted + value
    task = _read_task(_Reader(InvalidProblem), doc, "task")
    if SLOTS in task.demand.names():
        raise InvalidProblem(f"task.demand.{SLOTS}", "is reserved for the scheduler's concurrency limit")
    return attrs.evolve(task, demand=Resources({**task.demand.as_dict(), SLOTS: 1.0}))


@attrs.frozen(hash=False)
class WorkerSpec:
    """A worker: capacity (default: this host's cpus), labels, ``gpus`` devices of kind
    gpu, speed, ``max_concurrency`` attempts at once, its executor (``local``: an agent
    started by the scheduler; ``unix``: an agent already listening at ``address``; ``ssh``:
    an agent on host ``address`` via ``SshExecutor``, see ``Scheduler.add_executor``) and an
    optional heartbeat timeout overriding the scheduler's."""

    id: str
    capacity: Mapping[str, float] = attrs.field(factory=lambda: {"cpu": float(os.cpu_count() or 1)})
    labels: Mapping[str, str] = attrs.field(factory=dict)
    gpus: int = 0
    speed: float = 1.0
    max_concurrency: int = 8
    executor: str = "local"
    address: str | None = None
    heartbeat_timeout_s: float | None = None

    def check(self) -> None:
        if not isinstance(self.id, str) or not self.id or len(self.id) > 100 or "/" in self.id:
            raise InvalidProblem("worker.id", f"must be a non-empty string without '/', got {self.id!r}")
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise InvalidProblem("worker.max_concurrency", f"must be an integer >= 1, got {self.max_concurrency!r}")
        if self.executor not in ("local", "unix", "ssh"):
            raise InvalidProblem("worker.executor", f"unknown executor {self.executor!r} (choose from local, unix, ssh)")
        if self.executor == "unix" and not self.address:
            raise InvalidProblem("worker.address", "a unix executor needs the agent's socket path")
        if self.executor == "ssh" and not self.address:
            raise InvalidProblem("worker.address", "an ssh executor needs the host as [user@]host[:port]")
        if self.heartbeat_timeout_s is not None and not self.heartbeat_timeout_s > 0:
            raise InvalidProblem("worker.heartbeat_timeout_s", "must be > 0")
        self.model()  # capacity, labels, speed through the contract's reader

    def model(self) -> Worker:
        from .formats import _read_worker

        doc = {"id": self.id, "capacity": dict(self.capacity), "labels": dict(self.labels),
               "devices": [{"kind": "gpu"}] * int(self.gpus), "speed": self.speed}
        w = _read_worker(_Reader(InvalidProblem), doc, "worker")
        return attrs.evolve(w, capacity=Resources({**w.capacity.as_dict(), SLOTS: float(self.max_concurrency)}))

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["capacity"], d["labels"] = dict(self.capacity), dict(self.labels)
        return d


@attrs.frozen
class TaskStatus:
    """A snapshot of one task. Times are on the scheduler clock (seconds)."""

    id: str
    state: str
    attempt: int
    worker: str | None
    reason: str
    exit_code: int | None = None
    runtime_s: float | None = None
    stdout: str | None = None
    stderr: str | None = None
    submitted: float = 0.0
    started: float | None = None
    finished: float | None = None
    deadline: float | None = None
    preemptions: int = 0        # attempts of this task ended by preemption

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@attrs.frozen
class WorkerInfo:
    """A snapshot of one worker as ``Scheduler.workers()`` reports it."""

    id: str
    state: str
    reason: str
    running: int
    max_concurrency: int
    load: dict[str, Any]
    capacity: dict[str, float] = attrs.field(factory=dict)
    used: dict[str, float] = attrs.field(factory=dict)      # held by its reserved/running attempts
    labels: dict[str, str] = attrs.field(factory=dict)
    last_seen_s: float | None = None                        # seconds since its last message
    executor: str = "local"
