"""Cost-aware insertion on mutable timelines: the engine under LNS, repair and the portfolio.

``Schedule(problem)`` holds one working schedule as arrays (worker, start, end per
task) over a private ``Timelines``. ``insert(i)`` books task ``i`` at the earliest
feasible start on the worker where the *marginal objective* is lowest (lateness,
miss, reliability, energy, makespan over a target and the imbalance change, all with
the problem's weights); ``remove(i)`` frees it again. ``objective()`` recomputes the
FORMATS.md cost from the arrays in O(N + W) numpy, and ``to_plan`` finishes a Plan.

Complexity: one insertion is one ``earliest_starts`` kernel call, O(W * m) for W
workers and m breakpoints per worker, plus one O(N + W) ``marginal_costs`` kernel call.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels import lns as KL
from ..kernels import timeline as K
from ..model import Assignment, Plan, Problem, Unassigned
from .base import LEFT_OUT, NEVER, finish_plan
from .feasibility import Feasibility
from .timelines import Timelines


class ProblemArrays:
    """The numbers of one problem as flat arrays (built once, shared read-only)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        tasks, workers = problem.tasks, problem.workers
        self.N, self.W = len(tasks), len(workers)
        self.now = problem.now
        self.dur = np.array([t.duration for t in tasks], dtype=float)
        self.rel = np.array([t.earliest(problem.now) for t in tasks], dtype=float)
        self.dl = np.array([math.inf if t.deadline is None else t.deadline for t in tasks], dtype=float)
        self.prio = np.array([t.priority for t in tasks], dtype=float)
        self.cpu = np.array([t.demand.get("cpu") for t in tasks], dtype=float)
        self.speed = np.array([w.speed for w in workers], dtype=float)
        self.health = np.array([w.health for w in workers], dtype=float)
        self.idle = np.array([w.idle_cost for w in workers], dtype=float)
        self.cpucap = np.array([w.capacity.get("cpu") for w in workers], dtype=float)
        self.cpu_workers = self.cpucap > 0
        feas = Feasibility(problem)
        self.feas = feas
        self.eligible = np.zeros((self.N, self.W), dtype=bool)
        for i, t in enumerate(tasks):
            self.eligible[i] = feas.mask(t)
        wt = problem.weights
        self.w = wt
        self.weight_vec = np.array([wt.lateness, wt.misses, wt.makespan, wt.imbalance, wt.energy, wt.reliability],
                                   dtype=float)
        self.dur_on = self.dur[:, None] / np.where(self.speed > 0, self.speed, 1e-300)[None, :]

    def makespan_lower_bound(self) -> float:
        """A valid lower bound on ``max end - now`` if every placeable task is placed."""
        ok = self.eligible.any(axis=1)
        if not ok.any():
            return 0.0
        fastest = np.where(self.eligible, self.dur_on, np.inf).min(axis=1)
        single = float((self.rel + fastest)[ok].max()) - self.now
        work = float((self.cpu * self.dur)[ok].sum())
        rate = float((self.cpucap * self.speed).sum())
        area = work / rate if rate > 0 else 0.0
        return max(single, area)


class Schedule:
    """One mutable schedule of ``problem``: arrays plus the timelines they book."""

    def __init__(self, arrays: ProblemArrays, timelines: Timelines | None = None) -> None:
        self.a = arrays
        self.tl = Timelines(arrays.problem) if timelines is None else timelines
        self.tasks = arrays.problem.tasks
        self.dem = np.array([self.tl.demand(t) for t in self.tasks]).reshape(arrays.N, self.tl.nres)
        self.gcount = np.array([t.gpu_count() for t in self.tasks], dtype=np.int64)
        self.gshare = np.array([0.0 if t.gpu is None else float(t.gpu.share) for t in self.tasks])
        self.worker = np.full(arrays.N, -1, dtype=np.int64)
        self.start = np.zeros(arrays.N)
        self.end = np.zeros(arrays.N)
        self.slots: list[tuple[int, ...]] = [()] * arrays.N
        self.never: set[int] = set()
        self.original: dict[int, Assignment] = {}

    # ------------------------------------------------------------------ booking
    def earliest(self, i: int) -> np.ndarray:
        tl = self.tl
        return K.earliest_starts(tl.T, tl.U, tl.n, tl.cap, self.dem[i], tl.nres, self.gcount[i],
                                 self.gshare[i], self.a.rel[i], self.a.dur_on[i], self.a.eligible[i])

    def book(self, i: int, w: int, start: float) -> None:
        tl = self.tl
        dur = self.a.dur_on[i, w]
        vec = np.zeros(tl.nres + tl.ndev)
        vec[: tl.nres] = self.dem[i]
        slots: tuple[int, ...] = ()
        if self.gcount[i] > 0:
            picked = K.pick_devices(tl.T[w], tl.U[w], tl.n[w], tl.cap[w], tl.nres,
                                    int(self.gcount[i]), float(self.gshare[i]), start, dur)
            if (picked < 0).any():
                raise ValueError(f"no free GPU devices for task {i} on worker {w} at {start}")
            slots = tuple(int(s) for s in picked)
            vec[tl.nres + picked] += self.gshare[i]
        tl._add(w, start, start + dur, vec)
        self.worker[i], self.start[i], self.end[i], self.slots[i] = w, start, start + dur, slots

    def book_as(self, i: int, w: int, start: float, devices: tuple[int, ...], original: Assignment | None = None) -> None:
        """Book task ``i`` on ``w`` at ``start`` on the given GPU device indices (a kept assignment)."""
        tl = self.tl
        dur = self.a.dur_on[i, w]
        slot_of = {dev: k for k, dev in enumerate(tl.gpu_index[w])}
        slots = tuple(slot_of[d] for d in devices)
        vec = np.zeros(tl.nres + tl.ndev)
        vec[: tl.nres] = self.dem[i]
        for k in slots:
            vec[tl.nres + k] += self.gshare[i]
        tl._add(w, start, start + dur, vec)
        self.worker[i], self.start[i], self.end[i], self.slots[i] = w, start, start + dur, slots
        if original is not None:
            self.original[i] = original

    def remove(self, i: int) -> None:
        """Free task ``i`` (no-op if it is not placed)."""
        w = int(self.worker[i])
        if w < 0:
            return
        tl = self.tl
        vec = np.zeros(tl.nres + tl.ndev)
        vec[: tl.nres] = -self.dem[i]
        for s in self.slots[i]:
            vec[tl.nres + s] -= self.gshare[i]
        tl._add(w, self.start[i], self.end[i], vec)
        self.worker[i] = -1
        self.slots[i] = ()

    # ------------------------------------------------------------------ scoring
    def marginal(self, i: int, starts: np.ndarray, target: float, rng: np.random.Generator | None = None,
                 noise: float = 0.0) -> np.ndarray:
        """Objective increase of placing task ``i`` at ``starts[w]`` on each worker (inf if not).

        ``kernels.lns.marginal_costs``: reliability, lateness and miss at the finish, energy
        past the worker's last end, makespan past ``max(target, makespan)`` and the exact
        imbalance change at that horizon; ``noise`` scales each cost by 1 + noise * U(0, 1).
        """
        a = self.a
        c = KL.marginal_costs(starts, a.dur_on[i], a.dl[i], a.prio[i], a.cpu[i], self.worker, self.start, self.end,
                              a.cpu, a.health, a.idle, a.cpucap, a.now, target, a.weight_vec)
        if noise and rng is not None:
            c = c * (1.0 + noise * rng.random(c.shape[0]))
        return c

    def _makespan_end(self) -> float:
        placed = self.worker >= 0
        return float(self.end[placed].max()) if placed.any() else self.a.now

    def _work(self) -> np.ndarray:
        work = np.zeros(self.a.W)
        placed = self.worker >= 0
        np.add.at(work, self.worker[placed], self.a.cpu[placed] * (self.end[placed] - self.start[placed]))
        return work

    def insert(self, i: int, target: float, rng: np.random.Generator | None = None, noise: float = 0.0) -> bool:
        """Place task ``i`` where its marginal cost is lowest; False if it never fits."""
        if not self.a.eligible[i].any():
            return False
        starts = self.earliest(i)
        if not np.isfinite(starts).any():
            self.never.add(i)
            return False
        c = self.marginal(i, starts, target, rng, noise)
        best = c.min()
        tie = np.flatnonzero(c <= best + 1e-9 * max(1.0, abs(best)))
        w = int(tie[np.argmin(starts[tie] + self.a.dur_on[i, tie])]) if len(tie) > 1 else int(tie[0])
        self.book(i, w, float(starts[w]))
        return True

    # ------------------------------------------------------------------ objective
    def objective(self) -> float:
        """FORMATS.md objective of the current arrays (tasks not placed count as unassigned)."""
        a, wt = self.a, self.a.w
        placed = self.worker >= 0
        if not placed.any():
            return wt.unassigned * float(a.prio.sum())
        w = self.worker[placed]
        end, start = self.end[placed], self.start[placed]
        dl, prio = a.dl[placed], a.prio[placed]
        over = np.where(np.isfinite(dl), np.maximum(0.0, end - dl), 0.0)
        lateness = float((prio * over).sum())
        misses = float((end > dl).sum())
        mk = float(end.max()) - a.now
        rel = float(((1.0 - a.health[w]) * (end - start)).sum())
        last = np.full(a.W, -np.inf)
        np.maximum.at(last, w, end)
        used = last > -np.inf
        energy = float((a.idle[used] * (last[used] - a.now)).sum())
        imb = 0.0
        if mk > 0 and a.cpu_workers.any():
            work = np.zeros(a.W)
            np.add.at(work, w, a.cpu[placed] * (end - start))
            u = work[a.cpu_workers] / (a.cpucap[a.cpu_workers] * mk)
            imb = 100.0 * float(u.std())
        unassigned = float(a.prio[~placed].sum())
        return (wt.lateness * lateness + wt.misses * misses + wt.makespan * mk + wt.imbalance * imb
                + wt.energy * energy + wt.reliability * rel + wt.unassigned * unassigned)

    def misses(self) -> int:
        placed = self.worker >= 0
        return int((self.end[placed] > self.a.dl[placed]).sum())

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> tuple:
        tl = self.tl
        return (tl.T.copy(), tl.U.copy(), tl.n.copy(), self.worker.copy(), self.start.copy(),
                self.end.copy(), list(self.slots))

    def restore(self, snap: tuple) -> None:
        tl = self.tl
        T, U, n, self.worker, self.start, self.end, self.slots = snap
        tl.T, tl.U, tl.n = T.copy(), U.copy(), n.copy()
        self.worker, self.start, self.end = self.worker.copy(), self.start.copy(), self.end.copy()
        self.slots = list(self.slots)

    def load_plan(self, plan: Plan) -> None:
        """Book every assignment of ``plan`` (which must be valid for this problem)."""
        index = self.a.problem.task_index
        widx = self.a.problem.worker_index
        for asg in plan.assignments:
            self.book_as(index[asg.task][0], widx[asg.worker][0], asg.start, asg.devices, asg)

    def to_plan(self, *, planner: str, started: float, status: str = "feasible",
                bound: float | None = None, detail: str = "") -> Plan:
        a, problem = self.a, self.a.problem
        assignments, unassigned = [], []
        for i, t in enumerate(problem.tasks):
            w = int(self.worker[i])
            if w >= 0:
                devices = tuple(self.tl.gpu_index[w][k] for k in self.slots[i])
                orig = self.original.get(i)
                if (orig is not None and orig.worker == problem.workers[w].id
                        and orig.start == self.start[i] and tuple(orig.devices) == devices):
                    assignments.append(orig)
                else:
                    assignments.append(Assignment(t.id, problem.workers[w].id, float(self.start[i]),
                                                  float(self.start[i] + a.dur_on[i, w]), devices))
            elif not a.eligible[i].any():
                unassigned.append(Unassigned(t.id, a.feas.reason(t)))
            elif i in self.never:
                unassigned.append(Unassigned(t.id, NEVER))
            else:
                unassigned.append(Unassigned(t.id, LEFT_OUT.format(penalty=a.w.unassigned * float(a.prio[i]))))
        return finish_plan(problem, assignments, unassigned, planner=planner, started=started,
                           status=status, bound=bound, detail=detail)


def slack_order(a: ProblemArrays, target: float) -> np.ndarray:
    """Tasks by latest useful start: min(deadline, now + target) - fastest duration, then priority."""
    fastest = np.where(a.eligible, a.dur_on, np.inf).min(axis=1)
    fastest = np.where(np.isfinite(fastest), fastest, a.dur)
    due = np.minimum(a.dl, a.now + target)
    return np.lexsort((-a.dur, -a.prio, due - fastest))


def construct(a: ProblemArrays, order: np.ndarray, target: float, rng: np.random.Generator | None = None,
              noise: float = 0.0) -> Schedule:
    """Insert every task in ``order`` with the cost-aware rule; returns the schedule."""
    s = Schedule(a)
    for i in order:
        s.insert(int(i), target, rng, noise)
    return s
