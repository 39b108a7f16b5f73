"""Gantt charts of plans and of what ran, drawn with matplotlib's object API (no pyplot
state), so they can be rendered to PNG from a worker thread.

``Bar`` is one interval on one worker's row. ``plan_bars(plan)`` and ``ran_bars(statuses)``
turn a ``Plan`` / ``TaskStatus`` list into bars; ``draw(ax, bars)`` draws them on an axes;
``render_png(panels)`` draws one or more titled panels into a PNG (bytes).
Cost: linear in the number of bars; a PNG of a few hundred bars takes ~0.1 s.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

COLORS = {
    "done": "#4c9a2a", "running": "#2a6fdb", "reserved": "#8fb3f0", "failed": "#d64545",
    "cancelled": "#9e9e9e", "planned": "#f0a030", "late": "#d64545",
}


@attrs.frozen
class Bar:
    worker: str
    task: str
    start: float
    end: float
    kind: str                # a COLORS key
    late: bool = False       # ends after its deadline (drawn with a red edge)


def plan_bars(plan: Any, deadlines: dict[str, float] | None = None) -> list[Bar]:
    """One ``planned`` bar per assignment of ``plan`` (a ``Plan``); ``late`` if past its deadline."""
    deadlines = deadlines or {}
    return [Bar(a.worker, a.task, float(a.start), float(a.end), "planned",
                late=a.task in deadlines and float(a.end) > deadlines[a.task] + 1e-9)
            for a in plan.assignments]


def ran_bars(statuses: Iterable[Any], now: float) -> list[Bar]:
    """Bars of attempts that started (``TaskStatus``): finished ones up to ``finished``,
    running ones up to ``now``."""
    out = []
    for st in statuses:
        if st.started is None or st.worker is None:
            continue
        end = st.finished if st.finished is not None else now
        late = st.deadline is not None and end > st.deadline + 1e-9
        out.append(Bar(st.worker, st.id, float(st.started), float(max(end, st.started)), st.state, late=late))
    return out


def lanes(bars: Sequence[Bar]) -> tuple[dict[int, int], dict[str, int]]:
    """Lane of each bar (index into ``bars``) so overlapping bars of one worker stack, and
    the number of lanes per worker. Greedy interval partitioning: O(n log n + n * lanes)."""
    lane_of: dict[int, int] = {}
    ends: dict[str, list[float]] = {}
    for i in sorted(range(len(bars)), key=lambda i: (bars[i].start, bars[i].end)):
        b = bars[i]
        row = ends.setdefault(b.worker, [])
        free = next((k for k, end in enumerate(row) if end <= b.start + 1e-9), None)
        if free is None:
            row.append(b.end)
            free = len(row) - 1
        else:
            row[free] = b.end
        lane_of[i] = free
    return lane_of, {w: len(row) for w, row in ends.items()}


def draw(ax: Any, bars: Sequence[Bar], *, workers: Sequence[str] = (), now: float | None = None,
         title: str = "", labels: bool = True) -> None:
    """Draw ``bars`` on ``ax``: one row per worker (``workers`` first, in that order);
    bars that overlap on one worker share its row in lanes."""
    rows = list(dict.fromkeys([*workers, *(b.worker for b in bars)]))
    index = {w: i for i, w in enumerate(rows)}
    lane_of, n_lanes = lanes(bars)
    span = max([b.end for b in bars] + [0.0]) - min([b.start for b in bars] + [0.0])
    for i, b in enumerate(bars):
        k = n_lanes.get(b.worker, 1)
        h = 0.8 / k
        y = index[b.worker] - 0.4 + h * (lane_of[i] + 0.5)
        width = max(b.end - b.start, 1e-3)
        ax.barh(y, width, left=b.start, height=h * 0.9, color=COLORS.get(b.kind, "#777777"),
                edgecolor=COLORS["late"] if b.late else "black", linewidth=1.6 if b.late else 0.4,
                hatch="//" if b.kind == "planned" else None, alpha=0.9)
        if labels and k <= 4 and width >= 0.08 * max(span, 1e-9):
            ax.text(b.start + width / 2, y, b.task[-12:], ha="center", va="center", fontsize=6, clip_on=True)
    if now is not None:
        ax.axvline(now, color="black", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("time (s, scheduler clock)")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    if not bars:
        ax.text(0.5, 0.5, "nothing yet", transform=ax.transAxes, ha="center", va="center", color="#777777")


def render_png(panels: Sequence[dict[str, Any]], *, width: float = 9.0, row_height: float = 0.32,
               dpi: int = 90) -> bytes:
    """PNG of stacked panels; each panel is ``draw``'s keyword arguments (``bars``, ``workers``,
    ``now``, ``title``). Safe to call from a thread (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = [1.0 + row_height * max(1, len({*p.get("workers", ()), *(b.worker for b in p["bars"])}))
               * (1.0 + 0.15 * max(lanes(p["bars"])[1].values(), default=1)) for p in panels]
    fig = Figure(figsize=(width, sum(heights)), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        draw(ax, **panel)
        now = panel.get("now")
        starts = [b.start for b in panel["bars"]] + ([now] if now is not None else [])
        ends = [b.end for b in panel["bars"]] + ([now] if now is not None else [])
        if starts:  # each panel its own window: what ran ends at now, a plan starts there
            lo, hi = min(starts), max(ends)
            pad = max(hi - lo, 1.0) * 0.03
            ax.set_xlim(lo - pad, hi + pad)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_plan(plan: Any, problem: Any = None, ax: Any = None, title: str | None = None) -> Any:
    """Gantt chart of ``plan`` on ``ax`` (a new pyplot figure if None); returns the axes.

    With ``problem`` every worker gets a row (idle ones too) and late tasks are outlined red."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 0.6 + 0.35 * max(1, len(problem.workers) if problem else 4)))
    deadlines = {t.id: t.deadline for t in problem.tasks if t.deadline is not None} if problem else {}
    workers = [w.id for w in problem.workers] if problem else []
    obj = "" if plan.objective is None else f", objective {float(plan.objective):.1f}"
    draw(ax, plan_bars(plan, deadlines), workers=workers,
         title=title if title is not None else f"{plan.planner} ({plan.status}{obj})")
    return ax
