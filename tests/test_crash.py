"""Crash test: SIGKILL the scheduler's process at >= 20 random moments; every task runs once.

The child (this file run as a script) opens a scheduler on a state dir, registers
two local workers, submits the tasks that are not in the store yet and waits for
all of them. The test kills it at random moments (seeded), restarts it on the same
database, and finally lets it finish. Each task appends its id to a side-effect
file: at the end every accepted task is done, ran exactly once, on attempt 1.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

N_TASKS = 160
KILLS = 22


async def child(state_dir: str) -> None:

    from agentic_sched._spec import TaskSpec
    from agentic_sched.scheduler import Scheduler

    effects = Path(state_dir) / "effects.log"
    rng = random.Random(1)
    # mostly short tasks, every 8th long enough to outlive a scheduler restart (so the
    # restarted scheduler re-sends an attempt that is still running on its agent)
    secs = [2.0 if i % 8 == 0 else rng.uniform(0.1, 0.6) for i in range(N_TASKS)]
    specs = [TaskSpec(id=f"job-{i:03d}", duration=secs[i],
                      argv=["/bin/sh", "-c", f"sleep {secs[i]:.2f}; echo job-{i:03d} >> {effects}"])
             for i in range(N_TASKS)]
    # heartbeat timeout far above any stall on a loaded CI box: no worker is lost here
    async with Scheduler(state_dir=state_dir, heartbeat_timeout_s=20, orphan_timeout_s=30) as s:
        print("READY", flush=True)
        for w in ("w1", "w2"):
            await s.add_worker(id=w, capacity={"cpu": 4}, max_concurrency=3)
        known = {t.id for t in s.list()}
        todo = [t for t in specs if t.id not in known]
        while todo:  # in small chunks, so crashes also hit submission
            chunk, todo = todo[:7], todo[7:]
            await s.submit_many(chunk)
        print("SUBMITTED", flush=True)
        await s.wait([t.id for t in specs], timeout=120)
        print("ALL DONE", flush=True)


def _start(state_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, str(state_dir)], stdout=subprocess.PIPE,
                            stderr=open(state_dir / "child.err", "ab"))


def _kill_agents(state_dir: Path) -> None:
    for pidfile in state_dir.glob("workers/*/agent.pid"):
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.mark.slow
def test_sigkill_scheduler_at_random_moments_every_task_runs_once(tmp_path):
    rng = random.Random(20240601)
    effects = tmp_path / "effects.log"
    kills = mid_run = 0
    try:
        for _ in range(KILLS + 10):
            proc = _start(tmp_path)
            assert proc.stdout is not None
            proc.stdout.readline()            # READY: the store is open (or the child died)
            time.sleep(rng.uniform(0.0, 2.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                done = len(effects.read_text().split()) if effects.exists() else 0
                mid_run += 0 < done < N_TASKS
            proc.wait()
            if kills >= KILLS:
                break
        assert kills >= 20
        assert mid_run >= 10, f"only {mid_run} kills hit a run in progress"
        final = _start(tmp_path)
        out, _ = final.communicate(timeout=120)
        assert final.returncode == 0, (tmp_path / "child.err").read_text()[-3000:]
        assert b"ALL DONE" in out
    finally:
        _kill_agents(tmp_path)

    db = sqlite3.connect(tmp_path / "scheduler.db")
    rows = db.execute("SELECT id, state, attempt FROM tasks").fetchall()
    assert len(rows) == N_TASKS
    assert {state for _, state, _ in rows} == {"done"}
    assert {attempt for _, _, attempt in rows} == {1}, "no attempt was ever re-run"
    runs = collections.Counter((tmp_path / "effects.log").read_text().split())
    assert set(runs) == {r[0] for r in rows}
    twice = {t: n for t, n in runs.items() if n != 1}
    assert not twice, f"ran more than once: {twice}"


if __name__ == "__main__":
    import anyio

    anyio.run(child, sys.argv[1])
