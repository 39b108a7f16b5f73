"""Tiny random problems and an independent exhaustive list-schedule search (test helper)."""

from __future__ import annotations

import itertools
import math
import random

from agentic_sched import (
    Assignment,
    Device,
    GpuDemand,
    Plan,
    Problem,
    RunningWork,
    Task,
    Unassigned,
    Weights,
    Worker,
    cost,
)

EPS = 1e-9


def tiny_problem(seed: int, n_tasks: int = 5, n_workers: int = 3, *, imbalance: float = 0.0,
                 shared_gpu: bool = False) -> Problem:
    """Integer-valued problem with releases, deadlines, GPUs, running work and a label."""
    rng = random.Random(seed)
    workers = []
    for w in range(n_workers):
        gpu = w == 0
        workers.append(Worker(
            f"w{w}", {"cpu": rng.choice([2, 4]), "mem_mb": 4096},
            {"arch": "arm64" if w == n_workers - 1 else "x86_64"},
            [Device("gpu"), Device("gpu")] if gpu else [],
            health=rng.choice([1.0, 0.9]), idle_cost=rng.choice([0.0, 1.0]),
            running=[RunningWork("r0", {"cpu": 1}, {0: 1000}, until=2.0)] if gpu else []))
    tasks = []
    for i in range(n_tasks):
        dur = float(rng.randint(1, 5))
        rel = float(rng.choice([0, 0, 1, 3]))
        gpu = None
        if i % 3 == 0:
            gpu = GpuDemand(1, 500) if shared_gpu else GpuDemand(rng.choice([1, 2]))
        tasks.append(Task(
            f"t{i}", {"cpu": float(rng.choice([1, 2])), "mem_mb": 1024.0}, dur, release=rel,
            deadline=rel + dur + rng.choice([0, 1, 3]) if rng.random() < 0.7 else None,
            priority=float(rng.choice([1, 2])), gpu=gpu,
            requires={"arch": "x86_64"} if i == 1 else {}))
    return Problem(workers, tasks, now=0.0, weights=Weights(imbalance=imbalance))


def _earliest(problem: Problem, placed: list, task: Task, w: int):
    """Earliest start of ``task`` on worker ``w`` given ``placed`` [(task, w, start, end, devs)]."""
    worker = problem.workers[w]
    items = [(problem.now, rw.until, rw.demand.get, dict(rw.devices)) for rw in worker.running]
    for t, pw, s, e, devs in placed:
        if pw == w:
            share = t.gpu.share if t.gpu else 0
            items.append((s, e, t.demand.get, {d: share for d in devs}))
    dur = task.duration / worker.speed
    rel = task.earliest(problem.now)
    for t0 in sorted({rel} | {e for _, e, _, _ in items if e > rel}):
        pts = [t0] + [s for s, _, _, _ in items if t0 < s < t0 + dur - EPS]
        act = [[it for it in items if it[0] <= p + EPS and p < it[1] - EPS] for p in pts]
        if any(sum(g(r) for _, _, g, _ in a) + q > worker.capacity.get(r) + EPS
               for a in act for r, q in task.demand):
            continue
        if task.gpu is None:
            return t0, ()
        peak = {d: max(sum(dv.get(d, 0) for *_, dv in a) for a in act) for d in worker.gpu_indices}
        free = [d for d in worker.gpu_indices if peak[d] + task.gpu.share <= 1000 + EPS]
        if len(free) < task.gpu.count:
            continue
        if task.gpu.is_shared:
            return t0, (max(free, key=lambda d: (peak[d], -d)),)
        return t0, tuple(free[: task.gpu.count])
    return math.inf, ()


def exhaustive(problem: Problem) -> float:
    """Least objective over every task order x worker choice, each task at its earliest start."""
    eligible = {t.id: [w for w, wk in enumerate(problem.workers)
                       if all(wk.label(k) in v for k, v in t.requires)
                       and all(wk.capacity.get(r) >= q for r, q in t.demand)
                       and (t.gpu is None or len(wk.gpu_indices) >= t.gpu.count)] for t in problem.tasks}
    todo = [t for t in problem.tasks if eligible[t.id]]
    left_out = [Unassigned(t.id, "no worker") for t in problem.tasks if not eligible[t.id]]
    best = math.inf

    def rec(placed: list, rest: list) -> None:
        nonlocal best
        if not rest:
            plan = Plan([Assignment(t.id, problem.workers[w].id, s, e, d) for t, w, s, e, d in placed], left_out)
            best = min(best, cost(problem, plan)["objective"])
            return
        for k, t in enumerate(rest):
            for w in eligible[t.id]:
                s, devs = _earliest(problem, placed, t, w)
                if math.isfinite(s):
                    rec(placed + [(t, w, s, s + t.duration / problem.workers[w].speed, devs)],
                        rest[:k] + rest[k + 1:])

    rec([], todo)
    return best


def perms_count(n: int, w: int) -> int:
    return math.factorial(n) * w ** n


__all__ = ["exhaustive", "itertools", "perms_count", "tiny_problem"]
