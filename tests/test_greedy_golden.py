"""Greedy plans pinned by digest: speed-ups of the kernels must not change any plan.

The digests were computed with the code before the fused ``greedy_pick`` kernel
(per-task ``earliest_pruned`` + ``choose_worker`` calls); a change in any assignment
(worker, start, end, GPU devices) or unassigned reason of any policy fails here.
Regenerate (only for a deliberate change of policy) with
``python tests/test_greedy_golden.py``.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from agentic_sched import GREEDY, Plan, Problem, example_problem, generate_problem, greedy

CASES = {
    "tiny": lambda: example_problem("tiny"),
    "mixed": lambda: example_problem("mixed"),
    "deadline": lambda: example_problem("deadline"),
    "gpu": lambda: example_problem("gpu"),
    **{f"{family}-600x60": (lambda family=family: generate_problem(600, 60, seed=3, family=family))
       for family in ("mixed", "deadline", "gpu", "uniform")},
}

GOLDEN: dict[str, str] = {
    "deadline-600x60/balanced": "62bd3c73b4884a35",
    "deadline-600x60/eft": "e5e5b34284d1fbe3",
    "deadline-600x60/pack": "22ac48788a41cab1",
    "deadline-600x60/spread": "26b62fd0268be995",
    "deadline/balanced": "0b1c427a4b0fc4d4",
    "deadline/eft": "0d5b215db29c2c77",
    "deadline/pack": "4f441fec987eb6b4",
    "deadline/spread": "c362b27be4ef1e86",
    "gpu-600x60/balanced": "d15ed72159f993c9",
    "gpu-600x60/eft": "0617645787b740d4",
    "gpu-600x60/pack": "4ce90cef7ff289a7",
    "gpu-600x60/spread": "616bfdd9c7083d29",
    "gpu/balanced": "bb718a53ec5cd17e",
    "gpu/eft": "171004d943c6bc19",
    "gpu/pack": "87201484589e4bfe",
    "gpu/spread": "6888e7247d4faddb",
    "mixed-600x60/balanced": "8bdd68ef8c988609",
    "mixed-600x60/eft": "94eb06eb94b83d6b",
    "mixed-600x60/pack": "b1c7fd0427ef9c2f",
    "mixed-600x60/spread": "ca32fdf7d722fd63",
    "mixed/balanced": "c89a9da5babaf3d1",
    "mixed/eft": "696f9dadc6c9c4bd",
    "mixed/pack": "9133fa4555c47bf3",
    "mixed/spread": "4176f46172deca82",
    "tiny/balanced": "c00797fead935ed8",
    "tiny/eft": "c00797fead935ed8",
    "tiny/pack": "c9b721a9e06679e8",
    "tiny/spread": "c00797fead935ed8",
    "uniform-600x60/balanced": "b5aef8666f1d8b68",
    "uniform-600x60/eft": "c6e0ab286e00dace",
    "uniform-600x60/pack": "263a8dcc4541f190",
    "uniform-600x60/spread": "2758ddc80fc8d236",
}


def digest(plan: Plan) -> str:
    rows = sorted((a.task, a.worker, round(a.start, 9), round(a.end, 9), list(a.devices)) for a in plan.assignments)
    unassigned = sorted((u.task, u.reason) for u in plan.unassigned)
    return hashlib.sha256(json.dumps([rows, unassigned]).encode()).hexdigest()[:16]


def digests(problem: Problem) -> dict[str, str]:
    return {policy: digest(greedy(problem, policy)) for policy in GREEDY}


@pytest.mark.parametrize("case", sorted(CASES))
def test_greedy_plans_match_golden_digests(case: str) -> None:
    got = digests(CASES[case]())
    want = {policy: GOLDEN[f"{case}/{policy}"] for policy in GREEDY}
    assert got == want


if __name__ == "__main__":
    print(json.dumps({f"{c}/{p}": d for c in sorted(CASES) for p, d in digests(CASES[c]()).items()},
                     indent=4, sort_keys=True))
