"""openb replay (FGD paper protocol): BestFit, FGD and the batched planners over 10 seeds.

    python benchmarks/openb_replay.py [--quick] [--batch 64] [--orders 8] [--planner-batch 32] [--planner-orders 8]

Prints published vs ours at 90/100/110/130 % arrived load and writes
``benchmarks/results/openb.json`` (``{"seeds", "loads", "published", "policies":
{name: run_openb result + seconds_per_seed}}``). The batched planners (best-of-orders
with FGD, and the joint planner of ``agentic_sched.sim.openb_batch``: FGD + cpu-stranded
milli + stream fragmentation; ``--planner-batch``/``--planner-orders``) are each measured
twice from the same placements: credited at each pod's arrival, and only once its whole batch has
arrived (``credit_at_batch_end``). ``--quick`` uses seeds 42 and 43.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agentic_sched.sim import openb as O
from agentic_sched.sim import openb_batch as OB

RESULTS = Path(__file__).resolve().parent / "results"
PAPER = {"bestfit": "BestFit", "fgd": "FGD"}


def run(seeds: list[int], batch: int = 64, orders: int = 8, p_batch: int = 32, p_orders: int = 8) -> dict:
    data = O.load_openb()
    loads = list(O.DEFAULT_LOADS)
    def twice(policy, k):
        """(credited at arrival, credited at batch end) from one run per seed."""
        outcomes: dict[int, O.Outcome] = {}

        def arrival(d, wl):
            outcomes[wl.seed] = policy(d, wl)
            return outcomes[wl.seed]

        def batch_end(d, wl):
            return O.credit_at_batch_end(outcomes[wl.seed], k)

        return arrival, batch_end

    batched_arrival, batched_batch_end = twice(O.batched_policy(batch=batch, orders=orders), batch)
    planner_arrival, planner_batch_end = twice(OB.planner_policy(batch=p_batch, orders=p_orders), p_batch)
    policies = {"bestfit": O.bestfit_policy, "fgd": O.fgd_policy,
                f"batched K={batch} R={orders}": batched_arrival,
                f"batched K={batch} R={orders} (batch-end credit)": batched_batch_end,
                f"planner K={p_batch} R={p_orders}": planner_arrival,
                f"planner K={p_batch} R={p_orders} (batch-end credit)": planner_batch_end}
    wl = O.build_workload(data, seeds[0])
    for warm in (O.bestfit_policy, O.fgd_policy, O.batched_policy(batch=4, orders=2),
                 OB.planner_policy(batch=4, orders=2)):  # compile first
        warm(data, O.Workload(wl.seed, wl.pods[:50], wl.node_rank))
    doc = {"seeds": seeds, "loads": loads, "published": O.load_published(),
           "batched": {"batch": batch, "orders": orders, "base": "fgd",
                       "protocol": O.batched_policy.__doc__},
           "planner": {"batch": p_batch, "orders": p_orders, "mode": "hybrid", "multi_weight": 8.0, "select": "fgd",
                       "cpu_weight": OB.CPU_WEIGHT,
                       "protocol": OB.planner_policy.__doc__}, "policies": {}}
    for name, fn in policies.items():
        t0 = time.perf_counter()
        res = O.run_openb(fn, seeds=seeds, loads=loads, data=data)
        res["policy"] = name
        res["seconds_per_seed"] = (time.perf_counter() - t0) / len(seeds)
        doc["policies"][name] = res
    return doc


def table(doc: dict) -> str:
    loads = doc["loads"]
    head = f"{'policy':44s}" + "".join(f"{str(x) + ' %':>16s}" for x in loads) + f"{'s/seed':>9s}"
    lines = [head, "-" * len(head)]
    for label in PAPER.values():
        pub = doc["published"].get(label, {})
        lines.append(f"{label + ' (published)':44s}" + "".join(f"{pub.get(x, float('nan')):16.2f}" for x in loads))
    for name, res in doc["policies"].items():
        cells = "".join(f"{res['mean'][x]:9.2f} ± {res['std'][x]:4.2f}" for x in loads)
        lines.append(f"{name:44s}{cells}{res['seconds_per_seed']:9.2f}")
    return "\n".join(lines)


def main(quick: bool = False, batch: int = 64, orders: int = 8, p_batch: int = 32, p_orders: int = 8) -> dict:
    doc = run([42, 43] if quick else list(O.DEFAULT_SEEDS), batch, orders, p_batch, p_orders)
    print(table(doc))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "openb.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--orders", type=int, default=8)
    ap.add_argument("--planner-batch", type=int, default=32)
    ap.add_argument("--planner-orders", type=int, default=8)
    a = ap.parse_args()
    main(a.quick, a.batch, a.orders, a.planner_batch, a.planner_orders)
