"""The agent's docker runtime against the real dockerd: limits, logs, errors, cleanup."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiodocker
import pytest
from agentic_sched.agents.runtime_docker import WORKER_LABEL, DockerRuntime, container_name
from agentic_sched.agents.runtimes import Job
from testbed import BUSYBOX_IMAGE


@pytest.fixture
def runtime(docker_daemon):
    rt = DockerRuntime(docker_daemon)
    assert asyncio.run(_prepare(rt, f"w-{uuid.uuid4().hex[:6]}"))
    return rt


async def _prepare(rt: DockerRuntime, worker: str) -> bool:
    ok = await rt.prepare(worker)
    await rt.close()  # each asyncio.run gets its own client
    return ok


async def _run(rt: DockerRuntime, job: Job, cancel: asyncio.Event | None = None, on_start=None):
    try:
        return await rt.run(job, on_start or (lambda pid: None), cancel or asyncio.Event())
    finally:
        await rt.close()


def test_container_gets_argv_env_limits_no_network_and_logs(runtime, tmp_path):
    seen = {}

    async def scenario():
        job = Job("t1", 1, ["sh", "-c", "sleep 0.5; echo out $GREETING $AGENTIC_TASK_ID; echo err >&2; exit 4"],
                  env={"GREETING": "hi"}, timeout_s=30, log_dir=str(tmp_path),
                  options={"image": BUSYBOX_IMAGE, "cpus": 0.25, "memory_mb": 32})
        name = container_name(runtime.worker, "t1", 1)

        async def inspect_while_running() -> None:
            async with aiodocker.Docker() as docker:
                while "info" not in seen:
                    try:
                        seen["info"] = await docker.containers.container(name).show()
                    except aiodocker.DockerError:
                        await asyncio.sleep(0.02)

        spy = asyncio.ensure_future(inspect_while_running())
        out = await _run(runtime, job)
        await asyncio.wait_for(spy, 5)
        return out

    out = asyncio.run(scenario())
    assert out.status == "failed" and out.exit_code == 4 and "code 4" in out.reason
    assert open(out.stdout).read() == "out hi t1\n" and open(out.stderr).read() == "err\n"
    host = seen["info"]["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["NetworkMode"]) == (250_000_000, 32 << 20, "none")
    assert seen["info"]["Config"]["Labels"][WORKER_LABEL] == runtime.worker
    assert _containers(runtime.worker) == []  # removed afterwards


def test_missing_image_is_one_clear_error(runtime, tmp_path):
    job = Job("t2", 1, ["true"], log_dir=str(tmp_path), options={"image": "agentic-sched/absent:1"})
    out = asyncio.run(_run(runtime, job))
    assert out.status == "error"
    assert out.reason == (f"docker image 'agentic-sched/absent:1' is not present on worker {runtime.worker} "
                          "(no pull is attempted)")
    bad = asyncio.run(_run(runtime, Job("t3", 1, ["true"], log_dir=str(tmp_path), options={})))
    assert bad.status == "error" and "options.image" in bad.reason


def test_timeout_and_cancel_kill_and_remove_the_container(runtime, tmp_path):
    slow = Job("t4", 1, ["sleep", "30"], timeout_s=0.5, log_dir=str(tmp_path), options={"image": BUSYBOX_IMAGE})
    out = asyncio.run(_run(runtime, slow))
    assert out.status == "timeout" and "timed out" in out.reason

    async def cancelled():
        cancel = asyncio.Event()
        job = Job("t5", 1, ["sleep", "30"], log_dir=str(tmp_path), options={"image": BUSYBOX_IMAGE})
        return await _run(runtime, job, cancel, on_start=lambda pid: cancel.set())

    out = asyncio.run(cancelled())
    assert out.status == "cancelled"
    assert _containers(runtime.worker) == []


def test_prepare_removes_only_this_workers_orphans(docker_daemon):
    mine, other = f"w-{uuid.uuid4().hex[:6]}", f"w-{uuid.uuid4().hex[:6]}"

    async def scenario():
        async with aiodocker.Docker() as docker:
            for worker in (mine, other):
                await docker.containers.create(
                    {"Image": BUSYBOX_IMAGE, "Cmd": ["sleep", "30"], "Labels": {WORKER_LABEL: worker},
                     "HostConfig": {"NetworkMode": "none"}}, name=container_name(worker, "orphan", 1))
        assert await _prepare(DockerRuntime(docker_daemon), mine)

    asyncio.run(scenario())
    try:
        assert _containers(mine) == []
        assert _containers(other) == [container_name(other, "orphan", 1)]
    finally:
        asyncio.run(_prepare(DockerRuntime(docker_daemon), other))
    assert _containers(other) == []


def test_prepare_reports_unusable_docker():
    assert asyncio.run(_prepare(DockerRuntime("unix:///nonexistent/docker.sock"), "w")) is False


def _containers(worker: str) -> list[str]:
    async def names():
        async with aiodocker.Docker() as docker:
            found = await docker.containers.list(all=True, filters=json.dumps({"label": [f"{WORKER_LABEL}={worker}"]}))
            return [c._container["Names"][0].lstrip("/") for c in found]

    return asyncio.run(names())
