"""SSH-side relay: bridges an SSH channel (stdin/stdout) to the worker agent's unix socket.

Run by the SSH executor on the worker host, one relay per scheduler session::

    python3 relay.py --agent DIR/agent.py --worker-id W --state-dir S
                     [--lease 2.0] [--orphan-timeout 60] [--no-spawn]

1. Connects to the agent at ``S/agent.sock`` (hashed into /tmp if too long). If none
   answers and ``--no-spawn`` is not given it starts one (detached, own session, with
   ``AGENTIC_WORKER_ID=W``); the agent's own lock makes concurrent starts safe.
2. Writes one status line before anything else: ``AGENTIC-RELAY OK <agent pid> <agent
   version>`` (the version of the *running* agent, which may be older) or
   ``AGENTIC-RELAY ERROR <reason>`` (then exits 2). The executor consumes this line.
3. Copies protocol lines both ways. Blank lines from the scheduler are *pings* and
   are not forwarded. **Lease**: if nothing (line or ping) arrives for ``--lease``
   seconds, the host is cut off from the scheduler (which will declare the worker lost
   and re-run its attempts): the relay sends the agent a protocol ``shutdown``, so the
   agent cancels its attempts and exits (host-side fencing, ``lease`` + cancel time).
   On EOF (the scheduler closed the session or its process died) the relay only
   disconnects: the agent keeps running its attempts for ``--orphan-timeout`` seconds,
   waiting for a restarted scheduler to reconnect.

Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time


def socket_path(state_dir: str) -> str:
    """Same rule as the local executor: ``<state_dir>/agent.sock`` unless too long."""
    path = os.path.join(state_dir, "agent.sock")
    if len(path) < 100:
        return path
    return os.path.join(tempfile.gettempdir(), f"agsched-{hashlib.sha1(path.encode()).hexdigest()[:16]}.sock")


def _connect(path: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except OSError:
        s.close()
        return None


def _spawn(args: argparse.Namespace, path: str) -> subprocess.Popen[bytes]:
    os.makedirs(args.state_dir, exist_ok=True)
    env = dict(os.environ, AGENTIC_WORKER_ID=args.worker_id)
    with open(os.path.join(args.state_dir, "agent.log"), "ab") as log:
        return subprocess.Popen(
            [sys.executable, args.agent, "--worker-id", args.worker_id, "--state-dir", args.state_dir,
             "--socket", path, "--orphan-timeout", str(args.orphan_timeout),
             *(["--checkpoint-root", args.checkpoint_root] if args.checkpoint_root else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True, close_fds=True)


def _agent(args: argparse.Namespace) -> tuple[socket.socket | None, str]:
    path = socket_path(args.state_dir)
    sock = _connect(path)
    if sock is not None or args.no_spawn:
        return sock, f"no agent answers on {path} (not started: --no-spawn)"
    proc = _spawn(args, path)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            return sock, ""
        code = proc.poll()
        if code is not None and code != 75:  # 75: another agent holds the lock; keep trying
            tail = _tail(os.path.join(args.state_dir, "agent.log"))
            return None, f"agent exited with {code} at start: {tail}"
        time.sleep(0.02)
    return None, f"agent did not listen on {path} within {args.start_timeout:g}s"


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()[-300:]
        return data.decode(errors="replace").replace("\n", " | ")
    except OSError as exc:
        return str(exc)


def _agent_pid(state_dir: str) -> str:
    try:
        with open(os.path.join(state_dir, "agent.pid")) as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def _agent_version(pid: str) -> str:
    """``<version>`` of the running agent, from its ``.../agent-<version>/agent.py`` argv."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    for arg in args:
        parent = os.path.basename(os.path.dirname(arg))
        if arg.endswith("agent.py") and parent.startswith("agent-"):
            return parent[len("agent-"):]
    return "?"


def _pump_to_stdout(sock: socket.socket) -> None:
    """Agent -> scheduler; the relay ends when the agent closes the connection."""
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            view = memoryview(data)
            while view:
                n = os.write(1, view)
                view = view[n:]
    except OSError:
        pass
    os._exit(0)


def _send_shutdown(sock: socket.socket, reason: str) -> None:
    """Tell the agent to cancel its attempts and exit (a protocol ``shutdown`` message)."""
    msg = json.dumps({"v": 1, "type": "shutdown", "reason": reason}, separators=(",", ":"))
    try:
        sock.sendall(msg.encode() + b"\n")
        time.sleep(0.05)  # let the agent read it before the connection closes
    except OSError:
        pass


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="agentic-sched SSH relay")
    p.add_argument("--agent", required=True, help="path of agent.py on this host")
    p.add_argument("--worker-id", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--orphan-timeout", type=float, default=60.0)
    p.add_argument("--start-timeout", type=float, default=20.0)
    p.add_argument("--no-spawn", action="store_true")
    p.add_argument("--checkpoint-root", help="passed to the agent (shared storage: resume on any host)")
    args = p.parse_args(argv)
    sock, error = _agent(args)
    if sock is None:
        os.write(1, f"AGENTIC-RELAY ERROR {error}\n".encode())
        sys.exit(2)
    pid = _agent_pid(args.state_dir)
    os.write(1, f"AGENTIC-RELAY OK {pid} {_agent_version(pid)}\n".encode())
    threading.Thread(target=_pump_to_stdout, args=(sock,), daemon=True).start()
    buf = b""
    while True:
        ready, _, _ = select.select([0], [], [], args.lease)
        if not ready:  # lease expired: cut off from the scheduler, which will re-run our work
            _send_shutdown(sock, f"lease expired: nothing from the scheduler for {args.lease:g}s")
            break
        data = os.read(0, 1 << 16)
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if line.strip())
        if out:
            try:
                sock.sendall(out)
            except OSError:
                break
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    os._exit(0)


if __name__ == "__main__":
    main()
