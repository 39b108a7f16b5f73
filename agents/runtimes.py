"""Runtimes: how the agent runs one attempt. The seam for docker / vm runtimes.

A runtime is an object with a ``name`` and ``async run(job, started, cancel) -> Outcome``:
it starts the job, calls ``started(pid_or_None)`` once it runs, and returns when it
ends, when ``job.timeout_s`` passes (status ``timeout``) or when the ``cancel`` event
is set (status ``cancelled``, everything it started is killed). If the agent set
``job.preempt`` (``{"grace_s", "reason"}``) before setting ``cancel``, the attempt is
being preempted: the runtime asks it to stop (SIGTERM / ``docker stop``), waits up to
``grace_s`` for it to save its checkpoint, kills it, and returns status ``preempted``.
``job.checkpoint_dir`` (if set) is the task's durable directory, the same for every
attempt; the runtime exposes it as ``$AGSCHED_CHECKPOINT_DIR``. To add a runtime,
write such a class and register it in ``RUNTIMES`` (``job.options`` carries the
runtime's own fields, e.g. ``image`` for docker or ``template`` for a vm).

Standard library only (plus this package's modules): shipped to remote hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Job:
    task: str
    attempt: int
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    log_dir: str = "."
    checkpoint_dir: str | None = None             # exposed as $AGSCHED_CHECKPOINT_DIR
    preempt: dict[str, Any] | None = None         # set by the agent just before ``cancel``


CHECKPOINT_ENV = "AGSCHED_CHECKPOINT_DIR"


def stop_status(job: Job, cancelled: bool) -> tuple[str, str]:
    """Status and reason of an attempt stopped by ``cancel`` (True) or by its timeout."""
    if not cancelled:
        return "timeout", f"timed out after {job.timeout_s:g}s"
    if job.preempt is not None:
        return "preempted", str(job.preempt.get("reason") or "preempted by the scheduler")
    return "cancelled", "cancelled by the scheduler"


async def race(work: asyncio.Future[Any], cancel: asyncio.Event, job: Job) -> tuple[str, str] | None:
    """Wait for ``work``, a cancel or the job's timeout, whichever comes first.

    Returns None when ``work`` finished first, else the (status, reason) of the stop
    (``stop_status``); stopping ``work`` itself is the caller's job.
    """
    canceller = asyncio.ensure_future(cancel.wait())
    try:
        done, _ = await asyncio.wait({work, canceller}, timeout=job.timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        canceller.cancel()
    return None if work in done else stop_status(job, canceller in done)


@dataclass
class Outcome:
    status: str                      # one of protocol.STATUSES
    exit_code: int | None = None
    runtime_s: float = 0.0
    reason: str = ""
    stdout: str | None = None
    stderr: str | None = None


class Runtime(Protocol):
    name: str

    async def run(self, job: Job, started: Callable[[int | None], None], cancel: asyncio.Event) -> Outcome: ...


class NoopRuntime:
    """Completes at once with exit code 0: measures the scheduler's own overhead."""

    name = "noop"

    async def run(self, job: Job, started: Callable[[int | None], None], cancel: asyncio.Event) -> Outcome:
        started(None)
        return Outcome("succeeded", 0, 0.0)


def _die_with_parent() -> None:
    """In the child before exec: own session (so cancel kills the group) and SIGKILL on agent death."""
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ProcessRuntime:
    """A real process: argv (never a shell string), env merged over the agent's, cwd,
    stdout/stderr to ``<log_dir>/<task>.<attempt>.out|err``, exit code, timeout, and
    cancel/timeout kill the whole process group (SIGTERM, then SIGKILL after ``grace_s``).
    The child gets SIGKILL if the agent dies, so a lost worker leaves no stray run."""

    name = "process"
    grace_s = 2.0

    async def run(self, job: Job, started: Callable[[int | None], None], cancel: asyncio.Event) -> Outcome:
        os.makedirs(job.log_dir, exist_ok=True)
        stem = os.path.join(job.log_dir, f"{_safe(job.task)}.{job.attempt}")
        out_path, err_path = stem + ".out", stem + ".err"
        env = dict(os.environ)
        env.update(job.env)
        env.update({"AGENTIC_TASK_ID": job.task, "AGENTIC_ATTEMPT": str(job.attempt)})
        if job.checkpoint_dir is not None:
            env[CHECKPOINT_ENV] = job.checkpoint_dir
        t0 = time.monotonic()
        try:
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = await asyncio.create_subprocess_exec(
                    *job.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err,
                    env=env, cwd=job.cwd, preexec_fn=_die_with_parent)
        except OSError as exc:
            return Outcome("error", None, 0.0, f"cannot start {job.argv[0]!r}: {exc}", out_path, err_path)
        started(proc.pid)
        waiter = asyncio.ensure_future(proc.wait())
        stopped = await race(waiter, cancel, job)
        status, reason = "succeeded", ""
        if stopped is not None:
            status, reason = stopped
            grace = self.grace_s if job.preempt is None else float(job.preempt.get("grace_s", self.grace_s))
            await self._kill_group(proc, waiter, grace)
        code = await waiter
        if status == "succeeded" and code != 0:
            status, reason = "failed", f"exited with code {code}"
        return Outcome(status, code, time.monotonic() - t0, reason, out_path, err_path)

    async def _kill_group(self, proc: asyncio.subprocess.Process, waiter: asyncio.Future[int],
                          grace_s: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), grace_s)
        except TimeoutError:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]


def checkpoint_path(root: str, task: str) -> str:
    """``<root>/<task id>``: the task's checkpoint directory (ids that are not safe file
    names, or too long, get a sanitised prefix plus a hash, so two ids never share one)."""
    name = _safe(task)
    if name != task or name in (".", ".."):
        import hashlib

        name = f"{name[:100]}-{hashlib.sha1(task.encode()).hexdigest()[:12]}"
    return os.path.join(root, name)


def _docker() -> Runtime:
    """The docker runtime (agents/runtime_docker.py), imported when an agent starts."""
    if __package__:
        from .runtime_docker import DockerRuntime
    else:
        from runtime_docker import DockerRuntime  # type: ignore[no-redef]
    return DockerRuntime()


def _vm() -> Runtime:
    """The vm runtime (agents/runtime_vm.py), imported when an agent starts."""
    if __package__:
        from .runtime_vm import VmRuntime
    else:
        from runtime_vm import VmRuntime  # type: ignore[no-redef]
    return VmRuntime()


#: name -> factory; a runtime with ``async prepare(worker_id) -> bool`` is offered only if it
#: returns True (docker: dockerd answers; vm: libvirt-python is installed).
RUNTIMES: dict[str, Callable[[], Runtime]] = {"process": ProcessRuntime, "noop": NoopRuntime,
                                              "docker": _docker, "vm": _vm}
