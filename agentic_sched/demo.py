"""``nox -s demo`` / ``python -m agentic_sched.demo``: the runtime in under a minute.

Starts a scheduler with three local workers, submits a mixed workload (shell
tasks of different lengths, some with deadlines, a few no-ops, one that fails),
kills one worker's agent mid-run, shows the loss being detected and its tasks
finishing elsewhere, prints a live progress view and a final summary whose last
line says the run is complete with the counts. Every task appends its id to a
side-effect file, which the summary checks: no task ran twice.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

import anyio

from ._spec import TaskSpec
from .scheduler import Scheduler, SchedulerConfig


def workload(effects: Path, n: int, rng: random.Random) -> list[TaskSpec]:
    tasks = []
    for i in range(n):
        kind = rng.choice(["short", "short", "medium", "long", "noop"])
        if kind == "noop":
            tasks.append(TaskSpec(id=f"noop-{i:02d}", runtime="noop", duration=0.01))
            continue
        secs = {"short": 0.3, "medium": 1.0, "long": 2.5}[kind] * rng.uniform(0.7, 1.3)
        deadline = secs * rng.uniform(3, 8) if rng.random() < 0.5 else None
        tid = f"{kind}-{i:02d}"
        script = f"sleep {secs:.2f}; echo {tid} >> {effects}"
        tasks.append(TaskSpec(id=tid, argv=["/bin/sh", "-c", script], duration=secs, deadline=deadline,
                              demand={"cpu": 1}, priority=2 if deadline else 1))
    tasks.append(TaskSpec(id="flaky-step", argv=["/bin/sh", "-c", "echo oops >&2; exit 1"], duration=0.1))
    return tasks


def progress_line(s: Scheduler, t0: float) -> str:
    c = s.counts()
    ws = "  ".join(f"{w.id} {w.state}{'' if w.state in ('lost', 'down') else f' {w.running}/{w.max_concurrency}'}"
                   for w in s.workers())
    return (f"t={time.monotonic() - t0:5.1f}s  pending {c['pending']:3d}  running {c['running'] + c['reserved']:2d}"
            f"  done {c['done']:3d}  failed {c['failed']}  | {ws}")


async def run(n_tasks: int, planner: str, seed: int, state_dir: str) -> int:
    rng = random.Random(seed)
    effects = Path(state_dir) / "effects.log"
    effects.touch()
    cfg = SchedulerConfig(state_dir=state_dir, planner=planner, plan_budget_s=0.2, heartbeat_s=0.3,
                          heartbeat_timeout_s=1.0, orphan_timeout_s=10)
    t0 = time.monotonic()
    async with Scheduler(cfg) as s:
        print(f"agentic-sched demo: state in {state_dir}, planner {planner}")
        for i in (1, 2, 3):
            await s.add_worker(id=f"w{i}", capacity={"cpu": 2}, max_concurrency=3)
        handles = await s.submit_many(workload(effects, n_tasks, rng))
        print(f"submitted {len(handles)} tasks to 3 workers (2 cpu, 3 slots each)")
        victim, killed_at = "w2", None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_narrate, s, t0)
            while any(not st.terminal for st in s.list()):
                print(progress_line(s, t0))
                if killed_at is None and time.monotonic() - t0 > 2.5:
                    running = [t.id for t in s.list("running", worker=victim)]
                    s.local.kill_agent(victim)
                    killed_at = time.monotonic()
                    print(f"!! killed the agent of {victim} (SIGKILL) while it ran {', '.join(running) or 'nothing'}")
                await anyio.sleep(0.5)
            tg.cancel_scope.cancel()
        print(progress_line(s, t0))
        return summary(s, effects, time.monotonic() - t0)


async def _narrate(s: Scheduler, t0: float) -> None:
    async with s.subscribe() as events:
        async for ev in events:
            if ev.kind in ("worker_lost", "lost", "failed", "planner_fallback"):
                who = f"task {ev.task} " if ev.task else ""
                print(f"   [{time.monotonic() - t0:5.1f}s] {ev.kind}: {who}{ev.reason}")
            elif ev.kind == "started" and ev.attempt and ev.attempt > 1:
                print(f"   [{time.monotonic() - t0:5.1f}s] repaired: task {ev.task} attempt {ev.attempt} "
                      f"started on {ev.worker}")


def summary(s: Scheduler, effects: Path, elapsed: float) -> int:
    tasks = s.list()
    c = s.counts()
    ran = collections.Counter(effects.read_text().split())
    twice = sorted(t for t, k in ran.items() if k > 1)
    with_deadline = [t for t in tasks if t.deadline is not None and t.state == "done"]
    met = sum(1 for t in with_deadline
              if t.finished is not None and t.deadline is not None and t.finished <= t.deadline + 1e-6)
    per_worker = collections.Counter(t.worker for t in tasks if t.state == "done")
    print("\nsummary")
    print(f"  elapsed            {elapsed:.1f}s")
    print(f"  per worker (done)  {dict(sorted(per_worker.items()))}")
    print(f"  deadlines met      {met}/{len(with_deadline)}")
    for t in tasks:
        if t.attempt > 1 or t.state != "done":
            print(f"  {t.id:12s} {t.state:9s} attempt {t.attempt} on {t.worker}: {t.reason}")
    print(f"  side effects       {sum(ran.values())} runs recorded, ran twice: {twice or 'none'}")
    print(f"run complete: {len(tasks)} tasks, done {c['done']} / failed {c['failed']} / lost {c['lost']} "
          f"/ rescheduled {c['rescheduled']}")
    return 1 if twice else 0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=36)
    p.add_argument("--planner", default="portfolio")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--state-dir", default=None, help="keep state here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.state_dir:
        sys.exit(anyio.run(run, args.tasks, args.planner, args.seed, args.state_dir))
    with tempfile.TemporaryDirectory(prefix="agsched-demo-") as d:
        sys.exit(anyio.run(run, args.tasks, args.planner, args.seed, d))


if __name__ == "__main__":
    main()
