"""Render ``benchmarks/REPORT.md`` and ``benchmarks/plots/*.png`` from ``results/*.json``.

``write_report(quick, elapsed_s)`` reads whatever result files exist (a missing one
gives a note instead of a section) and never runs a benchmark itself.
"""

from __future__ import annotations

import json
import math
import platform
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS, PLOTS = HERE / "results", HERE / "plots"
POLICY_ORDER = ("kube-spread", "kube-binpack", "slurm-backfill", "planner")
PAPER_100 = {"BestFit": 92.86, "FGD": 95.23}


def _load(name: str) -> Any:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _ms(values: list[float]) -> str:
    v = [x for x in values if x == x]
    if not v:
        return "-"
    return f"{np.mean(v):.2f} ± {np.std(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"


# --------------------------------------------------------------------------- openb


def _series(entry: Any) -> tuple[dict[float, float], dict[float, float], dict[float, list[float]]]:
    """(mean, std, per-load seed values) from a ``run_openb``-shaped mapping."""
    if not isinstance(entry, dict) or "mean" not in entry:
        return {}, {}, {}
    mean = {float(k): float(v) for k, v in entry["mean"].items()}
    std = {float(k): float(v) for k, v in entry.get("std", {}).items()}
    per: dict[float, list[float]] = defaultdict(list)
    for seed_vals in entry.get("per_seed", {}).values():
        for k, v in seed_vals.items():
            per[float(k)].append(float(v))
    return mean, std, per


def _openb_policies(doc: dict[str, Any]) -> dict[str, Any]:
    """Policy name -> run_openb-shaped result, wherever the document keeps them."""
    for key in ("policies", "results", "runs"):
        if isinstance(doc.get(key), dict):
            return doc[key]
    return {k: v for k, v in doc.items() if isinstance(v, dict) and "mean" in v}


def openb_section(lines: list[str]) -> None:
    doc = _load("openb.json")
    lines += ["## openb (Alibaba GPU trace, FGD paper protocol)", ""]
    if doc is None:
        lines += ["_No `results/openb.json`: the openb replay did not run._", ""]
        return
    pols = _openb_policies(doc)
    published = doc.get("published") if isinstance(doc.get("published"), dict) else {}
    seeds = doc.get("seeds", "42..51")
    lines += ["GPU allocation ratio (%) at arrived GPU demand = 100 % of cluster GPU capacity, "
              f"default pod list; our replays are the mean ± std over seeds {seeds} "
              "(protocol: `benchmarks/data/openb/PROVENANCE.md`).", "",
              "| policy | published (paper, mean of 10 seeds) | ours (mean ± std) |", "|---|---|---|"]
    names = {"bestfit": "BestFit", "fgd": "FGD"}
    for key, entry in pols.items():
        mean, std, per = _series(entry)
        label = names.get(key.lower(), key)
        pub = published.get(label, {}).get("100") if isinstance(published.get(label), dict) else None
        pub = PAPER_100.get(label) if pub is None else pub
        if not mean:
            err = entry.get("error", "no result") if isinstance(entry, dict) else "no result"
            lines.append(f"| {label} | {pub if pub is not None else '-'} | not run: {err} |")
            continue
        ours = _ms(per[100.0]) if per.get(100.0) else f"{mean.get(100.0, math.nan):.2f} ± {std.get(100.0, 0):.2f}"
        lines.append(f"| {label} | {pub if pub is not None else '-'} | {ours} |")
    lines.append("")
    _plot_openb(pols, published)
    lines += ["![allocation ratio vs arrived load](plots/openb_alloc.png)", ""]


def _plot_openb(pols: dict[str, Any], published: dict[str, Any]) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, entry in pols.items():
        mean, std, _ = _series(entry)
        if not mean:
            continue
        xs = sorted(mean)
        ax.errorbar(xs, [mean[x] for x in xs], yerr=[std.get(x, 0) for x in xs], marker="o", capsize=3,
                    label=f"{key} (ours)")
    for label, marker in (("BestFit", "s"), ("FGD", "^")):
        vals = published.get(label) if isinstance(published.get(label), dict) else {"100": PAPER_100[label]}
        xs = sorted(float(k) for k in vals)
        ax.scatter(xs, [vals[str(int(x))] if str(int(x)) in vals else vals[x] for x in xs], marker=marker,
                   s=70, facecolors="none", edgecolors="k", label=f"{label} (paper)")
    ax.set_xlabel("arrived GPU demand (% of cluster GPU)")
    ax.set_ylabel("GPU allocation ratio (%)")
    ax.set_title("openb default workload")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "openb_alloc.png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- synthetic


def _aggregate(rows: list[dict[str, Any]]) -> dict[tuple[str, float, str], dict[str, list[float]]]:
    agg: dict[tuple[str, float, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cell = agg[(r["family"], float(r["load"]), r["policy"])]
        for k, v in r["metrics"].items():
            cell[k].append(float(v))
        cell["planner_s"].append(float(r["timing"].get("planner_s", 0.0)))
        cell["label"] = r.get("label", r["policy"])  # type: ignore[assignment]
    return agg


def synthetic_section(lines: list[str]) -> None:
    doc = _load("sim.json")
    lines += ["## Synthetic workloads: k8s-like vs Slurm backfill vs our batched planner", ""]
    if doc is None:
        lines += ["_No `results/sim.json`._", ""]
        return
    cfg = doc["config"]
    agg = _aggregate(doc["rows"])
    labels = {p: agg[k]["label"] for k in agg for p in [k[2]]}
    lines += [f"Simulator (`agentic_sched.sim`), {cfg['size'][0]} tasks x {cfg['size'][1]} workers per run, "
              f"offered load {', '.join(map(str, cfg['loads']))}, seeds {cfg['seeds']} (mean over seeds), "
              f"runtime noise 0.2 (actual = estimate x lognormal), planner budget {cfg['budget_s']} s per batch. "
              f"Planner policy = {labels.get('planner', 'planner')}. Misses = tasks finishing after their "
              "deadline; lateness = Σ priority x late seconds; waits in seconds.", ""]
    lines += ["**At the highest load** (mean over seeds; best baseline = the best of the three "
              "others on that metric):", "",
              "| family | planner misses | best baseline misses | planner lateness | best baseline lateness "
              "| planner p95 wait | best baseline p95 wait | planner makespan | best baseline makespan |",
              "|---|---|---|---|---|---|---|---|---|"]
    top = float(max(cfg["loads"]))
    for fam in cfg["families"]:
        cells = []
        for key in ("misses", "lateness", "p95_wait", "makespan"):
            ours = agg.get((fam, top, "planner"), {}).get(key)
            base = [(np.mean(agg[(fam, top, p)][key]), p) for p in POLICY_ORDER[:3] if (fam, top, p) in agg]
            if not ours or not base:
                cells += ["-", "-"]
                continue
            b, who = min(base)
            cells += [f"{np.mean(ours):.1f}", f"{b:.1f} ({who})"]
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    lines.append("")
    for fam in cfg["families"]:
        lines += [f"### {fam}", "", "| load | policy | misses | lateness | makespan | mean wait | p95 wait | cpu util | GPU alloc |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for load in cfg["loads"]:
            for pol in POLICY_ORDER:
                c = agg.get((fam, float(load), pol))
                if not c:
                    continue

                def m(k: str, fmt: str = "{:.1f}", c: dict[str, list[float]] = c) -> str:
                    return fmt.format(np.mean(c[k])) if c.get(k) else "-"

                lines.append(f"| {load} | {c['label']} | {m('misses')} | {m('lateness', '{:.0f}')} | {m('makespan', '{:.0f}')} "
                             f"| {m('mean_wait')} | {m('p95_wait')} | {m('cpu_util', '{:.2f}')} | {m('gpu_alloc_ratio', '{:.2f}')} |")
        lines.append("")
    for key, title in (("misses", "deadline misses"), ("makespan", "makespan (s)"), ("p95_wait", "p95 wait (s)"),
                       ("lateness", "weighted lateness")):
        _plot_vs_load(agg, cfg, key, title)
        lines += [f"![{title} vs load](plots/sim_{key}.png)", ""]
    kept = [r for r in doc["rows"] if "series" in r]
    if kept:
        _plot_util(kept)
        r0 = kept[0]
        lines += [f"Cluster cpu utilisation over time ({r0['family']}, load {r0['load']}, seed {r0['seed']}):", "",
                  "![cpu utilisation over time](plots/sim_util.png)", ""]


def _plot_util(rows: list[dict[str, Any]]) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for r in rows:
        ax.plot(r["series"]["t"], r["series"]["cpu_util"], drawstyle="steps-post", lw=1, label=r["label"])
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("cpu allocated / capacity")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOTS / "sim_util.png", dpi=100)
    plt.close(fig)


def _plot_vs_load(agg: dict, cfg: dict[str, Any], key: str, title: str) -> None:
    fams = cfg["families"]
    fig, axes = plt.subplots(1, len(fams), figsize=(3.6 * len(fams), 3.4), squeeze=False)
    for ax, fam in zip(axes[0], fams, strict=True):
        for pol in POLICY_ORDER:
            xs = [ld for ld in cfg["loads"] if (fam, float(ld), pol) in agg]
            if not xs:
                continue
            ys = [np.mean(agg[(fam, float(ld), pol)][key]) for ld in xs]
            ax.plot(xs, ys, marker="o", label=pol)
        ax.set_title(fam)
        ax.set_xlabel("offered load")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(title)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{title} vs offered load")
    fig.tight_layout()
    fig.savefig(PLOTS / f"sim_{key}.png", dpi=100)
    plt.close(fig)


def scale_section(lines: list[str]) -> None:
    doc = _load("sim_scale.json")
    if doc is None:
        return
    lines += ["## Simulator at scale (deadline family, load 1.0, seed 1)", "",
              "| tasks x workers | policy | misses | makespan | p95 wait | planner calls | planner s | sim wall s |",
              "|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        m = r["metrics"]
        lines.append(f"| {r['tasks']}x{r['workers']} | {r['label']} | {m['misses']:.0f} | {m['makespan']:.0f} | "
                     f"{m['p95_wait']:.1f} | {r['timing'].get('planner_calls', 0):.0f} | "
                     f"{r['timing'].get('planner_s', 0):.1f} | {r['wall_s']:.1f} |")
    lines.append("")


# --------------------------------------------------------------------------- planning


def planning_section(lines: list[str]) -> None:
    doc = _load("planning.json")
    lines += ["## Planning time vs problem size", ""]
    if doc is None:
        lines += ["_No `results/planning.json`._", ""]
        return
    rows = doc["rows"]
    lines += ["`generate_problem(n, w, family='mixed', seed=11)`; one call per planner and size; "
              "searching planners get the budget shown (they may stop early when they prove optimality).", "",
              "| tasks x workers | planner | budget s | wall s | objective | gap to bound | status | valid |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        budget = r["budget_s"] if r["planner"] in ("astar", "cpsat", "lns", "portfolio") else "-"
        if "error" in r:
            lines.append(f"| {r['tasks']}x{r['workers']} | {r['planner']} | {budget} | {r['wall_s']:.3f} | "
                         f"error: {r['error'][:80]} | - | - | - |")
            continue
        gap = "-" if r["gap"] is None else f"{100 * r['gap']:.1f} %"
        lines.append(f"| {r['tasks']}x{r['workers']} | {r['planner']} | {budget} | {r['wall_s']:.3f} | "
                     f"{r['objective']:.1f} | {gap} | {r['status']} | {r['valid']} |")
    lines += ["", "![planning time vs size](plots/planning_time.png)", ""]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    by: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if "error" not in r:
            by[r["planner"]].append((r["tasks"], r["wall_s"]))
    for name, pts in by.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks (workers = tasks / 10, 5000 tasks: 1000 workers)")
    ax.set_ylabel("planning wall time (s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "planning_time.png", dpi=110)
    plt.close(fig)


def others_section(lines: list[str]) -> None:
    lines += ["## Planners head to head", "",
              "Greedy vs A* vs CP-SAT vs portfolio (objective, misses, makespan, bound/gap, time) on tiny, "
              "50x10, 500x50 and 500x100 problems, and repair timing: [PLANNERS.md](PLANNERS.md) "
              "(`benchmarks/planners.py`).", ""]
    doc = _load("greedy_throughput.json")
    if doc is not None:
        lines += ["## Greedy throughput (`benchmarks/greedy_throughput.py`)", "",
                  "Target: every greedy policy places >= 10,000 tasks/s at 1000 workers x 10,000 tasks. One "
                  "run on the shared 2-core machine (expect +-10-30 % run to run); each task is one fused "
                  "numba call (`kernels.timeline.greedy_pick`: pruned earliest starts, then the policy's "
                  "choice among the workers that can win).", "",
                  "| family/policy | tasks x workers | wall s | placements/s (wall) | placements/s (cpu) |",
                  "|---|---|---|---|---|"]
        for k, v in doc.items():
            cpu = v.get("placements_per_cpu_s")
            lines.append(f"| {k} | {v['tasks']}x{v['workers']} | {v['seconds']:.2f} | {v['placements_per_s']:.0f} "
                         f"| {'-' if cpu is None else f'{cpu:.0f}'} |")
        lines.append("")
    rows = _load("scheduler_overhead.json")
    if rows:
        lines += ["## Scheduler overhead (`benchmarks/scheduler_overhead.py`)", "",
                  "End to end on the local executor: submit, plan, reserve, agent, journal, commit.", "",
                  "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + " |"
                  for r in rows]
        lines.append("")


def write_report(*, quick: bool | None = None, elapsed_s: float | None = None) -> Path:
    """Render REPORT.md and the plots; ``quick``/``elapsed_s`` default to ``results/meta.json``."""
    meta = _load("meta.json") or {}
    quick = bool(meta.get("quick", False)) if quick is None else quick
    elapsed_s = float(meta.get("elapsed_s", 0.0)) if elapsed_s is None else elapsed_s
    PLOTS.mkdir(parents=True, exist_ok=True)
    lines = ["# agentic-sched benchmark report", "",
             f"Generated by `python benchmarks/run_all.py{' --quick' if quick else ''}` "
             f"({'QUICK mode: reduced grids, not the committed numbers' if quick else 'full run'}; "
             f"{elapsed_s / 60:.1f} min on {platform.machine()} with Python {platform.python_version()}, "
             "a shared 2-core machine). Regenerate with `nox -s bench` (= `python benchmarks/run_all.py`), "
             "or `--quick` for a few-minute smoke run. Raw results: `benchmarks/results/*.json`.", ""]
    if meta.get("skipped"):
        lines += [f"Scripts not re-run by this invocation (`--skip`; their JSON is from their previous full "
                  f"run): {', '.join(meta['skipped'])}.", ""]
    openb_section(lines)
    synthetic_section(lines)
    scale_section(lines)
    planning_section(lines)
    others_section(lines)
    out = HERE / "REPORT.md"
    out.write_text("\n".join(lines) + "\n")
    return out
