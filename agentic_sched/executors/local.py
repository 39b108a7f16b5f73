"""Local executors: agents on this host, reached over unix sockets.

``LocalExecutor`` starts one agent per worker as a detached process (own session,
so it survives a crash of the scheduler's process and keeps running its attempts)
listening on ``<state_dir>/workers/<id>/agent.sock``. ``open`` first tries to reconnect
to a surviving agent and only starts a new one if none answers: after a scheduler
restart, the running attempts and the journal of unacknowledged outcomes are picked
up where they were. An agent with no scheduler for ``orphan_timeout_s`` exits.

All local agents share one checkpoint root, ``<state_dir>/checkpoints/<task id>/``
(``$AGSCHED_CHECKPOINT_DIR`` of every attempt), so a preempted or requeued task
resumes from its checkpoint on whichever local worker runs it next.

``UnixExecutor`` connects to an agent someone else started (``WorkerSpec.address``);
it cannot fence, so a lost worker there is only fenced by attempt ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
from anyio.abc import ByteStream

from .._errors import RemoteError
from .._spec import WorkerSpec
from ._unix import connect_unix
from .base import tail_file

log = logging.getLogger("agentic_sched.executors.local")

ALREADY_RUNNING = 75  # the agent's exit code when another agent holds the worker's lock
AGENT_SCRIPT = Path(__file__).resolve().parent.parent / "agents" / "agent.py"
if not AGENT_SCRIPT.exists():  # editable install maps agentic_sched.agents to ./agents
    from .. import agents as _agents

    AGENT_SCRIPT = Path(_agents.__file__).resolve().parent / "agent.py"


def socket_path(worker_dir: Path) -> str:
    """The agent's socket path (hashed into the temp dir if the natural one is too long)."""
    path = str(worker_dir / "agent.sock")
    if len(path) < 100:
        return path
    digest = hashlib.sha1(path.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"agsched-{digest}.sock")


class LocalExecutor:
    kind = "local"

    def __init__(self, state_dir: str | os.PathLike[str], *, orphan_timeout_s: float = 60.0,
                 python: str = sys.executable, start_timeout_s: float = 15.0) -> None:
        self.state_dir = Path(state_dir)
        self.orphan_timeout_s = orphan_timeout_s
        self.python = python
        self.start_timeout_s = start_timeout_s
        self.checkpoint_root = self.state_dir / "checkpoints"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def worker_dir(self, worker_id: str) -> Path:
        return self.state_dir / "workers" / worker_id

    def agent_pid(self, worker_id: str) -> int | None:
        """Pid of the worker's agent per its pid file, or None."""
        try:
            return int((self.worker_dir(worker_id) / "agent.pid").read_text())
        except (OSError, ValueError):
            return None

    async def open(self, spec: WorkerSpec, *, spawn: bool = True) -> ByteStream:
        path = socket_path(self.worker_dir(spec.id))
        try:
            return await connect_unix(path)
        except OSError as exc:
            if not spawn:
                raise RemoteError(f"agent of worker {spec.id} does not answer on {path}: {exc}") from None
        self._spawn(spec, path)
        with anyio.move_on_after(self.start_timeout_s):
            while True:
                try:
                    return await connect_unix(path)
                except OSError:
                    proc = self._procs.get(spec.id)
                    if proc is not None and proc.poll() not in (None, ALREADY_RUNNING):
                        raise RemoteError(f"agent of worker {spec.id} exited with {proc.returncode}; "
                                          f"see {self.worker_dir(spec.id) / 'agent.log'}") from None
                    await anyio.sleep(0.02)
        raise RemoteError(f"agent of worker {spec.id} did not listen on {path} within {self.start_timeout_s}s")

    def _spawn(self, spec: WorkerSpec, path: str) -> None:
        wdir = self.worker_dir(spec.id)
        wdir.mkdir(parents=True, exist_ok=True)
        self._reap(spec.id)
        with open(wdir / "agent.log", "ab") as logf:
            self._procs[spec.id] = subprocess.Popen(
                [self.python, str(AGENT_SCRIPT), "--worker-id", spec.id, "--state-dir", str(wdir),
                 "--socket", path, "--orphan-timeout", str(self.orphan_timeout_s),
                 "--checkpoint-root", str(self.checkpoint_root)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True, close_fds=True)
        log.info("started agent of worker %s (pid %d)", spec.id, self._procs[spec.id].pid)

    def _reap(self, worker_id: str) -> None:
        proc = self._procs.pop(worker_id, None)
        if proc is not None and proc.poll() is None:
            self._procs[worker_id] = proc  # still alive: keep tracking it

    def kill_agent(self, worker_id: str, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` to the worker's agent (a crash, for demos and tests); True if sent."""
        pid = self.agent_pid(worker_id)
        if pid is None or not _is_agent(pid, worker_id):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            return True
        return False

    async def fence(self, spec: WorkerSpec) -> None:
        """Kill the agent (its attempts die with it through PDEATHSIG)."""
        self.kill_agent(spec.id)
        proc = self._procs.pop(spec.id, None)
        if proc is not None:
            with anyio.move_on_after(2):
                while proc.poll() is None:
                    await anyio.sleep(0.02)

    async def stop(self, spec: WorkerSpec) -> None:
        """Wait briefly for an agent told to shut down, then kill it."""
        proc = self._procs.pop(spec.id, None)
        pid = proc.pid if proc is not None else self.agent_pid(spec.id)
        with anyio.move_on_after(5):
            while pid is not None and _alive(pid, proc):
                await anyio.sleep(0.02)
        if pid is not None and _alive(pid, proc):
            self.kill_agent(spec.id)
            if proc is not None:
                proc.wait(timeout=2)

    async def read_file(self, worker_id: str, path: str, max_bytes: int = 1 << 20) -> bytes:
        return await _read_local(worker_id, path, max_bytes)


class UnixExecutor:
    kind = "unix"

    async def open(self, spec: WorkerSpec, *, spawn: bool = True) -> ByteStream:
        try:
            return await connect_unix(spec.address or "")
        except OSError as exc:
            raise RemoteError(f"cannot connect to the agent of worker {spec.id} at {spec.address}: {exc}") from None

    async def fence(self, spec: WorkerSpec) -> None:
        log.warning("worker %s: cannot fence an external agent; relying on attempt ids", spec.id)

    async def stop(self, spec: WorkerSpec) -> None:
        return None

    async def read_file(self, worker_id: str, path: str, max_bytes: int = 1 << 20) -> bytes:
        return await _read_local(worker_id, path, max_bytes)


async def _read_local(worker_id: str, path: str, max_bytes: int) -> bytes:
    """The agent shares this host, so its log paths are ours."""
    try:
        return await tail_file(path, max_bytes)
    except OSError as exc:
        raise RemoteError(f"worker {worker_id}: cannot read {path}: {exc.strerror or exc}") from None


def _alive(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of another parent counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_agent(pid: int, worker_id: str) -> bool:
    """Guard against pid reuse: the process must be an agent of this worker."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return sys.platform != "linux"
    return any(a.endswith(b"agent.py") for a in args) and worker_id.encode() in args
