"""The SSH executor: the same agent and protocol as ``LocalExecutor``, on remote hosts.

``open(spec)`` connects with asyncssh (key auth, host key pinned by ``known_hosts``:
an unknown or changed key is refused), provisions the agent over SFTP
(``provision.py``: versioned, idempotent), then runs ``relay.py`` on the host, which
connects the SSH channel to the worker's long-lived agent (starting it unless
``spawn=False``). The returned byte stream speaks the JSON-lines protocol unchanged.

Liveness, both ways:
- scheduler side: asyncssh keepalives close a dead connection within
  ``keepalive_s * 3``; the scheduler's heartbeat timeout marks the worker lost;
- host side: ``receive`` sends a blank-line *ping* every ``lease_s / 4``; when no byte
  arrives for ``lease_s`` the relay tells the agent to shut down (it cancels its
  attempts and exits). Choose the worker's ``heartbeat_timeout_s`` >=
  ``min_heartbeat_timeout_s()`` (lease + 1.5 s; 3.5 s with the defaults; a warning is
  logged otherwise) so a cut-off host has stopped its attempts before they are re-run;
  the scheduler's attempt ids fence whatever still reports late.
- a closed session (scheduler closed or crashed) is not a partition: the agent keeps
  its attempts running for ``agent_orphan_timeout_s`` waiting for a reconnect.

Every failure of ``open`` is a ``RemoteError`` naming the worker and the cause (host
key, authentication, unreachable, provisioning, agent start); repeated failures are
spaced by exponential backoff (``backoff_s`` doubling up to ``backoff_max_s``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs
from anyio.abc import ByteStream

from .._errors import RemoteError
from .provision import Provisioned, provision

log = logging.getLogger("agentic_sched.executors.ssh")


@attrs.frozen
class SshTarget:
    """How to reach one worker host. ``None`` fields take the executor's defaults."""

    host: str
    port: int = 22
    username: str | None = None
    known_hosts: str | None = None
    client_keys: tuple[str, ...] | None = attrs.field(
        default=None, converter=lambda v: None if v is None else tuple(str(k) for k in v))
    remote_dir: str | None = None
    python: str | None = None
    checkpoint_root: str | None = None

    @classmethod
    def parse(cls, address: str) -> SshTarget:
        """``[user@]host[:port]`` (IPv6 as ``[addr]:port``); ``ValueError`` if malformed."""
        m = re.fullmatch(r"(?:([^@\s]+)@)?(\[[^\]]+\]|[^:\s\[\]]+)(?::(\d+))?", address or "")
        if not m:
            raise ValueError(f"not an ssh address [user@]host[:port]: {address!r}")
        return cls(host=m[2].strip("[]"), port=int(m[3] or 22), username=m[1])


class SshExecutor:
    """Executor of ``WorkerSpec(executor="ssh", address="[user@]host[:port]")``.

    ``targets`` maps worker ids to ``SshTarget``s and wins over ``spec.address``.
    ``known_hosts`` (path) and ``client_keys`` (paths) are required defaults: there is
    no way to turn host key checking off. State on a host lives under
    ``<remote_dir>/workers/<worker id>/`` (journal, logs, agent socket, and by default
    the tasks' checkpoints). ``checkpoint_root`` (per target or for all) puts the
    checkpoints of every task under ``<checkpoint_root>/<task id>/`` instead: a directory
    on storage the hosts share lets a preempted or requeued task resume on another host.
    """

    kind = "ssh"

    def __init__(self, *, known_hosts: str, client_keys: Sequence[str], username: str = "root",
                 targets: Mapping[str, SshTarget] | None = None,
                 remote_dir: str = "/var/tmp/agentic-sched", python: str = "python3",
                 connect_timeout_s: float = 5.0, keepalive_s: float = 1.0, lease_s: float = 2.0,
                 agent_orphan_timeout_s: float = 60.0, backoff_s: float = 0.2, backoff_max_s: float = 5.0,
                 fence_timeout_s: float = 2.0, checkpoint_root: str | None = None) -> None:
        self.known_hosts = str(known_hosts)
        self.client_keys = tuple(str(k) for k in client_keys)
        self.username = username
        self.targets = dict(targets or {})
        self.remote_dir, self.python, self.checkpoint_root = remote_dir, python, checkpoint_root
        self.connect_timeout_s, self.keepalive_s = connect_timeout_s, keepalive_s
        self.lease_s, self.agent_orphan_timeout_s = lease_s, agent_orphan_timeout_s
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.fence_timeout_s = fence_timeout_s
        #: worker id -> last provisioning result (``uploaded``, ``seconds``)
        self.provisioned: dict[str, Provisioned] = {}
        #: worker id -> version of the agent actually running there (from the relay)
        self.agent_versions: dict[str, str] = {}
        self._failures: dict[str, tuple[int, float]] = {}   # worker -> (count, not before)
        self._specs: dict[str, Any] = {}

    # ------------------------------------------------------------------ targets
    def target(self, spec: Any) -> SshTarget:
        """The resolved target of a worker (defaults filled in); ``RemoteError`` if none."""
        t = self.targets.get(spec.id)
        if t is None:
            try:
                t = SshTarget.parse(spec.address or "")
            except ValueError as exc:
                raise RemoteError(f"worker {spec.id}: {exc}") from None
        return attrs.evolve(
            t, username=t.username or self.username, known_hosts=t.known_hosts or self.known_hosts,
            client_keys=t.client_keys or self.client_keys, remote_dir=t.remote_dir or self.remote_dir,
            python=t.python or self.python, checkpoint_root=t.checkpoint_root or self.checkpoint_root)

    def state_dir(self, spec: Any) -> str:
        return f"{self.target(spec).remote_dir}/workers/{spec.id}"

    async def connect(self, spec: Any) -> Any:
        """An authenticated ``asyncssh`` connection to the worker's host, or ``RemoteError``."""
        import asyncssh

        t = self.target(spec)
        where = f"{t.username}@{t.host}:{t.port}"
        try:
            return await asyncssh.connect(
                t.host, port=t.port, username=t.username, known_hosts=t.known_hosts,
                client_keys=list(t.client_keys or ()), connect_timeout=self.connect_timeout_s,
                keepalive_interval=self.keepalive_s, keepalive_count_max=3, agent_path=None,
                config=None)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise RemoteError(f"worker {spec.id}: host key of {t.host}:{t.port} does not match "
                              f"{t.known_hosts} (unknown or changed key; refusing to connect): {exc.reason}") from None
        except asyncssh.PermissionDenied as exc:
            raise RemoteError(f"worker {spec.id}: authentication as {where} failed (unknown user or "
                              f"key not accepted): {exc.reason}") from None
        except asyncssh.Error as exc:
            raise RemoteError(f"worker {spec.id}: ssh to {where} failed: {exc.reason}") from None
        except (OSError, TimeoutError) as exc:
            raise RemoteError(f"worker {spec.id}: {where} unreachable: {exc or type(exc).__name__}") from None

    # ------------------------------------------------------------------ executor API
    async def open(self, spec: Any, *, spawn: bool = True) -> ByteStream:
        """Connect, provision (when ``spawn``), start the relay; a protocol byte stream."""
        await self._backoff(spec.id)
        if spec.id not in self._specs:
            self._warn_timeouts(spec)
        self._specs[spec.id] = spec
        try:
            stream = await self._open(spec, spawn)
        except RemoteError as exc:
            count = self._failures.get(spec.id, (0, 0.0))[0] + 1
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** (count - 1))
            self._failures[spec.id] = (count, time.monotonic() + delay)
            log.info("%s (retry in %.1fs)", exc, delay)
            raise
        self._failures.pop(spec.id, None)
        return stream

    async def _open(self, spec: Any, spawn: bool) -> ByteStream:
        import asyncssh

        t = self.target(spec)
        conn = await self.connect(spec)
        try:
            if spawn or spec.id not in self.provisioned:
                try:
                    self.provisioned[spec.id] = await provision(conn, t.remote_dir or self.remote_dir)
                except (asyncssh.Error, OSError) as exc:
                    raise RemoteError(f"worker {spec.id}: provisioning the agent into {t.remote_dir} "
                                      f"failed: {getattr(exc, 'reason', exc)}") from None
            agent_dir = self.provisioned[spec.id].path
            # -S: the relay needs only the stdlib (starts ~4x faster); the agent it spawns gets site
            cmd = [t.python or self.python, "-S", f"{agent_dir}/relay.py", "--agent", f"{agent_dir}/agent.py",
                   "--worker-id", spec.id, "--state-dir", self.state_dir(spec), "--lease", str(self.lease_s),
                   "--orphan-timeout", str(self.agent_orphan_timeout_s)]
            if t.checkpoint_root:
                cmd += ["--checkpoint-root", t.checkpoint_root]
            if not spawn:
                cmd.append("--no-spawn")
            proc = await conn.create_process(shlex.join(cmd), encoding=None)
            with anyio.move_on_after(30) as scope:
                first = await proc.stdout.readline()
            if scope.cancelled_caught or not first.startswith(b"AGENTIC-RELAY OK"):
                err = b""
                with anyio.move_on_after(1):
                    err = await proc.stderr.read(2000)
                why = (first or err).decode(errors="replace").strip().removeprefix("AGENTIC-RELAY ERROR ")
                raise RemoteError(f"worker {spec.id}: agent not reachable on {t.host}: {why or 'no answer'}")
        except BaseException:
            conn.close()
            raise
        _, _, pid, *version = first.decode(errors="replace").split()
        self.agent_versions[spec.id] = running = version[0] if version else "?"
        wanted = self.provisioned[spec.id].version
        if running != wanted:
            log.warning("worker %s runs agent version %s, provisioned %s: the running agent is kept "
                        "(its attempts go on); drain the worker to upgrade it", spec.id, running, wanted)
        log.info("worker %s: relay to agent pid %s (version %s) on %s", spec.id, pid, running, t.host)
        return SshStream(conn, proc, ping_s=self.lease_s / 4)

    async def fence(self, spec: Any) -> None:
        """Best effort within ``fence_timeout_s``: SIGTERM the worker's agent (it cancels its
        attempts: processes, containers, domains), SIGKILL it 0.5 s later if it still runs
        (a hung agent; its processes die with it, leftover containers/domains are removed
        when an agent of the worker starts again). The pid is checked against the agent's
        command line first (no stray kill after pid reuse). An unreachable host fences
        itself through the relay's lease."""
        with anyio.move_on_after(self.fence_timeout_s):
            try:
                conn = await self.connect(spec)
            except RemoteError as exc:
                log.info("fence: %s; relying on the host-side lease", exc)
                return
            async with conn:
                await conn.run(fence_command(self.state_dir(spec)), check=False)
                log.info("fence: worker %s: agent stopped (SIGTERM, SIGKILL after 0.5s)", spec.id)

    async def stop(self, spec: Any) -> None:
        """Nothing to release: the session's stream owns its connection."""
        return None

    # ------------------------------------------------------------------ helpers
    async def read_file(self, worker_id: str, path: str, max_bytes: int = 1 << 20) -> bytes:
        """The last ``max_bytes`` of a file on the worker's host (task logs: the paths in
        ``TaskStatus.stdout/stderr``), over SFTP. ``RemoteError`` if unreachable/missing."""
        import asyncssh

        spec = self._specs.get(worker_id)
        if spec is None:
            raise RemoteError(f"worker {worker_id}: never opened by this executor")
        conn = await self.connect(spec)
        async with conn, conn.start_sftp_client() as sftp:
            try:
                size = (await sftp.stat(path)).size or 0
                async with sftp.open(path, "rb") as f:
                    await f.seek(max(0, size - max_bytes))
                    return await f.read()
            except (asyncssh.SFTPError, OSError) as exc:
                raise RemoteError(f"worker {worker_id}: cannot read {path}: {getattr(exc, 'reason', exc)}") from None

    def min_heartbeat_timeout_s(self) -> float:
        """The smallest worker ``heartbeat_timeout_s`` for which a cut-off host has stopped
        its attempts (lease + 1.5 s to cancel them) before the scheduler re-runs them."""
        return self.lease_s + 1.5

    def _warn_timeouts(self, spec: Any) -> None:
        timeout = getattr(spec, "heartbeat_timeout_s", None)
        if timeout is None or timeout < self.min_heartbeat_timeout_s():
            log.warning("worker %s: heartbeat_timeout_s=%s is below %.1fs (lease %.1fs + 1.5s): a "
                        "cut-off host may still run an attempt when it is re-run elsewhere (its late "
                        "outcome is still fenced by attempt id)", spec.id, timeout,
                        self.min_heartbeat_timeout_s(), self.lease_s)

    async def _backoff(self, worker_id: str) -> None:
        count, not_before = self._failures.get(worker_id, (0, 0.0))
        delay = not_before - time.monotonic()
        if count and delay > 0:
            await anyio.sleep(delay)


def fence_command(state_dir: str, grace_s: float = 0.5) -> str:
    """Shell command: SIGTERM the agent whose pid file is in ``state_dir`` and, if it has not
    exited after ``grace_s``, SIGKILL it; each signal only if that pid's command line is
    still an agent of ``state_dir`` (no stray kill after pid reuse)."""
    pid_file = shlex.quote(f"{state_dir}/agent.pid")
    is_agent = f"tr '\\0' ' ' 2>/dev/null </proc/$p/cmdline | grep -qF -- {shlex.quote(f'--state-dir {state_dir} ')}"
    steps = max(1, round(grace_s / 0.1))
    return (f"p=$(cat {pid_file} 2>/dev/null); [ -n \"$p\" ] && {is_agent} || exit 0; kill -TERM $p; "
            f"for i in $(seq {steps}); do sleep 0.1; {is_agent} || exit 0; done; kill -KILL $p")


class SshStream(ByteStream):
    """A relay process's stdin/stdout as an anyio byte stream, pinging while it waits."""

    def __init__(self, conn: Any, proc: Any, ping_s: float, send_timeout_s: float = 10.0) -> None:
        self.conn, self.proc = conn, proc
        self.ping_s, self.send_timeout_s = ping_s, send_timeout_s
        self._last_sent = time.monotonic()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            wait = self.ping_s - (time.monotonic() - self._last_sent)
            if wait <= 0:
                await self._write(b"\n")
                continue
            with anyio.move_on_after(wait):
                try:
                    data = await self.proc.stdout.read(max_bytes)
                except Exception as exc:  # noqa: BLE001 - asyncssh connection errors
                    raise anyio.BrokenResourceError(str(exc)) from None
                if not data:
                    raise anyio.EndOfStream
                return data

    async def send(self, item: bytes) -> None:
        await self._write(item)

    async def _write(self, data: bytes) -> None:
        self._last_sent = time.monotonic()
        try:
            self.proc.stdin.write(data)
            with anyio.fail_after(self.send_timeout_s):
                await self.proc.stdin.drain()
        except Exception as exc:  # noqa: BLE001 - closed channel, lost connection, timeout
            raise anyio.BrokenResourceError(str(exc) or type(exc).__name__) from None

    async def send_eof(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.write_eof()

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.close()
        self.conn.close()
        with contextlib.suppress(Exception), anyio.move_on_after(2):
            await self.conn.wait_closed()
