"""The agent protocol (v1): validation, the journal, and a real agent's exactly-once contract."""

from __future__ import annotations

import subprocess
import sys
import time

import anyio
import pytest
from agentic_sched.agents import protocol
from agentic_sched.agents.journal import Journal

from agentic_sched.executors._unix import connect_unix
from agentic_sched.executors.base import Link
from agentic_sched.executors.local import AGENT_SCRIPT


def test_every_message_type_round_trips():
    msgs = [
        protocol.make("hello", session="s", heartbeat_s=0.5, worker="w"),
        protocol.make("assign", task="t", attempt=1, runtime="process", argv=["echo", "hi"], env={"A": "b"},
                      cwd="/tmp", timeout_s=3, options={"image": "busybox"}),
        protocol.make("cancel", task="t", attempt=1, reason="r"),
        protocol.make("preempt", task="t", attempt=1, grace_s=2.5, reason="preempted by u (priority 9)"),
        protocol.make("forget", task="t", attempt=1),
        protocol.make("forget", task="t", attempt=1, final=True),
        protocol.make("shutdown"),
        protocol.make("welcome", worker="w", agent_id="a", pid=1, runtimes=["process"], facts={"cpus": 2}),
        protocol.make("started", task="t", attempt=1, pid=5),
        protocol.make("rejected", task="t", attempt=1, reason="no"),
        protocol.make("finished", task="t", attempt=1, status="succeeded", exit_code=0, runtime_s=0.1),
        protocol.make("finished", task="t", attempt=1, status="preempted", exit_code=143, runtime_s=2.0),
        protocol.make("heartbeat", seq=1, running=[{"task": "t", "attempt": 1}], load={}),
        protocol.make("error", reason="bad"),
    ]
    assert {m["type"] for m in msgs} == set(protocol.SCHEMAS)
    for m in msgs:
        assert protocol.decode(protocol.encode(m)) == m


@pytest.mark.parametrize("line, fragment", [
    (b"{", "malformed JSON"),
    (b"[1]", "JSON object"),
    (b'{"v": 2, "type": "hello"}', "version"),
    (b'{"v": 1, "type": "nope"}', "unknown message type"),
    (b'{"v": 1, "type": "forget", "task": "t"}', "forget.attempt: missing"),
    (b'{"v": 1, "type": "forget", "task": "t", "attempt": "1"}', "forget.attempt: expected integer"),
    (b'{"v": 1, "type": "forget", "task": "t", "attempt": 0}', ">= 1"),
    (b'{"v": 1, "type": "forget", "task": "t", "attempt": 1, "x": 1}', "forget.x: unknown field"),
    (b'{"v": 1, "type": "assign", "task": "t", "attempt": 1, "runtime": "p", "argv": [1]}', "argv"),
    (b'{"v": 1, "type": "finished", "task": "t", "attempt": 1, "status": "meh"}', "unknown status"),
    (b'{"v": 1, "type": "hello", "session": "s", "heartbeat_s": NaN, "worker": "w"}', "finite"),
    (b'{"v": 1, "type": "preempt", "task": "t", "attempt": 1}', "preempt.grace_s: missing"),
    (b'{"v": 1, "type": "preempt", "task": "t", "attempt": 1, "grace_s": -1}', "grace_s: must be >= 0"),
    (b'{"v": 1, "type": "preempt", "task": "t", "attempt": 1, "grace_s": "5"}', "expected number"),
    (b'{"v": 1, "type": "forget", "task": "t", "attempt": 1, "final": 1}', "forget.final: expected boolean"),
    (b"x" * (protocol.MAX_MESSAGE_BYTES + 1), "exceeds"),
])
def test_bad_messages_raise_protocol_error(line, fragment):
    with pytest.raises(protocol.ProtocolError, match=fragment):
        protocol.decode(line)


def test_journal_replay_turns_unfinished_claims_into_lost(tmp_path):
    j = Journal(str(tmp_path))
    j.claim(("a", 1))
    j.claim(("b", 1))
    j.result(("b", 1), {"type": "finished", "task": "b", "attempt": 1, "status": "succeeded"})
    j.claim(("c", 2))
    j.forget(("c", 2))
    j.cancel(("d", 1))
    j.close()
    with open(j.path, "ab") as f:
        f.write(b'{"op": "claim", "task": "tor')          # a torn last line
    j2 = Journal(str(tmp_path))
    assert j2.results[("a", 1)]["status"] == "lost"
    assert j2.results[("b", 1)]["status"] == "succeeded"
    assert ("c", 2) not in j2.claims and j2.results[("d", 1)]["status"] == "cancelled"


@pytest.mark.anyio
async def test_real_agent_runs_a_resent_attempt_once(tmp_path):
    sock, effects = str(tmp_path / "a.sock"), tmp_path / "effects"
    proc = subprocess.Popen([sys.executable, str(AGENT_SCRIPT), "--worker-id", "w", "--state-dir",
                             str(tmp_path / "w"), "--socket", sock, "--orphan-timeout", "20"])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                link = Link(await connect_unix(sock))
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                await anyio.sleep(0.05)
        msgs = link.messages()
        assign = protocol.make("assign", task="t", attempt=1, runtime="process",
                               argv=["/bin/sh", "-c", f"sleep 0.3; echo ran >> {effects}"])
        await link.send([protocol.make("hello", session="s", heartbeat_s=5, worker="w"), assign, assign])
        await link.stream.send(b'{"v": 1, "type": "assign"}\n')   # malformed: answered with error
        seen = []
        async for m in msgs:
            if isinstance(m, dict) and m["type"] != "heartbeat":
                seen.append(m["type"])
            if seen.count("finished") == 1:
                break
        assert seen[0] == "welcome" and seen.count("started") == 2 and "error" in seen
        await link.send([assign])                                 # after the outcome: the journal answers
        async for m in msgs:
            if isinstance(m, dict) and m["type"] == "finished":
                assert m["status"] == "succeeded"
                break
        assert effects.read_text() == "ran\n"
        await link.send([protocol.make("shutdown")])
        await anyio.to_thread.run_sync(proc.wait, 20)
    finally:
        proc.kill()
        proc.wait()
