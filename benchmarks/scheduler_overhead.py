"""Scheduler overhead per task, end to end, on the local executor.

Submits N tasks (default 10,000) to W local workers and waits for all of them:
- ``noop``: the agent completes each attempt at once, so the wall time is the
  scheduler's own cost (validation, SQLite group commits, planning rounds, the
  applier, protocol messages both ways, the agent's journal) -> ms/task, tasks/s;
- ``process``: each task is a real ``/bin/true`` process (spawn cost included).

Rounds are planned by ``eft`` (milliseconds per round): with the default portfolio
every round of identical no-ops would add its planning budget, which is not overhead.

    python benchmarks/scheduler_overhead.py [--tasks 10000] [--workers 4] [--process 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import anyio

from agentic_sched import Scheduler, TaskSpec


async def measure(n: int, workers: int, runtime: str, slots: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="agsched-bench-") as d:
        async with Scheduler(state_dir=d, planner="eft", batch_size=256, batch_max=1024) as s:
            for i in range(workers):
                await s.add_worker(id=f"w{i}", capacity={"cpu": 64}, max_concurrency=slots)
            with anyio.fail_after(60):
                while sum(w.state == "up" for w in s.workers()) < workers:
                    await anyio.sleep(0.02)
            spec = dict(runtime=runtime, duration=0.01) if runtime == "noop" else dict(argv=["/bin/true"], duration=0.01)
            t0 = time.perf_counter()
            handles = await s.submit_many(TaskSpec(**spec) for _ in range(n))
            t_sub = time.perf_counter() - t0
            finals = await s.wait(handles, timeout=600)
            wall = time.perf_counter() - t0
            assert all(f.state == "done" for f in finals)
            commits = s._store.commits
    return {"tasks": n, "workers": workers, "runtime": runtime, "wall_s": round(wall, 3),
            "submit_s": round(t_sub, 3), "ms_per_task": round(1000 * wall / n, 4),
            "tasks_per_s": round(n / wall, 1), "sqlite_commits": commits}


OUT = Path(__file__).parent / "results" / "scheduler_overhead.json"


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    """Run the overhead benchmark; ``--quick`` shrinks it. Writes ``results/scheduler_overhead.json``."""
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--slots", type=int, default=64)
    p.add_argument("--process", type=int, default=1000, help="tasks for the real-process run (0: skip)")
    p.add_argument("--quick", action="store_true", help="1,000 no-op and 200 process tasks")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.process = min(args.tasks, 1000), min(args.process, 200)
    rows = [anyio.run(measure, args.tasks, args.workers, "noop", args.slots)]
    if args.process:
        rows.append(anyio.run(measure, args.process, args.workers, "process", 8))
    for r in rows:
        print(json.dumps(r))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
