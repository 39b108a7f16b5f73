"""The real-daemon testbed works: sshd hosts, dockerd + busybox image, libvirt + guest.

These also serve as runnable examples for the SSH, Docker and libvirt executor tests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
import xml.etree.ElementTree as ET

import aiodocker
import asyncssh
import libvirt
import pytest
from testbed import BUSYBOX_IMAGE, TestbedError, parse_console

# --------------------------------------------------------------------------- sshd ----


async def _run(host, command: str, **kwargs) -> asyncssh.SSHCompletedProcess:
    options = {**host.connect_kwargs(), "connect_timeout": 10, **kwargs}
    async with asyncssh.connect(**options) as conn:
        return await conn.run(command, check=True, timeout=20)


def test_ssh_each_host_runs_echo_with_pinned_key(sshd_hosts):
    hosts = sshd_hosts(3)
    assert len({h.address + str(h.port) for h in hosts}) == 3
    for host in hosts:
        result = asyncio.run(_run(host, "echo hi"))
        assert result.stdout == "hi\n"
    async def sftp_roundtrip() -> bytes:
        async with asyncssh.connect(**hosts[0].connect_kwargs(), connect_timeout=10) as conn:
            async with conn.start_sftp_client() as sftp:
                path = f"/tmp/agentic-testbed-{uuid.uuid4().hex[:8]}"
                async with sftp.open(path, "wb") as f:
                    await f.write(b"payload")
                try:
                    return (await conn.run(f"cat {path}", check=True, encoding=None)).stdout
                finally:
                    await sftp.remove(path)

    assert asyncio.run(sftp_roundtrip()) == b"payload"  # SFTP works (agent upload)
    if sshd_hosts.cluster.uses_netns:
        # Each host sees only its own namespace address.
        addrs = asyncio.run(_run(hosts[0], "ip -4 -o addr show")).stdout
        assert hosts[0].address in addrs
        assert hosts[1].address not in addrs


def test_ssh_host_key_of_another_host_is_refused(sshd_hosts):
    h1, h2 = sshd_hosts(2)
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_run(h1, "true", known_hosts=str(h2.known_hosts)))


def test_ssh_unknown_host_is_refused(sshd_hosts, tmp_path):
    (h1,) = sshd_hosts(1)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_run(h1, "true", known_hosts=str(empty)))


def test_ssh_cut_makes_connect_time_out_and_restore_heals(sshd_hosts):
    (host,) = sshd_hosts(1)

    async def stalled_session_then_new_connect() -> None:
        async with asyncssh.connect(**host.connect_kwargs(), connect_timeout=10) as conn:
            host.cut()
            try:
                # An open session stalls (no RST, no data) while the host is cut off.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(conn.run("echo late", check=True), 2)
                # New connects do not get through either.
                with pytest.raises((TimeoutError, OSError)):
                    await asyncssh.connect(**host.connect_kwargs(), connect_timeout=2)
            finally:
                host.restore()

    asyncio.run(stalled_session_then_new_connect())
    assert asyncio.run(_run(host, "echo back")).stdout == "back\n"


def test_ssh_kill_drops_sessions_and_start_revives(sshd_hosts):
    (host,) = sshd_hosts(1)

    async def killed_under_open_session() -> None:
        async with asyncssh.connect(**host.connect_kwargs(), connect_timeout=10) as conn:
            proc = await conn.create_process("sleep 30")
            host.kill()
            # The connection is lost (sshd and the session died), the command never exits.
            await asyncio.wait_for(conn.wait_closed(), 10)
            result = await asyncio.wait_for(proc.wait(), 10)
            assert result.exit_status is None
        with pytest.raises((OSError, asyncssh.Error)):
            await asyncssh.connect(**host.connect_kwargs(), connect_timeout=3)

    asyncio.run(killed_under_open_session())
    assert not host.running
    host.start()
    assert asyncio.run(_run(host, "echo again")).stdout == "again\n"


# ------------------------------------------------------------------------- docker ----


def test_docker_busybox_container_with_limits(docker_daemon):
    name = f"agentic-testbed-{uuid.uuid4().hex[:8]}"
    limits = {"NanoCpus": 500_000_000, "Memory": 64 * 1024 * 1024}
    script = ("echo hello; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max "
              "/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max "
              "2>/dev/null; ls /sys/class/net")

    async def run_container() -> tuple[dict, str, dict]:
        async with aiodocker.Docker(url=docker_daemon) as docker:
            container = await docker.containers.create(
                {"Image": BUSYBOX_IMAGE, "Cmd": ["sh", "-c", script],
                 "Labels": {"agentic-sched.test": "testbed"},
                 "HostConfig": {**limits, "NetworkMode": "none"}},
                name=name)
            try:
                await container.start()
                status = await container.wait(timeout=60)
                logs = "".join(await container.log(stdout=True, stderr=True))
                cli = json.loads(subprocess.run(["docker", "inspect", name], check=True,
                                                capture_output=True, text=True).stdout)[0]
                return status, logs, cli
            finally:
                await container.delete(force=True)

    status, logs, inspected = asyncio.run(run_container())
    assert status["StatusCode"] == 0, logs
    lines = logs.split()
    assert lines[0] == "hello"
    assert "50000" in lines  # cgroup v1 quota, or "50000 100000" in v2's cpu.max
    assert str(64 * 1024 * 1024) in lines
    assert lines[-1] == "lo"  # network_mode none: loopback only
    host_config = inspected["HostConfig"]
    assert host_config["NanoCpus"] == limits["NanoCpus"]
    assert host_config["Memory"] == limits["Memory"]
    assert host_config["NetworkMode"] == "none"


# ------------------------------------------------------------------------ libvirt ----


def test_libvirt_test_driver_needs_no_daemon():
    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByName("test")
        assert dom.isActive()
        assert "test" in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


def test_guest_domain_xml_is_well_formed(libvirt_qemu, tmp_path):
    xml = libvirt_qemu.domain_xml("agentic-xml", "echo 42", tmp_path / "console.log")
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.findtext("os/kernel") == str(libvirt_qemu.kernel)
    assert "agentic_cmd=" in root.findtext("os/cmdline")
    assert root.find("devices/interface") is None
    assert root.find("devices/serial").get("type") == "file"


def test_parse_console_decodes_protocol_and_rejects_garbage():
    raw = (b"[    0.1] boot noise\r\nAGENTIC-BEGIN\r\nAGENTIC-STDOUT NDIK\r\n"
           b"AGENTIC-STDERR \r\nAGENTIC-EXIT 3\r\n")
    result = parse_console(raw)
    assert (result.stdout, result.stderr, result.exit_code) == (b"42\n", b"", 3)
    with pytest.raises(TestbedError):
        parse_console(b"Kernel panic - not syncing")


@pytest.mark.slow
def test_qemu_guest_boots_under_libvirt_and_returns_output(libvirt_qemu):
    conn = libvirt.open(libvirt_qemu.uri)
    try:
        result = libvirt_qemu.run(conn, "echo 42; echo oops >&2; exit 7", timeout=180)
    finally:
        conn.close()
    assert result.stdout == b"42\n"
    assert result.stderr == b"oops\n"
    assert result.exit_code == 7


def test_ssh_loopback_fallback_cut_and_kill():
    """The no-namespace fallback (127.0.0.1 ports, SIGSTOP as cut) behaves the same."""
    from testbed import SshCluster

    cluster = SshCluster(force_loopback=True)
    try:
        (host,) = cluster.hosts(1)
        assert host.address == "127.0.0.1" and host.port != 22
        assert asyncio.run(_run(host, "echo hi")).stdout == "hi\n"
        host.cut()
        with pytest.raises((TimeoutError, OSError)):
            asyncio.run(_run(host, "true", connect_timeout=2))
        host.restore()
        host.kill()
        with pytest.raises(OSError):
            asyncio.run(_run(host, "true", connect_timeout=2))
        (host,) = cluster.hosts(1)  # brings it back up
        assert asyncio.run(_run(host, "echo again")).stdout == "again\n"
    finally:
        cluster.close()
