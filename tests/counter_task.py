"""A task that counts in steps and checkpoints after each one (preemption tests).

``counter(dir, tid, n, step_s)`` appends 0..n-1 to ``dir/<tid>.effects`` (one line per
step, so a step run twice or skipped shows), saves the next step in
``$AGSCHED_CHECKPOINT_DIR/next`` (atomically) and resumes from it; each attempt appends
``<attempt> <first step>`` to ``<tid>.effects.attempts``. SIGTERM stops it between steps.
"""

from __future__ import annotations

import sys
import textwrap

import anyio

from agentic_sched._spec import TaskSpec

COUNTER = textwrap.dedent("""
    import os, signal, sys, time
    effects, n, step_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    ckpt = os.path.join(os.environ["AGSCHED_CHECKPOINT_DIR"], "next")
    start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
    with open(effects + ".attempts", "a") as f:
        f.write(f"{os.environ['AGENTIC_ATTEMPT']} {start}\\n")
    stop = False
    def on_term(*_):
        global stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    for i in range(start, n):
        if stop:
            sys.exit(143)
        time.sleep(step_s)
        with open(effects, "a") as f:
            f.write(f"{i}\\n")
        with open(ckpt + ".tmp", "w") as f:
            f.write(str(i + 1))
        os.replace(ckpt + ".tmp", ckpt)
""")


def counter(tmp_path, tid: str, n: int, step_s: float, **kw) -> TaskSpec:
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    return TaskSpec(id=tid, argv=[sys.executable, str(script), str(tmp_path / f"{tid}.effects"), str(n),
                                  str(step_s)], duration=n * step_s, **kw)


async def steps_done(tmp_path, tid: str, at_least: int) -> None:
    path = tmp_path / f"{tid}.effects"
    with anyio.fail_after(60):
        while not path.exists() or len(path.read_text().split()) < at_least:
            await anyio.sleep(0.05)
