"""A tiny bootable QEMU guest for libvirt tests: Debian kernel + busybox initrd.

The guest has no disk and no NIC. Its ``/init`` reads one shell command from the kernel
command line (``agentic_cmd=<base64>``), runs it with ``sh -c``, prints the base64 of its
stdout and stderr and its exit code between markers on the serial console
(``ttyS0``), then powers off. Domains are ``type='qemu'`` (TCG): KVM is not usable here.

Console protocol (lines, ``\\r`` stripped)::

    AGENTIC-BEGIN
    AGENTIC-STDOUT <base64 of stdout, may be empty>
    AGENTIC-STDERR <base64 of stderr, may be empty>
    AGENTIC-EXIT <exit code>

``parse_console`` decodes it. The command line is limited by the kernel to ~2 KiB, so
keep commands under ~1.4 KiB of text.
"""

from __future__ import annotations

import base64
import os
import shutil
import string
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# The guest protocol is the product's (the agent's vm runtime boots the same guest):
# /init script, domain XML template ($name $memory_mib $vcpus $kernel $initrd $cmdline
# $console_log, fill it with ``GuestKit.domain_xml``) and base kernel command line.
from agentic_sched.agents import runtime_vm as _runtime_vm
from agentic_sched.agents import vm_guest as _vm_guest
from agentic_sched.agents.runtime_vm import BASE_CMDLINE
from agentic_sched.agents.runtime_vm import DOMAIN_TEMPLATE as DOMAIN_XML_TEMPLATE

from ._proc import TestbedError, log, ok, run, wait_until

#: Where kernels and initrds are cached. Not under /root: qemu runs as libvirt-qemu
#: and must be able to traverse the path.
CACHE_ROOT = _vm_guest.CACHE_ROOT
QEMU_URI = "qemu:///system"


@dataclass(frozen=True)
class GuestResult:
    """What a guest command produced: decoded stdout/stderr bytes and its exit code."""

    stdout: bytes
    stderr: bytes
    exit_code: int


@dataclass(frozen=True)
class GuestKit:
    """Paths of a cached guest kernel + initrd and helpers to boot commands in it.

    ``kernel`` and ``initrd`` are world-readable files under ``CACHE_ROOT``;
    ``kernel_version`` is the Debian package version they came from.
    """

    kernel: Path
    initrd: Path
    kernel_version: str
    uri: str = QEMU_URI
    template: str = field(default=DOMAIN_XML_TEMPLATE, repr=False)

    def cmdline(self, command: str) -> str:
        """Kernel command line that makes ``/init`` run ``command``."""
        return f"{BASE_CMDLINE} agentic_cmd={base64.b64encode(command.encode()).decode()}"

    def domain_xml(self, name: str, command: str, console_log: str | Path,
                   memory_mib: int = 256, vcpus: int = 1) -> str:
        """Domain XML for a guest named ``name`` that runs ``command`` and powers off.

        ``console_log`` must be in a directory libvirt-qemu can traverse (e.g. a
        ``tempfile.mkdtemp`` dir chmod 0o755, not under /root).
        """
        cmdline = self.cmdline(command)
        if len(cmdline) > 2000:
            raise ValueError(f"command too long for the kernel command line ({len(cmdline)} chars)")
        return string.Template(self.template).substitute(
            name=name, memory_mib=memory_mib, vcpus=vcpus, kernel=self.kernel,
            initrd=self.initrd, cmdline=cmdline, console_log=console_log)

    def run(self, conn, command: str, *, name: str | None = None, timeout: float = 120,
            memory_mib: int = 256) -> GuestResult:
        """Define, boot and wait for a guest running ``command``; undefine it afterwards.

        ``conn`` is an open ``libvirt.virConnect`` (``qemu:///system``). Blocking; takes
        ~5-10 s under TCG. Raises ``TestbedError`` on timeout (the domain is destroyed)
        or if the console shows no result.
        """
        name = name or f"agentic-test-{os.getpid()}-{time.monotonic_ns()}"
        workdir = Path(tempfile.mkdtemp(prefix="agentic-vm-"))
        workdir.chmod(0o755)
        console = workdir / "console.log"
        dom = conn.defineXML(self.domain_xml(name, command, console, memory_mib=memory_mib))
        try:
            dom.create()
            if not wait_until(lambda: not dom.isActive(), timeout, interval=0.2):
                dom.destroy()
                raise TestbedError(f"guest {name} did not power off within {timeout} s; "
                                   f"console: {_tail(console)}")
            return parse_console(console.read_bytes())
        finally:
            try:
                if dom.isActive():
                    dom.destroy()
            finally:
                dom.undefine()
                shutil.rmtree(workdir, ignore_errors=True)


def parse_console(raw: bytes) -> GuestResult:
    """Decode the console protocol in ``raw`` (the product's parser); ``TestbedError`` if absent."""
    try:
        return GuestResult(*_runtime_vm.parse_console(raw))
    except ValueError as exc:
        raise TestbedError(str(exc)) from None


def ensure_libvirtd(uri: str = QEMU_URI, timeout: float = 30) -> None:
    """Make ``virsh -c uri list`` work: fix /dev/kvm perms, start virtlogd and libvirtd.

    Raises ``TestbedError`` if the daemons are missing or do not answer in time.
    """
    if os.path.exists("/dev/kvm"):
        # Without this every libvirt call takes seconds (ENVIRONMENT.md).
        ok(["chgrp", "kvm", "/dev/kvm"])
        ok(["chmod", "660", "/dev/kvm"])
    if ok(["virsh", "-c", uri, "list"]):
        return
    for daemon in ("virtlogd", "libvirtd"):
        if shutil.which(daemon) is None:
            raise TestbedError(f"{daemon} not installed; run .ci/setup-system.sh as root")
        if not ok(["pgrep", "-x", daemon]):
            log.info("starting %s -d", daemon)
            run([daemon, "-d"])
    if not wait_until(lambda: ok(["virsh", "-c", uri, "list"]), timeout, interval=0.5):
        raise TestbedError(f"libvirtd did not answer on {uri} within {timeout} s")


def build_guest(cache_root: Path = CACHE_ROOT) -> GuestKit:
    """A cached ``GuestKit``, built first if needed by the product's builder
    (``agents/vm_guest.py``: ~5 s, one download); ``TestbedError`` if it cannot."""
    try:
        kernel, initrd, version = _vm_guest.build_guest(cache_root)
    except _vm_guest.GuestBuildError as exc:
        raise TestbedError(f"{exc} (.ci/setup-system.sh installs what the guest needs)") from None
    return GuestKit(kernel, initrd, version)


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError as exc:
        return f"<{exc}>"
