"""The ``docker`` runtime: one attempt = one container, run through aiodocker.

``job.argv`` is the container's command (never a shell string; the image's entrypoint,
if any, is kept). ``job.options``:

- ``image`` (required): a local image name; a missing image is one ``error`` outcome
  ("docker image 'x' is not present on <worker>"), never a pull.
- ``cpus`` (float, optional): CPU limit, sent as ``HostConfig.NanoCpus``.
- ``memory_mb`` (int, optional): memory limit, ``HostConfig.Memory`` (swap = memory).
- ``network`` (str, default ``"none"``): ``HostConfig.NetworkMode``.

Every container is named ``ags-<worker>-<task>-<attempt>`` (sanitised) and labelled
with ``agentic-sched.worker/.task/.attempt`` so that agents of several workers can
share one dockerd: ``prepare(worker_id)`` (called once when the agent starts) removes
the containers a previous agent *of the same worker* left behind, and nothing else.
stdout/stderr are collected after the container ends into
``<log_dir>/<task>.<attempt>.out|err`` (paths returned in the outcome, as the
``process`` runtime does); the container is always removed afterwards.
Timeout and cancel kill the container (statuses ``timeout``/``cancelled``); a preempt
(``job.preempt``) stops it (``docker stop -t grace_s``: SIGTERM, then SIGKILL) and the
agent reports ``preempted``. The task's checkpoint directory (``job.checkpoint_dir``)
is bind-mounted at ``/checkpoint`` with ``$AGSCHED_CHECKPOINT_DIR=/checkpoint``.

Imports only the standard library and aiodocker (shipped to remote hosts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

try:
    import aiodocker
    from aiodocker.exceptions import DockerError
except ImportError:  # pragma: no cover - the agent then simply does not offer docker
    aiodocker = None  # type: ignore[assignment, unused-ignore]
    DockerError = Exception  # type: ignore[assignment, misc, unused-ignore]

if __package__:
    from .runtimes import Job, Outcome, race
else:  # run from a copied agents/ directory
    from runtimes import Job, Outcome, race  # type: ignore[no-redef]

LABEL = "agentic-sched"
WORKER_LABEL = f"{LABEL}.worker"
CHECKPOINT_MOUNT = "/checkpoint"
DEFAULT_URL = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def container_name(worker: str, task: str, attempt: int) -> str:
    """``ags-<worker>-<task>-<attempt>``, only characters docker accepts, at most 200."""
    raw = f"ags-{worker}-{task}-{attempt}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", raw)[:200]


class DockerRuntime:
    """Runs an attempt as a container (see the module docstring for ``options``)."""

    name = "docker"

    def __init__(self, url: str | None = None) -> None:
        self.url = url or DEFAULT_URL
        self.worker = os.environ.get("AGENTIC_WORKER_ID") or socket.gethostname()
        self._docker: Any = None

    # ------------------------------------------------------------------ lifecycle
    def _client(self) -> Any:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self.url)
        return self._docker

    async def prepare(self, worker_id: str) -> bool:
        """Called once at agent start: check dockerd answers, remove this worker's
        orphans. Returns False (runtime not offered) when docker is unusable."""
        self.worker = worker_id
        if aiodocker is None:
            return False
        try:
            await self._client().version()
            await self.remove_orphans()
        except (TimeoutError, DockerError, OSError) as exc:
            print(f"agent: docker runtime unavailable at {self.url}: {exc}", flush=True, file=sys.stderr)
            await self.close()
            return False
        return True

    async def remove_orphans(self) -> list[str]:
        """Force-remove every container labelled with this worker; returns their names."""
        flt = json.dumps({"label": [f"{WORKER_LABEL}={self.worker}"]})
        removed = []
        for c in await self._client().containers.list(all=True, filters=flt):
            with contextlib.suppress(DockerError):
                await c.delete(force=True)
                removed.append((c._container.get("Names") or [c.id])[0].lstrip("/"))
        return removed

    async def close(self) -> None:
        if self._docker is not None:
            with contextlib.suppress(Exception):
                await self._docker.close()
            self._docker = None

    # ------------------------------------------------------------------ one attempt
    def config(self, job: Job) -> dict[str, Any]:
        """The container create config for ``job`` (raises ValueError on bad options)."""
        opts = job.options
        image = opts.get("image")
        if not isinstance(image, str) or not image:
            raise ValueError("options.image: a docker task needs an image name")
        host: dict[str, Any] = {"NetworkMode": str(opts.get("network", "none"))}
        if opts.get("cpus") is not None:
            cpus = float(opts["cpus"])
            if cpus <= 0:
                raise ValueError(f"options.cpus: must be > 0, got {cpus}")
            host["NanoCpus"] = int(cpus * 1e9)
        if opts.get("memory_mb") is not None:
            mem = int(opts["memory_mb"])
            if mem < 6:
                raise ValueError(f"options.memory_mb: docker needs at least 6 MB, got {mem}")
            host["Memory"] = mem << 20
            host["MemorySwap"] = mem << 20
        env = {**job.env, "AGENTIC_TASK_ID": job.task, "AGENTIC_ATTEMPT": str(job.attempt)}
        if getattr(job, "checkpoint_dir", None):
            host["Binds"] = [f"{job.checkpoint_dir}:{CHECKPOINT_MOUNT}"]
            env["AGSCHED_CHECKPOINT_DIR"] = CHECKPOINT_MOUNT
        cfg: dict[str, Any] = {
            "Image": image, "Cmd": list(job.argv), "Env": [f"{k}={v}" for k, v in env.items()],
            "AttachStdout": False, "AttachStderr": False, "Tty": False, "HostConfig": host,
            "Labels": {WORKER_LABEL: self.worker, f"{LABEL}.task": job.task,
                       f"{LABEL}.attempt": str(job.attempt)},
        }
        if job.cwd:
            cfg["WorkingDir"] = job.cwd
        return cfg

    async def run(self, job: Job, started: Callable[[int | None], None], cancel: asyncio.Event) -> Outcome:
        if aiodocker is None:
            return Outcome("error", None, 0.0, "aiodocker is not installed on this host")
        try:
            cfg = self.config(job)
        except (TypeError, ValueError) as exc:
            return Outcome("error", None, 0.0, f"docker: {exc}")
        name = container_name(self.worker, job.task, job.attempt)
        docker = self._client()
        t0 = time.monotonic()
        with contextlib.suppress(DockerError):  # a leftover of this very attempt (agent restart)
            await docker.containers.container(name).delete(force=True)
        try:
            container = await docker.containers.create(cfg, name=name)
        except DockerError as exc:
            if exc.status == 404:
                reason = f"docker image {cfg['Image']!r} is not present on worker {self.worker} (no pull is attempted)"
            else:
                reason = f"docker create failed: {exc.message}"
            return Outcome("error", None, time.monotonic() - t0, reason)
        except OSError as exc:
            return Outcome("error", None, time.monotonic() - t0, f"dockerd unreachable at {self.url}: {exc}")
        try:
            return await self._run_container(container, job, started, cancel, t0)
        finally:
            with contextlib.suppress(DockerError, OSError):
                await container.delete(force=True)

    async def _run_container(self, container: Any, job: Job, started: Callable[[int | None], None],
                             cancel: asyncio.Event, t0: float) -> Outcome:
        try:
            await container.start()
        except DockerError as exc:
            return Outcome("error", None, time.monotonic() - t0, f"docker start failed: {exc.message}")
        started(None)
        waiter = asyncio.ensure_future(container.wait(timeout=None))
        stopped = await race(waiter, cancel, job)
        status, reason = "succeeded", ""
        if stopped is not None:
            status, reason = stopped
            preempt = job.preempt if status == "preempted" else None
            with contextlib.suppress(DockerError):
                if preempt is not None:  # SIGTERM, grace to checkpoint, then SIGKILL
                    await container.stop(t=max(0, math.ceil(float(preempt.get("grace_s", 10)))))
                else:
                    await container.kill()
        try:
            code = int((await waiter).get("StatusCode", -1))
        except DockerError as exc:
            code, status, reason = None, "error", f"docker wait failed: {exc.message}"
        runtime_s = time.monotonic() - t0
        out_path, err_path = await self._collect_logs(container, job)
        if status == "succeeded" and code != 0:
            info = await container.show()
            oom = info.get("State", {}).get("OOMKilled")
            status = "failed"
            reason = "killed: out of memory (options.memory_mb)" if oom else f"exited with code {code}"
        return Outcome(status, code, runtime_s, reason, out_path, err_path)

    async def _collect_logs(self, container: Any, job: Job) -> tuple[str, str]:
        os.makedirs(job.log_dir, exist_ok=True)
        stem = os.path.join(job.log_dir, f"{_safe(job.task)}.{job.attempt}")
        paths = (stem + ".out", stem + ".err")
        for path, which in zip(paths, ("stdout", "stderr"), strict=True):
            try:
                chunks = await container.log(**{which: True})
            except DockerError as exc:
                chunks = [f"<logs unavailable: {exc.message}>\n"]
            with open(path, "w") as f:
                f.write("".join(chunks))
        return paths


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]
