"""``agentic-sched simulate``: run the discrete-event simulator and print a metrics table.

``add_simulate_parser(subparsers)`` registers the sub-command (``func=run_simulate``);
``run_simulate(args) -> int`` runs it. Bad input raises ValueError with one line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .engine import SimResult, simulate
from .metrics import format_table
from .policies import POLICIES, make_policy
from .workloads import FAMILIES, SimWorkload, generate_workload, load_trace

TABLE_KEYS = ("policy", "finished", "misses", "lateness", "makespan", "mean_wait", "p95_wait",
              "cpu_util", "gpu_alloc_ratio", "gpu_frag", "restarts", "planner_s")


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "simulate", help="simulate a workload under one or all scheduling policies",
        description="Discrete-event cluster simulation (deterministic for a seed).")
    p.add_argument("--workload", default="deadline",
                   help=f"a family ({', '.join(FAMILIES)}) or a trace/problem JSON path (default deadline)")
    p.add_argument("--tasks", type=int, default=200, help="tasks of a generated family (default 200)")
    p.add_argument("--workers", type=int, default=20, help="workers of a generated family (default 20)")
    p.add_argument("--load", type=float, default=0.9, help="offered load of a generated family (default 0.9)")
    p.add_argument("--noise", type=float, default=None,
                   help="actual = estimate x lognormal(0, NOISE) (default: the workload's own, 0.2 for families)")
    p.add_argument("--policy", default="all", help=f"{'|'.join(POLICIES)} or all (default all)")
    p.add_argument("--planner", default=None, help="planner of the planner policy (default portfolio)")
    p.add_argument("--batch-k", type=int, default=8, help="planner policy: plan after K new tasks (default 8)")
    p.add_argument("--batch-t", type=float, default=10.0, help="... or after T seconds (default 10)")
    p.add_argument("--budget", type=float, default=0.2, help="planner budget per batch, s (default 0.2)")
    p.add_argument("--mtbf", type=float, default=None, help="mean time between worker failures (default none)")
    p.add_argument("--mttr", type=float, default=60.0, help="mean time to repair (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT", default=None, help="write the metrics as JSON here")
    p.set_defaults(func=run_simulate)
    return p


def _workload(args: argparse.Namespace) -> SimWorkload:
    if args.workload in FAMILIES:
        noise = 0.2 if args.noise is None else args.noise
        return generate_workload(args.workload, args.tasks, args.workers, load=args.load,
                                 seed=args.seed, noise=noise)
    if not Path(args.workload).exists():
        raise ValueError(f"--workload {args.workload!r} is neither a family ({', '.join(FAMILIES)}) nor a file")
    return load_trace(args.workload)


def run_simulate(args: argparse.Namespace) -> int:
    """Run the sub-command; prints one table row per policy. Returns 0."""
    if args.policy != "all" and args.policy not in POLICIES:
        raise ValueError(f"unknown policy {args.policy!r} (choose from {', '.join(POLICIES)}, all)")
    wl = _workload(args)
    names = POLICIES if args.policy == "all" else (args.policy,)
    results: list[SimResult] = []
    for name in names:
        policy = make_policy(name, planner=args.planner, batch_k=args.batch_k, batch_t=args.batch_t,
                             budget_s=args.budget)
        noise = args.noise if args.workload not in FAMILIES else None
        results.append(simulate(wl, policy, seed=args.seed, noise=noise, mtbf=args.mtbf, mttr=args.mttr))
    rows = [{"policy": r.policy, **r.metrics, "planner_s": r.timing["planner_s"]} for r in results]
    print(f"workload {wl.name}: {len(wl.problem.tasks)} tasks, {len(wl.problem.workers)} workers, seed {args.seed}")
    print(format_table(rows, TABLE_KEYS))
    if args.json:
        doc = {"workload": wl.name, "seed": args.seed, "results": [
            {"policy": r.policy, "metrics": r.metrics, "timing": r.timing} for r in results]}
        try:
            Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        except OSError as exc:
            raise ValueError(f"--json {args.json}: cannot write: {exc.strerror or exc}") from None
    return 0
