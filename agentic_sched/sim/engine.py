"""Discrete-event cluster simulation over the FORMATS.md model.

``simulate(workload, policy, seed=...)`` replays a ``SimWorkload``: tasks arrive at their
``release``, a policy decides which pending task starts on which worker, tasks run for
their *actual* runtime / worker speed (policies only know the estimate ``duration``),
workers fail (scripted outages, or random with ``mtbf``/``mttr``) and recover; work
running on a failed worker is lost and requeued. Returns a ``SimResult`` with per-task
records, a utilisation time series and the metrics of ``metrics.py``.

Event loop: a heap of ``(time, kind, seq, payload)``. All events of one instant are
applied first (finishes, recoveries, failures, arrivals, timers, in that order), then
the policy is called once (a *decision point*) and may start tasks through
``Simulation.start`` (the applier: it re-checks live state and refuses what does not
fit) and ask for a wake-up with ``Simulation.wake_at``. Planning takes no simulated time.

Determinism: given the same workload, policy configuration and ``seed`` the run is
identical (numpy ``Generator`` streams per seed and worker; ties broken by index).
A planner with a wall-clock budget (CP-SAT) may itself vary; the greedy ones do not.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Protocol, cast

import attrs
import numpy as np

from ..model import MILLI_PER_DEVICE, Problem, RunningWork, Task
from ..planners.feasibility import Feasibility
from .workloads import SimWorkload

EPS = 1e-9
FINISH, RECOVER, FAIL, ARRIVAL, TIMER = range(5)


@attrs.define(eq=False)
class SimTask:
    """One task's life in the simulation (mutable; owned by the engine)."""

    index: int
    task: Task
    arrival: float
    actual: float  # runtime at speed 1
    dem: np.ndarray  # demand in the cluster's resource order
    state: str = "future"  # future | pending | running | done | rejected
    queued_at: float = math.nan
    first_start: float = math.nan
    start: float = math.nan
    end: float = math.nan
    est_end: float = math.nan
    worker: int = -1
    devices: tuple[int, ...] = ()  # GPU slots on ``worker``
    attempt: int = 0
    restarts: int = 0
    reason: str = ""

    @property
    def share(self) -> float:
        return 0.0 if self.task.gpu is None else float(self.task.gpu.share)


class Cluster:
    """Live capacity of every worker: resources ``used``/``cap`` [W, R], GPU slots
    ``dev_used``/``dev_cap`` [W, D] (milli; absent slots have cap 0), ``up`` flags."""

    def __init__(self, problem: Problem) -> None:
        self.workers = problem.workers
        self.index = {w.id: i for i, w in enumerate(self.workers)}
        names = {r for w in self.workers for r, _ in w.capacity}
        names |= {r for t in problem.tasks for r, q in t.demand if q > 0}
        self.resources = sorted(names)
        W = len(self.workers)
        self.cap = np.array([[w.capacity.get(r) for r in self.resources] for w in self.workers]).reshape(W, -1)
        self.used = np.zeros_like(self.cap)
        self.slots = [w.gpu_indices for w in self.workers]
        D = max((len(s) for s in self.slots), default=0)
        self.dev_cap = np.zeros((W, D))
        for w, s in enumerate(self.slots):
            self.dev_cap[w, : len(s)] = MILLI_PER_DEVICE
        self.dev_used = np.zeros((W, D))
        self.up = np.ones(W, dtype=bool)
        self.speed = np.array([w.speed for w in self.workers], dtype=float)
        self.running: list[dict[int, SimTask]] = [{} for _ in range(W)]
        self.feas = Feasibility(problem)

    def demand(self, task: Task) -> np.ndarray:
        return np.array([task.demand.get(r) for r in self.resources])

    def fit_mask(self, st: SimTask) -> np.ndarray:
        """bool[W]: workers that are up, eligible and could start ``st`` right now."""
        ok = self.up & self.feas.mask(st.task)
        ok &= np.all(self.used + st.dem <= self.cap + 1e-9, axis=1)
        g = st.task.gpu
        if g is not None:
            free = self.dev_cap - self.dev_used
            if g.is_shared:
                ok &= (free >= g.share - 1e-9).any(axis=1)
            else:
                ok &= (free >= MILLI_PER_DEVICE - 1e-9).sum(axis=1) >= g.count
        return ok

    def pick_devices(self, st: SimTask, w: int) -> tuple[int, ...] | None:
        """GPU slots for ``st`` on ``w``: the tightest-fitting device for a shared task,
        the lowest-index wholly free ones otherwise; None if they are not free."""
        g = st.task.gpu
        if g is None:
            return ()
        free = self.dev_cap[w] - self.dev_used[w]
        if g.is_shared:
            fits = np.flatnonzero(free >= g.share - 1e-9)
            return None if len(fits) == 0 else (int(fits[np.argmin(free[fits])]),)
        whole = np.flatnonzero(free >= MILLI_PER_DEVICE - 1e-9)
        return None if len(whole) < g.count else tuple(int(s) for s in whole[: g.count])

    def allocated_after(self, st: SimTask, cands: np.ndarray) -> np.ndarray:
        """Mean allocated fraction of each candidate worker after adding ``st`` (over its
        resources with capacity > 0, GPU devices pooled as one resource)."""
        cap = self.cap[cands]
        used = self.used[cands] + st.dem
        frac = np.where(cap > 0, used / np.where(cap > 0, cap, 1.0), 0.0)
        total, count = frac.sum(axis=1), (cap > 0).sum(axis=1).astype(float)
        if self.dev_cap.shape[1]:
            gcap = self.dev_cap[cands].sum(axis=1)
            gpu = self.dev_used[cands].sum(axis=1) + (0 if st.task.gpu is None else st.task.gpu.count * st.share)
            has = gcap > 0
            total = total + np.where(has, gpu / np.where(has, gcap, 1.0), 0.0)
            count = count + has
        return total / np.maximum(count, 1.0)

    def hold(self, st: SimTask, w: int, sign: float) -> None:
        self.used[w] += sign * st.dem
        for s in st.devices:
            self.dev_used[w, s] += sign * st.share


class Policy(Protocol):
    """Decides, at each decision point, which pending tasks start where."""

    name: str

    def schedule(self, sim: Simulation) -> None: ...


@attrs.frozen
class SimResult:
    """What one run produced: per-task records, the utilisation series and metrics.

    ``series`` columns: time, cpu used, cpu capacity of up workers, GPU milli used,
    GPU milli of up workers, GPU milli free on partially used GPUs (fragmented).
    ``timing`` holds wall-clock numbers (planner seconds); they are not deterministic
    and are kept out of ``metrics``.
    """

    workload: str
    policy: str
    seed: int
    tasks: tuple[SimTask, ...]
    series: np.ndarray
    metrics: dict[str, float]
    timing: dict[str, float]
    worker_ids: tuple[str, ...] = ()


class Simulation:
    """One run of ``policy`` over ``workload``; call ``run()`` once."""

    def __init__(self, workload: SimWorkload, policy: Policy, *, seed: int = 0,
                 noise: float | None = None, mtbf: float | None = None, mttr: float = 60.0,
                 max_events: int = 10_000_000) -> None:
        problem = workload.problem
        self.workload, self.policy, self.seed = workload, policy, seed
        self.problem = problem
        self.cluster = Cluster(problem)
        self.now = problem.now
        rng = np.random.default_rng([seed, 0])
        factors = rng.lognormal(0.0, noise, len(problem.tasks)) if noise else None
        self.tasks = []
        for i, t in enumerate(problem.tasks):
            actual = workload.actual.get(t.id, t.duration) if factors is None else t.duration * factors[i]
            self.tasks.append(SimTask(i, t, t.earliest(problem.now), float(actual), self.cluster.demand(t)))
        self.pending: dict[int, SimTask] = {}
        self.mtbf, self.mttr, self.max_events = mtbf, mttr, max_events
        self._worker_rng = [np.random.default_rng([seed, 1, w]) for w in range(len(problem.workers))]
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self._arrivals_left = 0
        self._timer_at = math.inf
        self._recovering = 0
        self._series: list[tuple[float, ...]] = []
        self.timing: dict[str, float] = {"planner_s": 0.0, "planner_calls": 0.0}
        self.rejected_starts = 0

    # ------------------------------------------------------------------ policy API
    def start(self, st: SimTask, w: int, devices: tuple[int, ...] | None = None) -> bool:
        """Start pending task ``st`` on worker ``w`` now (GPU slots picked if None).

        The applier: refuses (returns False, counted) a task that is not pending, a
        worker that is down or ineligible, or capacity/devices that are not free."""
        c = self.cluster
        if st.state != "pending" or not c.fit_mask(st)[w]:
            self.rejected_starts += 1
            return False
        if devices is None:
            devices = c.pick_devices(st, w)
        elif any(c.dev_cap[w, s] - c.dev_used[w, s] < st.share - 1e-9 for s in devices):
            devices = None
        if devices is None:
            self.rejected_starts += 1
            return False
        del self.pending[st.index]
        st.state, st.worker, st.devices, st.start = "running", w, devices, self.now
        if math.isnan(st.first_start):
            st.first_start = self.now
        st.est_end = self.now + st.task.duration / c.speed[w]
        c.hold(st, w, +1.0)
        c.running[w][st.index] = st
        self._push(self.now + st.actual / c.speed[w], FINISH, (st.index, st.attempt))
        return True

    def wake_at(self, t: float) -> None:
        """Ask for a decision point at time ``t`` (the earliest request wins)."""
        if t > self.now + EPS and t < self._timer_at - EPS:
            self._timer_at = t
            self._push(t, TIMER, None)

    def snapshot(self, tasks: list[SimTask]) -> Problem:
        """A FORMATS.md Problem of the live state: up workers with their running work
        (held until its estimated end, or a little past now if it overran) and
        ``tasks`` (released now). Down workers are left out."""
        c, now = self.cluster, self.now
        workers = []
        for w, worker in enumerate(c.workers):
            if not c.up[w]:
                continue
            running = [
                RunningWork(st.task.id, st.task.demand, {c.slots[w][s]: st.share for s in st.devices},
                            until=max(st.est_end, now + 0.01 * st.task.duration / c.speed[w]))
                for st in c.running[w].values()
            ]
            workers.append(attrs.evolve(worker, running=tuple(running)))
        new_tasks = [attrs.evolve(st.task, release=None) for st in tasks]
        return Problem(tuple(workers), tuple(new_tasks), now=now, weights=self.problem.weights)

    # ------------------------------------------------------------------ loop
    def _push(self, t: float, kind: int, payload: object) -> None:
        """Payload by kind: FINISH ``(task index, attempt)``, ARRIVAL task index, FAIL
        ``(worker, until or None)``, RECOVER ``(worker, random failures)``, TIMER None."""
        self._seq += 1
        heapq.heappush(self._heap, (t, kind, self._seq, payload))

    def run(self) -> SimResult:
        from .metrics import compute_metrics

        for st in self.tasks:
            self._push(st.arrival, ARRIVAL, st.index)
            self._arrivals_left += 1
        for o in self.workload.outages:
            self._push(o.at, FAIL, (self.cluster.index[o.worker], o.until))
        if self.mtbf:
            for w, rng in enumerate(self._worker_rng):
                self._push(self.now + rng.exponential(self.mtbf), FAIL, (w, None))
        events = 0
        while self._heap and events < self.max_events:
            t = self._heap[0][0]
            self.now = max(self.now, t)
            while self._heap and self._heap[0][0] <= t + EPS:
                _, kind, _, payload = heapq.heappop(self._heap)
                self._handle(kind, payload)
                events += 1
            self.policy.schedule(self)
            self._record()
            if self._done():
                break
        series = np.array(self._series, dtype=float).reshape(-1, 6)
        metrics = compute_metrics(self.tasks, series, self.problem.now)
        metrics["rejected_starts"] = float(self.rejected_starts)
        return SimResult(self.workload.name, self.policy.name, self.seed, tuple(self.tasks),
                         series, metrics, dict(self.timing), tuple(w.id for w in self.cluster.workers))

    def _done(self) -> bool:
        running = any(self.cluster.running[w] for w in range(len(self.cluster.workers)))
        if self._arrivals_left or running:
            return False
        if not self.pending:
            return True
        # pending work waits for a recovery or a policy timer; otherwise it is stuck
        return not (self._recovering or self._timer_at < math.inf)

    def _handle(self, kind: int, payload: object) -> None:
        c = self.cluster
        if kind == FINISH:
            idx, attempt = cast("tuple[int, int]", payload)
            st = self.tasks[idx]
            if st.state == "running" and st.attempt == attempt:
                c.hold(st, st.worker, -1.0)
                del c.running[st.worker][idx]
                st.state, st.end = "done", self.now
        elif kind == ARRIVAL:
            self._arrivals_left -= 1
            st = self.tasks[cast(int, payload)]
            if not c.feas.mask(st.task).any():
                st.state, st.reason = "rejected", c.feas.reason(st.task)
            else:
                st.state, st.queued_at = "pending", self.now
                self.pending[st.index] = st
        elif kind == FAIL:
            w, until = cast("tuple[int, float | None]", payload)
            if c.up[w]:
                self._fail(w)
                back = until if until is not None else self.now + self._worker_rng[w].exponential(self.mttr)
                self._recovering += 1
                self._push(back, RECOVER, (w, until is None))
        elif kind == RECOVER:
            w, random_failures = cast("tuple[int, bool]", payload)
            c.up[w] = True
            self._recovering -= 1
            if random_failures and self.mtbf:
                self._push(self.now + self._worker_rng[w].exponential(self.mtbf), FAIL, (w, None))
        elif kind == TIMER and self.now >= self._timer_at - EPS:
            self._timer_at = math.inf

    def _fail(self, w: int) -> None:
        """Worker ``w`` goes down: its running tasks are lost and requeued."""
        c = self.cluster
        c.up[w] = False
        for idx in sorted(c.running[w]):
            st = c.running[w][idx]
            c.hold(st, w, -1.0)
            st.state, st.worker, st.devices = "pending", -1, ()
            st.attempt += 1
            st.restarts += 1
            st.queued_at = self.now
            self.pending[idx] = st
        c.running[w].clear()

    def _record(self) -> None:
        c = self.cluster
        cpu = c.resources.index("cpu") if "cpu" in c.resources else -1
        used_cpu = float(c.used[:, cpu].sum()) if cpu >= 0 else 0.0
        cap_cpu = float(c.cap[c.up, cpu].sum()) if cpu >= 0 else 0.0
        gpu_used = float(c.dev_used.sum())
        gpu_cap = float(c.dev_cap[c.up].sum())
        partial = (c.dev_used > EPS) & (c.dev_used < c.dev_cap - EPS)
        frag = float((c.dev_cap - c.dev_used)[partial & c.up[:, None]].sum())
        row = (self.now, used_cpu, cap_cpu, gpu_used, gpu_cap, frag)
        if self._series and self._series[-1][0] == self.now:
            self._series[-1] = row
        else:
            self._series.append(row)


def simulate(workload: SimWorkload, policy: Policy | str, *, seed: int = 0, noise: float | None = None,
             mtbf: float | None = None, mttr: float = 60.0,
             policy_factory: Callable[[str], Policy] | None = None) -> SimResult:
    """Run ``policy`` (an instance, or a name for ``policies.make_policy``) over
    ``workload``. ``noise`` re-draws actual runtimes as estimate x lognormal(0, noise)
    from ``seed`` (None keeps the workload's actual runtimes); ``mtbf``/``mttr`` add
    random worker failures (exponential, per worker). Deterministic for ``seed``."""
    if isinstance(policy, str):
        from .policies import make_policy

        policy = (policy_factory or make_policy)(policy)
    return Simulation(workload, policy, seed=seed, noise=noise, mtbf=mtbf, mttr=mttr).run()

