"""Developer sessions: tests, demo, bench, lint, typecheck. Venvs are reused."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent


@nox.session
def tests(session: nox.Session) -> None:
    """Full test suite against real daemons (dockerd, sshd, libvirtd, chromium).

    As root on a fresh Debian machine the system dependencies are installed and the
    daemons started first (idempotent, see .ci/setup-system.sh).
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0 and (ROOT / ".ci/setup-system.sh").exists():
        session.run("bash", ".ci/setup-system.sh", external=True)
    session.install("-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def demo(session: nox.Session) -> None:
    """The main demo: an embedded scheduler with local workers (no setup by hand)."""
    session.install("-e", ".")
    session.run("python", "-m", "agentic_sched.demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: prints figures and writes benchmarks/REPORT.md (``-- --quick`` for a short run)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "agentic_sched", "kernels", "agents", "tests", "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy")
    session.run("mypy", "agentic_sched", "agents", "kernels")
