"""``agentic-sched`` command line: plan, validate, example (and simulate).

Exit codes: 0 success, 1 an invalid plan (``validate``), 2 bad input (one line on
stderr naming the problem, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._errors import SchedError
from .examples import EXAMPLES, example_problem
from .formats import cost, validate
from .model import Plan, Problem


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SchedError(f"cannot read: {exc.strerror or exc}") from None


def _write(path: str | None, text: str) -> None:
    if path is None or path == "-":
        sys.stdout.write(text + "\n")
        return
    try:
        Path(path).write_text(text + "\n")
    except OSError as exc:
        raise SchedError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _load_problem(path: str) -> Problem:
    try:
        return Problem.from_json(_read(path))
    except SchedError as exc:
        raise SchedError(f"{path}: {exc}") from None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def summary(problem: Problem, plan: Plan) -> str:
    """A readable table of the plan: header line, per-worker rows, unassigned reasons."""
    metrics = cost(problem, plan)
    gap = None
    if plan.bound is not None and plan.objective:
        gap = (plan.objective - plan.bound) / max(abs(plan.objective), 1e-9)
    lines = [
        f"planner {plan.planner}  status {plan.status}  objective {_fmt(plan.objective)}  "
        f"bound {_fmt(plan.bound)}  gap {'-' if gap is None else f'{100 * gap:.2f}%'}  "
        f"elapsed {plan.elapsed_s:.3f}s",
        "  ".join(f"{k} {_fmt(v)}" for k, v in metrics.items() if k != "objective"),
        f"{'worker':<16}{'tasks':>6}{'first start':>13}{'last end':>11}",
    ]
    per: dict[str, list[float]] = {}
    for a in plan.assignments:
        row = per.setdefault(a.worker, [0, a.start, a.end])
        row[0] += 1
        row[1] = min(row[1], a.start)
        row[2] = max(row[2], a.end)
    for w in problem.workers:
        if w.id in per:
            n, s, e = per[w.id]
            lines.append(f"{w.id:<16}{int(n):>6}{s:>13.2f}{e:>11.2f}")
    lines.append(f"{len(plan.assignments)} assigned, {len(plan.unassigned)} unassigned")
    lines.extend(f"  unassigned {u.task}: {u.reason}" for u in plan.unassigned[:20])
    if len(plan.unassigned) > 20:
        lines.append(f"  ... and {len(plan.unassigned) - 20} more")
    if plan.detail:
        lines.append(f"note: {plan.detail}")
    return "\n".join(lines)


def _cmd_plan(args: argparse.Namespace) -> int:
    from .planners import get_planner

    planner = get_planner(args.planner)  # unknown names fail before the file is read
    problem = _load_problem(args.problem)
    plan = planner.plan(problem, args.budget)
    _write(args.output, plan.to_json(indent=2))
    print(summary(problem, plan), file=sys.stderr if args.output in (None, "-") else sys.stdout)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    problem = _load_problem(args.problem)
    try:
        plan = Plan.from_json(_read(args.plan))
    except SchedError as exc:
        raise SchedError(f"{args.plan}: {exc}") from None
    violations = validate(problem, plan)
    for v in violations:
        print(f"violation {v}")
    for k, amount in cost(problem, plan).items():
        print(f"{k:<12} {amount:.6g}")
    print("VALID" if not violations else f"INVALID: {len(violations)} violation(s)")
    return 0 if not violations else 1


def _cmd_example(args: argparse.Namespace) -> int:
    _write(args.output, example_problem(args.name).to_json(indent=2))
    return 0


def _cmd_vm_guest(args: argparse.Namespace) -> int:
    from .agents import vm_guest

    return vm_guest.main(["--cache", args.cache] if args.cache else [])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentic-sched", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="plan a problem file and write the plan JSON")
    p.add_argument("problem", help="problem JSON (FORMATS.md), or - for stdin")
    p.add_argument("--planner", default="portfolio", help="portfolio (default), auto, astar, cpsat, or a greedy name")
    p.add_argument("--budget", type=float, default=2.0, help="wall-clock budget in seconds (default 2)")
    p.add_argument("-o", "--output", help="write the plan JSON here (default: stdout)")
    p.set_defaults(func=_cmd_plan)
    v = sub.add_parser("validate", help="check a plan against a problem; non-zero exit when invalid")
    v.add_argument("problem")
    v.add_argument("plan")
    v.set_defaults(func=_cmd_validate)
    e = sub.add_parser("example", help="write a sample problem")
    e.add_argument("name", choices=sorted(EXAMPLES))
    e.add_argument("-o", "--output")
    e.set_defaults(func=_cmd_example)
    g = sub.add_parser("vm-guest", help="build (or find cached) the kernel + initrd the vm runtime boots")
    g.add_argument("--cache", help="cache directory (default $AGENTIC_SCHED_VM_CACHE or /var/tmp/agentic-sched/vm)")
    g.set_defaults(func=_cmd_vm_guest)
    try:
        from .sim.cli import add_simulate_parser
    except ImportError:  # the simulator is optional at this layer
        pass
    else:
        add_simulate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentic-sched`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SchedError, ValueError) as exc:
        print(f"agentic-sched {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
