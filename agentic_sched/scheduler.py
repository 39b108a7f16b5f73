"""The embedded asyncio scheduler: ``async with Scheduler(config) as s: ...``.

Inside the host's event loop (anyio; asyncio or trio) it runs one task group with:
the batch loop (pending tasks -> ``Problem`` -> planner off the loop -> applier), the
inbox loop (agent messages, applied in batches, one commit per batch), the monitor
loop (lost workers, reservation TTLs, drained workers, gauges) and one supervisor
per worker (connect, hello, forward messages, reconnect). Only the applier changes
state (see applier.py); the store makes every accepted task survive a crash.

Crash model: agents are separate long-lived processes. If the scheduler's process
dies they keep running their attempts and journal the outcomes; the restarted
scheduler reconnects, re-sends every attempt it had reserved (the agent answers
from its journal instead of running it again) and collects the outcomes. So an
accepted task runs exactly once per attempt, and a new attempt is created only when
a worker is lost (and then fenced: its agent is killed) or an attempt is released.
"""

from __future__ import annotations

import builtins
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs

from . import _messages
from ._config import SchedulerConfig
from ._errors import InvalidProblem, RemoteError, SchedError, UnknownTask, UnknownWorker
from ._planning import FALLBACK, PlannerRunner
from ._spec import SLOTS, TERMINAL, TaskSpec, TaskStatus, WorkerInfo, WorkerSpec, check_spec
from .agents import protocol
from .applier import Applier, log
from .events import EventBus, Subscription
from .executors.base import Executor, Link
from .executors.local import LocalExecutor, UnixExecutor
from .formats import problem_from_json, problem_to_dict
from .metrics import Metrics
from .model import Plan, Problem
from .planners import GREEDY, get_planner
from .predict import RuntimePredictor
from .registry import Registry, WorkerState
from .store import Store, TaskRecord


@attrs.frozen(eq=False)
class TaskHandle:
    """A submitted task. ``await handle.wait()`` returns its final ``TaskStatus``."""

    id: str
    _scheduler: Scheduler = attrs.field(repr=False)

    def status(self) -> TaskStatus:
        return self._scheduler.status(self.id)

    async def wait(self, timeout: float | None = None) -> TaskStatus:
        return (await self._scheduler.wait([self.id], timeout))[0]

    async def cancel(self, reason: str = "cancelled by the user") -> TaskStatus:
        return await self._scheduler.cancel(self.id, reason)


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = SchedulerConfig(**overrides)
        elif overrides:
            config = attrs.evolve(config, **overrides)
        self.config = config
        self.metrics = Metrics()
        self.metrics_port: int | None = None
        self.local = LocalExecutor(config.state_dir, orphan_timeout_s=config.orphan_timeout_s)
        self._executors: dict[str, Executor] = {"local": self.local, "unix": UnixExecutor()}
        self._bus = EventBus()
        self._registry = Registry(config.heartbeat_timeout_s)
        self._session = uuid.uuid4().hex
        self._open = False
        self._last_plan: Plan | None = None
        self._next_start: float | None = None  # scheduler time of the earliest delayed start

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Scheduler:
        cfg = self.config
        Path(cfg.state_dir).mkdir(parents=True, exist_ok=True)
        self._store = await Store.open(str(Path(cfg.state_dir) / "scheduler.db"))
        self._ap = Applier(self._store, self._registry, self._bus, self.metrics, cfg.reserve_ttl_s,
                           preemption=cfg.preemption, preempt_grace_s=cfg.preempt_grace_s,
                           preempt_min_wait_s=cfg.preempt_min_wait_s, weights=cfg.weights)
        self._runner = PlannerRunner(cfg.planner, cfg.plan_budget_s, self.metrics, self._on_fallback,
                                     max_failures=cfg.planner_max_failures, cooldown_s=cfg.planner_cooldown_s)
        records, workers = await self._store.load()
        for row in workers:
            state = row.state if row.state in ("lost", "down") else "connecting"
            self._registry.workers[row.spec.id] = WorkerState(row.spec, row.spec.model(), state, row.reason)
        self._ap.restore(records)
        if cfg.predict_runtimes:
            self._ap.predictor = await anyio.to_thread.run_sync(
                lambda: RuntimePredictor.load(self._predictor_path, min_samples=cfg.predict_min_samples))
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[tuple[str, Any]](10_000)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._open = True
        self._tg.start_soon(self._plan_loop)
        self._tg.start_soon(self._inbox_loop)
        self._tg.start_soon(self._monitor_loop)
        if cfg.predict_runtimes:
            self._tg.start_soon(self._refit_loop)
        for w in self._registry.workers.values():
            if w.state == "connecting":
                self._tg.start_soon(self._supervise, w)
        if cfg.metrics_port is not None:
            self.metrics_port = self.metrics.serve(cfg.metrics_port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open = False
        try:
            if self.config.stop_agents_on_exit:
                async with self._ap.lock:
                    await self._ap.flush()
                    for w in self._registry.workers.values():
                        if w.link is not None:
                            await w.link.send([protocol.make("shutdown", reason="scheduler closing")])
            self._tg.cancel_scope.cancel()
        finally:
            await self._tg.__aexit__(None, None, None)
            if self.config.stop_agents_on_exit:
                async with anyio.create_task_group() as tg:
                    for w in self._registry.workers.values():
                        if w.spec.executor == "local" and w.state not in ("down", "lost"):
                            tg.start_soon(self.local.stop, w.spec)
            self._bus.close()
            self.metrics.close()
            await self._store.close()

    def _check_open(self) -> None:
        if not self._open:
            raise SchedError("the scheduler is not running (use `async with Scheduler(...) as s`)")

    def clock(self) -> float:
        """Scheduler time in seconds (persisted epoch): the time base of plans and statuses."""
        return self._store.clock()

    # ------------------------------------------------------------------ tasks
    async def submit(self, task: TaskSpec | Mapping[str, Any]) -> TaskHandle:
        """Accept one task; when this returns the task is durable. Raises ``InvalidProblem``.

        Submitting again with the same ``id`` and spec returns the existing handle."""
        return (await self.submit_many([task]))[0]

    async def submit_many(self, tasks: Iterable[TaskSpec | Mapping[str, Any]]) -> list[TaskHandle]:
        """Accept many tasks in one transaction (all or none are accepted)."""
        self._check_open()
        now = self.clock()
        prepared: list[tuple[str, TaskSpec]] = []
        for spec in tasks:
            spec = spec if isinstance(spec, TaskSpec) else TaskSpec.from_dict(spec)
            tid = spec.id or f"t-{uuid.uuid4().hex[:12]}"
            prepared.append((tid, attrs.evolve(spec, id=tid)))
        models = [check_spec(spec, tid, now) for tid, spec in prepared]
        ap = self._ap
        async with ap.lock:
            handles, fresh, seen = [], [], set()
            for (tid, spec), model in zip(prepared, models, strict=True):
                spec_json = json.dumps(spec.to_dict(), sort_keys=True)
                old = ap.tasks.get(tid)
                if old is not None or tid in seen:
                    if old is None or old.spec_json != spec_json:
                        raise InvalidProblem("task.id", f"task {tid!r} already exists with a different spec")
                else:
                    seen.add(tid)
                    ap.seq += 1
                    fresh.append(TaskRecord(tid, ap.seq, spec, spec_json, model, submitted=now))
                handles.append(TaskHandle(tid, self))
            for rec in fresh:
                ap.add(rec)
            await ap.flush()
        if ap.new_pending >= self.config.batch_size or fresh:
            ap.kick(replan=ap.new_pending >= self.config.batch_size)
        return handles

    def _rec(self, task_id: str | TaskHandle) -> TaskRecord:
        tid = task_id.id if isinstance(task_id, TaskHandle) else task_id
        rec = self._ap.tasks.get(tid)
        if rec is None:
            raise UnknownTask(f"unknown task {tid!r}")
        return rec

    def status(self, task_id: str | TaskHandle) -> TaskStatus:
        """The task's current state, attempt, worker, reason and result. ``UnknownTask``."""
        return self._ap.status(self._rec(task_id))

    def list(self, state: str | Iterable[str] | None = None, worker: str | None = None) -> list[TaskStatus]:
        """Tasks in submission order, optionally only those in ``state`` (one or several) / on ``worker``."""
        states = {state} if isinstance(state, str) else (set(state) if state is not None else None)
        return [self._ap.status(r) for r in self._ap.tasks.values()
                if (states is None or r.state in states) and (worker is None or r.worker == worker)]

    async def cancel(self, task_id: str | TaskHandle, reason: str = "cancelled by the user") -> TaskStatus:
        """Cancel a task (a running attempt's process group is killed). ``UnknownTask``."""
        self._check_open()
        rec = self._rec(task_id)
        async with self._ap.lock:
            self._ap.cancel(rec, reason)
            await self._ap.flush()
        return self._ap.status(rec)

    async def wait(self, tasks: str | TaskHandle | Iterable[str | TaskHandle],
                   timeout: float | None = None) -> builtins.list[TaskStatus]:
        """Wait until every given task is terminal; raises ``TimeoutError`` after ``timeout``."""
        items = [tasks] if isinstance(tasks, (str, TaskHandle)) else list(tasks)
        recs = [self._rec(t) for t in items]
        with anyio.fail_after(timeout):
            for rec in recs:
                while rec.state not in TERMINAL:
                    ev = self._ap.waiters.setdefault(rec.id, anyio.Event())
                    await ev.wait()
        return [self._ap.status(r) for r in recs]

    async def logs(self, task_id: str | TaskHandle, stream: str = "stdout", max_bytes: int = 1 << 20) -> bytes:
        """The last ``max_bytes`` of the task's ``stdout`` or ``stderr`` (its last attempt that
        ended), read where it ran: a local file, or over SFTP from an SSH host.
        ``UnknownTask``; ``RemoteError`` if no attempt has ended yet or the log is unreadable."""
        st = self.status(task_id)
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        path = st.stdout if stream == "stdout" else st.stderr
        w = self._registry.workers.get(st.worker or "")
        if path is None or w is None:
            raise RemoteError(f"task {st.id} has no {stream} log yet ({st.state})")
        executor = self._executors.get(w.spec.executor)
        if executor is None:
            raise RemoteError(f"worker {w.spec.id}: executor {w.spec.executor!r} is not registered")
        return await executor.read_file(w.spec.id, path, max_bytes)

    def why_pending(self, task_id: str | TaskHandle) -> str:
        """Why the task is not running yet: the last plan's reason (kube-style aggregate
        of the workers that do not fit), its planned start, a plan-check failure, or
        "waiting for batch". For a task that is not pending, its state and reason."""
        rec = self._rec(task_id)
        if rec.state != "pending":
            return f"not pending: {rec.state} ({rec.reason})"
        return rec.reason

    def subscribe(self, buffer: int = 10_000) -> Subscription:
        """An async iterator of ``Event``s from now on (``async with`` it to unsubscribe)."""
        return self._bus.subscribe(buffer)

    async def plan_preview(self, change: Callable[[Problem], Problem] | None = None) -> Plan:
        """Dry run: what the next round would plan for the current pending tasks. Commits nothing.

        ``change`` (what-if) maps the round's ``Problem`` to an edited one (a worker with
        other capacity, an extra task ...) before planning; ``InvalidProblem`` if the
        edited problem breaks the contract."""
        self._check_open()
        async with self._ap.lock:
            problem, _ = self._ap.snapshot(self.config.batch_max, preview=True)
        if change is not None:
            problem = problem_from_json(problem_to_dict(change(problem)))  # the contract's checks
        async with self._runner.lock:
            return await anyio.to_thread.run_sync(self._runner.fn, problem, self.config.plan_budget_s)

    @property
    def last_plan(self) -> Plan | None:
        return self._last_plan

    def counts(self) -> dict[str, int]:
        """Tasks per state plus attempt counters ``lost``, ``rescheduled``, ``released``, ``rejected``,
        ``ignored``, ``preempted``."""
        out = dict.fromkeys(("pending", "reserved", "running", "done", "failed", "cancelled"), 0)
        for rec in self._ap.tasks.values():
            out[rec.state] += 1
        out.update(self._ap.counts)
        return out

    # ------------------------------------------------------------------ workers
    def add_executor(self, executor: Executor) -> None:
        """Make workers with ``executor=executor.kind`` reachable (e.g. an ``SshExecutor``)."""
        self._executors[executor.kind] = executor

    async def add_worker(self, spec: WorkerSpec | None = None, /, **fields: Any) -> WorkerSpec:
        """Register a worker (``WorkerSpec`` or its fields) and connect to its agent.

        Idempotent for the same spec (so a restarted host may call it again); a lost or
        removed worker id may be added again. ``InvalidProblem`` on a bad spec."""
        self._check_open()
        spec = spec if spec is not None else WorkerSpec(**fields)
        spec.check()
        if spec.executor not in self._executors:
            raise InvalidProblem("worker.executor", f"no {spec.executor!r} executor registered "
                                 "(use Scheduler.add_executor)")
        async with self._ap.lock:
            old = self._registry.get(spec.id)
            if old is not None and old.state not in ("lost", "down"):
                if old.spec != spec:
                    raise InvalidProblem("worker.id", f"worker {spec.id!r} exists with a different spec")
                return spec
            w = WorkerState(spec, spec.model())
            self._registry.workers[spec.id] = w
            self._ap.touch_worker(w)
            await self._ap.flush()
        self._tg.start_soon(self._supervise, w)
        return spec

    async def drain_worker(self, worker_id: str) -> None:
        """No new work on this worker; when its attempts end its agent is stopped. ``UnknownWorker``."""
        self._check_open()
        w = self._registry.get(worker_id)
        if w is None:
            raise UnknownWorker(f"unknown worker {worker_id!r}")
        async with self._ap.lock:
            if w.state in ("up", "connecting"):
                w.state, w.reason = "draining", "drained by request"
                self._ap.touch_worker(w)
                self._ap.emit("worker_down", worker=worker_id, reason="draining")
                if not w.holding:
                    self._ap._drained.append(w)
            await self._ap.flush()

    def workers(self) -> builtins.list[WorkerInfo]:
        """Every known worker: state, attempts held, capacity/used (``task_slots`` omitted), labels,
        last reported load and seconds since its last message (None if never heard from)."""
        now = time.monotonic()
        return [WorkerInfo(w.spec.id, w.state, w.reason, len(w.holding), w.spec.max_concurrency, dict(w.load),
                           capacity={k: v for k, v in w.model.capacity.as_dict().items() if k != SLOTS},
                           used={k: v for k, v in w.used.items() if k != SLOTS},
                           labels=dict(w.spec.labels),
                           last_seen_s=None if w.agent_id is None else max(0.0, now - w.last_seen),
                           executor=w.spec.executor)
                for w in self._registry.workers.values()]

    def set_planner(self, planner: Any, budget_s: float | None = None) -> None:
        """Plan the following rounds with ``planner`` (a name or an object with ``plan``) and
        ``budget_s`` (default: unchanged); ``config`` reflects it. A round already running
        finishes with the old planner. ``ValueError`` for an unknown name."""
        budget = self.config.plan_budget_s if budget_s is None else float(budget_s)
        if not budget > 0:
            raise ValueError(f"budget_s must be > 0, got {budget_s!r}")
        old = self._runner
        new = PlannerRunner(planner, budget, self.metrics, self._on_fallback,
                            max_failures=self.config.planner_max_failures, cooldown_s=self.config.planner_cooldown_s)
        if hasattr(old, "lock"):
            new.lock = old.lock  # one planner thread at a time across the switch
        self._runner = new
        self.config = attrs.evolve(self.config, planner=planner, plan_budget_s=budget)
        self._ap.kick(replan=True)

    # ------------------------------------------------------------------ loops
    def _on_fallback(self, reason: str) -> None:
        self._ap.emit("planner_fallback", reason=reason)

    def _due(self) -> tuple[bool, float]:
        """Whether a round is due now, else how long to sleep at most."""
        ap, cfg = self._ap, self.config
        if not ap.pending:
            return False, 1.0
        if ap.replan_now and cfg.replan_on_worker_events:
            return True, 0.0
        if ap.new_pending >= cfg.batch_size:
            return True, 0.0
        waits = [1.0 - (time.monotonic() - self._last_round)]
        if ap.first_pending_at is not None:
            waits.append(ap.first_pending_at + cfg.batch_window_s - time.monotonic())
        if self._next_start is not None:
            waits.append(self._next_start - self.clock())
        delay = min(waits)
        return delay <= 0, max(delay, 0.0)

    async def _warm_up(self) -> None:
        """Compile numba kernels off the loop before the first real round: the greedy
        fallback's and, for the portfolio, A*'s and LNS's (numba caches them on disk, so
        only a machine's first run pays the compile)."""
        from .examples import example_problem

        tiny = example_problem("tiny")  # GPUs, shares, releases, deadlines: every kernel path
        names = [FALLBACK, *(("astar", "lns") if self._runner.name == "portfolio" else ())]
        async with self._runner.lock:
            for name in names:
                await anyio.to_thread.run_sync(get_planner(name).plan, tiny, 0.05)

    async def _plan_loop(self) -> None:
        ap = self._ap
        self._next_start = None
        self._last_round = time.monotonic()
        await self._warm_up()
        while True:
            while True:
                ap.wakeup = anyio.Event()
                due, delay = self._due()
                if due:
                    break
                with anyio.move_on_after(delay):
                    await ap.wakeup.wait()
            self._last_round = time.monotonic()
            async with ap.lock:
                problem, versions = ap.snapshot(self.config.batch_max)
            if not problem.workers:
                known = ", ".join(f"{w.spec.id} {w.state}" for w in self._registry.workers.values()) or "none"
                for rec in ap.pending.values():
                    rec.reason = f"no worker is up (workers: {known})"
                self._next_start = None
                continue
            if self.config.dispatch_first and self._runner.name not in GREEDY:
                quick = await anyio.to_thread.run_sync(GREEDY[FALLBACK].plan, problem, None)
                async with ap.lock:
                    if ap.dispatch_now(quick, versions, self.config.start_slack_s):
                        await ap.flush()
                        problem, versions = ap.snapshot(self.config.batch_max, preview=True)
                if not problem.tasks:  # everything started: nothing left to plan
                    self._next_start = None
                    continue
            plan = await self._runner.run(problem)
            self._last_plan = plan
            async with ap.lock:
                self._next_start = ap.apply_plan(plan, versions, self.config.start_slack_s)
                await ap.flush()

    def _repair(self, task_ids: set[str]) -> None:
        """Re-place the tasks of lost workers at once (under the applier lock): a greedy
        earliest-finish round over just those tasks against live state, so repair does
        not wait for the next full-budget round; whatever it cannot place now stays
        pending for the regular rounds. O(affected tasks x workers), milliseconds."""
        ap = self._ap
        problem, versions = ap.snapshot(self.config.batch_max, only=task_ids)
        if not problem.tasks or not problem.workers:
            return
        plan = attrs.evolve(GREEDY["eft"].plan(problem), planner="repair[eft]")
        next_start = ap.apply_plan(plan, versions, self.config.start_slack_s)
        if next_start is not None:
            self._next_start = next_start if self._next_start is None else min(self._next_start, next_start)
            ap.kick()

    async def _inbox_loop(self) -> None:
        ap = self._ap
        async for first in self._inbox:
            batch = [first]
            while len(batch) < 5000:
                try:
                    batch.append(self._inbox.receive_nowait())
                except anyio.WouldBlock:
                    break
            async with ap.lock:
                for worker_id, msg in batch:
                    _messages.handle(ap, worker_id, msg)
                await ap.flush()

    @property
    def _predictor_path(self) -> Path:
        return Path(self.config.state_dir) / "predictor.joblib"

    async def _refit_loop(self) -> None:
        """Refit the runtime predictor off the loop after every ``predict_refit_every``
        new observations (or the first ``predict_min_samples``), and persist it."""
        pred, cfg = self._ap.predictor, self.config
        assert pred is not None
        while True:
            await anyio.sleep(1.0)
            due = cfg.predict_min_samples if not pred.ready else cfg.predict_refit_every
            if pred.samples - pred.fitted_on >= due:
                if await anyio.to_thread.run_sync(pred.fit):
                    await anyio.to_thread.run_sync(pred.save, self._predictor_path)
                    async with self._ap.lock:
                        self._ap.emit("predictor_fitted", reason=f"runtime model refit on {pred.fitted_on} runs",
                                      samples=pred.fitted_on)
                        await self._ap.flush()

    async def _monitor_loop(self) -> None:
        ap = self._ap
        while True:
            await anyio.sleep(0.1)
            async with ap.lock:
                lost = self._registry.silent()
                affected: set[str] = set()
                for w in lost:
                    timeout = self._registry.timeout_of(w)
                    why = f"no message for more than {timeout:g}s"
                    if w.reason.startswith("cannot connect"):
                        why += f" ({w.reason})"  # keep the connect error that explains it
                    affected |= w.holding
                    ap.worker_lost(w, why)
                if affected:
                    self._repair(affected)
                ap.expire_reservations()
                drained = ap.take_drained()
                for w in drained:
                    w.state, w.reason = "down", "drained"
                    ap.touch_worker(w)
                    ap.emit("worker_down", worker=w.spec.id, reason="drained")
                    ap.send(w.spec.id, protocol.make("shutdown", reason="worker drained"))
                await ap.flush()
            for w in lost:
                log.warning("worker %s lost: %s; fencing it", w.spec.id, w.reason)
                executor = self._executors.get(w.spec.executor)
                try:
                    if executor is not None:
                        await executor.fence(w.spec)
                except (SchedError, OSError) as exc:  # unreachable hosts fence themselves (lease)
                    log.warning("worker %s: fencing failed: %s", w.spec.id, exc)
                if w.link is not None:
                    await w.link.aclose()
            for state, n in self._registry.counts().items():
                self.metrics.workers.labels(state).set(n)
            for state, n in self.counts().items():
                if state in ("pending", "reserved", "running", "done", "failed", "cancelled"):
                    self.metrics.tasks.labels(state).set(n)

    async def _supervise(self, w: WorkerState) -> None:
        """Keep a session with the worker's agent: connect, hello, forward, reconnect."""
        spawn = True
        w.last_seen = time.monotonic()
        while self._registry.get(w.spec.id) is w and w.state in ("connecting", "up", "draining"):
            executor = self._executors.get(w.spec.executor)
            if executor is None:  # a restored worker whose executor the host registers later
                w.reason = f"cannot connect: no executor {w.spec.executor!r} registered (Scheduler.add_executor)"
                await anyio.sleep(0.2)
                continue
            try:
                stream = await executor.open(w.spec, spawn=spawn)
            except (SchedError, OSError) as exc:
                w.reason = f"cannot connect: {exc}"
                log.info("worker %s: %s", w.spec.id, w.reason)
                await anyio.sleep(0.2)
                continue
            spawn = False
            link = Link(stream)
            hello = protocol.make("hello", session=self._session, heartbeat_s=self.config.heartbeat_s,
                                  worker=w.spec.id)
            if await link.send([hello]):
                w.link = link
                try:
                    async for msg in link.messages():
                        await self._inbox_send.send((w.spec.id, msg))
                        if link.closed:
                            break
                finally:
                    if w.link is link:
                        w.link = None
                    with anyio.CancelScope(shield=True):
                        await link.aclose()
            await anyio.sleep(0.05)
