"""The applier: the one place that changes live state.

Every change happens in memory first (under ``lock``), records are marked dirty,
and ``flush()`` commits them in one transaction; only *after* the commit does it
send messages to agents, publish events and wake waiters. So an ``assign`` never
leaves before its reservation is durable, and a ``forget`` never before the outcome.

Fencing: an attempt is ``(task, attempt number)``; the number grows with every
reservation. A message about any other attempt than a task's current one on that
worker is ignored with a logged reason (a late ``started`` gets its run cancelled, a
late ``finished`` is only ``forget``-ed), so an old attempt can never complete a task.

Preemption (``preempt_for``, after each round): a task the round could not start
may stop running ``preemptible`` attempts of strictly lower priority on one worker
(victims chosen by ``_preempt.choose_victims``); each victim is sent ``preempt``
(SIGTERM, ``preempt_grace_s``, SIGKILL) and, when its agent reports the attempt
ended, the task is requeued as a new attempt. Planners never see any of this.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import anyio
import attrs

from ._preempt import Host, Running, choose_victims
from ._spec import TERMINAL, TaskStatus
from .agents import protocol
from .events import Event, EventBus
from .metrics import Metrics
from .model import GPU_KIND, MILLI_PER_DEVICE, Assignment, Plan, Problem, RunningWork, Weights
from .predict import RuntimePredictor, features_of
from .registry import Registry, WorkerState
from .store import AttemptRecord, Store, TaskRecord, WorkerRow

log = logging.getLogger("agentic_sched.scheduler")


class Applier:
    def __init__(self, store: Store, registry: Registry, bus: EventBus, metrics: Metrics,
                 reserve_ttl_s: float, *, preemption: bool = True, preempt_grace_s: float = 10.0,
                 preempt_min_wait_s: float = 0.0, weights: Weights | None = None) -> None:
        self.store, self.registry, self.bus, self.metrics = store, registry, bus, metrics
        self.weights = weights if weights is not None else Weights()
        self.reserve_ttl_s = reserve_ttl_s
        self.preemption, self.preempt_grace_s = preemption, preempt_grace_s
        self.preempt_min_wait_s = preempt_min_wait_s
        # victim task id -> (preemptor id, reason, monotonic time of the decision)
        self.preempting: dict[str, tuple[str, str, float]] = {}
        self.lock = anyio.Lock()
        self.tasks: dict[str, TaskRecord] = {}
        self.pending: dict[str, TaskRecord] = {}
        self.attempts: dict[tuple[str, int], AttemptRecord] = {}   # live (reserved/running) attempts
        self.sent_at: dict[tuple[str, int], float] = {}             # monotonic time of last assign
        self.waiters: dict[str, anyio.Event] = {}
        self.counts = {"lost": 0, "rescheduled": 0, "released": 0, "rejected": 0, "ignored": 0, "preempted": 0}
        self.predictor: RuntimePredictor | None = None  # learned durations (SchedulerConfig.predict_runtimes)
        self.planned: dict[str, float] = {}  # task id -> predicted duration it was planned with
        self.seq = 0
        # planning triggers, read by the scheduler's batch loop
        self.wakeup = anyio.Event()
        self.replan_now = False
        self.new_pending = 0
        self.first_pending_at: float | None = None
        self._dirty_tasks: dict[str, TaskRecord] = {}
        self._dirty_attempts: dict[tuple[str, int], AttemptRecord] = {}
        self._dirty_workers: dict[str, WorkerState] = {}
        self._events: list[Event] = []
        self._sends: dict[str, list[dict[str, Any]]] = {}
        self._finished: list[str] = []
        self._drained: list[WorkerState] = []

    # ------------------------------------------------------------------ plumbing
    def clock(self) -> float:
        return self.store.clock()

    def touch(self, rec: TaskRecord) -> None:
        rec.version += 1
        self._dirty_tasks[rec.id] = rec

    def touch_worker(self, w: WorkerState) -> None:
        self._dirty_workers[w.spec.id] = w

    def emit(self, kind: str, rec: TaskRecord | None = None, *, worker: str | None = None,
             reason: str = "", **data: Any) -> None:
        self._events.append(Event(kind, self.clock(), task=None if rec is None else rec.id,
                                  worker=worker if worker is not None else (rec.worker if rec else None),
                                  attempt=None if rec is None else rec.attempt, reason=reason, data=data))

    def send(self, worker_id: str, msg: dict[str, Any]) -> None:
        self._sends.setdefault(worker_id, []).append(msg)

    def kick(self, replan: bool = False) -> None:
        """Wake the batch loop; ``replan`` asks for a round now (capacity or workers changed)."""
        self.replan_now = self.replan_now or replan
        self.wakeup.set()

    def ignore(self, worker_id: str, why: str, detail: str) -> None:
        self.counts["ignored"] += 1
        self.metrics.ignored.labels(why).inc()
        log.warning("ignored message from worker %s: %s (%s)", worker_id, why, detail)

    async def flush(self) -> None:
        """Commit every dirty record in one transaction, then send, publish and wake."""
        tasks, attempts, workers = self._dirty_tasks, self._dirty_attempts, self._dirty_workers
        self._dirty_tasks, self._dirty_attempts, self._dirty_workers = {}, {}, {}
        await self.store.commit(tasks.values(), attempts.values(),
                                [WorkerRow(w.spec, w.state, w.reason) for w in workers.values()])
        events, self._events = self._events, []
        for ev in events:
            self.bus.emit(ev)
        finished, self._finished = self._finished, []
        for tid in finished:
            waiter = self.waiters.pop(tid, None)
            if waiter is not None:
                waiter.set()
        sends, self._sends = self._sends, {}
        for wid, msgs in sends.items():
            w = self.registry.get(wid)
            if w is not None and w.link is not None:
                await w.link.send(msgs)
        self.metrics.queue_depth.set(len(self.pending))

    # ------------------------------------------------------------------ tasks
    def restore(self, records: list[TaskRecord]) -> None:
        """Rebuild live state from the store after a (re)start; attempts re-armed."""
        now = time.monotonic()
        for rec in records:
            self.tasks[rec.id] = rec
            self.seq = max(self.seq, rec.seq)
            if rec.state == "pending":
                self.pending[rec.id] = rec
            elif rec.state in ("reserved", "running"):
                key = (rec.id, rec.attempt)
                self.attempts[key] = AttemptRecord(rec.id, rec.attempt, rec.worker or "?", rec.state,
                                                   rec.reserved or 0.0, rec.started)
                self.sent_at[key] = now
                w = self.registry.get(rec.worker or "")
                if w is not None:
                    w.hold(rec.id, rec.model.demand.as_dict(), self.device_shares(rec))
        if self.pending:
            self.new_pending = len(self.pending)
            self.first_pending_at = time.monotonic()

    def add(self, rec: TaskRecord) -> None:
        self.tasks[rec.id] = rec
        self.pending[rec.id] = rec
        self.touch(rec)
        self.emit("submitted", rec)
        self.new_pending += 1
        if self.first_pending_at is None:
            self.first_pending_at = time.monotonic()

    def status(self, rec: TaskRecord) -> TaskStatus:
        return TaskStatus(rec.id, rec.state, rec.attempt, rec.worker, rec.reason, rec.exit_code, rec.runtime_s,
                          rec.stdout, rec.stderr, rec.submitted, rec.started, rec.finished, rec.model.deadline,
                          rec.preemptions)

    def device_shares(self, rec: TaskRecord, devices: tuple[int, ...] | None = None) -> dict[int, float]:
        devs = rec.devices if devices is None else devices
        g = rec.model.gpu
        share = MILLI_PER_DEVICE if g is None or not g.is_shared else g.share
        return {d: float(share) for d in devs}

    def reserve(self, rec: TaskRecord, w: WorkerState, devices: tuple[int, ...]) -> None:
        self.pending.pop(rec.id, None)
        rec.attempt += 1
        rec.state, rec.worker, rec.devices = "reserved", w.spec.id, tuple(devices)
        rec.reserved, rec.reason = self.clock(), f"reserved on {w.spec.id}, waiting for its ack"
        key = (rec.id, rec.attempt)
        att = AttemptRecord(rec.id, rec.attempt, w.spec.id, "reserved", rec.reserved)
        self.attempts[key] = self._dirty_attempts[key] = att
        self.sent_at[key] = time.monotonic()
        w.hold(rec.id, rec.model.demand.as_dict(), self.device_shares(rec))
        self.touch(rec)
        self.send(w.spec.id, self.assign_msg(rec))
        self.emit("reserved", rec)
        self.metrics.placements.inc()

    def assign_msg(self, rec: TaskRecord) -> dict[str, Any]:
        s = rec.spec
        return protocol.make("assign", task=rec.id, attempt=rec.attempt, runtime=s.runtime, argv=list(s.argv),
                             env=dict(s.env), cwd=s.cwd, timeout_s=s.timeout, options=dict(s.options))

    def _end_attempt(self, rec: TaskRecord, state: str, reason: str) -> None:
        if self.preempting.pop(rec.id, None) is not None and state != "preempted":
            self.metrics.preemptions.labels("finished_first").inc()
        key = (rec.id, rec.attempt)
        att = self.attempts.pop(key, None)
        self.sent_at.pop(key, None)
        if att is not None:
            att.state, att.ended, att.reason = state, self.clock(), reason
            self._dirty_attempts[key] = att
        w = self.registry.get(rec.worker or "")
        if w is not None:
            w.release(rec.id, rec.model.demand.as_dict(), self.device_shares(rec))
            if w.state == "draining" and not w.holding:
                self._drained.append(w)
        self.kick(replan=True)

    def requeue(self, rec: TaskRecord, attempt_state: str, reason: str, event: str, **data: Any) -> None:
        """End the current attempt and put the task back in the queue (or fail it when
        its attempts are used up; preempted attempts do not count). A new reservation
        gets a new attempt number."""
        worker = rec.worker
        self._end_attempt(rec, attempt_state, reason)
        self.emit(event, rec, worker=worker, reason=reason, **data)
        if rec.attempt - rec.preemptions >= rec.spec.max_attempts:
            self.finish(rec, "failed", f"gave up after {rec.attempt} attempt(s); last: {reason}", end=False)
            return
        rec.state, rec.worker, rec.devices = "pending", None, ()
        rec.reason = f"requeued after attempt {rec.attempt}: {reason}"
        self.pending[rec.id] = rec
        self.touch(rec)
        self.new_pending += 1
        if self.first_pending_at is None:
            self.first_pending_at = time.monotonic()
        self.counts["rescheduled"] += 1
        self.metrics.rescheduled.labels(attempt_state).inc()

    def finish(self, rec: TaskRecord, state: str, reason: str, *, end: bool = True,
               result: dict[str, Any] | None = None) -> None:
        """Move a task to a terminal state (done, failed, cancelled)."""
        if end:
            self._end_attempt(rec, (result or {}).get("status", state), reason)
        self.pending.pop(rec.id, None)
        rec.state, rec.reason, rec.finished = state, reason, self.clock()
        if result is not None:
            rec.exit_code, rec.runtime_s = result.get("exit_code"), result.get("runtime_s")
            rec.stdout, rec.stderr = result.get("stdout"), result.get("stderr")
            self.planned.pop(rec.id, None)
            if state == "done" and self.predictor is not None and rec.runtime_s is not None:
                self.predictor.observe(features_of(rec.spec), float(rec.runtime_s))
        self.touch(rec)
        self._finished.append(rec.id)
        self.emit({"done": "finished"}.get(state, state), rec, reason=reason, exit_code=rec.exit_code)
        self.metrics.outcomes.labels(state).inc()

    def preempted(self, rec: TaskRecord, worker: str, detail: str) -> None:
        """The agent reports the attempt stopped by a preemption: requeue it as such."""
        decided = self.preempting.get(rec.id)
        reason = decided[1] if decided is not None else (detail or "preempted")
        latency = None if decided is None else time.monotonic() - decided[2]
        if latency is not None:
            self.metrics.preempt_latency.observe(latency)
        rec.preemptions += 1
        self.counts["preempted"] += 1
        self.metrics.preemptions.labels("preempted").inc()
        self.requeue(rec, "preempted", f"{reason} on {worker}", "preempted",
                     preemptor=None if decided is None else decided[0], latency_s=latency)

    def forget_msg(self, worker_id: str, task: str, attempt: int, final: bool) -> dict[str, Any]:
        """``forget``; ``final`` (the task is over: its checkpoint may go) if the agent knows it."""
        w = self.registry.get(worker_id)
        final = final and w is not None and "preempt" in (w.facts.get("features") or ())
        return protocol.make("forget", task=task, attempt=attempt, final=True if final else None)

    def cancel(self, rec: TaskRecord, reason: str) -> None:
        if rec.state in TERMINAL:
            return
        if rec.state in ("reserved", "running") and rec.worker:
            self.send(rec.worker, protocol.make("cancel", task=rec.id, attempt=rec.attempt, reason=reason))
        self.finish(rec, "cancelled", reason, end=rec.state != "pending")

    # ------------------------------------------------------------------ planning
    def snapshot(self, batch_max: int, preview: bool = False,
                 only: set[str] | None = None) -> tuple[Problem, dict[str, int]]:
        """The Problem of the next round: schedulable workers with their running work
        (``until`` = start + estimate, at least now) and up to ``batch_max`` pending tasks
        in urgency order (priority, deadline, submission). ``only`` restricts the tasks to
        those ids (a repair round); like ``preview`` it leaves the batch counters alone."""
        preview = preview or only is not None
        now = self.clock()
        workers = []
        for w in self.registry.workers.values():
            if not w.schedulable:
                continue
            running = []
            for tid in sorted(w.holding):
                rec = self.tasks[tid]
                began = rec.started if rec.started is not None else (rec.reserved or now)
                until = max(now + 1e-3, began + self.planned.get(tid, rec.model.duration) / w.model.speed)
                running.append(RunningWork(tid, rec.model.demand, self.device_shares(rec), until))
            model = w.effective_capacity()  # drift-corrected from heartbeats
            workers.append(w.model.__class__(w.model.id, model.capacity, w.model.labels, w.model.devices,
                                             w.model.speed, w.model.health, w.model.idle_cost, tuple(running)))
        pend = [r for r in self.pending.values() if only is None or r.id in only]
        if len(pend) > batch_max:
            pend.sort(key=lambda r: (-r.model.priority, math.inf if r.model.deadline is None else r.model.deadline,
                                     r.seq))
            if not preview:
                for i, rec in enumerate(pend[batch_max:]):
                    rec.reason = f"queued: {batch_max + i} task(s) ahead of it in the batch order"
            pend = pend[:batch_max]
        if not preview:
            self.new_pending, self.first_pending_at, self.replan_now = 0, None, False
        tasks = tuple(r.model if d == r.model.duration else attrs.evolve(r.model, duration=float(d))
                      for r, d in zip(pend, self.durations(pend), strict=True))
        return (Problem(workers=tuple(workers), tasks=tasks, now=now, weights=self.weights),
                {r.id: r.version for r in pend})

    def durations(self, recs: list[TaskRecord]) -> list[float]:
        """Planned durations: the predictor's once it is fitted (remembered in
        ``planned`` for when the task runs), else the estimates."""
        if self.predictor is None or not self.predictor.ready or not recs:
            return [r.model.duration for r in recs]
        out = [float(d) for d in self.predictor.predict([features_of(r.spec) for r in recs])]
        self.planned.update((r.id, d) for r, d in zip(recs, out, strict=True))
        return out

    def _live_check(self, rec: TaskRecord, a: Assignment) -> tuple[WorkerState | None, str | None]:
        """``a``'s worker and why ``rec`` cannot start there now (None: it can): the worker
        must be known and take work, and the task must fit its live state."""
        w = self.registry.get(a.worker)
        if w is None or not w.schedulable:
            return None, f"worker {a.worker} is {'unknown' if w is None else w.state}"
        return w, w.fits_now(rec.model.demand.as_dict(), self.device_shares(rec, tuple(a.devices)))

    def dispatch_now(self, plan: Plan, versions: dict[str, int], slack_s: float) -> int:
        """A round's fast path: reserve the assignments of ``plan`` that start now (within
        ``slack_s``, released) and fit live state; touch nothing else (reasons, delayed
        starts and preemption are the full plan's). Returns how many were reserved."""
        now, n = self.clock(), 0
        for a in plan.assignments:
            rec = self.pending.get(a.task)
            if (rec is None or rec.version != versions.get(a.task) or a.start > now + slack_s
                    or (rec.model.release or 0.0) > now):
                continue
            w, why = self._live_check(rec, a)
            if w is not None and why is None:
                self.reserve(rec, w, tuple(a.devices))
                n += 1
        return n

    def apply_plan(self, plan: Plan, versions: dict[str, int], slack_s: float) -> float | None:
        """Verify each assignment against live state and reserve the ones due now (planned
        to start within ``slack_s`` and released).

        Returns the scheduler time of the earliest assignment left for later (a delayed
        start or release), or None. Rejections are recorded as the task's reason."""
        now = self.clock()
        next_start: float | None = None
        waiting: list[TaskRecord] = []   # could not start now although due: preemption may help
        for u in plan.unassigned:
            rec = self.pending.get(u.task)
            if rec is not None:
                rec.reason = f"unschedulable: {u.reason}"
                waiting.append(rec)
        for a in plan.assignments:
            rec = self.pending.get(a.task)
            if rec is None or rec.version != versions.get(a.task):
                continue  # changed since the snapshot (cancelled, requeued, ...)
            release = rec.model.release or 0.0
            if a.start > now + slack_s or release > now:  # up to slack_s early, never before the release
                due = max(a.start, release)
                rec.reason = f"planned on {a.worker} at t={due:.2f} (in {due - now:.2f}s): {plan.planner}"
                next_start = due if next_start is None else min(next_start, due)
                d = rec.model.deadline
                if release <= now and (a.start - now > self.preempt_min_wait_s or (
                        d is not None and a.end > d)):
                    waiting.append(rec)
                continue
            w, why = self._live_check(rec, a)
            if why is not None:
                rec.reason = f"plan check failed: {why}"
                if w is None:  # the worker went away: plan again
                    self.kick(replan=True)
                else:  # capacity frees on a finish, which triggers the next round
                    waiting.append(rec)
                continue
            assert w is not None
            self.reserve(rec, w, tuple(a.devices))
        if self.preemption and waiting:
            self.preempt_for(waiting)
        self.emit("planned", reason=plan.detail, planner=plan.planner, status=plan.status,
                  assigned=len(plan.assignments), unassigned=len(plan.unassigned), elapsed_s=plan.elapsed_s)
        return next_start

    # ------------------------------------------------------------------ preemption
    def preempt_for(self, waiting: list[TaskRecord]) -> None:
        """Stop lower-priority preemptible attempts for ``waiting`` tasks (most urgent first),
        at most one decision per task while its victims are still stopping."""
        low = min((self.tasks[t].model.priority for t in self._preemptible_running()), default=None)
        if low is None:
            return
        now = self.clock()
        busy = {p for p, _, _ in self.preempting.values()}
        waiting = sorted(waiting, key=lambda r: (-r.model.priority, math.inf if r.model.deadline is None
                                                 else r.model.deadline, r.seq))
        for rec in waiting:
            if rec.model.priority <= low or rec.id in busy or rec.id not in self.pending:
                continue
            g = rec.model.gpu
            hosts = [self._host(w) for w in self.registry.workers.values()
                     if w.schedulable and all(w.model.label(k) in allowed for k, allowed in rec.model.requires)]
            choice = choose_victims(rec.model.demand.as_dict(), rec.model.priority, hosts, now,
                                    None if g is None else (g.count, float(g.share)))
            if choice is None:
                continue
            reason = f"preempted by {rec.id} (priority {rec.model.priority:g})"
            for vid in choice.victims:
                self._preempt(self.tasks[vid], rec, reason)
            rec.reason = (f"waiting for {len(choice.victims)} preempted task(s) on {choice.worker} to stop: "
                          f"{', '.join(choice.victims)}")
            busy.add(rec.id)

    def _preemptible_running(self) -> list[str]:
        return [tid for w in self.registry.workers.values() if w.schedulable for tid in w.holding
                if self.tasks[tid].spec.preemptible and tid not in self.preempting]

    def _host(self, w: WorkerState) -> Host:
        running = [Running(tid, r.model.priority, r.model.demand.as_dict(),
                           r.spec.preemptible and tid not in self.preempting, r.started, self.device_shares(r))
                   for tid in sorted(w.holding) for r in (self.tasks[tid],)]
        gpus = {i: w.devices_used.get(i, 0.0) for i, d in enumerate(w.model.devices) if d.kind == GPU_KIND}
        return Host(w.spec.id, w.effective_capacity().capacity.as_dict(), dict(w.used), running, gpus)

    def _preempt(self, victim: TaskRecord, by: TaskRecord, reason: str) -> None:
        assert victim.worker is not None
        self.preempting[victim.id] = (by.id, reason, time.monotonic())
        victim.reason = f"stopping: {reason}; grace {self.preempt_grace_s:g}s"
        self.touch(victim)
        w = self.registry.get(victim.worker)
        if w is not None and "preempt" in (w.facts.get("features") or ()):
            msg = protocol.make("preempt", task=victim.id, attempt=victim.attempt,
                                grace_s=float(self.preempt_grace_s), reason=reason)
        else:  # an agent without preemption support: a plain cancel (no grace period)
            msg = protocol.make("cancel", task=victim.id, attempt=victim.attempt, reason=reason)
        self.send(victim.worker, msg)
        self.emit("preempting", victim, reason=reason, preemptor=by.id, priority=by.model.priority,
                  grace_s=self.preempt_grace_s)
        self.metrics.preemptions.labels("requested").inc()

    # ------------------------------------------------------------------ workers
    def worker_lost(self, w: WorkerState, reason: str) -> None:
        w.state, w.reason = "lost", reason
        self.touch_worker(w)
        self.emit("worker_lost", worker=w.spec.id, reason=reason)
        for tid in sorted(w.holding):
            rec = self.tasks[tid]
            self.counts["lost"] += 1
            self.requeue(rec, "lost", f"worker {w.spec.id} lost ({reason})", "lost")
        self.kick(replan=True)

    def expire_reservations(self) -> None:
        """Release reservations not acknowledged within the TTL by a connected worker."""
        limit = time.monotonic() - self.reserve_ttl_s
        for key, att in list(self.attempts.items()):
            if att.state != "reserved" or self.sent_at.get(key, limit + 1) > limit:
                continue
            w = self.registry.get(att.worker)
            if w is None or not w.schedulable:
                continue  # a disconnected worker is handled by loss detection (which fences)
            rec = self.tasks[key[0]]
            reason = f"worker {att.worker} did not acknowledge within {self.reserve_ttl_s:g}s"
            self.send(att.worker, protocol.make("cancel", task=rec.id, attempt=rec.attempt, reason=reason))
            self.counts["released"] += 1
            self.requeue(rec, "released", reason, "released")

    def take_drained(self) -> list[WorkerState]:
        out, self._drained = self._drained, []
        return [w for w in out if w.state == "draining" and not w.holding]
