"""The embedded Scheduler end to end on the local executor (real agents, real processes)."""

from __future__ import annotations

import time

import anyio
import pytest
from proc_util import alive

from agentic_sched._errors import InvalidProblem, RemoteError, UnknownTask, UnknownWorker
from agentic_sched._spec import TaskSpec
from agentic_sched.planners import GREEDY
from agentic_sched.scheduler import Scheduler

pytestmark = pytest.mark.anyio


def sh(script: str, **kw) -> TaskSpec:
    return TaskSpec(argv=["/bin/sh", "-c", script], duration=0.2, **kw)


async def test_tasks_run_with_output_exit_codes_and_env(tmp_path):
    async with Scheduler(state_dir=str(tmp_path)) as s:
        await s.add_worker(id="w1", capacity={"cpu": 2}, max_concurrency=4)
        ok = await s.submit(sh('echo "out $GREETING"; echo err >&2', env={"GREETING": "hi"}, cwd=str(tmp_path)))
        bad = await s.submit(sh("exit 3"))
        noop = await s.submit(TaskSpec(runtime="noop"))
        done, failed, n = await s.wait([ok, bad, noop], timeout=30)
        assert done.state == "done" and done.exit_code == 0 and done.worker == "w1"
        assert open(done.stdout).read() == "out hi\n" and open(done.stderr).read() == "err\n"
        assert await s.logs(ok) == b"out hi\n" and await s.logs(ok, "stderr", max_bytes=2) == b"r\n"
        with pytest.raises(ValueError, match="stdout' or 'stderr"):
            await s.logs(ok, "stdin")
        pending = await s.submit(TaskSpec(argv=["true"], demand={"cpu": 99}))
        with pytest.raises(RemoteError, match="no stdout log yet"):
            await s.logs(pending)
        assert failed.state == "failed" and failed.exit_code == 3 and "code 3" in failed.reason
        assert n.state == "done"
        assert s.counts()["done"] == 2 and s.counts()["failed"] == 1


async def test_timeout_and_cancel_kill_the_process_group(tmp_path):
    marker = tmp_path / "child.pid"
    async with Scheduler(state_dir=str(tmp_path)) as s:
        await s.add_worker(id="w1", capacity={"cpu": 2})
        slow = await s.submit(sh("sleep 30", timeout=0.5))
        # the task forks a grandchild; cancel must kill it too (process group)
        victim = await s.submit(sh(f"sleep 30 & echo $! > {marker}; wait"))
        st = await slow.wait(timeout=30)
        assert st.state == "failed" and "timeout" in st.reason
        with anyio.fail_after(20):
            while s.status(victim).state != "running" or not marker.exists():
                await anyio.sleep(0.05)
        cancelled = await victim.cancel()
        assert cancelled.state == "cancelled"
        grandchild = int(marker.read_text())
        with anyio.fail_after(20):
            while alive(grandchild):
                await anyio.sleep(0.05)


async def test_invalid_specs_and_unknown_ids_are_clear_errors(tmp_path):
    async with Scheduler(state_dir=str(tmp_path)) as s:
        cases = [
            (TaskSpec(argv=[]), "task.argv"),
            (TaskSpec(argv=["x"], demand={"cpu": -1}), "task.demand.cpu"),
            (TaskSpec(argv=["x"], duration=0), "task.duration"),
            (TaskSpec(argv=["x"], runtime="podman"), "task.runtime"),
            (TaskSpec(argv=["x"], cwd="relative/dir"), "task.cwd"),
            (TaskSpec(argv=["x"], timeout=-1), "task.timeout"),
            (TaskSpec(argv=["x"], gpu={"count": 2, "share": 300}), "task.gpu.share"),
            (TaskSpec(argv=["x"], env={"A": 1}), "task.env.A"),
            (TaskSpec(argv=["x"], demand={"task_slots": 1}), "task.demand.task_slots"),
            ({"argv": "echo hi"}, "task.argv"),
            ({"argv": ["x"], "colour": "red"}, "task.colour"),
        ]
        for spec, path in cases:
            with pytest.raises(InvalidProblem) as err:
                await s.submit(spec)
            assert err.value.path == path, (spec, str(err.value))
        await s.submit(TaskSpec(argv=["true"], id="same"))
        assert (await s.submit(TaskSpec(argv=["true"], id="same"))).id == "same"   # idempotent
        with pytest.raises(InvalidProblem, match="different spec"):
            await s.submit(TaskSpec(argv=["false"], id="same"))
        with pytest.raises(UnknownTask):
            s.status("nope")
        with pytest.raises(UnknownWorker):
            await s.drain_worker("nope")
        with pytest.raises(InvalidProblem):
            await s.add_worker(id="w/1")
        assert s.counts()["pending"] == 1  # nothing accepted was lost, the scheduler still runs


async def test_why_pending_preview_and_events(tmp_path):
    async with Scheduler(state_dir=str(tmp_path)) as s:
        events = s.subscribe()
        never = await s.submit(sh("true", requires={"gpu_model": "V100"}))
        with anyio.fail_after(10):
            while "waiting for batch" in s.why_pending(never) or "no worker" not in s.why_pending(never):
                await anyio.sleep(0.02)
        await s.add_worker(id="w1", capacity={"cpu": 1}, labels={"gpu_model": "T4"})
        with anyio.fail_after(10):
            while "unschedulable" not in s.why_pending(never):
                await anyio.sleep(0.02)
        assert "0/1 workers" in s.why_pending(never) and "gpu_model" in s.why_pending(never)
        preview = await s.plan_preview()
        assert [u.task for u in preview.unassigned] == [never.id]
        assert s.status(never).state == "pending" and s.status(never).attempt == 0  # nothing committed
        runs = await s.submit(sh("true", demand={"cpu": 1}))
        await runs.wait(timeout=30)
        kinds = []
        async for ev in events:
            if ev.task == runs.id:
                kinds.append(ev.kind)
            if ev.kind == "finished" and ev.task == runs.id:
                break
        assert kinds == ["submitted", "reserved", "started", "finished"]
        assert b"agentic_sched_placements_total 1.0" in s.metrics.exposition()


async def test_delayed_release_and_concurrency_limit(tmp_path):
    log = tmp_path / "log"
    async with Scheduler(state_dir=str(tmp_path)) as s:
        await s.add_worker(id="w1", capacity={"cpu": 8}, max_concurrency=2)
        later = await s.submit(TaskSpec(runtime="noop", release=0.6))
        hs = [await s.submit(sh(f"echo start >> {log}; sleep 0.3; echo end >> {log}")) for _ in range(4)]
        await s.wait(hs, timeout=30)
        st = await later.wait(timeout=30)
        assert st.started >= st.submitted + 0.6 - 1e-6
        depth = peak = 0
        for line in log.read_text().split():
            depth += 1 if line == "start" else -1
            peak = max(peak, depth)
        assert peak <= 2


async def test_planner_failure_falls_back_to_greedy(tmp_path):
    class Broken:
        name = "broken"

        def plan(self, problem, budget_s=None):
            raise RuntimeError("boom")

    async with Scheduler(state_dir=str(tmp_path), planner=Broken(), planner_max_failures=2,
                         dispatch_first=False) as s:  # every task goes through the planner
        await s.add_worker(id="w1")
        sub = s.subscribe()
        h = await s.submit(TaskSpec(runtime="noop"))
        assert (await h.wait(timeout=30)).state == "done"
        async for ev in sub:
            if ev.kind == "planner_fallback":
                assert "boom" in ev.reason
                break
        assert b'agentic_sched_planner_fallbacks_total{reason="error"} 1.0' in s.metrics.exposition()
        assert s.last_plan is not None and s.last_plan.status == "fallback"


async def test_restart_keeps_accepted_tasks(tmp_path):
    async with Scheduler(state_dir=str(tmp_path)) as s:
        ids = [(await s.submit(TaskSpec(runtime="noop", deadline=30))).id for _ in range(5)]
    async with Scheduler(state_dir=str(tmp_path)) as s:
        assert [t.id for t in s.list("pending")] == ids
        await s.add_worker(id="w1")
        assert all(st.state == "done" for st in await s.wait(ids, timeout=30))
    async with Scheduler(state_dir=str(tmp_path)) as s:
        assert {t.state for t in s.list()} == {"done"} and len(s.list()) == 5
        assert [w.state for w in s.workers()] == ["connecting"] or s.workers()[0].id == "w1"


async def test_metrics_endpoint_on_loopback(tmp_path):
    import urllib.request

    async with Scheduler(state_dir=str(tmp_path), metrics_port=0) as s:
        await s.add_worker(id="w1")
        await (await s.submit(TaskSpec(runtime="noop"))).wait(timeout=30)
        url = f"http://127.0.0.1:{s.metrics_port}/metrics"
        body = await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        for name in ("agentic_sched_queue_depth", "agentic_sched_placements_total", "agentic_sched_plan_latency_seconds",
                     "agentic_sched_planner_fallbacks_total", "agentic_sched_workers", "agentic_sched_task_outcomes_total"):
            assert name in body
        assert 'agentic_sched_task_outcomes_total{outcome="done"} 1.0' in body


async def test_a_task_whose_deadline_cannot_be_met_still_runs(tmp_path):
    # its estimate makes it 600 s late (lateness cost 1200 > the contract's unassigned
    # penalty 1000): a one-shot plan may leave it out, the runtime must not starve it
    async with Scheduler(state_dir=str(tmp_path), planner="portfolio", plan_budget_s=0.3) as s:
        assert s.config.weights.unassigned >= 1e6
        await s.add_worker(id="w1", capacity={"cpu": 1}, max_concurrency=1)
        h = await s.submit(TaskSpec(argv=["true"], duration=600, deadline=0.001))
        assert (await h.wait(timeout=30)).state == "done"


async def test_dispatch_first_starts_what_fits_while_the_planner_thinks(tmp_path):
    order: list[str] = []

    class Slow:  # a planner that takes 2 s per round
        name = "slow"

        def plan(self, problem, budget_s=None):
            time.sleep(2.0)
            order.append(f"planner returned ({len(problem.tasks)} tasks)")
            return GREEDY["eft"].plan(problem)

    async with Scheduler(state_dir=str(tmp_path), planner=Slow(), plan_budget_s=3.0) as s:
        await s.add_worker(id="w1", capacity={"cpu": 1}, max_concurrency=1)
        events = s.subscribe()
        first = await s.submit(sh("sleep 0.5", id="first", demand={"cpu": 1}))
        second = await s.submit(sh("true", id="second", demand={"cpu": 1}))
        async for ev in events:
            if ev.kind == "started":
                order.append(f"started {ev.task}")
                if ev.task == "second":
                    break
        assert [st.state for st in await s.wait([first, second], timeout=30)] == ["done", "done"]
    # "first" fits now: started by the EFT fast path; only "second" (no room now) was planned
    assert order[0] == "started first" and "planner returned (1 tasks)" in order, order
    assert order.index("planner returned (1 tasks)") < order.index("started second")

