"""Preemption with checkpoint/resume: victim selection on plain data, and the scheduler
end to end on the local executor with real processes (plus a scripted agent for fencing)."""

from __future__ import annotations

import anyio
import pytest
from agentic_sched.agents import protocol
from counter_task import counter, steps_done
from scripted_agent import ScriptedAgentBase

from agentic_sched._errors import InvalidProblem
from agentic_sched._preempt import Host, Running, choose_victims, victims_on
from agentic_sched._spec import TaskSpec
from agentic_sched.scheduler import Scheduler

# ---------------------------------------------------------------------------- pure policy


def _host(hid: str, running: list[Running], cpu: float = 4, slots: float = 8) -> Host:
    used: dict[str, float] = {}
    for r in running:
        for k, v in r.demand.items():
            used[k] = used.get(k, 0.0) + v
    return Host(hid, {"cpu": cpu, "task_slots": slots}, used, running)


def _r(tid: str, prio: float, cpu: float, started: float | None = 0.0, preemptible: bool = True) -> Running:
    return Running(tid, prio, {"cpu": cpu, "task_slots": 1}, preemptible, started)


def test_victims_lowest_priority_first_then_least_progress_and_as_few_as_needed():
    h = _host("w", [_r("old", 1, 1, started=0.0), _r("new", 1, 1, started=50.0), _r("mid", 2, 1),
                    _r("big", 3, 1)])
    need = {"cpu": 1, "task_slots": 1}
    assert victims_on(h, need, 5, now=100) == ("new",)             # same priority: the newest start
    assert victims_on(h, {"cpu": 2, "task_slots": 1}, 5, now=100) == ("new", "old")
    assert victims_on(h, {"cpu": 3, "task_slots": 1}, 5, now=100) == ("new", "old", "mid")
    assert victims_on(h, need, 1, now=100) is None                 # only strictly lower priority
    # a big low-priority victim alone is enough: the smaller ones taken first are put back
    h2 = _host("w", [_r("s1", 1, 1, started=9), _r("s2", 1, 1, started=8), _r("huge", 2, 2)], cpu=4)
    assert victims_on(h2, {"cpu": 3, "task_slots": 1}, 5, now=10) == ("s1", "huge")


def test_non_preemptible_and_fitting_tasks_are_never_victims():
    h = _host("w", [_r("np", 1, 4, preemptible=False)])
    assert choose_victims({"cpu": 1, "task_slots": 1}, 9, [h], now=1) is None
    free = _host("f", [], cpu=4)
    busy = _host("b", [_r("v", 1, 4)])
    assert choose_victims({"cpu": 1, "task_slots": 1}, 9, [busy, free], now=1) is None  # fits on f


def test_worker_choice_fewest_victims_then_lowest_priority_then_least_lost_work():
    a = _host("a", [_r("a1", 1, 2), _r("a2", 1, 2)])               # needs two victims
    b = _host("b", [_r("b1", 2, 4, started=5)])                    # one victim, priority 2
    c = _host("c", [_r("c1", 1, 4, started=1)])                    # one victim, priority 1, more progress
    d = _host("d", [_r("d1", 1, 4, started=8)])                    # one victim, priority 1, least progress
    got = choose_victims({"cpu": 3, "task_slots": 1}, 9, [a, b, c, d], now=10)
    assert got is not None and (got.worker, got.victims, got.lost_s) == ("d", ("d1",), 2.0)


def _gpu_host(hid: str, running: list[Running], ngpu: int = 2, cpu: float = 16) -> Host:
    h = _host(hid, running, cpu=cpu)
    gpus = {d: sum(r.devices.get(d, 0.0) for r in running) for d in range(ngpu)}
    return Host(h.id, h.capacity, h.used, h.running, gpus)


def _g(tid: str, prio: float, devices: dict[int, float], started: float = 0.0, cpu: float = 1) -> Running:
    return Running(tid, prio, {"cpu": cpu, "task_slots": 1}, True, started, devices)


def test_gpu_tasks_preempt_the_holders_of_the_devices_they_need():
    need = {"cpu": 1, "task_slots": 1}
    # cpu is plentiful, both GPUs are held: only GPU holders are victims
    h = _gpu_host("w", [_r("cpu-only", 1, 1), _g("g0", 1, {0: 1000}, started=1), _g("g1", 2, {1: 1000})])
    assert victims_on(h, need, 5, now=10) == ()                              # no GPU asked: fits
    assert victims_on(h, need, 5, now=10, gpu=(1, 1000.0)) == ("g0",)        # lowest priority GPU holder
    assert victims_on(h, need, 5, now=10, gpu=(2, 1000.0)) == ("g0", "g1")
    assert victims_on(h, need, 5, now=10, gpu=(3, 1000.0)) is None           # the worker has two
    assert victims_on(h, need, 2, now=10, gpu=(2, 1000.0)) is None           # g1 is not lower priority
    # shares: 600 milli fits once 500 of the device's 900 in use are released ("a", taken
    # first as the latest start, is put back: it is not needed)
    one = _gpu_host("one", [_g("a", 1, {0: 400}, started=5), _g("b", 1, {0: 500}, started=2)], ngpu=1)
    assert victims_on(one, need, 5, now=10, gpu=(1, 600.0)) == ("b",)
    assert victims_on(one, need, 5, now=10, gpu=(1, 100.0)) == ()
    s = _gpu_host("s", [_g("a", 1, {0: 400}, started=5), _g("b", 1, {0: 500}, started=2),
                        _g("c", 1, {1: 1000}, started=9)])
    assert victims_on(s, need, 5, now=10, gpu=(1, 600.0)) == ("c",)         # least progress lost
    # a host with a free GPU wins without preemption; otherwise the fewest victims
    free = _gpu_host("f", [], ngpu=1)
    assert choose_victims(need, 5, [h, free], now=10, gpu=(1, 1000.0)) is None
    got = choose_victims(need, 5, [s, h], now=10, gpu=(1, 1000.0))
    assert got is not None and (got.worker, got.victims) == ("s", ("c",))


def test_spec_field_is_validated():
    assert TaskSpec.from_dict({"argv": ["x"], "preemptible": True}).preemptible
    assert "preemptible" not in TaskSpec(argv=["x"]).to_dict()      # old stored specs compare equal
    from agentic_sched._spec import check_spec
    with pytest.raises(InvalidProblem, match="task.preemptible"):
        check_spec(TaskSpec(argv=["x"], preemptible="yes"), "t", 0.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidProblem, match="vm tasks cannot be preempted"):
        check_spec(TaskSpec(argv=["x"], runtime="vm", preemptible=True), "t", 0.0)


# ---------------------------------------------------------------------------- real processes

@pytest.mark.anyio
async def test_low_priority_task_is_preempted_and_resumes_from_its_checkpoint(tmp_path):
    n = 30
    async with Scheduler(state_dir=str(tmp_path / "s"), preempt_grace_s=5.0) as s:
        events = s.subscribe()
        await s.add_worker(id="w1", capacity={"cpu": 1}, max_concurrency=1)
        low = await s.submit(counter(tmp_path, "low", n, 0.1, priority=1, preemptible=True, demand={"cpu": 1}))
        await steps_done(tmp_path, "low", 5)
        high = await s.submit(TaskSpec(id="high", argv=["/bin/sh", "-c", f"echo hi > {tmp_path / 'high.out'}"],
                                       priority=10, duration=0.2, demand={"cpu": 1}))
        st_high, st_low = await s.wait([high, low], timeout=120)
        assert st_high.state == "done" and st_low.state == "done"
        assert st_low.attempt == 2 and st_low.preemptions == 1 and st_high.attempt == 1
        assert s.counts()["preempted"] == 1

        # the count continued from the checkpoint: every step exactly once, attempt 2 resumed
        assert [int(x) for x in (tmp_path / "low.effects").read_text().split()] == list(range(n))
        attempts = [line.split() for line in (tmp_path / "low.effects.attempts").read_text().splitlines()]
        assert attempts[0] == ["1", "0"] and attempts[1][0] == "2" and int(attempts[1][1]) >= 5

        kinds = []
        async for ev in events:
            kinds.append((ev.kind, ev.task, ev.attempt, ev.reason, ev.data))
            if ev.kind == "finished" and ev.task == "low":
                break
        preempting = [k for k in kinds if k[0] == "preempting"]
        preempted = [k for k in kinds if k[0] == "preempted"]
        assert len(preempting) == 1 and preempting[0][1:3] == ("low", 1)
        assert preempting[0][3] == "preempted by high (priority 10)" and preempting[0][4]["preemptor"] == "high"
        assert len(preempted) == 1 and "preempted by high (priority 10)" in preempted[0][3]
        order = [(k[0], k[1], k[2]) for k in kinds if k[0] in ("preempted", "started", "finished")]
        assert order.index(("preempted", "low", 1)) < order.index(("started", "high", 1)) \
            < order.index(("started", "low", 2))
        attempts_db = await s._store.attempts_of("low")
        assert [(a.attempt, a.state) for a in attempts_db] == [(1, "preempted"), (2, "succeeded")]
        print(f"\npreemption latency (decision -> victim exit reported): {preempted[0][4]['latency_s']:.3f}s")
        # the checkpoint dir goes away with the task
        with anyio.fail_after(10):
            while (tmp_path / "s" / "checkpoints" / "low").exists():
                await anyio.sleep(0.05)
        text = s.metrics.exposition().decode()
        assert 'agentic_sched_preemptions_total{outcome="preempted"} 1.0' in text


@pytest.mark.anyio
async def test_a_gpu_task_preempts_the_lower_priority_holder_of_the_gpu(tmp_path):
    # plenty of cpu and slots; the one GPU is the bottleneck (scheduled as a resource, never used)
    async with Scheduler(state_dir=str(tmp_path / "s"), preempt_grace_s=5.0) as s:
        await s.add_worker(id="w1", capacity={"cpu": 8}, gpus=1, max_concurrency=4)
        other = await s.submit(counter(tmp_path, "cpu-low", 40, 0.1, priority=1, preemptible=True,
                                       demand={"cpu": 1}))
        low = await s.submit(counter(tmp_path, "gpu-low", 30, 0.1, priority=1, preemptible=True,
                                     demand={"cpu": 1}, gpu={"count": 1}))
        await steps_done(tmp_path, "gpu-low", 5)
        high = await s.submit(TaskSpec(id="gpu-high", argv=["true"], priority=10, duration=0.2,
                                       demand={"cpu": 1}, gpu={"count": 1, "share": 600}))
        st_high, st_low, st_other = await s.wait([high, low, other], timeout=120)
        assert (st_high.state, st_low.state, st_other.state) == ("done", "done", "done")
        assert st_low.preemptions == 1 and st_low.attempt == 2 and st_other.preemptions == 0
        assert [int(x) for x in (tmp_path / "gpu-low.effects").read_text().split()] == list(range(30))


@pytest.mark.anyio
async def test_non_preemptible_equal_priority_and_disabled_preemption_never_preempt(tmp_path):
    for cfg in ({"preemption": True}, {"preemption": False}):
        sub = tmp_path / str(cfg["preemption"])
        sub.mkdir()
        async with Scheduler(state_dir=str(sub / "s"), **cfg) as s:
            await s.add_worker(id="w1", capacity={"cpu": 2}, max_concurrency=2)
            # preemption on: one non-preemptible, one of equal priority; off: preemptible and lower
            low_pre = cfg["preemption"] is False
            a = await s.submit(counter(sub, "a", 8, 0.1, priority=1, preemptible=low_pre, demand={"cpu": 1}))
            b = await s.submit(counter(sub, "b", 8, 0.1, priority=5 if not low_pre else 1, preemptible=True,
                                       demand={"cpu": 1}))
            await steps_done(sub, "a", 1)
            await steps_done(sub, "b", 1)
            high = await s.submit(TaskSpec(id="high", argv=["/bin/true"], priority=5, demand={"cpu": 1}))
            with anyio.fail_after(30):
                while "planned" not in s.why_pending(high) and s.status(high).state == "pending":
                    await anyio.sleep(0.05)
            finals = await s.wait([a, b, high], timeout=60)
            assert [f.state for f in finals] == ["done"] * 3
            assert [f.attempt for f in finals] == [1, 1, 1] and s.counts()["preempted"] == 0
            assert [int(x) for x in (sub / "a.effects").read_text().split()] == list(range(8))


# ---------------------------------------------------------------------------- fencing


class ScriptedAgent(ScriptedAgentBase):
    """A unix-socket agent that holds ``low`` running until preempted, then replays late
    messages of attempt 1 while attempt 2 runs (they must be ignored)."""

    def __init__(self, path: str, features: list[str]) -> None:
        super().__init__(path)
        self.features = features
        self.stops: list[dict] = []

    async def on_message(self, m, send) -> None:
        if m["type"] == "hello":
            await send(protocol.make("welcome", worker="fake", agent_id="f", pid=1, runtimes=["noop"],
                                     facts={"features": self.features}))
        elif m["type"] in ("preempt", "cancel") and m["task"] == "low":
            self.stops.append(m)
            await send(protocol.make("finished", task="low", attempt=m["attempt"],
                                     status="preempted" if m["type"] == "preempt" else "cancelled",
                                     exit_code=143, runtime_s=1.0))
        elif m["type"] == "assign" and m["task"] == "low" and m["attempt"] == 1:
            await send(protocol.make("started", task="low", attempt=1))
        elif m["type"] == "assign" and m["task"] == "low":
            await send(protocol.make("started", task="low", attempt=m["attempt"]),
                       protocol.make("started", task="low", attempt=1),       # late, stale
                       protocol.make("finished", task="low", attempt=1, status="failed", exit_code=7))
            await anyio.sleep(0.3)
            await send(protocol.make("finished", task="low", attempt=m["attempt"], status="succeeded", exit_code=0))
        elif m["type"] == "assign":
            t, a = m["task"], m["attempt"]
            await send(protocol.make("started", task=t, attempt=a),
                       protocol.make("finished", task=t, attempt=a, status="succeeded", exit_code=0))


@pytest.mark.anyio
@pytest.mark.parametrize("features", [["preempt", "checkpoint"], []], ids=["preempt", "old-agent-cancel"])
async def test_late_messages_of_the_preempted_attempt_are_ignored(tmp_path, features):
    sock = str(tmp_path / "fake.sock")
    agent = ScriptedAgent(sock, features)
    async with anyio.create_task_group() as tg:
        await tg.start(agent.serve)
        async with Scheduler(state_dir=str(tmp_path / "s"), preempt_grace_s=3) as s:
            await s.add_worker(id="fake", executor="unix", address=sock, max_concurrency=1)
            low = await s.submit(TaskSpec(id="low", runtime="noop", priority=1, preemptible=True))
            with anyio.fail_after(30):
                while s.status(low).state != "running":
                    await anyio.sleep(0.02)
            high = await s.submit(TaskSpec(id="high", runtime="noop", priority=10))
            st_high, st_low = await s.wait([high, low], timeout=30)
            assert st_high.state == "done" and st_low.state == "done" and st_low.attempt == 2
            assert st_low.exit_code == 0 and st_low.preemptions == 1
            assert s.counts()["ignored"] >= 2   # the late started + finished of attempt 1
            assert [(a.attempt, a.state) for a in await s._store.attempts_of("low")] == [
                (1, "preempted"), (2, "succeeded")]
            stop = agent.stops[0]
            assert stop["type"] == ("preempt" if features else "cancel")
            assert stop["reason"] == "preempted by high (priority 10)"
            if features:
                assert stop["grace_s"] == 3
        tg.cancel_scope.cancel()


# ---------------------------------------------------------------------------- docker runtime

DOCKER_COUNTER = (
    'i=$(cat /checkpoint/next 2>/dev/null || echo 0); echo "start $i $AGSCHED_CHECKPOINT_DIR" >> /checkpoint/log; '
    "trap 'echo term >> /checkpoint/log; exit 0' TERM; "
    "while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); echo $i > /checkpoint/next; done; echo done >> /checkpoint/log"
)


def test_docker_preempt_stops_with_grace_and_the_next_attempt_resumes(docker_daemon, tmp_path):
    import asyncio

    from agentic_sched.agents.runtime_docker import DockerRuntime
    from agentic_sched.agents.runtimes import Job
    from testbed import BUSYBOX_IMAGE

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()

    async def attempt(n: int, preempt_after: float | None):
        rt = DockerRuntime(docker_daemon)
        assert await rt.prepare(f"w-pre-{n}")
        job = Job("t", n, ["sh", "-c", DOCKER_COUNTER], timeout_s=60, log_dir=str(tmp_path),
                  options={"image": BUSYBOX_IMAGE}, checkpoint_dir=str(ckpt))
        cancel = asyncio.Event()

        async def preempt() -> None:
            while not (ckpt / "next").exists() or int((ckpt / "next").read_text() or 0) < 5:
                await asyncio.sleep(0.05)
            job.preempt = {"grace_s": 5, "reason": "preempted by test"}
            cancel.set()

        stopper = asyncio.ensure_future(preempt()) if preempt_after is not None else None
        try:
            return await rt.run(job, lambda pid: None, cancel)
        finally:
            if stopper is not None:
                stopper.cancel()
            await rt.close()

    first = asyncio.run(attempt(1, 0.0))
    assert first.status == "preempted" and first.exit_code == 0   # stopped gracefully: exit code of the trap
    log = (ckpt / "log").read_text().splitlines()
    assert log == ["start 0 /checkpoint", "term"]                 # SIGTERM reached the trap: graceful
    saved = int((ckpt / "next").read_text())
    second = asyncio.run(attempt(2, None))
    assert second.status == "succeeded"
    log = (ckpt / "log").read_text().splitlines()
    assert log[2] == f"start {saved} /checkpoint" and log[3] == "done" and saved >= 5
