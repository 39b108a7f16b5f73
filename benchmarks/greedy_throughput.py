"""Greedy placements per second at 1000 workers x 10,000 tasks (target >= 10,000/s).

Run: ``python benchmarks/greedy_throughput.py [--quick]``; prints a table and writes
``benchmarks/results/greedy_throughput.json``. Wall and process CPU time are both reported (CPU time is
the fairer figure on a shared machine). Compilation is excluded (a warm-up run
on a small problem first); problem generation is excluded.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agentic_sched import GREEDY, generate_problem, greedy, validate

OUT = Path(__file__).parent / "results" / "greedy_throughput.json"


def main(quick: bool = False) -> dict[str, dict[str, float]]:
    n_tasks, n_workers = (2000, 200) if quick else (10_000, 1000)
    greedy(generate_problem(50, 10, seed=0), "eft")  # JIT warm-up
    results: dict[str, dict[str, float]] = {}
    for family in ("mixed", "uniform"):
        problem = generate_problem(n_tasks, n_workers, seed=11, family=family)
        for policy in GREEDY:
            t0, c0 = time.perf_counter(), time.process_time()
            plan = greedy(problem, policy)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            ok = not validate(problem, plan) if quick else None
            key = f"{family}/{policy}"
            results[key] = {"tasks": n_tasks, "workers": n_workers, "seconds": dt,
                            "cpu_seconds": cpu, "placements_per_s": len(plan.assignments) / dt,
                            "placements_per_cpu_s": len(plan.assignments) / cpu, "objective": plan.objective}
            print(f"{key:<18} {n_tasks} tasks x {n_workers} workers: {dt:6.2f} s  "
                  f"{len(plan.assignments) / dt:8.0f} placements/s (wall), {len(plan.assignments) / cpu:8.0f}/s (cpu)" + ("" if ok is None else f"  valid={ok}"))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
