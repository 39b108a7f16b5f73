"""Pure views of the dashboard: scheduler snapshots in, HTML strings and numbers out.

No widgets here (so the views are testable without a kernel). Every function takes
public snapshots (``WorkerInfo``, ``TaskStatus``, ``Plan``) and returns HTML that the
dashboard puts into ``ipywidgets.HTML``; text is escaped.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

STATE_COLORS = {
    "pending": "#fff6d5", "reserved": "#e3ecfb", "running": "#d5e6ff", "done": "#e1f3da",
    "failed": "#fbdcdc", "cancelled": "#eeeeee", "up": "#e1f3da", "connecting": "#fff6d5",
    "draining": "#ffe8cc", "down": "#eeeeee", "lost": "#fbdcdc",
}
TABLE_CSS = ("border-collapse:collapse;font-family:monospace;font-size:12px;width:100%")
CELL = "padding:2px 6px;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap"


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _amounts(m: Mapping[str, Any]) -> str:
    return " ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(m.items())) or "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, states: Sequence[str] = (),
          css_id: str = "") -> str:
    """An HTML table; row ``i`` is tinted by ``STATE_COLORS[states[i]]`` when given."""
    head = "".join(f"<th style='{CELL}'>{_e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        bg = STATE_COLORS.get(states[i], "") if i < len(states) else ""
        cells = "".join(f"<td style='{CELL}'>{_e(c)}</td>" for c in row)
        body.append(f"<tr style='background:{bg}'>{cells}</tr>")
    ident = f" id='{_e(css_id)}'" if css_id else ""
    return (f"<table{ident} style='{TABLE_CSS}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def workers_html(workers: Sequence[Any]) -> str:
    """Workers table: state, executor, running/slots, capacity, used, labels, load, heartbeat."""
    rows, states = [], []
    for w in workers:
        seen = "never" if w.last_seen_s is None else f"{w.last_seen_s:.1f}s ago"
        load = w.load.get("cpu_percent")
        rows.append([w.id, w.state, w.executor, f"{w.running}/{w.max_concurrency}", _amounts(w.capacity),
                     _amounts(w.used), _amounts(w.labels) if w.labels else "-",
                     "-" if load is None else f"{load:.0f}%", seen])
        states.append(w.state)
    if not rows:
        return "<i>no workers yet: add one with Scheduler.add_worker</i>"
    return table(["worker", "state", "executor", "slots", "capacity", "used", "labels", "cpu load",
                  "heartbeat"], rows, states=states, css_id="agsched-workers")


def tasks_html(tasks: Sequence[Any], total: int, now: float, max_rows: int) -> str:
    """Tasks table (newest first, at most ``max_rows``) with a 'showing n of m' line."""
    shown = list(reversed(tasks))[:max_rows]
    rows = []
    for t in shown:
        waited = (t.started if t.started is not None else (t.finished if t.finished is not None else now)) \
            - t.submitted
        ran = "-" if t.started is None else f"{(t.finished if t.finished is not None else now) - t.started:.1f}s"
        reason = t.reason if len(t.reason) <= 70 else t.reason[:67] + "..."
        rows.append([t.id, t.state, t.attempt, t.worker or "-", f"{waited:.1f}s", ran, reason])
    line = (f"<div class='agsched-task-count' data-shown='{len(shown)}' data-matching='{len(tasks)}' "
            f"data-total='{total}' style='font-size:12px;color:#555'>showing {len(shown)} of "
            f"{len(tasks)} matching ({total} tasks)</div>")
    if not rows:
        return line + "<i>no tasks match</i>"
    return line + table(["task", "state", "try", "worker", "waited", "ran", "reason"], rows,
                        states=[t.state for t in shown], css_id="agsched-tasks")


def gap(objective: float | None, bound: float | None) -> float | None:
    """Relative optimality gap ``(objective - bound) / |objective|``, None without both."""
    if objective is None or bound is None:
        return None
    return max(0.0, float(objective) - float(bound)) / max(abs(float(objective)), 1e-9)


def planner_html(planner: Any, budget_s: float, plan: Any, rounds: int, fallbacks: int,
                 last_fallback: str) -> str:
    """Planner status: configured planner and budget, the last round's plan and the fallbacks."""
    name = planner if isinstance(planner, str) else type(planner).__name__
    rows: list[list[Any]] = [["planner", name], ["budget", f"{budget_s:g} s"], ["rounds planned", rounds],
            ["fallbacks", f"{fallbacks}" + (f" (last: {last_fallback})" if last_fallback else "")]]
    if plan is None:
        rows.append(["last plan", "none yet"])
    else:
        g = gap(plan.objective, plan.bound)
        rows += [["last plan by", f"{plan.planner} ({plan.status})"],
                 ["objective", "-" if plan.objective is None else f"{float(plan.objective):.2f}"],
                 ["bound / gap", ("-" if plan.bound is None else f"{float(plan.bound):.2f}")
                  + ("" if g is None else f" / {100 * g:.1f}%")],
                 ["assigned / unassigned", f"{len(plan.assignments)} / {len(plan.unassigned)}"],
                 ["planning time", f"{plan.elapsed_s * 1000:.0f} ms"]]
        if plan.detail:
            rows.append(["detail", plan.detail[:80]])
    return table(["planner status", ""], rows, css_id="agsched-planner")


def metrics(tasks: Sequence[Any], counts: Mapping[str, int], now: float) -> dict[str, Any]:
    """Key numbers: counts per state, mean/p95 wait of started tasks, throughput over the
    last minute, deadlines met among finished tasks with a deadline."""
    waits = sorted(t.started - t.submitted for t in tasks if t.started is not None)
    recent = [t for t in tasks if t.state == "done" and t.finished is not None and t.finished >= now - 60]
    with_deadline = [t for t in tasks if t.deadline is not None and t.finished is not None and t.state == "done"]
    met = sum(1 for t in with_deadline if t.finished <= t.deadline + 1e-6)
    return {
        **{k: counts.get(k, 0) for k in ("pending", "reserved", "running", "done", "failed", "cancelled",
                                         "lost", "rescheduled")},
        "mean_wait_s": statistics.fmean(waits) if waits else None,
        "p95_wait_s": waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else None,
        "done_per_min": len(recent) * 60.0 / max(min(now, 60.0), 1.0),
        "deadlines": f"{met}/{len(with_deadline)}",
    }


def metrics_html(m: Mapping[str, Any], loop: Mapping[str, Any]) -> str:
    """One line of key metrics plus the dashboard's own event-loop health."""
    def f(v: Any, unit: str = "") -> str:
        return "-" if v is None else (f"{v:.2f}{unit}" if isinstance(v, float) else f"{v}{unit}")

    chips = [("pending", m["pending"]), ("running", m["running"] + m["reserved"]), ("done", m["done"]),
             ("failed", m["failed"]), ("cancelled", m["cancelled"]), ("lost", m["lost"]),
             ("mean wait", f(m["mean_wait_s"], "s")), ("p95 wait", f(m["p95_wait_s"], "s")),
             ("done/min", f(m["done_per_min"])), ("deadlines met", m["deadlines"]),
             ("events", loop.get("events", 0)), ("loop lag max 10s", f(loop.get("max_lag_s"), "s"))]
    spans = "".join(f"<span style='display:inline-block;margin:2px 8px 2px 0;padding:2px 8px;background:#f3f3f3;"
                    f"border-radius:4px'><b>{_e(k)}</b> {_e(v)}</span>" for k, v in chips)
    return f"<div id='agsched-metrics' style='font-size:12px'>{spans}</div>"


def compare_html(rows: Sequence[tuple[str, Any, Any]]) -> str:
    """The what-if comparison table: (measure, current, what-if)."""
    return table(["measure", "current plan", "what-if"], [[k, a, b] for k, a, b in rows],
                 css_id="agsched-whatif-table")


def logs_html(stdout: bytes, stderr: bytes) -> str:
    """A task's stdout and stderr tails, escaped, in scrollable boxes."""
    def box(name: str, data: bytes) -> str:
        text = data.decode(errors="replace") or "(empty)"
        return (f"<div style='font-size:11px'><b>{name}</b><pre class='agsched-log' style='max-height:160px;"
                f"overflow:auto;margin:0;background:#f7f7f7'>{_e(text)}</pre></div>")
    return box("stdout", stdout) + box("stderr", stderr)
