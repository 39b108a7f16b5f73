"""Problem builders shared by tests (plain data, no fixtures)."""

from __future__ import annotations

import copy
from typing import Any

BASE: dict[str, Any] = {
    "format": "agentic-sched/problem/v1",
    "now": 0.0,
    "workers": [
        {"id": "w1", "capacity": {"cpu": 4, "mem_mb": 8192},
         "labels": {"arch": "x86_64", "gpu_model": "T4"},
         "devices": [{"kind": "gpu"}, {"kind": "gpu"}],
         "running": [{"task": "r1", "demand": {"cpu": 1}, "devices": {"0": 500}, "until": 3.0}]},
        {"id": "w2", "capacity": {"cpu": 2, "mem_mb": 4096}, "labels": {"arch": "arm64"}},
    ],
    "tasks": [
        {"id": "t1", "demand": {"cpu": 2, "mem_mb": 1024}, "gpu": {"count": 1, "share": 500},
         "duration": 5.0, "deadline": 10.0, "requires": {"gpu_model": ["T4", "A10"]}},
        {"id": "t2", "demand": {"cpu": 1}, "duration": 2.0, "release": 1.0, "priority": 2},
    ],
}


def problem_doc(**changes: Any) -> dict[str, Any]:
    """A deep copy of BASE with top-level keys replaced."""
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return doc
