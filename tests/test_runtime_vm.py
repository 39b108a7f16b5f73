"""The agent's vm runtime on libvirt: ``test:///default`` for the fast code paths and
``qemu:///system`` (real libvirtd) for orphan cleanup. The real TCG guest boot runs in
``test_remote_ssh.py`` (a vm task through the SSH executor)."""

from __future__ import annotations

import asyncio
import uuid

import libvirt
import pytest
from agentic_sched.agents.runtime_vm import (
    DOMAIN_TEMPLATE,
    META_URI,
    VmRuntime,
    domain_name,
    guest_cmdline,
    parse_console,
)
from agentic_sched.agents.runtimes import Job

TEST_URI = "test:///default"


def _job(task: str, **options) -> Job:
    opts = {"uri": TEST_URI, "kernel": "/boot/none", "initrd": "/boot/none", **options}
    return Job(task, 1, ["sh", "-c", "echo 'quoted arg'"], env={"A": "b c"}, timeout_s=0.5, options=opts)


def _run(rt: VmRuntime, job: Job, cancel: asyncio.Event | None = None):
    starts: list[int | None] = []
    out = asyncio.run(rt.run(job, starts.append, cancel or asyncio.Event()))
    return out, starts


@pytest.fixture
def rt():
    r = VmRuntime()
    r.worker = f"w-{uuid.uuid4().hex[:6]}"
    return r


def test_domain_is_defined_booted_and_removed_after_a_timeout(rt, tmp_path):
    conn = libvirt.open(TEST_URI)  # keeps the test driver's state alive between calls
    try:
        before = {d.name() for d in conn.listAllDomains()}
        job = _job("t1")
        job.log_dir = str(tmp_path)
        out, starts = _run(rt, job)
        assert out.status == "timeout" and starts == [None]  # it did boot (started was called)
        assert {d.name() for d in conn.listAllDomains()} == before  # destroyed and undefined
    finally:
        conn.close()


def test_bad_templates_are_one_clear_error_each(rt):
    out, starts = _run(rt, _job("t2", template=DOMAIN_TEMPLATE.replace("$vcpus", "$cpus")))
    assert out.status == "error" and starts == []
    assert out.reason.startswith("vm template: unknown placeholder $cpus (known: $cmdline, ")
    out, _ = _run(rt, _job("t3", template="<domain type='test'><memory>1</memory></domain>"))
    assert out.status == "error" and out.reason.startswith("vm template rejected by libvirt (test:///default): ")
    out, _ = _run(rt, _job("t4", template="<domain"))
    assert out.status == "error" and "vm template rejected by libvirt" in out.reason
    out, _ = _run(rt, Job("t5", 1, ["true"], options={"uri": TEST_URI}))
    assert out.status == "error" and "options.kernel and options.initrd" in out.reason


def test_cancel_stops_the_domain(rt):
    cancel = asyncio.Event()
    job = _job("t6", uri=TEST_URI)
    job.timeout_s = None
    out = asyncio.run(rt.run(job, lambda pid: cancel.set(), cancel))
    assert out.status == "cancelled"


def test_console_protocol_and_command_line():
    raw = b"boot noise\r\nAGENTIC-BEGIN\r\nAGENTIC-STDOUT aGkK\r\nAGENTIC-STDERR \r\nAGENTIC-EXIT 3\r\n"
    assert parse_console(raw) == (b"hi\n", b"", 3)
    with pytest.raises(ValueError, match="no AGENTIC result"):
        parse_console(b"kernel panic")
    assert "agentic_cmd=" in guest_cmdline("echo hi")
    with pytest.raises(ValueError, match="too long"):
        guest_cmdline("x" * 3000)
    assert domain_name("w/1", "t 1", 2) == "ags-w_1-t_1-2"


def test_prepare_removes_only_this_workers_leftover_domains(libvirt_qemu):
    mine, other = VmRuntime(), VmRuntime()
    mine.worker, other.worker = f"w-{uuid.uuid4().hex[:6]}", f"w-{uuid.uuid4().hex[:6]}"
    conn = libvirt.open(libvirt_qemu.uri)
    try:
        names = []
        for r in (mine, other):
            name = domain_name(r.worker, "orphan", 1)
            dom = conn.defineXML(libvirt_qemu.domain_xml(name, "true", "/dev/null"))
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, f"<run worker='{r.worker}'/>", "ags", META_URI,
                            libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            names.append(name)
        assert asyncio.run(mine.prepare(mine.worker))
        left = {d.name() for d in conn.listAllDomains()}
        assert names[0] not in left and names[1] in left
        assert other.remove_orphans(libvirt_qemu.uri) == [names[1]]
    finally:
        for name in names:
            try:
                conn.lookupByName(name).undefine()
            except libvirt.libvirtError:
                pass
        conn.close()


def test_prepare_does_not_offer_vm_without_a_hypervisor(monkeypatch):
    from agentic_sched.agents import runtime_vm

    monkeypatch.setattr(runtime_vm, "DEFAULT_URI", "qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    assert asyncio.run(VmRuntime().prepare("w")) is False


def test_vm_guest_cli_prints_the_cached_guest(libvirt_qemu):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "agentic_sched.cli", "vm-guest", "--cache",
                          str(libvirt_qemu.kernel.parent.parent)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"AGENTIC_VM_KERNEL={libvirt_qemu.kernel}",
                                       f"AGENTIC_VM_INITRD={libvirt_qemu.initrd}"]


def test_vm_guest_build_names_what_is_missing(monkeypatch, tmp_path):
    from agentic_sched.agents import vm_guest

    monkeypatch.setattr(vm_guest, "BUSYBOX", tmp_path / "no-busybox")
    with pytest.raises(vm_guest.GuestBuildError, match="no-busybox missing: install busybox-static"):
        vm_guest.build_guest(tmp_path / "cache")
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-cache, no apt-get
    with pytest.raises(vm_guest.GuestBuildError, match="apt-get is not installed"):
        vm_guest.kernel_package()
