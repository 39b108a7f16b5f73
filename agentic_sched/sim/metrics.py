"""Metrics of one simulation run (pure functions of the task records and the series).

- ``makespan``: last finish - the problem's ``now`` (0 if nothing finished);
- ``cpu_util``: time-average of allocated cpu / cpu of up workers, over the run;
- ``gpu_alloc_ratio``: time-average of allocated GPU milli / GPU milli of up workers;
- ``gpu_frag``: time-average of free milli on *partially* used GPUs / GPU milli of up
  workers (capacity a whole-GPU task cannot use: the fragmentation FGD fights);
- ``misses``: tasks with a deadline that finished after it or never finished;
- ``lateness``: sum of priority x max(0, end - deadline) over finished tasks (FORMATS.md);
- ``mean_wait`` / ``p95_wait``: first start - arrival over started tasks;
- ``finished``, ``rejected`` (no worker could ever host it), ``unfinished`` (still pending
  or running when the run stopped), ``restarts`` (runs lost to worker failures).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METRIC_KEYS = ("tasks", "finished", "rejected", "unfinished", "makespan", "misses", "lateness",
               "mean_wait", "p95_wait", "cpu_util", "gpu_alloc_ratio", "gpu_frag", "restarts")


def time_average(series: np.ndarray, num: int, den: int) -> float:
    """∫ series[:, num] dt / ∫ series[:, den] dt with the series piecewise constant
    from each row's time to the next row's (0 if the denominator integrates to 0)."""
    if len(series) < 2:
        return 0.0
    dt = np.diff(series[:, 0])
    d = float((series[:-1, den] * dt).sum())
    return float((series[:-1, num] * dt).sum()) / d if d > 0 else 0.0


def compute_metrics(tasks: Sequence[Any], series: np.ndarray, t0: float = 0.0) -> dict[str, float]:
    """The metrics above from engine ``SimTask`` records and the utilisation series."""
    done = [st for st in tasks if st.state == "done"]
    started = [st for st in tasks if st.first_start == st.first_start]  # not NaN
    waits = np.array([st.first_start - st.arrival for st in started]) if started else np.zeros(0)
    misses = lateness = 0.0
    for st in tasks:
        dl = st.task.deadline
        if dl is None or st.state == "rejected":
            continue
        if st.state != "done":
            misses += 1
        elif st.end > dl + 1e-9:
            misses += 1
            lateness += st.task.priority * (st.end - dl)
    return {
        "tasks": float(len(tasks)),
        "finished": float(len(done)),
        "rejected": float(sum(st.state == "rejected" for st in tasks)),
        "unfinished": float(sum(st.state in ("pending", "running", "future") for st in tasks)),
        "makespan": float(max((st.end for st in done), default=t0) - t0),
        "misses": misses,
        "lateness": float(lateness),
        "mean_wait": float(waits.mean()) if len(waits) else 0.0,
        "p95_wait": float(np.percentile(waits, 95)) if len(waits) else 0.0,
        "cpu_util": time_average(series, 1, 2),
        "gpu_alloc_ratio": time_average(series, 3, 4),
        "gpu_frag": time_average(series, 5, 4),
        "restarts": float(sum(st.restarts for st in tasks)),
    }


def format_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """A plain text table (one row per mapping) for the CLI."""
    cells = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.0f}" if v.is_integer() and abs(v) < 1e9 else f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"
    return str(v)
