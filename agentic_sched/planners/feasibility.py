"""Static feasibility (the Filter stage): which workers could ever host a task, and why not.

A worker is eligible for a task when its labels satisfy ``requires``, it has enough
GPU devices, and its empty capacity covers every demanded resource. Each ineligible
worker is counted under its first failing filter, and the counts are aggregated into
a kube-style reason a person can act on, e.g.
``0/12 workers fit: 7 insufficient cpu, 5 missing label gpu_model in [V100]``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..model import Problem, Task


class Feasibility:
    """Vectorised static filters over the workers of one problem.

    ``mask(task)`` -> bool[W]; ``reason(task)`` -> the aggregated message. Results
    are cached by the task's (requires, demand, gpu) signature, so 10k tasks of a
    few shapes cost a few numpy passes.
    """

    def __init__(self, problem: Problem) -> None:
        self.workers = problem.workers
        self.n = len(self.workers)
        self._gpus = np.array([len(w.gpu_indices) for w in self.workers], dtype=np.int64)
        self._caps: dict[str, np.ndarray] = {}
        self._labels: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self._cache: dict[tuple[object, ...], tuple[np.ndarray, list[str], bool]] = {}

    def _cap(self, resource: str) -> np.ndarray:
        if resource not in self._caps:
            self._caps[resource] = np.array([w.capacity.get(resource) for w in self.workers])
        return self._caps[resource]

    def _label_ok(self, key: str, allowed: tuple[str, ...]) -> np.ndarray:
        sig = (key, allowed)
        if sig not in self._labels:
            self._labels[sig] = np.array([w.label(key) in allowed for w in self.workers], dtype=bool)
        return self._labels[sig]

    def _evaluate(self, task: Task) -> tuple[np.ndarray, list[str], bool]:
        sig = (task.requires, task.demand, task.gpu)
        if sig in self._cache:
            return self._cache[sig]
        ok = np.ones(self.n, dtype=bool)
        first_fail = np.full(self.n, -1, dtype=np.int64)
        labels: list[str] = []

        def apply(fits: np.ndarray, text: str) -> None:
            newly = ok & ~fits
            first_fail[newly] = len(labels)
            labels.append(text)
            ok[:] = ok & fits

        for key, allowed in task.requires:
            shown = allowed[0] if len(allowed) == 1 else "[" + ", ".join(allowed) + "]"
            apply(self._label_ok(key, allowed), f"missing label {key}={shown}" if len(allowed) == 1
                  else f"missing label {key} in {shown}")
        if task.gpu is not None:
            apply(self._gpus >= task.gpu.count,
                  f"fewer than {task.gpu.count} gpu device{'s' if task.gpu.count > 1 else ''}")
        for resource, qty in task.demand:
            if qty > 0:
                apply(self._cap(resource) + 1e-9 >= qty,
                      f"insufficient {resource}")
        counts = Counter(int(i) for i in first_fail[first_fail >= 0])
        parts = [f"{counts[i]} {labels[i]}" for i in sorted(counts, key=lambda i: (-counts[i], i))]
        result = (ok, parts, bool(ok.any()))
        self._cache[sig] = result
        return result

    def mask(self, task: Task) -> np.ndarray:
        return self._evaluate(task)[0]

    def check(self, task: Task) -> tuple[np.ndarray, bool]:
        """``(mask(task), mask(task).any())`` from one cache lookup."""
        ok, _, fits = self._evaluate(task)
        return ok, fits

    def reason(self, task: Task) -> str:
        """Why no worker fits ``task`` (only meaningful when ``mask`` is all false)."""
        ok, parts, _ = self._evaluate(task)
        if self.n == 0:
            return "0/0 workers fit: the problem has no workers"
        return f"{int(ok.sum())}/{self.n} workers fit: " + ", ".join(parts)
