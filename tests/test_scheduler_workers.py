"""Workers: a killed agent is detected as lost and its tasks finish elsewhere, once;
bad messages from an agent are ignored with a reason and the scheduler keeps going."""

from __future__ import annotations

import collections

import anyio
import pytest
from agentic_sched.agents import protocol
from scripted_agent import ScriptedAgentBase

from agentic_sched._spec import TaskSpec
from agentic_sched.scheduler import Scheduler

pytestmark = pytest.mark.anyio


async def test_killed_worker_is_lost_and_its_tasks_finish_elsewhere_once(tmp_path):
    effects = tmp_path / "effects"
    async with Scheduler(state_dir=str(tmp_path), heartbeat_s=0.2, heartbeat_timeout_s=1.0) as s:
        events = s.subscribe()
        for w in ("w1", "w2"):
            await s.add_worker(id=w, capacity={"cpu": 4}, max_concurrency=2)
        hs = await s.submit_many(
            TaskSpec(id=f"j{i}", argv=["/bin/sh", "-c", f"sleep 1.5; echo j{i} >> {effects}"], duration=1.5)
            for i in range(4))
        with anyio.fail_after(30):
            while len(s.list("running", worker="w1")) < 2:
                await anyio.sleep(0.05)
        victims = {t.id for t in s.list("running", worker="w1")}
        assert s.local.kill_agent("w1")
        finals = await s.wait(hs, timeout=60)
        lost_at = None
        async for ev in events:
            if ev.kind == "worker_lost":
                lost_at = ev.time
                break
        assert lost_at is not None
        assert all(f.state == "done" for f in finals)
        for f in finals:
            if f.id in victims:
                assert f.worker == "w2" and f.attempt == 2
        assert collections.Counter(effects.read_text().split()) == {f"j{i}": 1 for i in range(4)}
        assert s.counts()["lost"] == 2 and [w.state for w in s.workers()] == ["lost", "up"]


class SlowEft:
    """A planner that answers like EFT but only after a while (a big full-budget round)."""

    name = "slow-eft"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def plan(self, problem, budget_s=None):
        import time

        import attrs

        from agentic_sched import greedy

        if len(problem.tasks) > 1:
            time.sleep(self.delay_s)
        return attrs.evolve(greedy(problem, "eft"), planner=self.name)


async def test_lost_workers_tasks_are_repaired_without_waiting_for_a_slow_round(tmp_path):
    """The lost worker's task is re-placed by the repair round while a slow planner round
    is still running: it starts on the spare worker before that round's plan lands."""
    async with Scheduler(state_dir=str(tmp_path), planner=SlowEft(4.0), plan_budget_s=5.0, heartbeat_s=0.2,
                         heartbeat_timeout_s=1.0, batch_window_s=0.01) as s:
        events = s.subscribe()
        await s.add_worker(id="w1", capacity={"cpu": 1})
        victim = await s.submit(TaskSpec(id="victim", argv=["sleep", "30"], duration=30, demand={"cpu": 1}))
        with anyio.fail_after(30):
            while s.status(victim).state != "running":
                await anyio.sleep(0.05)
        await s.add_worker(id="w2", capacity={"cpu": 1})
        # a batch the slow planner will chew on (released later, so it never competes for w2)
        await s.submit_many(TaskSpec(id=f"later{i}", argv=["true"], duration=1, release=600) for i in range(5))
        assert s.local.kill_agent("w1")
        order = []
        with anyio.fail_after(60):
            async for ev in events:
                if ev.kind == "planned" and ev.data.get("planner") == "slow-eft" and "worker_lost" in order:
                    order.append("slow round landed")
                if ev.kind in ("worker_lost", "started") and (ev.kind != "started" or ev.task == "victim"):
                    order.append(ev.kind if ev.kind == "worker_lost" else f"started on {ev.worker}")
                if "slow round landed" in order or "started on w2" in order:
                    break
        assert order[-2:] == ["worker_lost", "started on w2"], order
        assert s.status("victim").attempt == 2


class FakeAgent(ScriptedAgentBase):
    """A real unix-socket agent speaking the protocol, scripted to misbehave."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.assigned: list[dict] = []
        self.bad_lines: list[bytes] = []

    async def on_message(self, msg, send) -> None:
        if msg["type"] == "hello":
            await send(protocol.make("welcome", worker="fake", agent_id="f", pid=1, runtimes=["noop"]))
        elif msg["type"] == "assign":
            self.assigned.append(msg)
            t, a = msg["task"], msg["attempt"]
            await send(protocol.make("started", task=t, attempt=a), raw=b"".join(self.bad_lines))
            await send(protocol.make("finished", task=t, attempt=a, status="succeeded", exit_code=0))


async def test_bad_messages_are_ignored_and_nothing_is_lost(tmp_path):
    sock = str(tmp_path / "fake.sock")
    agent = FakeAgent(sock)
    # sent by the agent right after each `started`: every kind of bad input
    agent.bad_lines = [
        b"this is not json\n",
        b'{"v": 1, "type": "finished"}\n',                                    # missing fields
        b'{"v": 99, "type": "heartbeat", "seq": 1}\n',                        # wrong version
        b'{"v": 1, "type": "launch_missiles"}\n',                             # unknown type
        b'{"v": 1, "type": "assign", "task": "x", "attempt": 1, "runtime": "noop", "argv": []}\n',  # wrong direction
        b'{"v": 1, "type": "heartbeat", "seq": 1, "extra": true}\n',          # unknown field
        b"x" * (protocol.MAX_MESSAGE_BYTES + 10) + b"\n",                     # oversized
        protocol.encode(protocol.make("finished", task="nobody", attempt=1, status="succeeded")),   # unknown task
        protocol.encode(protocol.make("finished", task="t1", attempt=7, status="failed")),          # wrong attempt
    ]
    async with anyio.create_task_group() as tg:
        await tg.start(agent.serve)
        async with Scheduler(state_dir=str(tmp_path / "s")) as s:
            await s.add_worker(id="fake", executor="unix", address=sock)
            h1 = await s.submit(TaskSpec(id="t1", runtime="noop"))
            h2 = await s.submit(TaskSpec(id="t2", runtime="noop"))
            assert [st.state for st in await s.wait([h1, h2], timeout=30)] == ["done", "done"]
            assert s.counts()["ignored"] >= 2 * len(agent.bad_lines) - 2
            text = s.metrics.exposition().decode()
            for why in ("malformed", "unknown task", "stale attempt", "wrong direction"):
                assert f'reason="{why}"' in text
            assert [m["task"] for m in agent.assigned] == ["t1", "t2"]   # each attempt sent once
        tg.cancel_scope.cancel()


async def test_restored_worker_without_its_executor_waits_with_a_reason(tmp_path):
    """A restart that has not (yet) registered a worker's executor keeps running: the
    worker says why it cannot connect, is lost with that reason, and other workers work."""
    from agentic_sched import SshExecutor

    known = tmp_path / "known_hosts"
    known.write_text("")
    state = str(tmp_path / "s")
    async with Scheduler(state_dir=state, heartbeat_timeout_s=1.0) as s:
        s.add_executor(SshExecutor(known_hosts=str(known), client_keys=[], connect_timeout_s=0.2))
        await s.add_worker(id="far", executor="ssh", address="root@127.0.0.1:1", capacity={"cpu": 1})
    async with Scheduler(state_dir=state, heartbeat_timeout_s=1.0) as s:
        await s.add_worker(id="near", capacity={"cpu": 1})
        st = await s.wait(await s.submit(TaskSpec(runtime="noop")), timeout=30)
        assert st[0].state == "done" and st[0].worker == "near"
        with anyio.fail_after(30):
            while (far := next(w for w in s.workers() if w.id == "far")).state != "lost":
                await anyio.sleep(0.05)
        assert "no executor 'ssh' registered" in far.reason


async def test_docker_task_waits_for_a_worker_that_offers_docker(tmp_path):
    """A docker task only fits workers whose agent reports ``runtime.docker``; elsewhere
    it stays pending with a reason that says so."""
    sock = str(tmp_path / "fake.sock")
    agent = FakeAgent(sock)  # offers only the noop runtime, reports no labels
    async with anyio.create_task_group() as tg:
        await tg.start(agent.serve)
        async with Scheduler(state_dir=str(tmp_path / "s")) as s:
            await s.add_worker(id="fake", executor="unix", address=sock)
            h = await s.submit(TaskSpec(id="c1", runtime="docker", options={"image": "agentic-sched/busybox:test"},
                                        argv=["true"]))
            with anyio.fail_after(30):
                while "runtime.docker" not in s.why_pending(h):
                    await anyio.sleep(0.05)
            assert "0/1 workers fit: 1 missing label runtime.docker=yes" in s.why_pending(h)
            assert s.status(h).state == "pending" and not agent.assigned
        tg.cancel_scope.cancel()
