"""Simulation workloads: synthetic families (deterministic for a seed) and trace files.

A ``SimWorkload`` is a FORMATS.md ``Problem`` read as a trace: each task's ``release``
is its arrival time and ``duration`` the runtime *estimate* (what policies see); the
workload adds the *actual* runtimes (before worker speed) and scripted worker outages.

Families (``generate_workload(family, n_tasks, n_workers, load=..., seed=...)``):

- ``deadline``: deadline-heavy mixed workload, Poisson arrivals, ~80 % of tasks with
  a deadline (a third of them tight), priorities 1-3, cpu/mem shapes 1..8 cpu on 8..32-cpu workers;
- ``bursty``: the same task mix arriving in bursts (quiet gaps, then many at once);
- ``hetero``: heterogeneous labelled workers (arch, gpu_model, speeds 1-1.5) and tasks
  that require labels;
- ``gpu``: GPU sharing: whole-GPU and milli-GPU tasks (250..1000), model requirements.

``load`` is the offered load: the arrival rate is set so that arriving cpu-seconds per
second equal ``load`` x the cluster's cpu (GPU tasks: GPU milli-seconds vs GPU
capacity for ``gpu``), over the arrival window. Runtimes are lognormal; actual =
estimate x lognormal(0, ``noise``) (noise 0 = exact estimates).

Trace files (``load_trace(path)``): either a plain problem document, or
``{"format": "agentic-sched/trace/v1", "problem": {...}, "actual": {"t1": 4.5},
"outages": [{"worker": "w1", "at": 3.0, "until": 8.0}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ..formats import problem_from_json, problem_to_dict
from ..model import Device, GpuDemand, Problem, Task, Worker

TRACE_FORMAT = "agentic-sched/trace/v1"
FAMILIES = ("deadline", "bursty", "hetero", "gpu")


@attrs.frozen
class Outage:
    """Worker ``worker`` is down over ``[at, until)``; work running on it at ``at`` is lost."""

    worker: str
    at: float
    until: float


def _outages(items: Iterable[Outage]) -> tuple[Outage, ...]:
    return tuple(items)  # typed converter: a bare ``tuple`` loses the element type for mypy


@attrs.frozen
class SimWorkload:
    """A trace to simulate: ``problem`` (arrivals = release, estimates = duration),
    ``actual`` task id -> actual runtime at speed 1 (missing = the estimate) and
    scripted ``outages``. ``name`` is for reports only."""

    problem: Problem
    actual: Mapping[str, float] = attrs.field(factory=dict)
    outages: tuple[Outage, ...] = attrs.field(converter=_outages, default=())
    name: str = "trace"


# --------------------------------------------------------------------------- traces


def load_trace(path: str | Path) -> SimWorkload:
    """Read a trace file (problem document or trace/v1 document).

    Raises ValueError (``InvalidProblem`` is one) with one line naming the problem.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"trace {path}: malformed JSON: {exc}") from None
    return trace_from_dict(doc, name=Path(path).stem)


def trace_from_dict(doc: Any, name: str = "trace") -> SimWorkload:
    """Parse a trace/v1 mapping or a bare problem mapping (see module docstring)."""
    if not isinstance(doc, dict):
        raise ValueError("trace: expected a JSON object")
    if doc.get("format") != TRACE_FORMAT:
        return SimWorkload(problem_from_json(doc), name=name)
    extra = set(doc) - {"format", "problem", "actual", "outages"}
    if extra:
        raise ValueError(f"trace: unknown key {sorted(extra)[0]!r} (allowed: actual, format, outages, problem)")
    problem = problem_from_json(doc.get("problem", {}))
    ids = {t.id for t in problem.tasks}
    actual = {}
    for tid, val in dict(doc.get("actual", {})).items():
        if tid not in ids:
            raise ValueError(f"trace: actual.{tid}: unknown task id")
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
            raise ValueError(f"trace: actual.{tid}: must be a number > 0, got {val!r}")
        actual[tid] = float(val)
    workers = {w.id for w in problem.workers}
    outages = []
    for i, o in enumerate(doc.get("outages", [])):
        if not isinstance(o, dict) or set(o) != {"worker", "at", "until"}:
            raise ValueError(f"trace: outages[{i}]: expected keys worker, at, until")
        if o["worker"] not in workers:
            raise ValueError(f"trace: outages[{i}].worker: unknown worker id {o['worker']!r}")
        if not float(o["until"]) > float(o["at"]):
            raise ValueError(f"trace: outages[{i}]: until must be after at")
        outages.append(Outage(o["worker"], float(o["at"]), float(o["until"])))
    return SimWorkload(problem, actual, tuple(outages), name=name)


def trace_to_dict(wl: SimWorkload) -> dict[str, Any]:
    """The trace/v1 document of ``wl`` (round-trips through ``trace_from_dict``)."""
    return {"format": TRACE_FORMAT, "problem": problem_to_dict(wl.problem),
            "actual": dict(wl.actual),
            "outages": [{"worker": o.worker, "at": o.at, "until": o.until} for o in wl.outages]}


# --------------------------------------------------------------------------- families


def generate_workload(
    family: str, n_tasks: int, n_workers: int, *, load: float = 0.8, seed: int = 0,
    noise: float = 0.2, mean_runtime: float = 60.0,
) -> SimWorkload:
    """A synthetic workload of ``family`` (see module docstring); deterministic for
    ``seed``. Raises ValueError for an unknown family or non-positive sizes/load."""
    if family not in FAMILIES:
        raise ValueError(f"unknown workload family {family!r} (choose from {', '.join(FAMILIES)})")
    if n_tasks < 1 or n_workers < 1 or not load > 0 or noise < 0:
        raise ValueError("workload: tasks and workers must be >= 1, load > 0, noise >= 0")
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    workers = _workers(rng, n_workers, family)
    shapes = _shapes(rng, n_tasks, family)
    est = np.round(np.maximum(1.0, rng.lognormal(np.log(mean_runtime) - 0.32, 0.8, n_tasks)), 1)
    actual = est * (rng.lognormal(0.0, noise, n_tasks) if noise > 0 else np.ones(n_tasks))
    # offered load: work per second arriving = load x capacity
    if family == "gpu":
        work = sum((g.count * g.share if g else 0.0) * d for (_, g, _), d in zip(shapes, est, strict=True))
        cap = 1000.0 * sum(len(w.gpu_indices) for w in workers)
    else:
        work = float(sum(s[0] * d for s, d in zip(shapes, est, strict=True)))
        cap = sum(w.capacity.get("cpu") for w in workers)
    window = work / (load * cap)
    arrivals = _arrivals(rng, n_tasks, window, bursty=family == "bursty")
    tasks = []
    for i in range(n_tasks):
        cpu, gpu, requires = shapes[i]
        arr, dur = float(arrivals[i]), float(est[i])
        deadline = None
        p_deadline = 0.8 if family in ("deadline", "bursty") else 0.5
        if rng.random() < p_deadline:
            tight = rng.random() < 0.35
            slack = rng.uniform(0.2, 1.0) if tight else rng.uniform(1.0, 6.0)
            deadline = round(arr + dur * (1.0 + slack) + (0.0 if tight else mean_runtime), 1)
        tasks.append(Task(
            f"t{i}", {"cpu": cpu, "mem_mb": cpu * float(rng.choice([1024, 2048, 4096]))}, dur,
            release=round(arr, 2), deadline=deadline, priority=float(rng.choice([1, 1, 1, 2, 3])),
            gpu=gpu, requires=requires,
        ))
    actual_map = {t.id: float(a) for t, a in zip(tasks, actual, strict=True)}
    name = f"{family}-{n_tasks}x{n_workers}-load{load:g}-seed{seed}"
    return SimWorkload(Problem(workers, tasks, now=0.0), actual_map, (), name=name)


def _arrivals(rng: np.random.Generator, n: int, window: float, *, bursty: bool) -> np.ndarray:
    """Sorted arrival times over ~``window`` seconds: Poisson, or bursts of ~n/10 tasks
    at a few instants with quiet gaps between them (same mean rate)."""
    if not bursty:
        gaps = rng.exponential(window / n, n)
        return np.cumsum(gaps) - gaps[0]
    n_bursts = max(2, n // 25)
    centres = np.sort(rng.uniform(0.0, window, n_bursts))
    which = rng.integers(0, n_bursts, n)
    jitter = rng.exponential(window / n_bursts * 0.05, n)
    return np.sort(centres[which] + jitter)


def _shapes(rng: np.random.Generator, n: int, family: str) -> list[tuple[float, GpuDemand | None, dict[str, Any]]]:
    out: list[tuple[float, GpuDemand | None, dict[str, Any]]] = []
    for _ in range(n):
        cpu = float(rng.choice([1, 1, 2, 2, 4, 4, 8]))
        gpu: GpuDemand | None = None
        requires: dict[str, Any] = {}
        if family == "gpu":
            cpu = float(rng.choice([1, 2, 4, 8]))
            r = rng.random()
            if r < 0.5:
                gpu = GpuDemand(1, int(rng.choice([250, 300, 500, 700])))
            elif r < 0.9:
                gpu = GpuDemand(int(rng.choice([1, 1, 2, 4])))
            if gpu is not None and rng.random() < 0.3:
                requires["gpu_model"] = ["T4", "A10"] if rng.random() < 0.5 else "A10"
        elif family == "hetero":
            r = rng.random()
            if r < 0.2:
                requires["arch"] = "arm64"
            elif r < 0.35:
                requires["zone"] = str(rng.choice(["a", "b"]))
            elif r < 0.45:
                gpu = GpuDemand(1, int(rng.choice([500, 1000])))
        out.append((cpu, gpu, requires))
    return out


def _workers(rng: np.random.Generator, n: int, family: str) -> list[Worker]:
    out = []
    for i in range(n):
        cpu = float(rng.choice([8, 16, 32])) if family != "gpu" else 16.0
        labels = {"arch": "x86_64"}
        devices: list[Device] = []
        speed = 1.0
        if family == "hetero":
            labels = {"arch": "arm64" if i % 4 == 3 else "x86_64", "zone": "ab"[i % 2]}
            speed = float(rng.choice([1.0, 1.0, 1.25, 1.5]))
            if i % 5 == 0:
                labels["gpu_model"] = "T4"
                devices = [Device("gpu")] * 2
        elif family == "gpu":
            labels["gpu_model"] = ["T4", "A10", "V100"][i % 3]
            devices = [Device("gpu")] * int(rng.choice([2, 4, 8]))
        out.append(Worker(f"w{i}", {"cpu": cpu, "mem_mb": cpu * 4096}, labels, devices, speed=speed))
    return out
