"""CP-SAT (OR-Tools): an exact model for small problems and window LNS for large ones.

Model (``CpSatPlanner``), times relative to ``now`` on a grid of ``q`` seconds:

- per task a start ``s_i >= ceil(release / q)``, per eligible worker an optional
  fixed-size interval (size ``ceil(duration / speed / q)``) with presence ``x_iw``,
  and ``sum_w x_iw + u_i = 1`` (``u_i``: left unassigned, priced ``unassigned * p_i``);
- one cumulative per worker and demanded resource (running work as fixed intervals);
- GPUs: per task, worker and GPU device a presence ``y_iwd`` (``sum_d y_iwd =
  count * x_iw``) and one cumulative of capacity 1000 milli per device;
- objective = the *regular* part of FORMATS.md (lateness, misses, makespan, energy,
  reliability, unassigned). Imbalance is not modelled (it is >= 0), so the solver's
  bound is a valid lower bound on the full objective.

Rounding: ``q`` is the coarsest of 1, 0.5, 0.1, 0.05, 0.01 s on which every
duration / speed, release, deadline and running ``until`` lies (``exact``); otherwise
``q = horizon / 20000`` and sizes round *up*, so every model schedule is valid in real
time (real intervals lie inside model intervals) but the bound is not reported from
the model (``bounds.lower_bound`` is). Objective coefficients are ``floor(SCALE *
weight * q * ...)``, rounded *down* so the model objective never exceeds the real
regular cost and the bound stays valid. ``status`` is ``optimal`` only when that
bound meets the real objective (imbalance included).

``CpSatLns`` re-optimises the tasks of a few workers at a time (others fixed) around
an ``insertion.Schedule`` (the greedy/LNS plan), keeping a window only if the real
objective does not get worse. Solves are synchronous; async callers use a thread.
"""

from __future__ import annotations

import math
import time

import numpy as np
from ortools.sat.python import cp_model

from ..model import MILLI_PER_DEVICE, Assignment, Plan, Problem, Unassigned
from .base import LEFT_OUT, NEVER, finish_plan, nothing_to_optimise, objective_of, overload_until
from .bounds import lower_bound
from .insertion import ProblemArrays, Schedule

SCALE = 1000.0  # minimum integer per cost unit; raised so the smallest coefficient is >= 1000
MAX_SCALE = 1e7
GRIDS = (1.0, 0.5, 0.1, 0.05, 0.01)
DEFAULT_BUDGET_S = 5.0
FULL_MODEL_MAX_CELLS = 5000  # above: window LNS (a plain model finds nothing in seconds)


def _on_grid(x: float, q: float) -> bool:
    return abs(x / q - round(x / q)) <= 1e-7 * max(1.0, abs(x / q))


def time_grid(problem: Problem, arrays: ProblemArrays) -> tuple[float, bool]:
    """``(q, exact)``: the grid step and whether every time of the problem lies on it
    (and every demand / capacity on the 1/1000 grid the cumulatives use)."""
    now = problem.now
    vals = [float(x) for x in arrays.dur_on[arrays.eligible]]
    vals += [float(r - now) for r in arrays.rel]
    vals += [float(d - now) for d in arrays.dl if math.isfinite(d)]
    vals += [rw.until - now for w in problem.workers for rw in w.running if rw.until > now]
    amounts = [qty for t in problem.tasks for _, qty in t.demand]
    amounts += [qty for w in problem.workers for _, qty in w.capacity]
    amounts += [qty for w in problem.workers for rw in w.running for _, qty in rw.demand]
    milli_ok = all(_on_grid(x, 0.001) for x in amounts)
    for q in GRIDS:
        if milli_ok and all(_on_grid(v, q) for v in vals) and _horizon_real(arrays, problem) / q <= 2_000_000:
            return q, True
    return max(_horizon_real(arrays, problem) / 20000.0, 1e-6), False


def _horizon_real(a: ProblemArrays, problem: Problem) -> float:
    until = max((rw.until - problem.now for w in problem.workers for rw in w.running), default=0.0)
    longest = np.where(a.eligible, a.dur_on, 0.0).max(axis=1) if a.N else np.zeros(0)
    return float(max(0.0, (a.rel - a.now).max(initial=0.0)) + max(0.0, until) + longest.sum() + 1.0)


def _scale(a: ProblemArrays, q: float) -> float:
    wt = a.w
    raw = [wt.makespan * q, wt.misses, wt.lateness * q * float(a.prio.min(initial=1.0))]
    raw += [wt.energy * float(x) * q for x in a.idle]
    raw += [wt.reliability * (1.0 - float(h)) * float(a.dur_on.min(initial=1.0)) for h in a.health]
    pos = [x for x in raw if x > 0]
    return float(min(MAX_SCALE, max(SCALE, 1000.0 / min(pos)))) if pos else SCALE


def _units_up(x: float, q: float) -> int:
    return int(math.ceil(x / q - 1e-7))


# Intervals a cumulative holds, with the demand each one puts on it.
_Demands = list[tuple[cp_model.IntervalVar, float]]
# Per worker (or per ``(worker, gpu slot)``): the task intervals and their task index / share.
_TaskIntervals = dict[int, list[tuple[cp_model.IntervalVar, int]]]
_DeviceIntervals = dict[tuple[int, int], list[tuple[cp_model.IntervalVar, int]]]


class _Model:
    """The CP-SAT model of a set of tasks on a set of workers (see module doc)."""

    def __init__(self, problem: Problem, a: ProblemArrays, q: float, tasks: list[int], workers: list[int],
                 fixed: list[tuple[int, float, float, int]] | None = None,
                 mk_floor: float = 0.0, steer_u: float | None = None) -> None:
        self.p, self.a, self.q = problem, a, q
        self.tasks, self.workers = tasks, workers
        m = cp_model.CpModel()
        self.m = m
        self.scale = _scale(a, q)
        SCALE = self.scale
        H = _units_up(_horizon_real(a, problem), q)
        self.H = H
        wt = a.w
        self.x: dict[tuple[int, int], cp_model.IntVar] = {}
        self.y: dict[tuple[int, int, int], cp_model.IntVar] = {}
        self.s: dict[int, cp_model.IntVar] = {}
        self.u: dict[int, cp_model.IntVar] = {}
        self.size: dict[tuple[int, int], int] = {}
        self._blocked = {w: _units_up(until - problem.now, q) for w in workers
                         for until, _ in (overload_until(problem.workers[w], problem.now),) if until > problem.now}
        ivs: _TaskIntervals = {w: [] for w in workers}
        dev_ivs: _DeviceIntervals = {}
        obj: list[cp_model.LinearExprT] = []
        M = m.new_int_var(0, H, "makespan")
        m.add(M >= _units_up(mk_floor, q))
        self.M = M
        gpu_slots = {w: problem.workers[w].gpu_indices for w in workers}
        for i in tasks:
            t = problem.tasks[i]
            r = _units_up(a.rel[i] - a.now, q)
            s = m.new_int_var(r, H, f"s{i}")
            self.s[i] = s
            u = m.new_bool_var(f"u{i}")
            self.u[i] = u
            xs, ends = [], []
            for w in workers:
                if not a.eligible[i, w]:
                    continue
                size = max(1, _units_up(a.dur_on[i, w], q))
                x = m.new_bool_var(f"x{i}_{w}")
                self.x[i, w], self.size[i, w] = x, size
                if self._blocked.get(w, 0) > 0:
                    m.add(s >= self._blocked[w]).only_enforce_if(x)
                iv = m.new_optional_fixed_size_interval_var(s, size, x, f"iv{i}_{w}")
                ivs[w].append((iv, i))
                xs.append(x)
                ends.append(size * x)
                rel_cost = math.floor(SCALE * wt.reliability * (1.0 - a.health[w]) * a.dur_on[i, w])
                obj.append(rel_cost * x)
                if t.gpu is not None:
                    ys = []
                    for k, _dev in enumerate(gpu_slots[w]):
                        y = m.new_bool_var(f"y{i}_{w}_{k}")
                        self.y[i, w, k] = y
                        div = m.new_optional_fixed_size_interval_var(s, size, y, f"dv{i}_{w}_{k}")
                        dev_ivs.setdefault((w, k), []).append((div, t.gpu.share))
                        ys.append(y)
                    m.add(sum(ys) == t.gpu.count * x)
            m.add(sum(xs) + u == 1)
            obj.append(math.floor(SCALE * wt.unassigned * a.prio[i]) * u)
            e = m.new_int_var(0, 2 * H, f"e{i}")
            m.add(e == s + sum(ends))
            m.add(M >= e).only_enforce_if(u.negated())
            if math.isfinite(a.dl[i]):
                dl = math.floor((a.dl[i] - a.now) / q + 1e-7)
                late = m.new_int_var(0, 2 * H + max(0, -dl), f"late{i}")  # a deadline before now: dl < 0
                m.add(late >= e - dl).only_enforce_if(u.negated())
                miss = m.new_bool_var(f"miss{i}")
                m.add(e <= dl).only_enforce_if([miss.negated(), u.negated()])
                obj.append(math.floor(SCALE * wt.lateness * a.prio[i] * q) * late)
                obj.append(math.floor(SCALE * wt.misses) * miss)
        self._resources(ivs, dev_ivs, fixed or [])
        obj.append(math.floor(SCALE * wt.makespan * q) * M)
        for w in workers:
            if a.idle[w] > 0:
                L = m.new_int_var(0, 2 * H, f"last{w}")
                for _iv, i in ivs[w]:
                    m.add(L >= self.s[i] + self.size[i, w]).only_enforce_if(self.x[i, w])
                obj.append(math.floor(SCALE * wt.energy * a.idle[w] * q) * L)
        if steer_u is not None and wt.imbalance > 0:
            obj.extend(self._steer(ivs, steer_u, max(mk_floor, q)))
        m.minimize(sum(obj))

    def _resources(self, ivs: _TaskIntervals, dev_ivs: _DeviceIntervals,
                   fixed: list[tuple[int, float, float, int]]) -> None:
        p, q, m = self.p, self.q, self.m
        names = sorted({r for i in self.tasks for r, qty in p.tasks[i].demand if qty > 0})
        for w in self.workers:
            worker = p.workers[w]
            # no task runs while running work overloads the worker (``_blocked``), so that
            # work is only modelled from the end of the overload (else: infeasible model)
            blocked = self._blocked.get(w, 0)
            hold = []
            for rw in worker.running:
                end = _units_up(rw.until - p.now, q)
                if rw.until > p.now and end > blocked:
                    hold.append((blocked, end, rw.demand.get, dict(rw.devices)))
            for r in names:
                cap = worker.capacity.get(r)
                items: _Demands = [(iv, p.tasks[i].demand.get(r)) for iv, i in ivs[w] if p.tasks[i].demand.get(r) > 0]
                for k, (st, en, get, _) in enumerate(hold):
                    if get(r) > 0:
                        items.append((m.new_fixed_size_interval_var(st, en - st, f"run{w}_{k}_{r}"), get(r)))
                for k, (fw, fs, fe, fi) in enumerate(fixed):
                    if fw == w and p.tasks[fi].demand.get(r) > 0:
                        st, en = math.floor((fs - p.now) / q + 1e-7), _units_up(fe - p.now, q)
                        items.append((m.new_fixed_size_interval_var(st, en - st, f"fix{w}_{k}_{r}"),
                                      p.tasks[fi].demand.get(r)))
                if items:
                    self._cumulative(items, cap)
            for k, dev in enumerate(worker.gpu_indices):
                shares: _Demands = [(iv, share) for iv, share in dev_ivs.get((w, k), [])]
                if not shares:
                    continue
                for j, (st, en, _, devs) in enumerate(hold):
                    if devs.get(dev, 0) > 0:
                        shares.append((m.new_fixed_size_interval_var(st, en - st, f"rdev{w}_{k}_{j}"), devs[dev]))
                self._cumulative(shares, MILLI_PER_DEVICE)

    def _cumulative(self, items: _Demands, cap: float) -> None:
        # scale demands to integers: 1/1000 of a unit, capacity rounded down, demands up
        f = 1000.0
        self.m.add_cumulative([iv for iv, _ in items], [int(math.ceil(d * f - 1e-6)) for _, d in items],
                             int(math.floor(cap * f + 1e-6)))

    def _steer(self, ivs: _TaskIntervals, target_u: float, mk: float) -> list[cp_model.LinearExprT]:
        """Linear pull of each worker's cpu utilisation towards ``target_u`` (windows only)."""
        a, m = self.a, self.m
        out: list[cp_model.LinearExprT] = []
        coef = self.scale * a.w.imbalance * 100.0 / max(1, int(a.cpu_workers.sum()))
        for w in self.workers:
            if a.cpucap[w] <= 0:
                continue
            terms = [(int(round(1000 * a.cpu[i] * a.dur_on[i, w] / (a.cpucap[w] * mk))), self.x[i, w])
                     for _, i in ivs[w]]
            dev = m.new_int_var(0, 10_000_000, f"dev{w}")
            tgt = int(round(1000 * target_u))
            lin = sum(c * x for c, x in terms)
            m.add(dev >= lin - tgt)
            m.add(dev >= tgt - lin)
            out.append(int(coef / 1000) * dev)
        return out


def _solve(model: _Model, budget_s: float, num_workers: int, seed: int,
           hint: dict[int, tuple[int, float]] | None) -> tuple[cp_model.CpSolver, cp_model.CpSolverStatus]:
    if hint:
        for i, (w, start) in hint.items():
            if i in model.s:
                model.m.add_hint(model.s[i], int(round((start - model.a.now) / model.q)))
                for (ti, tw), x in model.x.items():
                    if ti == i:
                        model.m.add_hint(x, 1 if tw == w else 0)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, budget_s)
    solver.parameters.num_workers = max(1, num_workers)
    solver.parameters.random_seed = seed
    status = solver.solve(model.m)
    return solver, status


class CpSatPlanner:
    """The exact CP-SAT model (regular objective) within ``budget_s``; ``hint`` warm-starts it."""

    name = "cpsat"

    def __init__(self, *, num_workers: int = 2, seed: int = 0, hint: Plan | None = None) -> None:
        self.num_workers = num_workers
        self.seed = seed
        self.hint = hint

    def plan(self, problem: Problem, budget_s: float | None = None) -> Plan:
        """The CP-SAT plan; if the solver finds none within the budget, the hint (best
        greedy plan unless given) with ``status`` ``fallback`` and the reason in ``detail``."""
        started = time.perf_counter()
        if (trivial := nothing_to_optimise(problem, self.name, started)) is not None:
            return trivial
        budget = DEFAULT_BUDGET_S if budget_s is None else budget_s
        a = ProblemArrays(problem)
        if self.hint is None:
            from .greedy import best_greedy

            self.hint = best_greedy(problem)
        if a.N * a.W > FULL_MODEL_MAX_CELLS:  # decomposition: windows around the hint
            sched = Schedule(a)
            sched.load_plan(self.hint)
            n = CpSatLns(num_workers=self.num_workers, seed=self.seed).improve(sched, started + budget)
            return sched.to_plan(planner=self.name, started=started, bound=lower_bound(problem, a),
                                 detail=f"window LNS around {self.hint.planner}: {n} windows improved")
        q, exact = time_grid(problem, a)
        tasks = [i for i in range(a.N) if a.eligible[i].any()]
        model = _Model(problem, a, q, tasks, list(range(a.W)))
        index, windex = problem.task_index, problem.worker_index
        hint = {index[x.task][0]: (windex[x.worker][0], x.start) for x in self.hint.assignments}
        left = budget - (time.perf_counter() - started)
        solver, status = _solve(model, left, self.num_workers, self.seed, hint)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            h = self.hint
            return finish_plan(problem, h.assignments, h.unassigned, planner=self.name, started=started,
                               status="fallback", bound=lower_bound(problem, a),
                               detail=f"cp-sat {solver.status_name(status)} within {budget:g}s; "
                                      f"answered by {h.planner}")
        plan = self._extract(problem, a, model, solver, started)
        lb = lower_bound(problem, a)
        if exact:
            fixed = float((a.w.unassigned * a.prio[~a.eligible.any(axis=1)]).sum())
            lb = max(lb, solver.best_objective_bound / model.scale + fixed)
        objective = objective_of(plan)
        proved = lb >= objective - 1e-6 * max(1.0, abs(objective))
        return finish_plan(problem, plan.assignments, plan.unassigned, planner=self.name, started=started,
                           status="optimal" if proved else "feasible", bound=lb,
                           detail=f"grid {q:g}s {'exact' if exact else 'rounded up'}; "
                                  f"cp-sat {solver.status_name(status)}")

    def _extract(self, problem: Problem, a: ProblemArrays, model: _Model, solver: cp_model.CpSolver,
                 started: float) -> Plan:
        assignments, unassigned = [], []
        for i, t in enumerate(problem.tasks):
            chosen = [w for (ti, w), x in model.x.items() if ti == i and solver.value(x)]
            if not chosen:
                reason = (a.feas.reason(t) if not a.eligible[i].any()
                          else LEFT_OUT.format(penalty=a.w.unassigned * float(a.prio[i])))
                unassigned.append(Unassigned(t.id, reason if i in model.s or not a.eligible[i].any() else NEVER))
                continue
            w = chosen[0]
            start = a.now + solver.value(model.s[i]) * model.q
            devs = tuple(problem.workers[w].gpu_indices[k] for (ti, tw, k), y in model.y.items()
                         if ti == i and tw == w and solver.value(y))
            assignments.append(Assignment(t.id, problem.workers[w].id, start, start + a.dur_on[i, w], devs))
        return finish_plan(problem, assignments, unassigned, planner=self.name, started=started)


class CpSatLns:
    """Window LNS: re-optimise all tasks of a few workers with CP-SAT, others fixed."""

    def __init__(self, *, num_workers: int = 2, seed: int = 0, window_workers: int = 4,
                 window_s: float = 0.3) -> None:
        self.num_workers = num_workers
        self.seed = seed
        self.k = window_workers
        self.window_s = window_s

    def improve(self, s: Schedule, until: float) -> int:
        """Improve ``s`` in place until ``until``; returns the number of accepted windows."""
        if time.perf_counter() + 0.1 >= until:  # the time grid alone costs O(N); not worth it
            return 0
        a, problem = s.a, s.a.problem
        q, _ = time_grid(problem, a)
        rng = np.random.default_rng(self.seed)
        accepted = 0
        cur = s.objective()
        it_s, t_prev = 0.05, None  # a new window starts only if one more (as long as the last) fits
        while True:
            now = time.perf_counter()
            if t_prev is not None:
                it_s = max(0.05, now - t_prev)
            if now + it_s >= until:
                break
            t_prev = now
            before = cur
            ws = self._pick(s, rng)
            tasks = [int(i) for i in np.flatnonzero(np.isin(s.worker, ws)) if s.gcount[i] == 0]
            if not tasks:
                continue
            others = np.flatnonzero((s.worker >= 0) & ~np.isin(np.arange(a.N), tasks))
            mk_floor = float(s.end[others].max() - a.now) if len(others) else 0.0
            work = s._work() / np.where(a.cpucap > 0, a.cpucap, 1.0)
            mk = max(mk_floor, a.makespan_lower_bound())
            target_u = float(work[a.cpu_workers].mean()) / max(mk, 1e-9)
            fixed = [(int(s.worker[i]), float(s.start[i]), float(s.end[i]), int(i))
                     for i in np.flatnonzero(np.isin(s.worker, ws)) if s.gcount[i] > 0]
            model = _Model(problem, a, q, tasks, [int(w) for w in ws], fixed=fixed,
                           mk_floor=mk_floor, steer_u=target_u)
            hint = {i: (int(s.worker[i]), float(s.start[i])) for i in tasks}
            left = min(self.window_s, until - time.perf_counter())
            solver, status = _solve(model, left, self.num_workers, self.seed + accepted, hint)
            if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                continue
            snap = s.snapshot()
            for i in tasks:
                s.remove(i)
            for i in tasks:
                chosen = [w for (ti, w), x in model.x.items() if ti == i and solver.value(x)]
                if chosen:
                    start = a.now + solver.value(model.s[i]) * q
                    s.book_as(i, chosen[0], start, ())
            new = s.objective()
            if new <= cur + 1e-9 * max(1.0, abs(cur)):
                accepted += new < before - 1e-9 * max(1.0, abs(before))
                cur = new
            else:
                s.restore(snap)
        return accepted

    def _pick(self, s: Schedule, rng: np.random.Generator) -> np.ndarray:
        a = s.a
        work = s._work() / np.where(a.cpucap > 0, a.cpucap, 1.0)
        order = np.argsort(work)
        k = min(self.k, a.W)
        half = max(1, k // 2)
        ws = set(order[-half:].tolist()) | set(rng.choice(order[: max(half, a.W // 2)], size=min(half, a.W), replace=False).tolist())
        while len(ws) < k:
            ws.add(int(rng.integers(0, a.W)))
        return np.array(sorted(ws), dtype=np.int64)
