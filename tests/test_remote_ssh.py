"""Remote workers end to end: the Scheduler drives agents on real sshd hosts (network
namespaces), which run processes, Docker containers (real dockerd) and a QEMU guest
(real libvirtd). No mocks; numbers are printed (``-s``), never asserted against time.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import aiodocker
import anyio
import asyncssh
import attrs
import pytest
from counter_task import counter, steps_done
from proc_util import alive
from testbed import BUSYBOX_IMAGE

from agentic_sched._errors import RemoteError
from agentic_sched._spec import TaskSpec, WorkerSpec
from agentic_sched.executors import provision as prov
from agentic_sched.executors.ssh import SshExecutor, SshTarget
from agentic_sched.scheduler import Scheduler

pytestmark = pytest.mark.anyio

REMOTE_ROOT = Path("/var/tmp/agentic-sched-tests")


@pytest.fixture
def cluster(sshd_hosts, tmp_path):
    """(hosts, executor, worker specs): 3 sshd hosts, one SshExecutor, unique worker ids."""
    hosts = sshd_hosts(3)
    tag = uuid.uuid4().hex[:6]
    root = REMOTE_ROOT / tag
    known = tmp_path / "known_hosts"
    known.write_text("".join(h.known_hosts.read_text() for h in hosts))
    ids = [f"{tag}-h{i}" for i in range(len(hosts))]
    ex = SshExecutor(known_hosts=str(known), client_keys=[str(hosts[0].client_key)], python=sys.executable,
                     lease_s=1.5,  # so heartbeat_timeout_s=3 is safe (fast tests)
                     targets={wid: SshTarget(h.address, h.port, remote_dir=str(root / wid))
                              for wid, h in zip(ids, hosts, strict=True)})
    specs = [WorkerSpec(id=wid, executor="ssh", address=f"root@{h.address}:{h.port}", capacity={"cpu": 4},
                        max_concurrency=6, heartbeat_timeout_s=ex.min_heartbeat_timeout_s()) for wid, h in zip(ids, hosts, strict=True)]
    yield hosts, ex, specs
    shutil.rmtree(root, ignore_errors=True)


async def _inspect_containers(workers: set[str], seen: dict[str, dict]) -> None:
    """Record ``docker inspect`` of every container of ``workers`` while they exist."""
    async with aiodocker.Docker() as docker:
        while True:
            for c in await docker.containers.list(filters='{"label": ["agentic-sched.task"]}'):
                labels = c._container.get("Labels", {})
                if labels.get("agentic-sched.worker") in workers and labels["agentic-sched.task"] not in seen:
                    try:
                        seen[labels["agentic-sched.task"]] = await c.show()
                    except aiodocker.DockerError:
                        pass  # removed between list and inspect
            await anyio.sleep(0.05)


async def test_thirty_tasks_on_three_ssh_hosts_processes_containers_and_a_vm(cluster, docker_daemon,
                                                                            libvirt_qemu, tmp_path):
    hosts, ex, specs = cluster
    address = {s.id: h.address for s, h in zip(specs, hosts, strict=True)}
    procs = [TaskSpec(id=f"p{i}", argv=["sh", "-c", f"echo proc {i} on $(hostname -I)"], duration=0.3)
             for i in range(20)]
    boxes = [TaskSpec(id=f"d{i}", runtime="docker", argv=["sh", "-c", f"sleep 0.6; echo box {i}; echo warn >&2"],
                      options={"image": BUSYBOX_IMAGE, "cpus": 0.5, "memory_mb": 48}, duration=1.0)
             for i in range(9)]
    vm = TaskSpec(id="vm0", runtime="vm", argv=["sh", "-c", "echo guest $(uname -r); exit 7"], duration=15,
                  timeout=120, options={"kernel": str(libvirt_qemu.kernel), "initrd": str(libvirt_qemu.initrd)})
    inspected: dict[str, dict] = {}
    async with Scheduler(state_dir=str(tmp_path / "sched")) as s, anyio.create_task_group() as tg:
        s.add_executor(ex)
        tg.start_soon(_inspect_containers, {sp.id for sp in specs}, inspected)
        t0 = time.monotonic()
        for sp in specs:
            await s.add_worker(sp)
        handles = await s.submit_many([vm, *boxes, *procs])
        results = {st.id: st for st in await s.wait(handles, timeout=150)}
        elapsed = time.monotonic() - t0
        tg.cancel_scope.cancel()
        vm_st = results["vm0"]
        print(f"\nvm0 started at +{vm_st.started - vm_st.submitted:.1f}s, ran {vm_st.runtime_s:.1f}s; last other task "
              f"finished at +{max(st.finished for st in results.values() if st.id != 'vm0') - vm_st.submitted:.1f}s")
        print(f"\n30 tasks on 3 ssh hosts: {elapsed:.1f}s (incl. connect+provision); provisioning "
              + ", ".join(f"{w}: {p.seconds * 1000:.0f}ms uploaded={p.uploaded}" for w, p in ex.provisioned.items()))
        assert all(p.uploaded for p in ex.provisioned.values()) and len(ex.provisioned) == 3
        assert ex.agent_versions == {sp.id: prov.agent_version() for sp in specs}
        assert {st.id: st.state for st in results.values() if st.id != "vm0"} == {t.id: "done" for t in procs + boxes}
        assert len({st.worker for st in results.values()}) >= 2, "work is spread over hosts"
        for t in procs:  # logs come back over SFTP; the process ran on its worker's host
            st = results[t.id]
            out = (await s.logs(t.id)).decode()
            assert out.startswith(f"proc {t.id[1:]} on ") and address[st.worker] in out
        for t in boxes:
            st = results[t.id]
            assert (await s.logs(t.id)) == f"box {t.id[1:]}\n".encode()
            assert (await s.logs(t.id, "stderr")) == b"warn\n"
            host_config = inspected[t.id]["HostConfig"]
            assert host_config["NanoCpus"] == 500_000_000 and host_config["Memory"] == 48 << 20
            assert host_config["NetworkMode"] == "none"
        st = results["vm0"]
        assert st.state == "failed" and st.exit_code == 7 and "in the guest" in st.reason
        assert (await s.logs("vm0")).decode().startswith("guest 6.")
    async with aiodocker.Docker() as docker:  # every container was removed afterwards
        left = await docker.containers.list(all=True, filters='{"label": ["agentic-sched.worker"]}')
        ours = {sp.id for sp in specs}
        assert not [c for c in left if c._container["Labels"]["agentic-sched.worker"] in ours]


async def test_cut_and_killed_hosts_are_detected_and_no_task_runs_twice(cluster, tmp_path):
    hosts, ex, specs = cluster
    specs = [attrs.evolve(sp, max_concurrency=4) for sp in specs]  # 12 tasks fill all 3 hosts
    marks = tmp_path / "marks"
    marks.mkdir()
    script = f'touch {marks}/$AGENTIC_TASK_ID.$AGENTIC_ATTEMPT.start; sleep 5; echo $AGENTIC_ATTEMPT >> {marks}/$AGENTIC_TASK_ID.done'
    tasks = [TaskSpec(id=f"c{i}", argv=["sh", "-c", script], duration=5, max_attempts=3) for i in range(12)]
    cut, killed = hosts[0], hosts[1]
    async with Scheduler(state_dir=str(tmp_path / "sched")) as s:
        s.add_executor(ex)
        events = s.subscribe()
        for sp in specs:
            await s.add_worker(sp)
        handles = await s.submit_many(tasks)
        with anyio.fail_after(60):  # wait until both victims run attempts
            while not all(any(st.worker == sp.id and st.state == "running" for st in s.list())
                          for sp in specs[:2]):
                await anyio.sleep(0.05)
        victims = {st.id for st in s.list() if st.worker in (specs[0].id, specs[1].id)}
        t_cut = time.monotonic()
        cut.cut()
        t_kill = time.monotonic()
        killed.kill()
        lost_after: dict[str, float] = {}
        with anyio.fail_after(30):
            async for ev in events:
                if ev.kind == "worker_lost":
                    lost_after[ev.worker] = time.monotonic() - (t_cut if ev.worker == specs[0].id else t_kill)
                    if len(lost_after) == 2:
                        break
        print(f"\nloss detected after cut: {lost_after[specs[0].id]:.2f}s, after kill: {lost_after[specs[1].id]:.2f}s")
        results = await s.wait(handles, timeout=90)
        assert all(st.state == "done" for st in results), [(st.id, st.state, st.reason) for st in results]
        assert all(st.worker == specs[2].id or st.id not in victims for st in results)
        assert all(st.attempt >= 2 for st in results if st.id in victims)
        # the hosts come back; their agents report the old attempts, which are fenced
        cut.restore()
        killed.start()
        await s.add_worker(specs[0])
        await s.add_worker(specs[1])
        with anyio.fail_after(30):
            while {w.id: w.state for w in s.workers()} != {sp.id: "up" for sp in specs}:
                await anyio.sleep(0.05)
        await anyio.sleep(3)  # time for late reports and runs, if any were left
        for t in tasks:
            done = (marks / f"{t.id}.done").read_text().split()
            assert len(done) == 1, f"{t.id} completed {len(done)} times (attempts {done})"
            assert done == [str(s.status(t.id).attempt)]
        assert all(st.state == "done" for st in s.list())


async def test_bad_host_key_unknown_user_missing_image_and_bad_template_each_one_clear_error(
        cluster, sshd_hosts, docker_daemon, tmp_path):
    hosts, ex, specs = cluster
    good = specs[2]
    bad_key = WorkerSpec(id=good.id + "-key", executor="ssh", address=f"root@{hosts[0].address}:{hosts[0].port}")
    bad_user = WorkerSpec(id=good.id + "-user", executor="ssh", address=f"nosuchuser@{hosts[1].address}:{hosts[1].port}")
    ex.targets[bad_key.id] = SshTarget(hosts[0].address, hosts[0].port, known_hosts=str(hosts[1].known_hosts))
    async with Scheduler(state_dir=str(tmp_path / "sched")) as s:
        s.add_executor(ex)
        for sp in (bad_key, bad_user, good):
            await s.add_worker(sp)
        image = await s.submit(TaskSpec(runtime="docker", argv=["true"], options={"image": "agentic-sched/missing:0"}))
        template = await s.submit(TaskSpec(runtime="vm", argv=["true"], options={
            "template": "<domain type='qemu'><name>$name</name><memory>$memory</memory></domain>",
            "kernel": "/nonexistent", "initrd": "/nonexistent"}))
        fine = await s.submit(TaskSpec(argv=["echo", "still scheduling"]))
        st_image, st_template, st_fine = await s.wait([image, template, fine], timeout=60)
        assert st_fine.state == "done" and st_fine.worker == good.id
        assert st_image.state == "failed"
        assert "docker image 'agentic-sched/missing:0' is not present" in st_image.reason
        assert st_template.state == "failed" and "vm template: unknown placeholder $memory" in st_template.reason
        with anyio.fail_after(20):
            while not all("cannot connect" in w.reason for w in s.workers() if w.id != good.id):
                await anyio.sleep(0.05)
        reasons = {w.id: w.reason for w in s.workers()}
        print("\n" + "\n".join(f"{k}: {v}" for k, v in reasons.items()))
        assert "does not match" in reasons[bad_key.id] and "refusing to connect" in reasons[bad_key.id]
        assert "authentication as nosuchuser@" in reasons[bad_user.id]
        assert {w.id: w.state for w in s.workers()}[good.id] == "up"
        again = await s.submit(TaskSpec(argv=["true"]))
        assert (await again.wait(timeout=30)).state == "done"  # the scheduler kept running


async def test_executor_refuses_unknown_host_and_backs_off(cluster, tmp_path):
    hosts, ex, specs = cluster
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    ex.targets[specs[0].id] = SshTarget(hosts[0].address, hosts[0].port, known_hosts=str(empty))
    with pytest.raises(RemoteError, match="unknown or changed key"):
        await ex.open(specs[0])
    t0 = time.monotonic()
    with pytest.raises(RemoteError):
        await ex.open(specs[0])  # the second attempt waits for its backoff first
    assert ex._failures[specs[0].id][0] == 2
    print(f"\nbackoff before the 2nd attempt: {time.monotonic() - t0:.2f}s")


async def test_provisioning_is_idempotent_and_versioned(cluster, monkeypatch):
    hosts, ex, specs = cluster
    remote = ex.target(specs[0]).remote_dir
    async with await ex.connect(specs[0]) as conn:
        first = await prov.provision(conn, remote)
        second = await prov.provision(conn, remote)
        print(f"\nprovisioning: first {first.seconds * 1000:.0f}ms (upload), second {second.seconds * 1000:.0f}ms")
        assert first.uploaded and not second.uploaded and first.path == second.path
        listing = (await conn.run(f"ls -A {first.path}", check=True)).stdout.split()
        assert sorted(listing) == sorted([name for name, _ in prov.agent_bundle()] + [".complete"])
        assert {"agent.py", "protocol.py", "journal.py", "runtimes.py", "relay.py", "runtime_docker.py",
                "runtime_vm.py"} <= set(listing)
        bundle = prov.agent_bundle()
        changed = tuple((n, d + b"\n# changed\n" if n == "agent.py" else d) for n, d in bundle)
        monkeypatch.setattr(prov, "agent_bundle", lambda: changed)
        third = await prov.provision(conn, remote)
        assert third.uploaded and third.version != first.version and third.path != first.path
        await conn.run(f"test -f {first.path}/.complete", check=True)  # old version left alone


def test_ssh_addresses_parse():
    assert SshTarget.parse("10.0.0.1") == SshTarget("10.0.0.1", 22, None)
    assert SshTarget.parse("bob@h:2222") == SshTarget("h", 2222, "bob")
    assert SshTarget.parse("[::1]:22").host == "::1"
    with pytest.raises(ValueError):
        SshTarget.parse("a b")
    assert isinstance(asyncssh.Error, type)


async def test_a_hung_agent_is_fenced_by_the_executor_and_its_attempt_rerun(cluster, tmp_path):
    hosts, ex, specs = cluster
    a, b = specs[0], specs[1]
    marks = tmp_path / "marks"
    marks.mkdir()
    script = f"echo $AGENTIC_ATTEMPT >> {marks}/t.start; sleep 8; echo $AGENTIC_ATTEMPT >> {marks}/t.done"
    async with Scheduler(state_dir=str(tmp_path / "sched")) as s:
        s.add_executor(ex)
        events = s.subscribe()
        await s.add_worker(a)
        task = await s.submit(TaskSpec(id="t", argv=["sh", "-c", script], duration=8))
        with anyio.fail_after(30):
            while s.status(task).state != "running":
                await anyio.sleep(0.05)
        await s.add_worker(b)
        pid = int((Path(ex.state_dir(a)) / "agent.pid").read_text())
        os.kill(pid, signal.SIGSTOP)  # the agent hangs: no heartbeats, no reaction to SIGTERM
        try:
            with anyio.fail_after(30):
                async for ev in events:
                    if ev.kind == "worker_lost" and ev.worker == a.id:
                        break
            t_lost = time.monotonic()
            with anyio.fail_after(20):  # fence: SIGTERM, then SIGKILL 0.5 s later
                while alive(pid):
                    await anyio.sleep(0.02)
            print(f"\nhung agent killed {time.monotonic() - t_lost:.2f}s after worker_lost")
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        st = await task.wait(timeout=60)
        assert st.state == "done" and st.worker == b.id and st.attempt == 2
    assert (marks / "t.start").read_text().split() == ["1", "2"]
    assert (marks / "t.done").read_text().split() == ["2"]  # attempt 1 died with its agent


async def test_a_restarted_scheduler_picks_up_attempts_still_running_on_ssh_hosts(cluster, tmp_path):
    hosts, ex, specs = cluster
    marks = tmp_path / "marks"
    marks.mkdir()
    script = f"echo $AGENTIC_ATTEMPT >> {marks}/r.start; sleep 3; echo $AGENTIC_ATTEMPT >> {marks}/r.done"
    state = str(tmp_path / "sched")
    async with Scheduler(state_dir=state, stop_agents_on_exit=False) as s:
        s.add_executor(ex)
        await s.add_worker(specs[0])
        task = await s.submit(TaskSpec(id="r", argv=["sh", "-c", script], duration=3))
        with anyio.fail_after(30):
            while s.status(task).state != "running":
                await anyio.sleep(0.05)
    # the scheduler is gone (its sessions closed); a new one with a new executor takes over
    again = SshExecutor(known_hosts=ex.known_hosts, client_keys=ex.client_keys, targets=ex.targets,
                        python=sys.executable, lease_s=ex.lease_s)
    s2 = Scheduler(state_dir=state)
    s2.add_executor(again)  # before entering: restored ssh workers reconnect at once
    async with s2:
        st = (await s2.wait(["r"], timeout=60))[0]
        assert st.state == "done" and st.attempt == 1 and st.worker == specs[0].id
    assert (marks / "r.start").read_text().split() == ["1"]  # not re-run: the agent kept it
    assert (marks / "r.done").read_text().split() == ["1"]


async def test_a_preempted_task_resumes_on_another_host_from_a_shared_checkpoint_root(cluster, tmp_path):
    """The testbed's hosts share this machine's filesystem, as hosts share NFS: with
    ``checkpoint_root`` on it, a task preempted on one host resumes on another."""
    hosts, ex, specs = cluster
    shared = tmp_path / "shared-checkpoints"
    ex = SshExecutor(known_hosts=ex.known_hosts, client_keys=ex.client_keys, python=sys.executable, lease_s=1.5,
                     targets=ex.targets, checkpoint_root=str(shared))
    a, b = (attrs.evolve(sp, capacity={"cpu": 1}, max_concurrency=1) for sp in specs[:2])
    async with Scheduler(state_dir=str(tmp_path / "sched"), preempt_grace_s=5.0) as s:
        s.add_executor(ex)
        await s.add_worker(a)
        await s.add_worker(b)
        blocker = await s.submit(TaskSpec(id="blocker", argv=["sleep", "3"], duration=3, priority=2))
        with anyio.fail_after(60):
            while s.status(blocker).state != "running":
                await anyio.sleep(0.05)
        first = s.status(blocker).worker
        low = await s.submit(counter(tmp_path, "low", 40, 0.1, priority=1, preemptible=True))
        await steps_done(tmp_path, "low", 5)
        assert s.status(low).worker != first
        high = await s.submit(TaskSpec(id="high", argv=["sleep", "6"], duration=6, priority=10))
        st_high, st_low = await s.wait([high, low], timeout=120)
    assert st_high.state == st_low.state == "done" and st_low.preemptions == 1
    assert st_low.worker == first, "resumed on the host the blocker left, not where it was preempted"
    assert [int(x) for x in (tmp_path / "low.effects").read_text().split()] == list(range(40))
    attempts = [line.split() for line in (tmp_path / "low.effects.attempts").read_text().splitlines()]
    assert attempts[0] == ["1", "0"] and attempts[1][0] == "2" and int(attempts[1][1]) >= 5
    assert not (shared / "low").exists(), "the checkpoint goes with the finished task"
