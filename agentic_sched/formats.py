"""The problem/plan JSON contract of FORMATS.md, implemented in one place.

- ``problem_from_json`` / ``problem_to_json``: strict reading (unknown keys, wrong
  types, NaN/inf, negatives, zero durations, duplicate ids, bad ``gpu``, unknown
  format string all raise ``InvalidProblem`` naming the JSON path) and writing.
- ``plan_from_json`` / ``plan_to_json``: the plan document.
- ``validate(problem, plan)`` returns every violation of rules 1-5 (never raises on
  an invalid plan) and ``cost(problem, plan)`` returns each metric and the objective.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import attrs

from ._errors import InvalidPlan, InvalidProblem
from .model import (
    MILLI_PER_DEVICE,
    PLAN_FORMAT,
    PLAN_STATUSES,
    PROBLEM_FORMAT,
    WEIGHT_KEYS,
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

TOL = 1e-6

# --------------------------------------------------------------------------- reading


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _load(text: str | bytes | Mapping[str, object], err: type[InvalidProblem | InvalidPlan]) -> Any:
    if isinstance(text, Mapping):
        return text
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise err("", f"malformed JSON: {exc}") from None


class _Reader:
    """Strict typed access to a parsed JSON tree; every error names its path."""

    def __init__(self, err: type[InvalidProblem | InvalidPlan]) -> None:
        self.err = err

    def obj(self, value: Any, path: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.err(path or "$", f"expected an object, got {_kind(value)}")
        for key in value:
            if key not in required and key not in optional:
                allowed = ", ".join(sorted(required | optional))
                raise self.err(_join(path, key), f"unknown key {key!r} (allowed: {allowed})")
        for key in sorted(required):
            if key not in value:
                raise self.err(_join(path, key), "missing required key")
        return value

    def number(self, value: Any, path: str, *, minimum: float | None = 0.0, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.err(path, f"expected a number, got {_kind(value)}")
        try:
            x = float(value)
        except OverflowError:  # an integer literal beyond the float range
            x = math.inf
        if not math.isfinite(x):
            raise self.err(path, "must be finite")
        if positive and x <= 0:
            raise self.err(path, f"must be > 0, got {value}")
        if minimum is not None and x < minimum:
            raise self.err(path, f"must be >= {minimum:g}, got {value}")
        return x

    def integer(self, value: Any, path: str, lo: int, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.err(path, f"expected an integer, got {_kind(value)} {value!r}")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise self.err(path, f"expected an integer, got {_kind(value)} {value!r}")
        n = int(value)
        if n < lo or (hi is not None and n > hi):
            rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
            raise self.err(path, f"must be {rng}, got {n}")
        return n

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.err(path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.err(path, f"expected an array, got {_kind(value)}")
        return value

    def resources(self, value: Any, path: str) -> Resources:
        if not isinstance(value, dict):
            raise self.err(path, f"expected an object of resource quantities, got {_kind(value)}")
        return Resources({k: self.number(v, _join(path, k)) for k, v in value.items()})


def _check_format(doc: Any, expected: str, err: type[InvalidProblem | InvalidPlan]) -> None:
    """The format string is checked first: a plan given as a problem says so plainly."""
    if not isinstance(doc, dict):
        raise err("$", f"expected an object, got {_kind(doc)}")
    if "format" not in doc:
        raise err("format", f"missing required key (expected {expected!r})")
    if doc["format"] != expected:
        raise err("format", f"unknown format {doc['format']!r} (expected {expected!r})")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def problem_from_json(text: str | bytes | Mapping[str, object]) -> Problem:
    """Parse a problem document (text or already-parsed mapping) under FORMATS.md.

    Raises ``InvalidProblem(path, message)`` on the first violation found.
    """
    doc = _load(text, InvalidProblem)
    r = _Reader(InvalidProblem)
    _check_format(doc, PROBLEM_FORMAT, InvalidProblem)
    r.obj(doc, "", {"format", "workers", "tasks"}, {"now", "weights"})
    now = r.number(doc.get("now", 0.0), "now", minimum=None)
    workers = tuple(_read_worker(r, w, f"workers[{i}]") for i, w in enumerate(r.array(doc["workers"], "workers")))
    tasks = tuple(_read_task(r, t, f"tasks[{i}]") for i, t in enumerate(r.array(doc["tasks"], "tasks")))
    weights = _read_weights(r, doc.get("weights", {}))
    _check_ids(workers, tasks)
    return Problem(workers=workers, tasks=tasks, now=now, weights=weights)


def _read_worker(r: _Reader, doc: Any, path: str) -> Worker:
    r.obj(doc, path, {"id", "capacity"}, {"labels", "devices", "speed", "health", "idle_cost", "running"})
    labels = doc.get("labels", {})
    if not isinstance(labels, dict):
        raise InvalidProblem(f"{path}.labels", f"expected an object, got {_kind(labels)}")
    for key, val in labels.items():
        r.string(val, f"{path}.labels.{key}")
    devices = []
    for j, dev in enumerate(r.array(doc.get("devices", []), f"{path}.devices")):
        r.obj(dev, f"{path}.devices[{j}]", {"kind"}, set())
        devices.append(Device(kind=r.string(dev["kind"], f"{path}.devices[{j}].kind")))
    health = r.number(doc.get("health", 1.0), f"{path}.health")
    if health > 1.0:
        raise InvalidProblem(f"{path}.health", f"must be in [0, 1], got {health}")
    running = tuple(
        _read_running(r, item, f"{path}.running[{j}]", devices)
        for j, item in enumerate(r.array(doc.get("running", []), f"{path}.running"))
    )
    return Worker(
        id=r.string(doc["id"], f"{path}.id"),
        capacity=r.resources(doc["capacity"], f"{path}.capacity"),
        labels=labels,
        devices=tuple(devices),
        speed=r.number(doc.get("speed", 1.0), f"{path}.speed", positive=True),
        health=health,
        idle_cost=r.number(doc.get("idle_cost", 0.0), f"{path}.idle_cost"),
        running=running,
    )


def _read_running(r: _Reader, doc: Any, path: str, devices: list[Device]) -> RunningWork:
    r.obj(doc, path, {"task", "until"}, {"demand", "devices"})
    held = doc.get("devices", {})
    if not isinstance(held, dict):
        raise InvalidProblem(f"{path}.devices", f"expected an object of device index -> milli, got {_kind(held)}")
    shares: dict[int, float] = {}
    for key, milli in held.items():
        p = f"{path}.devices.{key}"
        if not (key.isascii() and key.isdigit()) or int(key) >= len(devices):
            raise InvalidProblem(p, f"no device with index {key!r} on this worker ({len(devices)} devices)")
        shares[int(key)] = r.number(milli, p)
        if shares[int(key)] > MILLI_PER_DEVICE:
            raise InvalidProblem(p, f"must be <= {MILLI_PER_DEVICE} milli, got {milli}")
    return RunningWork(
        task=r.string(doc["task"], f"{path}.task"),
        demand=r.resources(doc.get("demand", {}), f"{path}.demand"),
        devices=shares,
        until=r.number(doc["until"], f"{path}.until", minimum=None),
    )


def _read_task(r: _Reader, doc: Any, path: str) -> Task:
    r.obj(doc, path, {"id", "duration"}, {"demand", "gpu", "release", "deadline", "priority", "requires"})
    gpu = None
    if doc.get("gpu") is not None:
        g = r.obj(doc["gpu"], f"{path}.gpu", {"count"}, {"share"})
        count = r.integer(g["count"], f"{path}.gpu.count", 1)
        share = r.integer(g.get("share", MILLI_PER_DEVICE), f"{path}.gpu.share", 1, MILLI_PER_DEVICE)
        if count > 1 and share != MILLI_PER_DEVICE:
            raise InvalidProblem(f"{path}.gpu.share", f"a share below {MILLI_PER_DEVICE} needs count 1, got count {count}")
        gpu = GpuDemand(count=count, share=share)
    requires = doc.get("requires", {})
    if not isinstance(requires, dict):
        raise InvalidProblem(f"{path}.requires", f"expected an object, got {_kind(requires)}")
    for key, val in requires.items():
        p = f"{path}.requires.{key}"
        if isinstance(val, list):
            if not val:
                raise InvalidProblem(p, "an empty list of allowed values can never match")
            for k, v in enumerate(val):
                r.string(v, f"{p}[{k}]")
        else:
            r.string(val, p)
    deadline = doc.get("deadline")
    release = doc.get("release")
    return Task(
        id=r.string(doc["id"], f"{path}.id"),
        demand=r.resources(doc.get("demand", {}), f"{path}.demand"),
        duration=r.number(doc["duration"], f"{path}.duration", positive=True),
        release=None if release is None else r.number(release, f"{path}.release", minimum=None),
        deadline=None if deadline is None else r.number(deadline, f"{path}.deadline", minimum=None),
        priority=r.number(doc.get("priority", 1), f"{path}.priority", minimum=1.0),
        gpu=gpu,
        requires=requires,
    )


def _read_weights(r: _Reader, doc: Any) -> Weights:
    r.obj(doc, "weights", set(), set(WEIGHT_KEYS))
    return Weights(**{k: r.number(v, f"weights.{k}") for k, v in doc.items()})


def _check_ids(workers: tuple[Worker, ...], tasks: tuple[Task, ...]) -> None:
    seen: dict[str, str] = {}
    for i, w in enumerate(workers):
        if w.id in seen:
            raise InvalidProblem(f"workers[{i}].id", f"duplicate worker id {w.id!r} (also {seen[w.id]})")
        seen[w.id] = f"workers[{i}]"
    running: dict[str, str] = {}
    for i, w in enumerate(workers):
        for j, rw in enumerate(w.running):
            p = f"workers[{i}].running[{j}]"
            if rw.task in running:
                raise InvalidProblem(f"{p}.task", f"duplicate running task id {rw.task!r} (also {running[rw.task]})")
            running[rw.task] = p
    ids: dict[str, str] = {}
    for i, t in enumerate(tasks):
        p = f"tasks[{i}]"
        if t.id in ids:
            raise InvalidProblem(f"{p}.id", f"duplicate task id {t.id!r} (also {ids[t.id]})")
        if t.id in running:
            raise InvalidProblem(f"{p}.id", f"task id {t.id!r} repeats running task {running[t.id]}")
        ids[t.id] = p


# --------------------------------------------------------------------------- writing


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else x


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    """The JSON-ready mapping of ``problem`` (defaults written out explicitly)."""
    return {
        "format": PROBLEM_FORMAT,
        "now": problem.now,
        "workers": [
            {
                "id": w.id,
                "capacity": {k: _num(v) for k, v in w.capacity},
                "labels": dict(w.labels),
                "devices": [{"kind": d.kind} for d in w.devices],
                "speed": w.speed,
                "health": w.health,
                "idle_cost": w.idle_cost,
                "running": [
                    {"task": rw.task, "demand": {k: _num(v) for k, v in rw.demand},
                     "devices": {str(i): _num(m) for i, m in rw.devices}, "until": rw.until}
                    for rw in w.running
                ],
            }
            for w in problem.workers
        ],
        "tasks": [_task_to_dict(t) for t in problem.tasks],
        "weights": problem.weights.as_dict(),
    }


def _task_to_dict(t: Task) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.id, "demand": {k: _num(v) for k, v in t.demand}, "duration": t.duration}
    if t.gpu is not None:
        # share only when it is one (a strict reader may refuse a share beside count > 1)
        out["gpu"] = {"count": t.gpu.count, **({"share": t.gpu.share} if t.gpu.is_shared else {})}
    if t.release is not None:
        out["release"] = t.release
    out["deadline"] = t.deadline
    out["priority"] = _num(t.priority)
    out["requires"] = {k: (v[0] if len(v) == 1 else list(v)) for k, v in t.requires}
    return out


def problem_to_json(problem: Problem, *, indent: int | None = None) -> str:
    return json.dumps(problem_to_dict(problem), indent=indent, allow_nan=False)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The JSON-ready mapping of ``plan``; exactly the keys of FORMATS.md."""
    return {
        "format": PLAN_FORMAT,
        "assignments": [
            {"task": a.task, "worker": a.worker, "start": a.start, "end": a.end, "devices": list(a.devices)}
            for a in plan.assignments
        ],
        "unassigned": [{"task": u.task, "reason": u.reason} for u in plan.unassigned],
        "planner": plan.planner,
        "status": plan.status,
        "objective": plan.objective,
        "bound": plan.bound,
        "elapsed_s": plan.elapsed_s,
    }


def plan_to_json(plan: Plan, *, indent: int | None = None) -> str:
    return json.dumps(plan_to_dict(plan), indent=indent, allow_nan=False)


def plan_from_json(text: str | bytes | Mapping[str, object]) -> Plan:
    """Parse a plan document; raises ``InvalidPlan(path, message)`` if malformed.

    ``planner``, ``status``, ``objective``, ``bound`` and ``elapsed_s`` may be
    omitted (unknown / feasible / null / null / 0); unknown keys are refused.
    """
    doc = _load(text, InvalidPlan)
    r = _Reader(InvalidPlan)
    _check_format(doc, PLAN_FORMAT, InvalidPlan)
    r.obj(doc, "", {"format", "assignments", "unassigned"}, {"planner", "status", "objective", "bound", "elapsed_s"})
    assignments = []
    for i, a in enumerate(r.array(doc["assignments"], "assignments")):
        p = f"assignments[{i}]"
        r.obj(a, p, {"task", "worker", "start", "end"}, {"devices"})
        devs = tuple(r.integer(d, f"{p}.devices[{k}]", 0) for k, d in enumerate(r.array(a.get("devices", []), f"{p}.devices")))
        assignments.append(Assignment(
            task=r.string(a["task"], f"{p}.task"), worker=r.string(a["worker"], f"{p}.worker"),
            start=r.number(a["start"], f"{p}.start", minimum=None),
            end=r.number(a["end"], f"{p}.end", minimum=None), devices=devs))
    unassigned = []
    for i, u in enumerate(r.array(doc["unassigned"], "unassigned")):
        p = f"unassigned[{i}]"
        r.obj(u, p, {"task", "reason"}, set())
        unassigned.append(Unassigned(task=r.string(u["task"], f"{p}.task"), reason=r.string(u["reason"], f"{p}.reason")))
    status = doc.get("status", "feasible")
    if status not in PLAN_STATUSES:
        raise InvalidPlan("status", f"unknown status {status!r} (allowed: {', '.join(PLAN_STATUSES)})")
    opt = {k: None if doc.get(k) is None else r.number(doc[k], k, minimum=None) for k in ("objective", "bound")}
    return Plan(
        assignments=tuple(assignments), unassigned=tuple(unassigned),
        planner=r.string(doc.get("planner", "unknown"), "planner"), status=status,
        objective=opt["objective"], bound=opt["bound"],
        elapsed_s=r.number(doc.get("elapsed_s", 0.0), "elapsed_s"),
    )


# --------------------------------------------------------------------------- rules


@attrs.frozen
class Violation:
    """One broken rule: ``rule`` is 1..5 (FORMATS.md) or ``"objective"``."""

    rule: int | str
    message: str

    def __str__(self) -> str:
        return f"rule {self.rule}: {self.message}"


def requires_holds(task: Task, worker: Worker) -> bool:
    """Rule 2: every required label of ``task`` is on ``worker`` with an allowed value."""
    return all(worker.label(key) in allowed for key, allowed in task.requires)


def validate(problem: Problem, plan: Plan) -> list[Violation]:
    """Every violation of FORMATS.md rules 1-5 by ``plan`` on ``problem``, and an
    ``objective`` violation when the plan reports an objective that ``cost`` does
    not reproduce (1e-6 relative). An empty list means the plan is valid.

    Complexity: O(A log A + A * k) where k is the overlap per worker.
    """
    out: list[Violation] = []
    tasks = problem.task_index
    workers = problem.worker_index
    seen: dict[str, str] = {}
    for entry, where in [(a.task, "assignments") for a in plan.assignments] + [
        (u.task, "unassigned") for u in plan.unassigned
    ]:
        if entry not in tasks:
            out.append(Violation(1, f"{where}: unknown task id {entry!r}"))
        elif entry in seen:
            out.append(Violation(1, f"task {entry!r} appears twice ({seen[entry]} and {where})"))
        seen.setdefault(entry, where)
    for t in problem.tasks:
        if t.id not in seen:
            out.append(Violation(1, f"task {t.id!r} is neither assigned nor unassigned"))
    for u in plan.unassigned:
        if not u.reason.strip():
            out.append(Violation(1, f"unassigned task {u.task!r} has no reason"))

    per_worker: dict[str, list[tuple[Assignment, Task]]] = {}
    for a in plan.assignments:
        if a.worker not in workers:
            out.append(Violation(1, f"task {a.task!r}: unknown worker id {a.worker!r}"))
            continue
        if a.task not in tasks:
            continue
        task, worker = tasks[a.task][1], workers[a.worker][1]
        if not requires_holds(task, worker):
            need = ", ".join(f"{k} in {list(v)}" for k, v in task.requires)
            out.append(Violation(2, f"task {a.task!r} on {a.worker!r}: requires {need}, worker has {dict(worker.labels)}"))
        earliest = task.earliest(problem.now)
        if a.start < earliest - TOL:
            out.append(Violation(3, f"task {a.task!r} starts at {a.start} before max(now, release) = {earliest}"))
        expected_end = a.start + task.duration / worker.speed
        if abs(a.end - expected_end) > TOL:
            out.append(Violation(3, f"task {a.task!r} ends at {a.end}, expected start + duration/speed = {expected_end}"))
        out.extend(_device_choice_violations(a, task, worker))
        per_worker.setdefault(a.worker, []).append((a, task))
    for wid, items in per_worker.items():
        out.extend(_capacity_violations(workers[wid][1], items))
    if plan.objective is not None and not out:
        obj = cost(problem, plan)["objective"]
        if abs(obj - plan.objective) > TOL * max(1.0, abs(obj)):
            out.append(Violation("objective", f"reported objective {plan.objective} but the cost formulas give {obj}"))
    return out


def _device_choice_violations(a: Assignment, task: Task, worker: Worker) -> list[Violation]:
    want = task.gpu_count()
    out = []
    if len(a.devices) != want:
        out.append(Violation(5, f"task {a.task!r} lists {len(a.devices)} devices, needs {want}"))
    if len(set(a.devices)) != len(a.devices):
        out.append(Violation(5, f"task {a.task!r} lists a device twice: {list(a.devices)}"))
    gpus = set(worker.gpu_indices)
    for d in a.devices:
        if d not in gpus:
            out.append(Violation(5, f"task {a.task!r}: {a.worker!r} has no gpu device with index {d}"))
    return out


def _capacity_violations(worker: Worker, items: list[tuple[Assignment, Task]]) -> list[Violation]:
    """Rules 4 and 5 on one worker, checked at every assigned start (where load peaks)."""
    out = []
    names = sorted({k for _, t in items for k in t.demand.names()})
    for a, _ in items:
        tau = a.start
        active = [(b, t) for b, t in items if b.start <= tau + TOL and tau < b.end - TOL]
        for res in names:
            used = sum(rw.demand.get(res) for rw in worker.running if tau < rw.until - TOL)
            used += sum(t.demand.get(res) for _, t in active)
            cap = worker.capacity.get(res)
            if used > cap + TOL:
                who = ", ".join(sorted(b.task for b, _ in active))
                out.append(Violation(4, f"worker {worker.id!r} {res} at t={tau}: {used:g} > capacity {cap:g} ({who})"))
        load: dict[int, float] = {}
        for b, t in active:  # only devices the plan uses can be overloaded by it
            share = t.gpu.share if t.gpu is not None else 0
            for d in b.devices:
                load[d] = load.get(d, 0.0) + share
        for rw in worker.running:
            if tau < rw.until - TOL:
                for d, milli in rw.devices:
                    if d in load:
                        load[d] += milli
        for d, milli in sorted(load.items()):
            if milli > MILLI_PER_DEVICE + TOL:
                out.append(Violation(5, f"worker {worker.id!r} device {d} at t={tau}: {milli:g} milli > {MILLI_PER_DEVICE}"))
    return _dedupe(out)


def _dedupe(items: list[Violation]) -> list[Violation]:
    return list(dict.fromkeys(items))


# --------------------------------------------------------------------------- cost

METRICS: tuple[str, ...] = WEIGHT_KEYS


def cost(problem: Problem, plan: Plan) -> dict[str, float]:
    """Each metric of FORMATS.md plus ``objective`` = Σ weights[k] · metric[k].

    Assignments whose task or worker is unknown are ignored (``validate`` reports them).
    """
    tasks = problem.task_index
    workers = problem.worker_index
    placed = [(a, tasks[a.task][1], workers[a.worker][1]) for a in plan.assignments
              if a.task in tasks and a.worker in workers]
    now = problem.now
    lateness = misses = reliability = 0.0
    work: dict[str, float] = {}
    last_end: dict[str, float] = {}
    for a, t, w in placed:
        d = a.end - a.start
        if t.deadline is not None:
            lateness += t.priority * max(0.0, a.end - t.deadline)
            misses += a.end > t.deadline
        reliability += (1.0 - w.health) * d
        work[w.id] = work.get(w.id, 0.0) + t.demand.get("cpu") * d
        last_end[w.id] = max(last_end.get(w.id, -math.inf), a.end)
    makespan = max((a.end for a, _, _ in placed), default=now) - now if placed else 0.0
    imbalance = 0.0
    cpu_workers = [w for w in problem.workers if w.capacity.get("cpu") > 0]
    if makespan > 0 and cpu_workers:
        u = [work.get(w.id, 0.0) / (w.capacity.get("cpu") * makespan) for w in cpu_workers]
        mean = sum(u) / len(u)
        imbalance = 100.0 * math.sqrt(sum((x - mean) ** 2 for x in u) / len(u))
    energy = sum(workers[wid][1].idle_cost * (end - now) for wid, end in last_end.items())
    unassigned = sum(tasks[u.task][1].priority for u in plan.unassigned if u.task in tasks)
    metrics = {"lateness": lateness, "misses": float(misses), "makespan": makespan, "imbalance": imbalance,
               "energy": energy, "reliability": reliability, "unassigned": unassigned}
    weights = problem.weights.as_dict()
    metrics["objective"] = sum(weights[k] * metrics[k] for k in METRICS)
    return metrics
