"""The worker agent: runs attempts for one scheduler over the JSON-lines protocol.

Run as ``python -m agentic_sched.agents.agent`` or, with the ``agents/`` directory
copied to a host, as ``python agent.py``::

    agent.py --worker-id w1 --state-dir DIR --socket DIR/agent.sock [--orphan-timeout 60]
             [--checkpoint-root DIR/checkpoints]

The agent is a long-lived process that outlives a scheduler crash: it listens on a
unix socket, serves one scheduler connection at a time (a new connection replaces
the old one), and keeps the outcome of every attempt in its journal until the
scheduler ``forget``s it, re-sending outcomes after each ``welcome``. With no
scheduler connected for ``--orphan-timeout`` seconds it cancels its runs and exits.
``--stdio`` serves a single session on stdin/stdout instead (for ssh transports).

Checkpoints: every attempt of task T gets ``<checkpoint root>/T`` (created if needed,
kept across attempts, removed when the scheduler ``forget``s the task's last attempt
with ``final``) as ``$AGSCHED_CHECKPOINT_DIR``. ``preempt`` stops an attempt with a
grace period; it is reported as ``finished`` with status ``preempted``.

Imports only the standard library, psutil (optional) and its own modules.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import shutil
import signal
import socket
import sys
import time
import uuid
from typing import Any

if __package__:
    from . import protocol
    from .journal import Journal
    from .runtimes import RUNTIMES, Job, Outcome, checkpoint_path
else:  # run as a script from a copied agents/ directory
    import protocol  # type: ignore[no-redef]
    from journal import Journal  # type: ignore[no-redef]
    from runtimes import RUNTIMES, Job, Outcome, checkpoint_path  # type: ignore[no-redef]

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is optional on remote hosts
    psutil = None


class Agent:
    def __init__(self, worker_id: str, state_dir: str, orphan_timeout: float,
                 checkpoint_root: str | None = None) -> None:
        self.worker_id = worker_id
        self.state_dir = state_dir
        self.checkpoint_root = checkpoint_root or os.path.join(state_dir, "checkpoints")
        self.orphan_timeout = orphan_timeout
        self.agent_id = uuid.uuid4().hex
        self.journal = Journal(state_dir)
        self.runtimes = {name: cls() for name, cls in RUNTIMES.items()}
        self.running: dict[tuple[str, int], asyncio.Event] = {}   # key -> cancel event
        self.jobs: dict[tuple[str, int], Job] = {}                # key -> the running job
        self.tasks: set[asyncio.Task[None]] = set()
        self.writer: asyncio.StreamWriter | None = None
        self.heartbeat_s = 0.5
        self.last_connected = time.monotonic()
        self.stop = asyncio.Event()

    # ------------------------------------------------------------------ output
    def send(self, kind: str, **fields: Any) -> None:
        """Write one message to the current scheduler, if any (outcomes are journaled anyway)."""
        if self.writer is None or self.writer.is_closing():
            return
        try:
            self.writer.write(protocol.encode(protocol.make(kind, **fields)))
        except (ConnectionError, protocol.ProtocolError) as exc:
            print(f"agent: cannot send {kind}: {exc}", file=sys.stderr)

    def send_raw(self, msg: dict[str, Any]) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(protocol.encode(msg))

    # ------------------------------------------------------------------ sessions
    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one scheduler connection until EOF; replaces any previous connection."""
        if self.writer is not None:
            self.writer.close()
        self.writer = writer
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    self.send("error", reason=f"message exceeds {protocol.MAX_MESSAGE_BYTES} bytes; dropped")
                    break
                except ConnectionError:
                    break
                if not line:
                    break
                try:
                    msg = protocol.decode(line)
                    if msg["type"] not in protocol.TO_AGENT:
                        raise protocol.ProtocolError(f"type: {msg['type']!r} is not sent to an agent")
                except protocol.ProtocolError as exc:
                    self.send("error", reason=str(exc))
                    continue
                self.handle(msg)
                await writer.drain()
        finally:
            if self.writer is writer:
                self.writer = None
                self.last_connected = time.monotonic()
            writer.close()

    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "hello":
            if msg["worker"] != self.worker_id:
                self.send("error", reason=f"this agent serves worker {self.worker_id!r}, not {msg['worker']!r}")
                return
            self.heartbeat_s = msg["heartbeat_s"]
            facts = _facts()
            facts["labels"] = _labels(facts, self.runtimes)
            facts["features"] = list(protocol.FEATURES)
            self.send("welcome", worker=self.worker_id, agent_id=self.agent_id, pid=os.getpid(),
                      runtimes=sorted(self.runtimes), facts=facts)
            for result in list(self.journal.results.values()):
                self.send_raw(result)
        elif kind == "assign":
            self.assign(msg)
        elif kind == "cancel":
            key = (msg["task"], msg["attempt"])
            if key in self.running:
                self.running[key].set()
            elif not self.journal.known(key):
                self.journal.cancel(key)  # a late assign of this attempt will never start
        elif kind == "preempt":
            key = (msg["task"], msg["attempt"])
            if key in self.running:
                self.jobs[key].preempt = {"grace_s": msg["grace_s"], "reason": msg.get("reason", "")}
                self.running[key].set()
            elif not self.journal.known(key):
                self.journal.cancel(key)  # a late assign of this attempt will never start
        elif kind == "forget":
            key = (msg["task"], msg["attempt"])
            if key not in self.running:
                self.journal.forget(key)
                if msg.get("final") and not any(t == key[0] for t, _ in self.running):
                    shutil.rmtree(checkpoint_path(self.checkpoint_root, key[0]), ignore_errors=True)
        elif kind == "shutdown":
            self.stop.set()

    def assign(self, msg: dict[str, Any]) -> None:
        key = (msg["task"], msg["attempt"])
        if key in self.running:
            self.send("started", task=key[0], attempt=key[1])  # a re-sent assign: same run
            return
        if key in self.journal.results:
            self.send_raw(self.journal.results[key])
            return
        if self.journal.known(key):  # cancelled before it could start
            self.send("rejected", task=key[0], attempt=key[1], reason="attempt was cancelled before it started")
            return
        runtime = self.runtimes.get(msg["runtime"])
        if runtime is None:
            self.send("rejected", task=key[0], attempt=key[1],
                      reason=f"runtime {msg['runtime']!r} not available here (have {', '.join(sorted(self.runtimes))})")
            return
        if msg["runtime"] != "noop" and not msg["argv"]:
            self.send("rejected", task=key[0], attempt=key[1], reason="empty argv")
            return
        ckpt = checkpoint_path(self.checkpoint_root, key[0])
        try:
            os.makedirs(ckpt, exist_ok=True)
        except OSError as exc:
            self.send("rejected", task=key[0], attempt=key[1], reason=f"cannot create checkpoint dir {ckpt}: {exc}")
            return
        self.journal.claim(key)
        job = Job(key[0], key[1], list(msg["argv"]), dict(msg.get("env", {})), msg.get("cwd"),
                  msg.get("timeout_s"), dict(msg.get("options", {})), os.path.join(self.state_dir, "logs"),
                  checkpoint_dir=ckpt)
        cancel = asyncio.Event()
        self.running[key] = cancel
        self.jobs[key] = job
        task = asyncio.ensure_future(self._run(runtime, job, cancel))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, runtime: Any, job: Job, cancel: asyncio.Event) -> None:
        key = (job.task, job.attempt)

        def started(pid: int | None) -> None:
            self.send("started", task=job.task, attempt=job.attempt, pid=pid)

        try:
            out = await runtime.run(job, started, cancel)
        except Exception as exc:  # a runtime bug must not kill the agent
            out = Outcome("error", None, 0.0, f"runtime {runtime.name} failed: {exc!r}")
        if job.preempt is not None and out.status == "cancelled":  # a runtime unaware of preemption
            out.status, out.reason = "preempted", str(job.preempt.get("reason") or out.reason)
        msg = protocol.make("finished", task=job.task, attempt=job.attempt, status=out.status,
                            exit_code=out.exit_code, runtime_s=out.runtime_s, reason=out.reason,
                            stdout=out.stdout, stderr=out.stderr)
        self.journal.result(key, msg)
        self.running.pop(key, None)
        self.jobs.pop(key, None)
        self.send_raw(msg)

    # ------------------------------------------------------------------ loops
    async def heartbeats(self) -> None:
        seq = 0
        while not self.stop.is_set():
            seq += 1
            running = [{"task": t, "attempt": a} for t, a in self.running]
            self.send("heartbeat", seq=seq, running=running, load=_load())
            if self.writer is None and time.monotonic() - self.last_connected > self.orphan_timeout:
                print("agent: no scheduler connected; exiting", file=sys.stderr)
                self.stop.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.heartbeat_s)

    async def prepare_runtimes(self, timeout_s: float = 15.0) -> None:
        """Call each runtime's optional ``prepare(worker_id) -> bool`` once at start (docker/vm
        remove what a previous agent of this worker left); False or an error: not offered."""
        for name, rt in list(self.runtimes.items()):
            prepare = getattr(rt, "prepare", None)
            if prepare is None:
                continue
            try:
                ok = await asyncio.wait_for(prepare(self.worker_id), timeout_s)
            except Exception as exc:  # noqa: BLE001 - an unusable runtime is not fatal
                print(f"agent: runtime {name} unavailable: {exc!r}", file=sys.stderr)
                ok = False
            if not ok:
                del self.runtimes[name]

    async def shutdown(self) -> None:
        """Cancel every run (outcomes journaled as cancelled) and wait for them."""
        for cancel in self.running.values():
            cancel.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=10)
        self.journal.close()


def _facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"hostname": socket.gethostname(), "cpus": os.cpu_count() or 1,
                             "arch": platform.machine()}
    if psutil is not None:
        facts["mem_mb"] = psutil.virtual_memory().total // (1 << 20)
    return facts


def _labels(facts: dict[str, Any], runtimes: dict[str, Any]) -> dict[str, str]:
    """Labels planners match against ``requires``: ``arch``, ``runtime.<name>: "yes"`` per
    runtime offered, ``gpu_model`` (first GPU per nvidia-smi, if any)."""
    labels = {"arch": str(facts.get("arch", platform.machine()))}
    labels.update({f"runtime.{name}": "yes" for name in runtimes})
    gpu = _gpu_model()
    if gpu:
        labels["gpu_model"] = gpu
    return labels


@functools.lru_cache(maxsize=1)
def _gpu_model() -> str | None:
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def _load() -> dict[str, Any]:
    """Heartbeat measurements: cpu %, memory (percent and MB available), load average."""
    if psutil is None:
        return {"loadavg": os.getloadavg()[0]}
    mem = psutil.virtual_memory()
    return {"cpu_percent": psutil.cpu_percent(None), "mem_percent": mem.percent,
            "mem_available_mb": mem.available // (1 << 20), "loadavg": os.getloadavg()[0],
            "cpus": os.cpu_count() or 1}


ALREADY_RUNNING = 75  # exit code: another agent of this worker holds the lock


def _lock_worker(state_dir: str) -> int:
    """Hold an exclusive lock on the worker's state dir for the agent's lifetime, so
    two agents can never share one journal (a second one exits with ALREADY_RUNNING)."""
    import fcntl

    fd = os.open(os.path.join(state_dir, "agent.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("agent: another agent of this worker is running; exiting", file=sys.stderr)
        sys.exit(ALREADY_RUNNING)
    return fd


async def serve(args: argparse.Namespace) -> None:
    agent = Agent(args.worker_id, args.state_dir, args.orphan_timeout, args.checkpoint_root)
    await agent.prepare_runtimes()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop.set)
    if args.stdio:
        reader = asyncio.StreamReader(limit=protocol.MAX_MESSAGE_BYTES)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        transport, proto = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        session = asyncio.ensure_future(agent.session(reader, writer))
        session.add_done_callback(lambda _: agent.stop.set())
        server = None
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.socket)
        server = await asyncio.start_unix_server(agent.session, args.socket, limit=protocol.MAX_MESSAGE_BYTES)
    with open(os.path.join(args.state_dir, "agent.pid"), "w") as f:
        f.write(str(os.getpid()))
    beat = asyncio.ensure_future(agent.heartbeats())
    await agent.stop.wait()
    if server is not None:
        server.close()
    await agent.shutdown()
    beat.cancel()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="agentic-sched worker agent")
    p.add_argument("--worker-id", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--socket", help="unix socket path to listen on")
    p.add_argument("--stdio", action="store_true", help="serve one session on stdin/stdout")
    p.add_argument("--orphan-timeout", type=float, default=60.0)
    p.add_argument("--checkpoint-root", help="parent of the per-task checkpoint dirs "
                   "(default STATE_DIR/checkpoints; shared storage lets tasks resume on other hosts)")
    args = p.parse_args(argv)
    if not args.stdio and not args.socket:
        p.error("one of --socket or --stdio is required")
    os.makedirs(args.state_dir, exist_ok=True)
    _lock_worker(args.state_dir)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
