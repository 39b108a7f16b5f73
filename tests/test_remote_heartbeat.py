"""psutil heartbeats and host labels from agents on real sshd hosts.

- heartbeats carry cpu %, memory, load and the running attempts; the registry corrects
  its optimistic memory accounting from them and rejects what no longer fits, with a reason;
- hosts report labels (arch, runtime.<name>, gpu_model) that ``requires`` is matched against.
"""

from __future__ import annotations

import platform
import shutil
import sys
import uuid
from pathlib import Path

import anyio
import psutil
import pytest

from agentic_sched._spec import TaskSpec, WorkerSpec
from agentic_sched.executors.ssh import SshExecutor, SshTarget
from agentic_sched.scheduler import Scheduler

pytestmark = pytest.mark.anyio


@pytest.fixture
def one_host(sshd_hosts, tmp_path):
    (host,) = sshd_hosts(1)
    wid = f"{uuid.uuid4().hex[:6]}-hb"
    root = Path("/var/tmp/agentic-sched-tests") / wid
    ex = SshExecutor(known_hosts=str(host.known_hosts), client_keys=[str(host.client_key)], python=sys.executable,
                     targets={wid: SshTarget(host.address, host.port, remote_dir=str(root))})
    yield host, ex, wid
    shutil.rmtree(root, ignore_errors=True)


async def _up(s: Scheduler, wid: str) -> None:
    with anyio.fail_after(30):
        while not any(w.id == wid and w.state == "up" and "mem_available_mb" in w.load for w in s.workers()):
            await anyio.sleep(0.05)


async def test_heartbeats_correct_memory_accounting_and_reject_what_no_longer_fits(one_host, tmp_path):
    host, ex, wid = one_host
    total_mb = psutil.virtual_memory().total >> 20
    # the spec claims 1000x the real memory: optimistic accounting alone would admit anything
    spec = WorkerSpec(id=wid, executor="ssh", address=f"root@{host.address}", heartbeat_timeout_s=4.0,
                      capacity={"cpu": 4, "mem_mb": 1000 * total_mb})
    async with Scheduler(state_dir=str(tmp_path / "s")) as s:
        s.add_executor(ex)
        await s.add_worker(spec)
        await _up(s, wid)
        hog = await s.submit(TaskSpec(id="hog", argv=["true"], demand={"mem_mb": 2 * total_mb}))
        small = await s.submit(TaskSpec(id="small", argv=["sleep", "1"], demand={"mem_mb": 16}))
        with anyio.fail_after(30):
            while s.status(small).state not in ("running", "done"):
                await anyio.sleep(0.05)
            info = next(w for w in s.workers() if w.id == wid)
            while not info.load.get("cpus"):
                await anyio.sleep(0.05)
                info = next(w for w in s.workers() if w.id == wid)
        assert {"cpu_percent", "mem_percent", "mem_available_mb", "loadavg", "cpus"} <= set(info.load)
        assert 0 < info.load["mem_available_mb"] <= total_mb
        assert (await small.wait(timeout=30)).state == "done"
        assert s.status(hog).state == "pending"
        why = s.why_pending(hog)
        print(f"\nheartbeat load: {info.load}\nwhy_pending(hog): {why}")
        assert "mem_mb" in why
        # the registry's own check gives the heartbeat as the reason
        w = s._registry.get(wid)
        reason = w.fits_now({"mem_mb": 2.0 * total_mb}, {})
        assert reason is not None and "per its last heartbeat" in reason and "free" in reason


async def test_hosts_report_labels_that_requires_is_matched_against(one_host, tmp_path, docker_daemon):
    host, ex, wid = one_host
    spec = WorkerSpec(id=wid, executor="ssh", address=f"root@{host.address}", labels={"zone": "lab"},
                      heartbeat_timeout_s=4.0)
    async with Scheduler(state_dir=str(tmp_path / "s")) as s:
        s.add_executor(ex)
        await s.add_worker(spec)
        await _up(s, wid)
        labels = dict(s._registry.get(wid).model.labels)
        assert labels["arch"] == platform.machine() and labels["zone"] == "lab"
        assert labels["runtime.process"] == labels["runtime.docker"] == labels["runtime.vm"] == "yes"
        fits = await s.submit(TaskSpec(argv=["true"], requires={"arch": platform.machine(), "runtime.docker": "yes"}))
        gpu = await s.submit(TaskSpec(argv=["true"], requires={"gpu_model": ["T4", "A10"]}))
        assert (await fits.wait(timeout=30)).state == "done"
        with anyio.fail_after(10):
            while "unschedulable" not in s.why_pending(gpu):
                await anyio.sleep(0.05)
        print(f"\nwhy_pending(gpu task): {s.why_pending(gpu)}")
        assert "gpu_model" in s.why_pending(gpu)
