"""Mutable per-worker timelines of one problem, backed by the numba kernels.

``Timelines(problem)`` loads every worker's capacity and running work; ``pick`` finds
the worker a greedy policy gives a task and its earliest feasible start there; ``place``
books a task and returns the GPU device indices it got. Planners own their
Timelines (a private working copy); nothing here touches live state.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np

from ..kernels import timeline as K
from ..model import MILLI_PER_DEVICE, Problem, Task
from .base import constrained_resources

# duration buckets of the pruning bounds: [0, D0), then [D0 * 1.25^(b-1), D0 * 1.25^b)
BUCKET, D0, N_BUCKETS = 1.25, 0.01, 64


def _bucket(duration: float) -> tuple[int, float]:
    """The duration bucket of ``duration`` and its lower edge (capped at ``duration``)."""
    bucket = 0 if duration < D0 else min(N_BUCKETS - 1, 1 + int(math.log(duration / D0, BUCKET)))
    return bucket, (0.0 if bucket == 0 else min(duration, D0 * BUCKET ** (bucket - 1)))


@attrs.frozen(eq=False)
class _Shape:
    """Per task shape: full usage vector (GPU columns zero), resource demand, pruning key."""

    vec: np.ndarray
    dem: np.ndarray
    lb_dem: np.ndarray
    gcount: int
    gshare: float
    lb_share: float
    gpu_milli: float
    key: tuple[bytes, int, float]


class Timelines:
    """Resource and device timelines for all workers of ``problem``.

    Columns are ``constrained_resources`` (those demanded by any task, and any that
    running work overloads; others cannot constrain a placement) followed by one slot
    per GPU device.
    """

    def __init__(self, problem: Problem, *, room: int = 16) -> None:
        self.now = problem.now
        self.resources = constrained_resources(problem)
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
        self.peak = np.zeros((W, C))  # per-worker peak usage: the scan-free fast path
        self._bounds: dict[tuple[bytes, int, float], np.ndarray] = {}
        self._shapes: dict[tuple[object, object], _Shape] = {}
        for w, worker in enumerate(problem.workers):
            slot = {dev: s for s, dev in enumerate(self.gpu_index[w])}
            for rw in worker.running:
                if rw.until > self.now:
                    vec = self._vector(rw.demand.get)
                    for dev, milli in rw.devices:
                        if dev in slot:  # shares of non-GPU devices constrain no task
                            vec[self.nres + slot[dev]] += milli
                    self._add(w, self.now, rw.until, vec)

    def _vector(self, get: Callable[[str], float]) -> np.ndarray:
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
        K.add_booking(self.T, self.U, self.n, self.peak, w, start, end, vec)
        if (vec < 0).any():  # usage shrank (a removal): the pruning bounds may be too high
            self._bounds.clear()

    def shape(self, task: Task) -> _Shape:
        """The task's demand vectors and pruning key, cached per (demand, gpu) shape."""
        sig = (task.demand, task.gpu)
        got = self._shapes.get(sig)
        if got is None:
            g = task.gpu
            vec = self._vector(task.demand.get)
            dem = vec[: self.nres].copy()
            lb_dem = np.where(dem > 0, 2.0 ** np.floor(np.log2(np.maximum(dem, 1e-300))), 0.0)
            lb_share = 0.0 if g is None else float(2 ** math.floor(math.log2(float(g.share))))
            got = self._shapes[sig] = _Shape(
                vec=vec, dem=dem, lb_dem=lb_dem, gcount=0 if g is None else g.count,
                gshare=0.0 if g is None else float(g.share), lb_share=lb_share,
                gpu_milli=0.0 if g is None else float(g.count * g.share),
                key=(lb_dem.tobytes(), 0 if g is None else g.count, lb_share),
            )
        return got

    def _bounds_for(self, shape: _Shape) -> np.ndarray:
        bounds = self._bounds.get(shape.key)
        if bounds is None:
            if len(self._bounds) >= 256:
                self._bounds.clear()
            bounds = self._bounds[shape.key] = np.full((N_BUCKETS, len(self.speed)), self.now)
        return bounds

    def pick(self, task: Task, eligible: np.ndarray, load: np.ndarray, mode: int) -> tuple[int, float]:
        """One greedy step (``kernels.timeline.greedy_pick``): ``(worker, start)``, ``(-1, inf)`` if none.

        Starts come from ``earliest_pruned``: exact only for workers that can still win
        (the minimum start, or the minimum finish in ``mode`` 0), pruned with lower
        bounds kept per relaxed task shape (demands rounded down to powers of two) and
        duration bucket, valid because a Timelines only ever gains usage (a removal
        drops them). ``choose_worker`` then picks among the winners by ``mode``.
        """
        sh = self.shape(task)
        bucket, edge = _bucket(task.duration)
        w, start = K.greedy_pick(
            self.T, self.U, self.n, self.cap, self.peak, sh.dem, self.nres, sh.gcount, sh.gshare, sh.gpu_milli,
            task.earliest(self.now), task.duration, self.speed, eligible,
            self._bounds_for(sh), bucket, self.now, sh.lb_dem, sh.lb_share, edge, load, mode,
        )
        return int(w), float(start)

    def place(self, task: Task, w: int, start: float) -> tuple[int, ...]:
        """Book ``task`` on worker ``w`` from ``start``; returns its GPU device indices."""
        dur = task.duration / self.speed[w]
        vec = self.shape(task).vec
        devices: tuple[int, ...] = ()
        if task.gpu is not None:
            vec = vec.copy()
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
        other.T, other.U, other.n, other.peak = self.T.copy(), self.U.copy(), self.n.copy(), self.peak.copy()
        other._bounds = {k: v.copy() for k, v in self._bounds.items()}
        other._shapes = dict(self._shapes)
        return other
