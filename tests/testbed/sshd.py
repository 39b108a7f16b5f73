"""Real sshd "worker hosts", each in its own network namespace, for SSH executor tests.

Layout (namespace mode, the normal case): one bridge per testbed *slot* on the root
namespace, a veth pair per host with one end in the host's namespace. A slot is a /28
inside 10.123.0.0/24, taken under a file lock so that concurrent pytest runs on one
machine do not collide::

    root ns: bridge as<k>br  10.123.0.<16k+1>/28
    host i:  netns  as<k>h<i>, veth as<k>v<i> (bridge side) <-> as<k>p<i> (ns side)
             address 10.123.0.<16k+1+i>, sshd on port 22

If namespaces cannot be created, hosts fall back to sshd on 127.0.0.1 with free ports
(logged as a warning): ``cut()`` then SIGSTOPs the host's processes instead of taking a
link down (new connects hang in the handshake, open sessions freeze).

Every host has its own ed25519 host key; all share one client key (``client_key``) and
log in as ``root``. ``known_hosts`` pins only that host's key. Commands run over SSH see
the real root filesystem (only the network is namespaced), so ``python`` works there.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ._proc import TestbedError, descendants, log, ok, run, wait_until

SUBNET_PREFIX = "10.123.0."
SLOTS = 16
HOSTS_PER_SLOT = 13
LOCK_DIR = Path("/tmp/agentic-sched-testbed")
SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """\
ListenAddress {address}
Port {port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel ERROR
"""


@dataclass
class SshHost:
    """One sshd worker host. Attributes are what an asyncssh client needs.

    ``address``/``port``: where sshd listens; ``username``: ``root``;
    ``client_key``: private key path accepted by this host; ``known_hosts``: file
    pinning only this host's key (``host_key_pub`` is the public key line).
    """

    name: str
    address: str
    port: int
    username: str
    client_key: Path
    known_hosts: Path
    host_key_pub: str
    netns: str | None
    _dir: Path = field(repr=False)
    _veth: str | None = field(default=None, repr=False)
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def connect_kwargs(self) -> dict:
        """Keyword arguments for ``asyncssh.connect(**host.connect_kwargs())``."""
        return {"host": self.address, "port": self.port, "username": self.username,
                "client_keys": [str(self.client_key)], "known_hosts": str(self.known_hosts)}

    # -- network -----------------------------------------------------------------------
    def cut(self) -> None:
        """Partition the host: its link goes down (new connects time out, open
        sessions stall). In loopback fallback: SIGSTOP the host's processes."""
        if self._veth:
            run(["ip", "link", "set", self._veth, "down"])
        else:
            self._signal_all(signal.SIGSTOP)
            self._stopped = True

    def restore(self) -> None:
        """Undo ``cut()``: link up (or SIGCONT) and wait until sshd answers again."""
        if self._veth:
            run(["ip", "link", "set", self._veth, "up"])
        elif self._stopped:
            self._signal_all(signal.SIGCONT)
            self._stopped = False
        self._wait_listening()

    # -- process -----------------------------------------------------------------------
    def kill(self) -> None:
        """Crash the host: ``kill -9`` sshd and every process it started (sessions)."""
        for pid in self._pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._proc is not None:
            self._proc.wait(timeout=10)
            self._proc = None

    def start(self) -> None:
        """(Re)start sshd if it is not running and wait until it accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            return
        cmd = [SSHD, "-D", "-e", "-f", str(self._dir / "sshd_config")]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        log_file = open(self._dir / "sshd.log", "ab")
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()
        self._wait_listening()

    @property
    def running(self) -> bool:
        """True if this host's sshd process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def ensure_up(self) -> None:
        """Bring the host back to healthy: link up / resumed and sshd running."""
        if self._veth:
            run(["ip", "link", "set", self._veth, "up"])
        elif self._stopped:
            self._signal_all(signal.SIGCONT)
            self._stopped = False
        self.start()

    def _pids(self) -> list[int]:
        if self.netns:
            out = run(["ip", "netns", "pids", self.netns], check=False).stdout
            return [int(p) for p in out.split()]
        if self._proc is None:
            return []
        return [self._proc.pid, *descendants(self._proc.pid)]

    def _signal_all(self, sig: int) -> None:
        for pid in self._pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _wait_listening(self, timeout: float = 15) -> None:
        def banner() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise TestbedError(f"sshd for {self.name} exited {self._proc.returncode}: "
                                   f"{(self._dir / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as s:
                    s.settimeout(1)
                    return s.recv(8).startswith(b"SSH-")
            except OSError:
                return False

        if not wait_until(banner, timeout, interval=0.1):
            raise TestbedError(f"sshd for {self.name} not answering on "
                               f"{self.address}:{self.port} within {timeout} s")


class SshCluster:
    """Owns the bridge, namespaces, keys and sshd processes of one testbed slot.

    ``hosts(n)`` returns the first ``n`` hosts, creating missing ones and bringing every
    returned host back up (link up, sshd running). ``close()`` removes everything and is
    idempotent. Raises ``TestbedError`` when sshd/ssh-keygen are missing.
    """

    def __init__(self, force_loopback: bool = False) -> None:
        for tool in (SSHD, "ssh-keygen"):
            if shutil.which(tool) is None:
                raise TestbedError(f"{tool} not found; run .ci/setup-system.sh as root "
                                   "(apt-get install openssh-server)")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation dir
        self.dir = Path(tempfile.mkdtemp(prefix="agentic-sshd-"))
        self._hosts: list[SshHost] = []
        self.client_key = self.dir / "client_ed25519"
        _keygen(self.client_key)
        self.authorized_keys = self.dir / "authorized_keys"
        shutil.copy(f"{self.client_key}.pub", self.authorized_keys)
        self._lock_file = None
        self.slot: int | None = None
        self.bridge: str | None = None
        if not force_loopback:
            try:
                self._setup_bridge()
            except TestbedError as exc:
                log.warning("network namespaces unavailable (%s); sshd hosts fall back to "
                            "127.0.0.1 ports, cut() uses SIGSTOP", exc)
                self._teardown_network()

    @property
    def uses_netns(self) -> bool:
        """True if hosts live in their own network namespaces."""
        return self.bridge is not None

    def hosts(self, n: int = 2) -> list[SshHost]:
        """The first ``n`` hosts, healthy. At most 13 in namespace mode."""
        if self.uses_netns and n > HOSTS_PER_SLOT:
            raise ValueError(f"at most {HOSTS_PER_SLOT} sshd hosts per testbed")
        while len(self._hosts) < n:
            self._hosts.append(self._new_host(len(self._hosts) + 1))
        for h in self._hosts[:n]:
            h.ensure_up()
        return self._hosts[:n]

    def close(self) -> None:
        """Kill all sshd processes, delete namespaces, veths, bridge and temp files."""
        for h in self._hosts:
            if h._stopped:
                h._signal_all(signal.SIGCONT)
            h.kill()
        self._hosts.clear()
        self._teardown_network()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------
    def _names(self, i: int) -> tuple[str, str, str]:
        k = self.slot
        return f"as{k}h{i}", f"as{k}v{i}", f"as{k}p{i}"

    def _setup_bridge(self) -> None:
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for k in range(SLOTS):
            f = open(LOCK_DIR / f"slot{k}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            self._lock_file, self.slot = f, k
            break
        else:
            raise TestbedError("all testbed network slots are taken")
        self._remove_stale()
        bridge = f"as{self.slot}br"
        run(["ip", "link", "add", bridge, "type", "bridge"])
        self.bridge = bridge
        run(["ip", "addr", "add", f"{self._addr(0)}/28", "dev", bridge])
        run(["ip", "link", "set", bridge, "up"])
        # Probe that namespaces work at all before the first host needs one.
        probe = f"as{self.slot}probe"
        run(["ip", "netns", "add", probe])
        run(["ip", "netns", "del", probe])
        log.info("sshd testbed slot %d: bridge %s %s/28", self.slot, bridge, self._addr(0))

    def _addr(self, i: int) -> str:
        return f"{SUBNET_PREFIX}{16 * self.slot + 1 + i}"

    def _remove_stale(self) -> None:
        """Delete leftovers of a crashed earlier run that held the same slot."""
        prefix = f"as{self.slot}"
        out = run(["ip", "netns", "list"], check=False).stdout
        for line in out.splitlines():
            ns = line.split()[0] if line.split() else ""
            if ns.startswith(prefix + "h") or ns == prefix + "probe":
                for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
                    ok(["kill", "-9", pid])
                ok(["ip", "netns", "del", ns])
        out = run(["ip", "-o", "link", "show"], check=False).stdout
        for line in out.splitlines():
            dev = line.split(":")[1].strip().split("@")[0]
            if dev.startswith(prefix + "v") or dev == prefix + "br":
                ok(["ip", "link", "del", dev])

    def _teardown_network(self) -> None:
        if self.slot is not None:
            self._remove_stale()
        self.bridge = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        self.slot = None

    def _new_host(self, i: int) -> SshHost:
        hdir = self.dir / f"h{i}"
        hdir.mkdir()
        host_key = hdir / "ssh_host_ed25519_key"
        _keygen(host_key)
        pub = Path(f"{host_key}.pub").read_text().split()
        host_key_pub = f"{pub[0]} {pub[1]}"
        if self.uses_netns:
            ns, veth, peer = self._names(i)
            address, port = self._addr(i), 22
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer])
            run(["ip", "link", "set", peer, "netns", ns])
            run(["ip", "link", "set", veth, "master", self.bridge])
            run(["ip", "link", "set", veth, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{address}/28", "dev", peer])
            run(["ip", "-n", ns, "link", "set", peer, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            name = ns
        else:
            ns, veth, address, port, name = None, None, "127.0.0.1", _free_port(), f"lo-h{i}"
        pattern = address if port == 22 else f"[{address}]:{port}"
        known_hosts = hdir / "known_hosts"
        known_hosts.write_text(f"{pattern} {host_key_pub}\n")
        (hdir / "sshd_config").write_text(SSHD_CONFIG.format(
            address=address, port=port, host_key=host_key, pid_file=hdir / "sshd.pid",
            authorized_keys=self.authorized_keys))
        host = SshHost(name=name, address=address, port=port, username="root",
                       client_key=self.client_key, known_hosts=known_hosts,
                       host_key_pub=host_key_pub, netns=ns, _dir=hdir, _veth=veth)
        host.start()
        log.info("sshd host %s on %s:%d", name, address, port)
        return host


def _keygen(path: Path) -> None:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
