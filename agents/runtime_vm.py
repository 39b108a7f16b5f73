"""The ``vm`` runtime: one attempt = one transient libvirt domain that runs the command.

The guest is a kernel + initrd whose ``/init`` (``INIT_SCRIPT``) reads the command from
the kernel command line (``agentic_cmd=<base64>``), runs it with ``sh -c``, prints its
result on the serial console and powers off. Console protocol (lines, ``\\r`` stripped)::

    AGENTIC-BEGIN
    AGENTIC-STDOUT <base64 of stdout>
    AGENTIC-STDERR <base64 of stderr>
    AGENTIC-EXIT <exit code>

``job.argv`` is quoted into that command (``shlex.join``; ``job.env`` through ``env``);
the kernel limits it to ~1.4 KB. ``job.options``:

- ``kernel``, ``initrd``: guest files on the worker host, readable by the hypervisor
  user (default: ``$AGENTIC_VM_KERNEL`` / ``$AGENTIC_VM_INITRD``);
- ``uri`` (default ``qemu:///system``; ``test:///default`` exercises the libvirt path
  without booting anything), ``memory_mib`` (256), ``vcpus`` (1);
- ``template``: domain XML with ``string.Template`` placeholders ``$name $memory_mib
  $vcpus $kernel $initrd $cmdline $console_log`` (default ``DOMAIN_TEMPLATE``, TCG).

A bad template (unknown placeholder, XML libvirt refuses) is one ``error`` outcome that
says which. The domain is named ``ags-<worker>-<task>-<attempt>``, tagged with this
worker in its metadata, destroyed and undefined after the run whatever happens;
``prepare(worker_id)`` removes domains a previous agent of the same worker left.
Blocking libvirt calls run in threads. Imports only the standard library and libvirt.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shlex
import shutil
import socket
import string
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import quoteattr

try:
    import libvirt
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
except ImportError:  # pragma: no cover - the agent then does not offer vm
    libvirt = None  # type: ignore[assignment, unused-ignore]

if __package__:
    from .runtimes import Job, Outcome, race
else:  # run from a copied agents/ directory
    from runtimes import Job, Outcome, race  # type: ignore[no-redef]

DEFAULT_URI = os.environ.get("AGENTIC_VM_URI", "qemu:///system")
RUN_ROOT = os.environ.get("AGENTIC_VM_RUN_ROOT", "/var/tmp/agentic-sched/vm-runs")
META_URI = "https://agentic-sched.invalid/vm/1"
BASE_CMDLINE = "console=ttyS0 quiet loglevel=0 panic=-1 rdinit=/init"
MAX_CMDLINE = 2000

INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo 0 > /proc/sys/kernel/printk
exec </dev/null >/dev/console 2>&1
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp
cmd=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^agentic_cmd=//p' | base64 -d)
cd /tmp
sh -c "$cmd" >/tmp/.stdout 2>/tmp/.stderr
rc=$?
echo
echo "AGENTIC-BEGIN"
echo "AGENTIC-STDOUT $(base64 -w0 /tmp/.stdout)"
echo "AGENTIC-STDERR $(base64 -w0 /tmp/.stderr)"
echo "AGENTIC-EXIT $rc"
sync
poweroff -f
"""

DOMAIN_TEMPLATE = """\
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>$memory_mib</memory>
  <vcpu>$vcpus</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel>
    <initrd>$initrd</initrd>
    <cmdline>$cmdline</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'>
      <source path='$console_log'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class TemplateError(ValueError):
    """The domain template cannot be filled or is refused by libvirt."""


def guest_cmdline(command: str) -> str:
    """Kernel command line that makes the guest's ``/init`` run ``command``."""
    line = f"{BASE_CMDLINE} agentic_cmd={base64.b64encode(command.encode()).decode()}"
    if len(line) > MAX_CMDLINE:
        raise ValueError(f"command too long for the kernel command line ({len(line)} > {MAX_CMDLINE} chars)")
    return line


def render(template: str, **values: Any) -> str:
    """Fill ``template``; raises ``TemplateError`` naming a bad or missing placeholder."""
    try:
        return string.Template(template).substitute(**values)
    except KeyError as exc:
        raise TemplateError(f"vm template: unknown placeholder ${exc.args[0]} "
                            f"(known: {', '.join('$' + k for k in sorted(values))})") from None
    except ValueError as exc:
        raise TemplateError(f"vm template: {exc}") from None


def parse_console(raw: bytes) -> tuple[bytes, bytes, int]:
    """(stdout, stderr, exit code) from a guest console; ValueError if no result on it."""
    text = raw.decode(errors="replace").replace("\r", "")
    m = re.search(r"^AGENTIC-BEGIN\n"
                  r"AGENTIC-STDOUT ?([A-Za-z0-9+/=]*)\n"
                  r"AGENTIC-STDERR ?([A-Za-z0-9+/=]*)\n"
                  r"AGENTIC-EXIT (\d+)$", text, re.M)
    if not m:
        raise ValueError(f"no AGENTIC result on the guest console; tail: {text[-500:]!r}")
    return base64.b64decode(m[1]), base64.b64decode(m[2]), int(m[3])


def domain_name(worker: str, task: str, attempt: int) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"ags-{worker}-{task}-{attempt}")[:200]


class VmRuntime:
    """Runs an attempt in a transient libvirt domain (see the module docstring)."""

    name = "vm"
    poll_s = 0.2

    def __init__(self) -> None:
        self.worker = os.environ.get("AGENTIC_WORKER_ID") or socket.gethostname()

    async def prepare(self, worker_id: str) -> bool:
        """At agent start: remove this worker's leftover domains on the default URI.
        Returns False (runtime not offered) when libvirt-python is missing or the default
        URI (``$AGENTIC_VM_URI``, else ``qemu:///system``) does not answer."""
        self.worker = worker_id
        if libvirt is None:
            return False
        try:
            await asyncio.to_thread(self.remove_orphans, DEFAULT_URI)
        except libvirt.libvirtError as exc:
            print(f"agent: vm runtime unavailable: {DEFAULT_URI}: {exc.get_error_message()}", file=sys.stderr)
            return False
        return True

    def remove_orphans(self, uri: str) -> list[str]:
        """Destroy + undefine domains tagged with this worker on ``uri`` (blocking)."""
        conn = libvirt.open(uri)
        removed = []
        try:
            for dom in conn.listAllDomains():
                if not dom.name().startswith("ags-") or _owner(dom) != self.worker:
                    continue
                _teardown(dom)
                removed.append(dom.name())
        finally:
            conn.close()
        return removed

    async def run(self, job: Job, started: Callable[[int | None], None], cancel: asyncio.Event) -> Outcome:
        if libvirt is None:
            return Outcome("error", None, 0.0, "libvirt-python is not installed on this host")
        t0 = time.monotonic()
        stop = threading.Event()
        loop = asyncio.get_running_loop()

        def on_started() -> None:
            loop.call_soon_threadsafe(started, None)

        worker = asyncio.ensure_future(asyncio.to_thread(self._run_blocking, job, on_started, stop))
        stopped = await race(worker, cancel, job)
        if stopped is not None:
            stop.set()
        try:
            code, out, err, reason = await worker
        except Exception as exc:  # noqa: BLE001 - one clear error outcome per failure
            return Outcome("error", None, time.monotonic() - t0, str(exc))
        runtime_s = time.monotonic() - t0
        if stopped is not None:
            return Outcome(stopped[0], None, runtime_s, stopped[1])
        paths = _write_logs(job, out, err)
        if code is None:
            return Outcome("error", None, runtime_s, reason, *paths)
        return Outcome("succeeded" if code == 0 else "failed", code, runtime_s,
                       "" if code == 0 else f"exited with code {code} in the guest", *paths)

    # ------------------------------------------------------------------ blocking part
    def _run_blocking(self, job: Job, on_started: Callable[[], None],
                      stop: threading.Event) -> tuple[int | None, bytes, bytes, str]:
        """Define, boot, wait, tear down. Returns (exit code or None, stdout, stderr, reason)."""
        opts = job.options
        uri = str(opts.get("uri", DEFAULT_URI))
        name = domain_name(self.worker, job.task, job.attempt)
        argv = list(job.argv)
        if job.env:
            argv = ["env", *(f"{k}={v}" for k, v in job.env.items()), *argv]
        cmdline = guest_cmdline(shlex.join(argv))
        kernel = opts.get("kernel") or os.environ.get("AGENTIC_VM_KERNEL")
        initrd = opts.get("initrd") or os.environ.get("AGENTIC_VM_INITRD")
        if not kernel or not initrd:
            raise ValueError("vm: options.kernel and options.initrd (or $AGENTIC_VM_KERNEL/INITRD) are required")
        os.makedirs(RUN_ROOT, mode=0o755, exist_ok=True)
        workdir = tempfile.mkdtemp(prefix=name[:60] + ".", dir=RUN_ROOT)
        os.chmod(workdir, 0o755)
        console = os.path.join(workdir, "console.log")
        xml = render(str(opts.get("template", DOMAIN_TEMPLATE)), name=name,
                     memory_mib=int(opts.get("memory_mib", 256)), vcpus=int(opts.get("vcpus", 1)),
                     kernel=kernel, initrd=initrd, cmdline=cmdline, console_log=console)
        conn = libvirt.open(uri)
        try:
            with contextlib.suppress(libvirt.libvirtError):  # a leftover of this very attempt
                _teardown(conn.lookupByName(name))
            try:
                dom = conn.defineXML(xml)
            except libvirt.libvirtError as exc:
                raise TemplateError(f"vm template rejected by libvirt ({uri}): {exc.get_error_message()}") from None
            try:
                with contextlib.suppress(libvirt.libvirtError):
                    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                                    f"<run worker={quoteattr(self.worker)} task={quoteattr(job.task)} "
                                    f"attempt='{job.attempt}'/>", "ags", META_URI,
                                    libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                try:
                    dom.create()
                except libvirt.libvirtError as exc:
                    raise TemplateError(f"vm could not boot ({uri}): {exc.get_error_message()}") from None
                on_started()
                while dom.isActive() and not stop.wait(self.poll_s):
                    pass
                if stop.is_set():
                    return None, b"", b"", "stopped"
                raw = _read(console)
                try:
                    out, err, code = parse_console(raw)
                except ValueError as exc:
                    return None, raw, b"", f"vm powered off without a result: {exc}"
                return code, out, err, ""
            finally:
                _teardown(dom)
        finally:
            conn.close()
            shutil.rmtree(workdir, ignore_errors=True)


def _owner(dom: Any) -> str | None:
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, META_URI, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError:
        return None
    m = re.search(r"worker=(['\"])(.*?)\1", xml)
    return m[2] if m else None


def _teardown(dom: Any) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        dom.undefine()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return f"<console unavailable: {exc}>".encode()


def _write_logs(job: Job, out: bytes, err: bytes) -> tuple[str, str]:
    os.makedirs(job.log_dir, exist_ok=True)
    stem = os.path.join(job.log_dir, "".join(c if c.isalnum() or c in "-_." else "_" for c in job.task)[:120])
    paths = (f"{stem}.{job.attempt}.out", f"{stem}.{job.attempt}.err")
    for path, data in zip(paths, (out, err), strict=True):
        with open(path, "wb") as f:
            f.write(data)
    return paths


if __name__ == "__main__":  # pragma: no cover - print the guest /init for image builders
    sys.stdout.write(INIT_SCRIPT)
