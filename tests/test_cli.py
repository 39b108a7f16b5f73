"""The CLI end to end in subprocesses: exit codes and one-line errors, never tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentic_sched.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=300)


def test_example_plan_validate(tmp_path: Path) -> None:
    prob, plan = tmp_path / "p.json", tmp_path / "plan.json"
    assert run("example", "tiny", "-o", str(prob)).returncode == 0
    r = run("plan", str(prob), "--planner", "eft", "-o", str(plan))
    assert r.returncode == 0, r.stderr
    assert "planner eft" in r.stdout and "unassigned v100-job: 0/3 workers fit" in r.stdout
    v = run("validate", str(prob), str(plan))
    assert v.returncode == 0 and "VALID" in v.stdout and "objective" in v.stdout


def test_plan_default_planner_to_stdout(tmp_path: Path) -> None:
    prob = tmp_path / "p.json"
    run("example", "mixed", "-o", str(prob))
    r = run("plan", str(prob), "--budget", "0.5")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "agentic-sched/plan/v1" and len(doc["assignments"]) + len(doc["unassigned"]) == 50


def test_validate_invalid_plan_exits_1(tmp_path: Path) -> None:
    prob, plan = tmp_path / "p.json", tmp_path / "plan.json"
    run("example", "tiny", "-o", str(prob))
    run("plan", str(prob), "--planner", "eft", "-o", str(plan))
    doc = json.loads(plan.read_text())
    doc["assignments"][0]["start"] -= 1.0
    plan.write_text(json.dumps(doc))
    r = run("validate", str(prob), str(plan))
    assert r.returncode == 1 and "violation rule 3" in r.stdout and "INVALID" in r.stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "malformed JSON"),
        ('{"format": "agentic-sched/problem/v1", "workers": [], "tasks": [], "x": 1}', "unknown key 'x'"),
        ('{"format": "agentic-sched/problem/v1", "workers": [], "tasks": [{"id": "a", "duration": 0}]}',
         "tasks[0].duration"),
        ('{"format": "agentic-sched/problem/v1", "workers": [{"id": "w", "capacity": {"cpu": -1}}], "tasks": []}',
         "workers[0].capacity.cpu"),
    ],
)
def test_bad_input_one_line_no_traceback(tmp_path: Path, content: str, words: str) -> None:
    prob = tmp_path / "bad.json"
    prob.write_text(content)
    r = run("plan", str(prob))
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_file_and_unknown_planner(tmp_path: Path) -> None:
    r = run("plan", str(tmp_path / "nope.json"))
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
    prob = tmp_path / "p.json"
    run("example", "tiny", "-o", str(prob))
    r = run("plan", str(prob), "--planner", "magic")
    assert r.returncode == 2 and "unknown planner 'magic'" in r.stderr and "Traceback" not in r.stderr
