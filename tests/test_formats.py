"""Reading and writing the FORMATS.md contract, and every class of bad input."""

from __future__ import annotations

import json

import pytest
from helpers_problems import problem_doc

from agentic_sched import InvalidPlan, InvalidProblem, Plan, Problem


def test_round_trip_keeps_everything() -> None:
    p = Problem.from_json(json.dumps(problem_doc()))
    again = Problem.from_json(p.to_json())
    assert again == p
    w1 = p.worker("w1")
    assert w1.gpu_indices == (0, 1)
    assert w1.running[0].devices == ((0, 500.0),)
    assert p.tasks[0].gpu is not None and p.tasks[0].gpu.share == 500
    assert p.tasks[1].earliest(p.now) == 1.0 and p.tasks[0].earliest(p.now) == 0.0


def test_defaults_and_partial_weights() -> None:
    doc = problem_doc(weights={"misses": 3})
    p = Problem.from_json(doc)
    assert p.weights.misses == 3 and p.weights.unassigned == 1000 and p.weights.energy == 0.5
    w2 = p.worker("w2")
    assert (w2.speed, w2.health, w2.idle_cost, w2.devices, w2.running) == (1.0, 1.0, 0.0, (), ())
    assert p.tasks[1].priority == 2 and p.tasks[1].deadline is None


def _bad(mutate, path: str, words: str) -> None:  # type: ignore[no-untyped-def]
    doc = problem_doc()
    mutate(doc)
    with pytest.raises(InvalidProblem) as info:
        Problem.from_json(json.dumps(doc))
    assert info.value.path == path, str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d.update(extra=1), "extra", "unknown key 'extra'"),
        (lambda d: d["tasks"][1].update(colour="red"), "tasks[1].colour", "unknown key"),
        (lambda d: d["workers"][0].update(ram=1), "workers[0].ram", "unknown key"),
        (lambda d: d["tasks"][1]["demand"].update(cpu="2"), "tasks[1].demand.cpu", "expected a number"),
        (lambda d: d["tasks"][1]["demand"].update(cpu=True), "tasks[1].demand.cpu", "expected a number"),
        (lambda d: d["tasks"][1]["demand"].update(cpu=-1), "tasks[1].demand.cpu", ">= 0"),
        (lambda d: d["tasks"][0].update(duration=0), "tasks[0].duration", "> 0"),
        (lambda d: d["tasks"][1].update(id="t1"), "tasks[1].id", "duplicate task id"),
        (lambda d: d["tasks"][1].update(id="r1"), "tasks[1].id", "repeats running task"),
        (lambda d: d["workers"][1].update(id="w1"), "workers[1].id", "duplicate worker id"),
        (lambda d: d["tasks"][0].update(gpu={"count": 2, "share": 500}), "tasks[0].gpu.share", "needs count 1"),
        (lambda d: d["tasks"][0].update(gpu={"count": 1, "share": 1001}), "tasks[0].gpu.share", "1..1000"),
        (lambda d: d["tasks"][0].update(gpu={"count": 0}), "tasks[0].gpu.count", ">= 1"),
        (lambda d: d["tasks"][0].update(gpu={"count": 1.5}), "tasks[0].gpu.count", "integer"),
        (lambda d: d.update(format="agentic-sched/problem/v9"), "format", "unknown format"),
        (lambda d: d["tasks"][1].update(priority=0.5), "tasks[1].priority", ">= 1"),
        (lambda d: d["workers"][0].update(health=1.5), "workers[0].health", "[0, 1]"),
        (lambda d: d["workers"][0].update(speed=0), "workers[0].speed", "> 0"),
        (lambda d: d["workers"][0]["running"][0].update(devices={"7": 100}), "workers[0].running[0].devices.7", "no device"),
        (lambda d: d["tasks"][0].update(requires={"arch": []}), "tasks[0].requires.arch", "empty list"),
        (lambda d: d["tasks"][0].update(requires={"arch": 3}), "tasks[0].requires.arch", "string"),
        (lambda d: d.update(weights={"speed": 1}), "weights.speed", "unknown key"),
        (lambda d: d["tasks"][0].pop("duration"), "tasks[0].duration", "missing required key"),
        (lambda d: d.update(tasks={}), "tasks", "expected an array"),
    ],
)
def test_bad_problem_names_the_path(mutate, path: str, words: str) -> None:  # type: ignore[no-untyped-def]
    _bad(mutate, path, words)


@pytest.mark.parametrize("text", ['{"now": NaN}', '{"now": Infinity}', "[1,", "not json"])
def test_nan_inf_and_malformed_json_refused(text: str) -> None:
    with pytest.raises(InvalidProblem, match="malformed JSON"):
        Problem.from_json(text)


def test_nan_in_nested_value_refused() -> None:
    text = json.dumps(problem_doc()).replace('"duration": 2.0', '"duration": NaN')
    with pytest.raises(InvalidProblem, match="not a finite number"):
        Problem.from_json(text)


def test_plan_round_trip_and_strictness() -> None:
    doc = {"format": "agentic-sched/plan/v1",
           "assignments": [{"task": "t1", "worker": "w1", "start": 0, "end": 5, "devices": [1]}],
           "unassigned": [{"task": "t2", "reason": "x"}], "planner": "p", "status": "optimal",
           "objective": 1.0, "bound": 1.0, "elapsed_s": 0.1}
    plan = Plan.from_json(json.dumps(doc))
    assert json.loads(plan.to_json()) == {**doc, "assignments": [{**doc["assignments"][0], "start": 0.0, "end": 5.0}]}
    with pytest.raises(InvalidPlan, match="status"):
        Plan.from_json({**doc, "status": "great"})
    with pytest.raises(InvalidPlan, match=r"assignments\[0\].cost"):
        Plan.from_json({**doc, "assignments": [{**doc["assignments"][0], "cost": 1}]})
    with pytest.raises(InvalidPlan, match="unknown format"):
        Plan.from_json({**doc, "format": "agentic-sched/problem/v1"})
