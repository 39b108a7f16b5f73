"""Sample and generated problems (deterministic for a seed).

``example_problem(name)`` returns one of ``EXAMPLES``; ``generate_problem`` builds a
synthetic family at any size. Used by the CLI (``agentic-sched example``), tests,
benchmarks and the demo.
"""

from __future__ import annotations

import numpy as np

from .model import Device, GpuDemand, Problem, RunningWork, Task, Weights, Worker

FAMILIES = ("mixed", "deadline", "gpu", "uniform")


def _tiny() -> Problem:
    gpu = [Device("gpu"), Device("gpu")]
    workers = [
        Worker("cpu-a", {"cpu": 4, "mem_mb": 8192}, {"arch": "x86_64"}),
        Worker("cpu-b", {"cpu": 8, "mem_mb": 16384}, {"arch": "arm64"}, speed=1.5),
        Worker("gpu-a", {"cpu": 8, "mem_mb": 32768}, {"arch": "x86_64", "gpu_model": "T4"}, gpu,
               running=[RunningWork("r1", {"cpu": 2}, {0: 500}, until=3.0)]),
    ]
    tasks = [
        Task("etl", {"cpu": 2, "mem_mb": 2048}, 4.0, deadline=6.0, priority=2),
        Task("train", {"cpu": 4, "mem_mb": 8192}, 10.0, gpu=GpuDemand(2), requires={"gpu_model": ["T4", "A10"]}),
        Task("infer", {"cpu": 1, "mem_mb": 1024}, 2.0, gpu=GpuDemand(1, 300), deadline=4.0),
        Task("report", {"cpu": 1, "mem_mb": 512}, 1.0, release=5.0, deadline=8.0),
        Task("build-arm", {"cpu": 6}, 6.0, requires={"arch": "arm64"}),
        Task("v100-job", {"cpu": 2}, 3.0, gpu=GpuDemand(1), requires={"gpu_model": "V100"}),
    ]
    return Problem(workers, tasks, now=0.0)


def generate_problem(
    n_tasks: int, n_workers: int, *, seed: int = 0, family: str = "mixed", load_s: float = 90.0
) -> Problem:
    """A random problem of a named family.

    - ``mixed``: heterogeneous labelled workers (some with GPUs), tasks with cpu/mem,
      some GPU and shared-GPU tasks, ~half with deadlines, some released later;
    - ``deadline``: cpu/mem work sized so the cluster holds ~``load_s`` seconds of full
      work, ~80 % of tasks with deadlines (some tight), priorities 1-3;
    - ``gpu``: GPU-sharing heavy (whole and milli GPUs, model requirements);
    - ``uniform``: identical workers and few task shapes (symmetry-heavy).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (choose from {', '.join(FAMILIES)})")
    rng = np.random.default_rng(seed)
    workers = _workers(rng, n_workers, family)
    cpu_total = sum(w.capacity.get("cpu") for w in workers)
    shapes = [1, 1, 2, 2, 4, 8] if family != "uniform" else [1, 2]
    cpus = rng.choice(shapes, n_tasks).astype(float)
    # durations scaled so that sum(cpu * duration) ~= load_s * cpu_total
    raw = rng.lognormal(1.5, 0.7, n_tasks)
    scale = load_s * cpu_total / float((cpus * raw).sum())
    durations = np.maximum(0.5, np.round(raw * scale, 1))
    tasks = []
    for i in range(n_tasks):
        cpu, dur = float(cpus[i]), float(durations[i])
        release = 0.0 if rng.random() < 0.7 else float(np.round(rng.uniform(0, load_s / 3), 1))
        deadline = None
        with_deadline = {"deadline": 0.8, "mixed": 0.5, "gpu": 0.3, "uniform": 0.5}[family]
        if rng.random() < with_deadline:
            slack = rng.uniform(1.2, 2.0 if family == "deadline" else 4.0) * load_s
            deadline = float(np.round(release + dur + rng.uniform(0.0, slack), 1))
        gpu = None
        requires: dict[str, str | list[str]] = {}
        p_gpu = {"mixed": 0.15, "gpu": 0.8, "deadline": 0.0, "uniform": 0.0}[family]
        if rng.random() < p_gpu:
            if rng.random() < 0.5:
                gpu = GpuDemand(1, int(rng.choice([250, 300, 500])))
            else:
                gpu = GpuDemand(int(rng.choice([1, 1, 2])))
            if rng.random() < 0.3:
                requires["gpu_model"] = ["T4", "A10"] if rng.random() < 0.5 else "A10"
        if family == "mixed" and rng.random() < 0.1:
            requires["arch"] = "arm64"
        tasks.append(Task(
            f"t{i}", {"cpu": cpu, "mem_mb": float(cpu * int(rng.choice([1024, 2048])))}, dur,
            release=release, deadline=deadline, priority=float(rng.choice([1, 1, 2, 3])),
            gpu=gpu, requires=requires,
        ))
    return Problem(workers, tasks, now=0.0, weights=Weights())


def _workers(rng: np.random.Generator, n: int, family: str) -> list[Worker]:
    out = []
    for i in range(n):
        if family == "uniform":
            out.append(Worker(f"w{i}", {"cpu": 16, "mem_mb": 65536}))
            continue
        cpu = float(rng.choice([8, 16, 32]))
        labels = {"arch": "arm64" if family == "mixed" and i % 5 == 4 else "x86_64"}
        devices: list[Device] = []
        has_gpu = family == "gpu" or (family == "mixed" and i % 3 == 0)
        if has_gpu:
            labels["gpu_model"] = str(rng.choice(["T4", "A10", "V100"]))
            devices = [Device("gpu")] * int(rng.choice([1, 2, 4, 8]))
        out.append(Worker(
            f"w{i}", {"cpu": cpu, "mem_mb": cpu * 4096}, labels, devices,
            speed=float(rng.choice([1.0, 1.0, 1.25])) if family != "deadline" else 1.0,
            health=float(rng.choice([1.0, 1.0, 0.99, 0.95])),
            idle_cost=float(rng.choice([0.0, 0.01])),
        ))
    return out


EXAMPLES = {
    "tiny": _tiny,
    "mixed": lambda: generate_problem(50, 10, seed=1, family="mixed"),
    "deadline": lambda: generate_problem(500, 50, seed=7, family="deadline"),
    "gpu": lambda: generate_problem(200, 20, seed=3, family="gpu"),
    "large": lambda: generate_problem(10_000, 1000, seed=11, family="mixed"),
}


def example_problem(name: str) -> Problem:
    """One of the named sample problems (``tiny``, ``mixed``, ``deadline``, ``gpu``, ``large``)."""
    try:
        return EXAMPLES[name]()
    except KeyError:
        raise ValueError(f"unknown example {name!r} (choose from {', '.join(EXAMPLES)})") from None
