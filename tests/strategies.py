"""Hypothesis strategies for random FORMATS.md problems (small, with every feature)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from agentic_sched import Problem

MODELS = ["T4", "A10", "V100"]


@st.composite
def problem_docs(draw: st.DrawFn, max_workers: int = 4, max_tasks: int = 8) -> dict[str, Any]:
    """A random valid problem document: labels, GPUs, shares, running work, releases, deadlines."""
    now = draw(st.sampled_from([0.0, 2.5]))
    workers = []
    for i in range(draw(st.integers(1, max_workers))):
        ndev = draw(st.integers(0, 3))
        running = []
        if draw(st.booleans()):
            dev = {"0": draw(st.sampled_from([250, 500, 1000]))} if ndev else {}
            running.append({"task": f"r{i}", "demand": {"cpu": draw(st.sampled_from([0.5, 1, 2]))},
                            "devices": dev, "until": now + draw(st.floats(0.5, 6))})
        workers.append({
            "id": f"w{i}",
            "capacity": {"cpu": draw(st.sampled_from([2, 4, 8])), "mem_mb": draw(st.sampled_from([2048, 8192]))},
            "labels": {"gpu_model": draw(st.sampled_from(MODELS))} if ndev else {"arch": "x86_64"},
            "devices": [{"kind": "gpu"}] * ndev + ([{"kind": "fpga"}] if draw(st.booleans()) else []),
            "speed": draw(st.sampled_from([1.0, 1.0, 1.5, 0.5])),
            "health": draw(st.sampled_from([1.0, 0.9])),
            "idle_cost": draw(st.sampled_from([0.0, 0.1])),
            "running": running,
        })
    tasks = []
    for j in range(draw(st.integers(1, max_tasks))):
        task: dict[str, Any] = {
            "id": f"t{j}",
            "demand": {"cpu": draw(st.sampled_from([0, 0.5, 1, 2, 3])), "mem_mb": draw(st.sampled_from([0, 512, 4096]))},
            "duration": draw(st.floats(0.25, 8)),
            "priority": draw(st.sampled_from([1, 2, 3])),
        }
        if draw(st.booleans()):
            task["release"] = now + draw(st.floats(0, 5))
        if draw(st.booleans()):
            task["deadline"] = now + draw(st.floats(0.5, 12))
        kind = draw(st.sampled_from(["none", "none", "share", "whole"]))
        if kind == "share":
            task["gpu"] = {"count": 1, "share": draw(st.sampled_from([100, 300, 500, 1000]))}
        elif kind == "whole":
            task["gpu"] = {"count": draw(st.integers(1, 2))}
        if draw(st.integers(0, 4)) == 0:
            task["requires"] = {"gpu_model": draw(st.sampled_from([MODELS[:2], "V100"]))}
        tasks.append(task)
    return {"format": "agentic-sched/problem/v1", "now": now, "workers": workers, "tasks": tasks}


def problems(**kw: int) -> st.SearchStrategy[Problem]:
    return problem_docs(**kw).map(Problem.from_json)
