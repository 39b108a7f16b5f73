"""The benchmark suite (``nox -s bench``): ``python benchmarks/run_all.py [--quick]``.

Runs, with one tqdm progress bar:

1. **openb**: every other ``benchmarks/*.py`` exposing ``main(quick)`` (the openb replay
   writes ``results/openb.json``; the greedy throughput benchmark its own JSON). If no
   openb script produced ``results/openb.json``, BestFit/FGD (and the batched planner
   when available) are replayed here through ``agentic_sched.sim.openb.run_openb``.
2. **synthetic**: the simulator on the four families x offered loads x seeds for
   kube-spread, kube-binpack, slurm-backfill and the batched planner policy
   -> ``results/sim.json``;
3. **sim scale**: one run per policy at 50x10 .. 5000x1000 -> ``results/sim_scale.json``;
4. **planning time** vs problem size per planner (greedy names, and portfolio, cpsat,
   astar, lns with a short budget when ``get_planner`` offers them)
   -> ``results/planning.json``;

then writes ``benchmarks/REPORT.md`` and PNG plots under ``benchmarks/plots/``
(``_report.py``). ``--quick`` shrinks every grid so the whole run takes a few minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

SIM_POLICIES = ("kube-spread", "kube-binpack", "slurm-backfill", "planner")


def config(quick: bool) -> dict[str, Any]:
    """Every grid of the suite; the full run is what REPORT.md shows."""
    if quick:
        return {"openb_seeds": [42, 43], "families": ["deadline", "bursty", "hetero", "gpu"],
                "loads": [0.7, 1.3], "seeds": [1], "size": (200, 8), "budget_s": 0.05,
                "scale": [(50, 10), (500, 100)],
                "plan_sizes": [(50, 10), (200, 20), (500, 50)], "plan_budget_s": 0.5}
    return {"openb_seeds": list(range(42, 52)), "families": ["deadline", "bursty", "hetero", "gpu"],
            "loads": [0.7, 1.0, 1.3], "seeds": [1, 2, 3], "size": (600, 12), "budget_s": 0.05,
            "scale": [(50, 10), (500, 100), (5000, 1000)],
            "plan_sizes": [(50, 10), (200, 20), (500, 50), (1000, 100), (2000, 200), (5000, 1000)],
            "plan_budget_s": 2.0}


def _write(name: str, doc: Any) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(doc, indent=1, default=float) + "\n")


# --------------------------------------------------------------------------- jobs


def other_benchmarks() -> list[tuple[str, Callable[[bool], Any]]]:
    """``(name, main)`` of every ``benchmarks/*.py`` (not this runner) with a ``main``."""
    out = []
    for path in sorted(HERE.glob("*.py")):
        if path.name in ("run_all.py",) or path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:  # a broken script must not sink the suite
            print(f"skip {path.name}: {exc}", file=sys.stderr)
            continue
        main = getattr(mod, "main", None)
        if callable(main):
            out.append((path.stem, main))
    return out


def call_main(fn: Callable[..., Any], quick: bool) -> Any:
    """Call a script's ``main`` whatever its style: ``main(quick)``, ``main(argv)`` or ``main()``."""
    params = list(inspect.signature(fn).parameters)
    if "quick" in params:
        return fn(quick=quick)
    if params and params[0] in ("argv", "args"):
        return fn(["--quick"] if quick else [])
    raise TypeError("main() takes neither quick nor argv: run that script on its own")


def openb_fallback(seeds: list[int]) -> dict[str, Any]:
    """BestFit / FGD / batched replays via ``run_openb`` (when no script wrote openb.json)."""
    from agentic_sched.sim import openb

    data = openb.load_openb()
    doc: dict[str, Any] = {"source": "benchmarks/run_all.py (run_openb)", "seeds": seeds, "policies": {}}
    for name in ("bestfit", "fgd", "batched"):
        # bestfit/fgd as callables (no registry import needed); batched via the registry
        policy = getattr(openb, f"{name}_policy") if name != "batched" else name
        try:
            doc["policies"][name] = openb.run_openb(policy, seeds=seeds, data=data)
        except Exception as exc:  # the batched policy may not exist yet
            doc["policies"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        doc["published"] = openb.load_published()
    except Exception as exc:
        doc["published"] = {"error": str(exc)}
    return doc


def sim_job(family: str, load: float, seed: int, policy: str, size: tuple[int, int], budget_s: float,
            keep_series: bool = False) -> dict[str, Any]:
    """One simulation; ``keep_series`` adds cpu utilisation over time (<= 400 points)."""
    import numpy as np

    from agentic_sched.sim import generate_workload, make_policy, simulate

    wl = generate_workload(family, size[0], size[1], load=load, seed=seed)
    t0 = time.perf_counter()
    r = simulate(wl, make_policy(policy, budget_s=budget_s), seed=seed)
    row = {"family": family, "load": load, "seed": seed, "policy": policy, "label": r.policy,
           "tasks": size[0], "workers": size[1], "metrics": r.metrics, "timing": r.timing,
           "wall_s": time.perf_counter() - t0}
    if keep_series and len(r.series):
        ser = r.series[np.unique(np.linspace(0, len(r.series) - 1, 400).astype(int))]
        util = np.divide(ser[:, 1], ser[:, 2], out=np.zeros(len(ser)), where=ser[:, 2] > 0)
        row["series"] = {"t": ser[:, 0].round(3).tolist(), "cpu_util": util.round(4).tolist()}
    return row


def planning_job(planner: str, size: tuple[int, int], budget_s: float) -> dict[str, Any]:
    from agentic_sched import generate_problem, validate
    from agentic_sched.sim.policies import resolve_planner

    problem = generate_problem(size[0], size[1], seed=11, family="mixed")
    p = resolve_planner(planner)
    t0 = time.perf_counter()
    base = {"planner": planner, "tasks": size[0], "workers": size[1], "budget_s": budget_s}
    try:
        plan = p.plan(problem, budget_s)
    except Exception as exc:  # report, do not sink the suite
        return {**base, "wall_s": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}"}
    wall = time.perf_counter() - t0
    if plan is None:
        return {**base, "wall_s": wall, "error": "planner returned None"}
    bad = validate(problem, plan)
    gap = None
    if plan.bound is not None and plan.objective:
        gap = (plan.objective - plan.bound) / max(abs(plan.objective), 1e-9)
    return {**base, "wall_s": wall, "objective": plan.objective, "bound": plan.bound, "gap": gap,
            "status": plan.status, "valid": not bad, "unassigned": len(plan.unassigned)}


def planner_names() -> list[str]:
    from agentic_sched import planners

    names = list(planners.GREEDY)
    if hasattr(planners, "get_planner"):
        for extra in ("astar", "cpsat", "lns", "portfolio"):
            try:
                planners.get_planner(extra)
                names.append(extra)
            except (KeyError, ValueError, ImportError):
                pass
    return names


def planning_grid(cfg: dict[str, Any]) -> list[tuple[str, tuple[int, int], float]]:
    """Greedy at every size; searching planners up to 2000 tasks (portfolio everywhere)."""
    out = []
    for size in cfg["plan_sizes"]:
        for name in planner_names():
            if name in ("astar", "cpsat", "lns") and size[0] > 2000:
                continue
            if name == "astar" and size[0] > 200:
                continue
            out.append((name, size, cfg["plan_budget_s"]))
    return out


# --------------------------------------------------------------------------- main


def main(quick: bool = False, skip: tuple[str, ...] = ()) -> int:
    """Run the suite; ``skip`` names other scripts (file stems) not to run this time."""
    cfg = config(quick)
    started = time.perf_counter()
    others = other_benchmarks()
    sim_grid = [(f, ld, s, p) for f in cfg["families"] for ld in cfg["loads"] for s in cfg["seeds"]
                for p in SIM_POLICIES]
    scale_grid = [(size, p) for size in cfg["scale"] for p in SIM_POLICIES]
    plan_grid = planning_grid(cfg)
    total = len(others) + 1 + len(sim_grid) + len(scale_grid) + len(plan_grid) + 1
    bar = tqdm(total=total, desc="bench", unit="job", file=sys.stderr)

    for name, fn in others:
        bar.set_postfix_str(name)
        if name in skip:
            bar.update()
            continue
        try:
            call_main(fn, quick)
        except BaseException as exc:  # one failing script must not sink the suite
            if isinstance(exc, KeyboardInterrupt):
                raise
            print(f"\n{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        bar.update()
    bar.set_postfix_str("openb")
    if not (RESULTS / "openb.json").exists() or not any(n.startswith("openb") for n, _ in others):
        try:
            _write("openb.json", openb_fallback(cfg["openb_seeds"]))
        except Exception as exc:
            print(f"openb skipped: {exc}", file=sys.stderr)
    bar.update()

    sim_rows = []
    for f, ld, s, p in sim_grid:
        bar.set_postfix_str(f"sim {f} load {ld} {p}")
        keep = (f, ld, s) == (cfg["families"][0], max(cfg["loads"]), cfg["seeds"][0])
        sim_rows.append(sim_job(f, ld, s, p, cfg["size"], cfg["budget_s"], keep_series=keep))
        bar.update()
    _write("sim.json", {"config": {k: cfg[k] for k in ("families", "loads", "seeds", "size", "budget_s")},
                        "rows": sim_rows})

    scale_rows = []
    for size, p in scale_grid:
        bar.set_postfix_str(f"scale {size[0]}x{size[1]} {p}")
        scale_rows.append(sim_job("deadline", 1.0, 1, p, size, cfg["budget_s"]))
        bar.update()
    _write("sim_scale.json", {"rows": scale_rows})

    plan_rows = []
    for name, size, budget in plan_grid:
        bar.set_postfix_str(f"plan {name} {size[0]}x{size[1]}")
        plan_rows.append(planning_job(name, size, budget))
        bar.update()
    _write("planning.json", {"rows": plan_rows})

    bar.set_postfix_str("report")
    from _report import write_report

    _write("meta.json", {"quick": quick, "elapsed_s": time.perf_counter() - started, "skipped": list(skip)})
    write_report(quick=quick, elapsed_s=time.perf_counter() - started)
    bar.update()
    bar.close()
    print(f"wrote {HERE / 'REPORT.md'} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grids: a few minutes")
    ap.add_argument("--skip", action="append", default=[], metavar="SCRIPT",
                    help="do not run benchmarks/SCRIPT.py this time (keep its last results); repeatable")
    ns = ap.parse_args()
    sys.exit(main(ns.quick, tuple(ns.skip)))

