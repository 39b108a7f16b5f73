"""Mutable per-worker timelines of one problem, backed by the numba kernels.

``Timelines(problem)`` loads every worker's capacity and running work; ``earliest``
asks for the earliest feasible start of a task on every eligible worker; ``place``
books a task and returns the GPU device indices it got. Planners own their
Timelines (a private working copy); nothing here touches live state.
"""

from __future__ import annotations

import numpy as np

from ..kernels import timeline as K
from ..model import MILLI_PER_DEVICE, Problem, Task


class Timelines:
    """Resource and device timelines for all workers of ``problem``.

    Columns are the resources demanded by any task of the problem (others cannot
    constrain a placement) followed by one slot per GPU device.
    """

    def __init__(self, problem: Problem, *, room: int = 16) -> None:
        self.now = problem.now
        self.resources = sorted({r for t in problem.tasks for r, q in t.demand if q > 0})
        self.nres = len(self.resources)
        self.gpu_index = [w.gpu_indices for w in problem.workers]
        self.ndev = max((len(g) for g in self.gpu_index), default=0)
        W, C = len(problem.workers), self.nres + self.ndev
        self.cap = np.zeros((W, C))
        for w, worker in enumerate(problem.workers):
            self.cap[w, : self.nres] = [worker.capacity.get(r) for r in self.resources]
            self.cap[w, self.nres : self.nres + len(self.gpu_index[w])] = MILLI_PER_DEVICE
        self.speed = np.array([w.speed for w in problem.workers], dtype=float)
        self.T = np.zeros((W, room))
        self.T[:, 0] = self.now
        self.U = np.zeros((W, room, C))
        self.n = np.ones(W, dtype=np.int64)
        for w, worker in enumerate(problem.workers):
            slot = {dev: s for s, dev in enumerate(self.gpu_index[w])}
            for rw in worker.running:
                if rw.until > self.now:
                    vec = self._vector(rw.demand.get)
                    for dev, milli in rw.devices:
                        vec[self.nres + slot[dev]] += milli
                    self._add(w, self.now, rw.until, vec)

    def _vector(self, get) -> np.ndarray:  # type: ignore[no-untyped-def]
        vec = np.zeros(self.nres + self.ndev)
        vec[: self.nres] = [get(r) for r in self.resources]
        return vec

    def demand(self, task: Task) -> np.ndarray:
        """The task's resource demand in column order (length ``nres``)."""
        return self._vector(task.demand.get)[: self.nres]

    def _add(self, w: int, start: float, end: float, vec: np.ndarray) -> None:
        if self.n[w] + 2 > self.T.shape[1]:
            grow = self.T.shape[1]
            self.T = np.concatenate([self.T, np.zeros((self.T.shape[0], grow))], axis=1)
            self.U = np.concatenate([self.U, np.zeros((self.U.shape[0], grow, self.U.shape[2]))], axis=1)
        self.n[w] = K.add_interval(self.T[w], self.U[w], self.n[w], start, end, vec)

    def earliest(self, task: Task, eligible: np.ndarray, *, release: float | None = None) -> np.ndarray:
        """Earliest feasible start of ``task`` on every worker (+inf where ineligible)."""
        g = task.gpu
        return K.earliest_starts(
            self.T, self.U, self.n, self.cap, self.demand(task), self.nres,
            0 if g is None else g.count, 0.0 if g is None else float(g.share),
            task.earliest(self.now) if release is None else release,
            task.duration / self.speed, eligible,
        )

    def usage(self, t: float, workers: np.ndarray) -> np.ndarray:
        """Usage rows ``[len(workers), C]`` at time ``t``."""
        return K.usage_rows(self.T, self.U, self.n, t, workers.astype(np.int64))

    def place(self, task: Task, w: int, start: float) -> tuple[int, ...]:
        """Book ``task`` on worker ``w`` from ``start``; returns its GPU device indices."""
        dur = task.duration / self.speed[w]
        vec = self._vector(task.demand.get)
        devices: tuple[int, ...] = ()
        if task.gpu is not None:
            slots = K.pick_devices(self.T[w], self.U[w], self.n[w], self.cap[w], self.nres,
                                   task.gpu.count, float(task.gpu.share), start, dur)
            if (slots < 0).any():
                raise ValueError(f"no free GPU devices for {task.id} on worker {w} at {start}")
            vec[self.nres + slots] += task.gpu.share
            devices = tuple(self.gpu_index[w][int(s)] for s in slots)
        self._add(w, start, start + dur, vec)
        return devices

    def copy(self) -> Timelines:
        other = object.__new__(Timelines)
        other.__dict__.update(self.__dict__)
        other.T, other.U, other.n = self.T.copy(), self.U.copy(), self.n.copy()
        return other
