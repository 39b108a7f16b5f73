"""The Jupyter control surface: ``Dashboard(scheduler)`` (ipywidgets) and ``run_in_background``.

A notebook cell cannot hold ``async with Scheduler(...)`` open across cells, so
``run_in_background(scheduler)`` enters it in a task of the kernel's event loop and
returns a handle whose ``stop()`` leaves it. The dashboard likewise runs its update loop
in one task on that loop: it consumes ``scheduler.subscribe()``, marks the view dirty
and redraws at most ``redraw_hz`` times a second (Gantt chart at most once a second,
rendered in a thread); planners run in threads inside the scheduler, so the kernel and
the widgets stay responsive while a planner works through a multi-second budget.

Only the scheduler's public API is used. ``ipywidgets`` and ``matplotlib`` are imported
when a dashboard is built (the ``dashboard`` extra), not when ``agentic_sched`` is.
"""

from __future__ import annotations

import asyncio
import collections
import shlex
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import attrs

from . import _dashviews as views
from . import _gantt
from ._spec import TaskSpec
from .formats import cost
from .model import Plan, Problem, Resources, Task
from .planners import PLANNER_NAMES
from .scheduler import Scheduler

plot_plan = _gantt.plot_plan
# what-if edits of one pending task: (task, value, now) -> edited task, None = removed
TASK_EDITS: dict[str, Callable[[Task, float, float], Task | None]] = {
    "deadline s (0: none)": lambda t, v, now: attrs.evolve(t, deadline=now + v if v > 0 else None),
    "priority": lambda t, v, now: attrs.evolve(t, priority=v),
    "cpu": lambda t, v, now: attrs.evolve(t, demand=Resources({**t.demand.as_dict(), "cpu": v})),
    "duration s": lambda t, v, now: attrs.evolve(t, duration=v),
    "remove": lambda t, v, now: None,
}
SLOTS = "task_slots"  # every task holds one of its worker's concurrency slots (what-if tasks too)


class BackgroundScheduler:
    """A scheduler entered in a task of the running event loop (for notebooks and voila)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _host(self, started: asyncio.Event) -> None:
        async with self.scheduler:
            started.set()
            await self._stop.wait()

    async def start(self) -> Scheduler:
        started = asyncio.Event()
        # A notebook has no scope spanning cells; this task is that scope, closed by stop().
        self._task = asyncio.get_running_loop().create_task(self._host(started))
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait([waiter, self._task], return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            waiter.cancel()
            self._task.result()  # raises the start-up error
        return self.scheduler

    async def stop(self) -> None:
        """Leave the scheduler (agents stopped, store closed); idempotent."""
        self._stop.set()
        if self._task is not None:
            await self._task


async def run_in_background(scheduler: Scheduler) -> BackgroundScheduler:
    """Enter ``scheduler`` in a background task of the current loop; ``await bg.stop()`` ends it."""
    bg = BackgroundScheduler(scheduler)
    await bg.start()
    return bg


@attrs.define
class LoopStats:
    """The dashboard's own health: events consumed, redraws, heartbeat ticks and the
    largest event-loop lag seen by its 0.1 s heartbeat (overall and in the last 10 s)."""

    events: int = 0
    redraws: int = 0
    gantt_renders: int = 0
    ticks: int = 0
    max_lag_s: float = 0.0
    lags: collections.deque[tuple[float, float]] = attrs.field(factory=lambda: collections.deque(maxlen=100),
                                                            repr=False)

    def recent_max_lag(self, window_s: float = 10.0) -> float | None:
        now = time.monotonic()
        recent = [lag for t, lag in self.lags if t >= now - window_s]
        return max(recent) if recent else None


class Dashboard:
    """Live view and controls of one running ``Scheduler``; display it in a notebook cell.

    Shows workers, tasks (filter by state / id), why a selected task is pending, the
    planner's status, key metrics and a Gantt chart of what ran and of the last plan.
    Controls: submit tasks, cancel, drain a worker, switch planner and budget, and a
    what-if panel (``plan_preview(change)`` next to the current preview; nothing is
    committed). ``start()`` (called on display) runs the update loop; ``close()`` ends it.
    """

    def __init__(self, scheduler: Scheduler, *, max_rows: int = 25, redraw_hz: float = 4.0,
                 gantt_hz: float = 1.0, title: str = "agentic-sched") -> None:
        import ipywidgets as W

        self.scheduler, self.max_rows = scheduler, max_rows
        self.redraw_s, self.gantt_s = 1.0 / redraw_hz, 1.0 / gantt_hz
        self.stats = LoopStats()
        self.rounds = self.fallbacks = 0
        self.last_fallback = ""
        self.log: collections.deque[str] = collections.deque(maxlen=8)
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[Any]] = set()
        self._dirty = anyio.Event()
        self._gantt_dirty = True
        self._last_gantt = 0.0
        self._build(W, title)

    # ------------------------------------------------------------------ layout
    def _build(self, W: Any, title: str) -> None:
        s, box = self.scheduler, W.Layout
        self.header = W.HTML(f"<h3 style='margin:4px 0'>{title}</h3>")
        self.metrics_out = W.HTML()
        self.workers_out = W.HTML()
        self.planner_out = W.HTML()
        self.tasks_out = W.HTML()
        self.message = W.HTML(layout=box(min_height="20px"))
        self.events_out = W.HTML()
        self.gantt = W.Image(format="png", layout=box(width="100%", max_width="1000px"))
        # tasks: filters, selection, why-pending, cancel
        self.state_filter = W.Dropdown(options=["all", "pending", "reserved", "running", "done", "failed",
                                                "cancelled"], value="all", description="state",
                                       layout=box(width="180px"))
        self.id_filter = W.Text(placeholder="id contains", layout=box(width="160px"))
        self.task_pick = W.Dropdown(options=[], description="task", layout=box(width="260px"))
        self.why_out = W.HTML(layout=box(min_height="40px"))
        self.cancel_btn = W.Button(description="Cancel task", button_style="danger", icon="times")
        self.logs_btn = W.Button(description="Show logs", icon="file-text")
        self.logs_btn.add_class("agsched-logs")
        self.logs_out = W.HTML()
        for w in (self.state_filter, self.id_filter):
            w.observe(lambda _: self._mark(), "value")
        self.task_pick.observe(lambda _: self._picked(), "value")
        self.logs_btn.on_click(lambda _: self._spawn(self._show_logs()))
        self.cancel_btn.on_click(lambda _: self._spawn(self._cancel()))
        # submit form
        self.f_id = W.Text(placeholder="(generated)", description="id", layout=box(width="220px"))
        self.f_cmd = W.Text(value="sleep 2", description="command", layout=box(width="300px"))
        self.f_cpu = W.BoundedFloatText(value=1, min=0, max=1e6, description="cpu", layout=box(width="150px"))
        self.f_dur = W.BoundedFloatText(value=2, min=0.001, max=1e7, description="duration s",
                                        layout=box(width="170px"))
        self.f_deadline = W.BoundedFloatText(value=0, min=0, max=1e7, description="deadline s",
                                             layout=box(width="170px"))
        self.f_prio = W.BoundedFloatText(value=1, min=0, max=1e6, description="priority", layout=box(width="150px"))
        self.f_count = W.BoundedIntText(value=1, min=1, max=1000, description="count", layout=box(width="150px"))
        self.submit_btn = W.Button(description="Submit", button_style="primary", icon="play")
        self.submit_btn.add_class("agsched-submit")
        self.submit_btn.on_click(lambda _: self._spawn(self._submit()))
        # workers: drain
        self.worker_pick = W.Dropdown(options=[], description="worker", layout=box(width="220px"))
        self.drain_btn = W.Button(description="Drain worker", button_style="warning", icon="pause")
        self.drain_btn.on_click(lambda _: self._spawn(self._drain()))
        # planner
        cfg = s.config
        names = list(PLANNER_NAMES)
        self.planner_pick = W.Dropdown(options=names, value=cfg.planner if cfg.planner in names else names[0],
                                       description="planner", layout=box(width="220px"))
        self.budget = W.BoundedFloatText(value=cfg.plan_budget_s, min=0.01, max=3600, step=0.5,
                                         description="budget s", layout=box(width="170px"))
        self.planner_btn = W.Button(description="Apply planner", icon="cogs")
        self.planner_btn.add_class("agsched-planner-apply")
        self.planner_btn.on_click(lambda _: self._switch_planner())
        # what-if
        self.wi_worker = W.Dropdown(options=["(no change)"], description="worker", layout=box(width="220px"))
        self.wi_action = W.Dropdown(options=["resize cpu", "remove"], description="change",
                                    layout=box(width="200px"))
        self.wi_cpu = W.BoundedFloatText(value=4, min=0, max=1e6, description="cpu", layout=box(width="150px"))
        self.wi_ntasks = W.BoundedIntText(value=0, min=0, max=500, description="+ tasks", layout=box(width="150px"))
        self.wi_tcpu = W.BoundedFloatText(value=1, min=0, max=1e6, description="task cpu", layout=box(width="150px"))
        self.wi_tdur = W.BoundedFloatText(value=3, min=0.001, max=1e7, description="duration s",
                                          layout=box(width="170px"))
        self.wi_tdl = W.BoundedFloatText(value=0, min=0, max=1e7, description="deadline s",
                                         layout=box(width="170px"))
        self.wi_task = W.Dropdown(options=["(no change)"], description="task", layout=box(width="220px"))
        self.wi_task_action = W.Dropdown(options=list(TASK_EDITS), description="change", layout=box(width="260px"))
        self.wi_task_value = W.FloatText(value=0, description="value", layout=box(width="150px"))
        self.wi_btn = W.Button(description="Preview what-if", icon="eye")
        self.wi_btn.add_class("agsched-whatif")
        self.wi_btn.on_click(lambda _: self._spawn(self._what_if()))
        self.wi_table = W.HTML("<i>change a worker or a pending task, or add tasks, then preview: "
                               "nothing is committed</i>")
        self.wi_now = W.Image(format="png", layout=box(width="49%", display="none"))
        self.wi_alt = W.Image(format="png", layout=box(width="49%", display="none"))

        def section(name: str, *children: Any) -> Any:
            return W.VBox([W.HTML(f"<b>{name}</b>"), *children],
                          layout=box(border="1px solid #ddd", padding="4px", margin="2px"))

        left = W.VBox([section("Workers", self.workers_out, W.HBox([self.worker_pick, self.drain_btn])),
                       section("Tasks", W.HBox([self.state_filter, self.id_filter]), self.tasks_out)],
                      layout=box(width="62%"))
        right = W.VBox([section("Planner", self.planner_out, W.HBox([self.planner_pick, self.budget]),
                                self.planner_btn),
                        section("Selected task", self.task_pick, self.why_out,
                                W.HBox([self.cancel_btn, self.logs_btn]), self.logs_out),
                        section("Recent events", self.events_out)], layout=box(width="38%"))
        submit = section("Submit", W.HBox([self.f_id, self.f_cmd, self.f_count]),
                         W.HBox([self.f_cpu, self.f_dur, self.f_deadline, self.f_prio, self.submit_btn]))
        whatif = section("What-if (plan_preview, nothing committed)",
                         W.HBox([self.wi_worker, self.wi_action, self.wi_cpu]),
                         W.HBox([self.wi_task, self.wi_task_action, self.wi_task_value]),
                         W.HBox([self.wi_ntasks, self.wi_tcpu, self.wi_tdur, self.wi_tdl, self.wi_btn]),
                         self.wi_table, W.HBox([self.wi_now, self.wi_alt]))
        self.widget = W.VBox([self.header, self.metrics_out, self.message, W.HBox([left, right]), submit,
                              section("Gantt: what ran and the last plan", self.gantt), whatif])
        self.widget.add_class("agsched-dashboard")
        self.refresh()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
        self.start()

    # ------------------------------------------------------------------ update loop
    def start(self) -> None:
        """Run the update loop in a task of the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        """Stop the update loop and pending control actions."""
        for t in [self._task, *self._jobs]:
            if t is not None:
                t.cancel()

    async def _run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._consume)
            tg.start_soon(self._heartbeat)
            tg.start_soon(self._redraw_loop)

    async def _consume(self) -> None:
        async with self.scheduler.subscribe() as events:
            async for ev in events:
                self.stats.events += 1
                if ev.kind == "planned":
                    self.rounds += 1
                elif ev.kind == "planner_fallback":
                    self.fallbacks += 1
                    self.last_fallback = ev.reason
                if ev.kind == "planned":
                    d = ev.data
                    self.log.appendleft(f"{ev.time:7.2f} planned by {d.get('planner')} ({d.get('status')}): "
                                        f"{d.get('assigned')} assigned, {d.get('unassigned')} unassigned")
                elif ev.kind != "reserved":
                    who = " ".join(x for x in (ev.task, ev.worker) if x)
                    self.log.appendleft(f"{ev.time:7.2f} {ev.kind} {who} {ev.reason[:60]}")
                if ev.kind in ("started", "finished", "failed", "cancelled", "lost", "planned", "worker_up",
                               "worker_down", "worker_lost"):
                    self._gantt_dirty = True
                self._mark()

    async def _heartbeat(self, period_s: float = 0.1) -> None:
        """Measures event-loop lag (oversleep of a 0.1 s sleep); refreshes ages once a second."""
        n = 0
        while True:
            t0 = time.monotonic()
            await anyio.sleep(period_s)
            lag = max(0.0, time.monotonic() - t0 - period_s)
            self.stats.ticks += 1
            self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
            self.stats.lags.append((time.monotonic(), lag))
            n += 1
            if n % 10 == 0:
                self._mark()

    def _mark(self) -> None:
        self._dirty.set()

    async def _redraw_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            try:
                self.refresh()
                if self._gantt_dirty or any(t.state == "running" for t in self.scheduler.list("running")):
                    if time.monotonic() - self._last_gantt >= self.gantt_s:
                        self._gantt_dirty = False
                        self._last_gantt = time.monotonic()
                        await self._render_gantt()
            except Exception as exc:  # noqa: BLE001 - shown, never kills the update loop
                self._say(f"dashboard refresh failed: {exc!r}", error=True)
            await anyio.sleep(self.redraw_s)

    # ------------------------------------------------------------------ views
    def refresh(self) -> None:
        """Redraw tables, planner status and metrics from the scheduler (cheap; no Gantt)."""
        s = self.scheduler
        self.stats.redraws += 1
        workers = s.workers()
        tasks = s.list()
        now = s.clock()
        chosen = tasks if self.state_filter.value == "all" else [t for t in tasks if t.state == self.state_filter.value]
        if self.id_filter.value:
            chosen = [t for t in chosen if self.id_filter.value in t.id]
        self.workers_out.value = views.workers_html(workers)
        self.tasks_out.value = views.tasks_html(chosen, len(tasks), now, self.max_rows)
        cfg = s.config
        self.planner_out.value = views.planner_html(cfg.planner, cfg.plan_budget_s, s.last_plan, self.rounds,
                                                    self.fallbacks, self.last_fallback)
        loop = {"events": self.stats.events, "max_lag_s": self.stats.recent_max_lag()}
        self.metrics_out.value = views.metrics_html(views.metrics(tasks, s.counts(), now), loop)
        self.events_out.value = ("<pre style='font-size:11px;margin:0'>" + "\n".join(
            views._e(line) for line in self.log) + "</pre>")
        ids = [t.id for t in reversed(chosen)][:200]
        if self.task_pick.value and self.task_pick.value not in ids:
            ids.append(self.task_pick.value)
        if list(self.task_pick.options) != ids:
            keep = self.task_pick.value
            self.task_pick.options = ids
            self.task_pick.value = keep if keep in ids else None
        pending = ["(no change)", *(t.id for t in tasks if t.state == "pending")][:201]
        if list(self.wi_task.options) != pending:
            keep = self.wi_task.value
            self.wi_task.options = pending
            self.wi_task.value = keep if keep in pending else "(no change)"
        wids = [w.id for w in workers]
        if list(self.worker_pick.options) != wids:
            keep, keep_wi = self.worker_pick.value, self.wi_worker.value
            self.worker_pick.options = wids
            self.worker_pick.value = keep if keep in wids else (wids[0] if wids else None)
            self.wi_worker.options = ["(no change)", *wids]
            self.wi_worker.value = keep_wi if keep_wi in self.wi_worker.options else "(no change)"
        self._show_why()

    def _picked(self) -> None:
        self.logs_out.value = ""  # logs are fetched on demand (they may come over SFTP)
        self._show_why()

    def _show_why(self) -> None:
        tid = self.task_pick.value
        if not tid:
            self.why_out.value = "<i>pick a task to see why it is pending</i>"
            return
        try:
            st, why = self.scheduler.status(tid), self.scheduler.why_pending(tid)
        except Exception as exc:  # noqa: BLE001 - e.g. UnknownTask
            self.why_out.value = views._e(str(exc))
            return
        self.why_out.value = (f"<div id='agsched-why' style='font-size:12px'><b>{views._e(tid)}</b>: "
                              f"{views._e(st.state)} (attempt {st.attempt}, worker {views._e(st.worker or '-')})"
                              f"<br>why: {views._e(why)}</div>")

    async def _render_gantt(self) -> None:
        s = self.scheduler
        now = s.clock()
        started = [t for t in s.list() if t.started is not None][-200:]
        deadlines = {t.id: t.deadline for t in s.list("pending") if t.deadline is not None}
        plan = s.last_plan
        workers = [w.id for w in s.workers()]
        panels = [dict(bars=_gantt.ran_bars(started, now), workers=workers, now=now,
                       title="what ran (solid: done green, running blue, failed red)")]
        if plan is not None:
            panels.append(dict(bars=_gantt.plan_bars(plan, deadlines), workers=workers, now=now,
                               title=f"last plan: {plan.planner} ({plan.status}), hatched = planned"))
        self.gantt.value = await anyio.to_thread.run_sync(_gantt.render_png, panels)
        self.stats.gantt_renders += 1

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#1b5e20"
        self.message.value = f"<span id='agsched-message' style='color:{color}'>{views._e(text)}</span>"

    # ------------------------------------------------------------------ controls
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a control's coroutine on the loop (widget callbacks are synchronous)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _guard(self, what: str, fn: Callable[[], Coroutine[Any, Any, str]]) -> None:
        try:
            self._say(await fn())
        except Exception as exc:  # noqa: BLE001 - every control reports its error in the page
            self._say(f"{what} failed: {exc}", error=True)
        self._gantt_dirty = True
        self._mark()

    async def _submit(self) -> None:
        async def go() -> str:
            argv = shlex.split(self.f_cmd.value)
            n, base = self.f_count.value, self.f_id.value.strip()
            specs = [TaskSpec(argv=argv, id=(f"{base}-{i}" if n > 1 else base) if base else None,
                              demand={"cpu": self.f_cpu.value} if self.f_cpu.value else {},
                              duration=self.f_dur.value, deadline=self.f_deadline.value or None,
                              priority=self.f_prio.value) for i in range(n)]
            handles = await self.scheduler.submit_many(specs)
            return f"submitted {', '.join(h.id for h in handles[:5])}{' ...' if n > 5 else ''}"
        await self._guard("submit", go)

    async def _cancel(self) -> None:
        async def go() -> str:
            tid = self.task_pick.value
            if not tid:
                raise ValueError("pick a task first")
            st = await self.scheduler.cancel(tid, "cancelled from the dashboard")
            return f"{tid}: {st.state}"
        await self._guard("cancel", go)

    async def _show_logs(self, max_bytes: int = 4096) -> None:
        async def go() -> str:
            tid = self.task_pick.value
            if not tid:
                raise ValueError("pick a task first")
            out = await self.scheduler.logs(tid, "stdout", max_bytes)
            err = await self.scheduler.logs(tid, "stderr", max_bytes)
            self.logs_out.value = views.logs_html(out, err)
            return f"{tid}: logs of its last attempt (last {max_bytes} bytes each)"
        await self._guard("logs", go)

    async def _drain(self) -> None:
        async def go() -> str:
            wid = self.worker_pick.value
            if not wid:
                raise ValueError("pick a worker first")
            await self.scheduler.drain_worker(wid)
            return f"draining {wid}: no new work, its agent stops when its attempts end"
        await self._guard("drain", go)

    def _switch_planner(self) -> None:
        try:
            self.scheduler.set_planner(self.planner_pick.value, self.budget.value)
            self._say(f"planner {self.planner_pick.value}, budget {self.budget.value:g}s from the next round")
        except Exception as exc:  # noqa: BLE001
            self._say(f"switch planner failed: {exc}", error=True)
        self._mark()

    def what_if_change(self) -> Callable[[Problem], Problem]:
        """The edit described by the what-if form, as a ``Problem -> Problem`` function."""
        wid, action, cpu = self.wi_worker.value, self.wi_action.value, self.wi_cpu.value
        n, tcpu, tdur, tdl = self.wi_ntasks.value, self.wi_tcpu.value, self.wi_tdur.value, self.wi_tdl.value
        tid, edit, value = self.wi_task.value, TASK_EDITS[self.wi_task_action.value], self.wi_task_value.value

        def change(p: Problem) -> Problem:
            tasks = p.tasks
            if tid and tid != "(no change)":
                edited = (edit(t, value, p.now) if t.id == tid else t for t in p.tasks)
                tasks = tuple(t for t in edited if t is not None)
            workers = list(p.workers)
            if wid and wid != "(no change)":
                if action == "remove":
                    workers = [w for w in workers if w.id != wid]
                else:
                    workers = [attrs.evolve(w, capacity=Resources({**w.capacity.as_dict(), "cpu": cpu}))
                               if w.id == wid else w for w in workers]
            extra = tuple(Task(f"what-if-{i}", demand={"cpu": tcpu, SLOTS: 1}, duration=tdur,
                               deadline=p.now + tdl if tdl else None) for i in range(n))
            return attrs.evolve(p, workers=tuple(workers), tasks=tasks + extra)
        return change

    async def _what_if(self) -> None:
        async def go() -> str:
            self.wi_btn.disabled = True
            try:
                seen: dict[str, Problem] = {}

                def keep(name: str, fn: Callable[[Problem], Problem]) -> Callable[[Problem], Problem]:
                    def inner(p: Problem) -> Problem:
                        seen[name] = fn(p)
                        return seen[name]
                    return inner
                now_plan = await self.scheduler.plan_preview(keep("now", lambda p: p))
                alt_plan = await self.scheduler.plan_preview(keep("alt", self.what_if_change()))
                await self._show_what_if(seen["now"], now_plan, seen["alt"], alt_plan)
                return "what-if previewed (nothing committed)"
            finally:
                self.wi_btn.disabled = False
        await self._guard("what-if", go)

    async def _show_what_if(self, p0: Problem, plan0: Plan, p1: Problem, plan1: Plan) -> None:
        def summary(p: Problem, plan: Plan) -> dict[str, Any]:
            c = cost(p, plan)
            return {"planner": f"{plan.planner} ({plan.status})", "objective": f"{c['objective']:.2f}",
                    "assigned": len(plan.assignments), "unassigned": len(plan.unassigned),
                    "deadline misses": f"{c['misses']:g}", "makespan": f"{c['makespan']:.2f}"}
        a, b = summary(p0, plan0), summary(p1, plan1)
        self.wi_table.value = views.compare_html([(k, a[k], b[k]) for k in a])

        def panel(p: Problem, plan: Plan, title: str) -> bytes:
            dl = {t.id: t.deadline for t in p.tasks if t.deadline is not None}
            return _gantt.render_png([dict(bars=_gantt.plan_bars(plan, dl), workers=[w.id for w in p.workers],
                                           now=p.now, title=title)], width=6.0)
        self.wi_now.value = await anyio.to_thread.run_sync(panel, p0, plan0, "current (preview)")
        self.wi_alt.value = await anyio.to_thread.run_sync(panel, p1, plan1, "what-if")
        self.wi_now.layout.display = self.wi_alt.layout.display = None


__all__ = ["BackgroundScheduler", "Dashboard", "LoopStats", "plot_plan", "run_in_background"]
