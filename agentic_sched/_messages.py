"""What the applier does with each message from an agent (called under the applier lock).

Malformed, oversized, misdirected (wrong worker), unknown-task and stale-attempt
messages are ignored with a logged reason and counted in
``agentic_sched_ignored_messages_total``; nothing here raises on bad input.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from ._spec import TERMINAL
from .agents import protocol
from .applier import Applier, log
from .registry import WorkerState

_ACTIVE = ("reserved", "running")


def handle(ap: Applier, worker_id: str, msg: dict[str, Any] | protocol.ProtocolError) -> None:
    w = ap.registry.get(worker_id)
    if w is None:
        ap.ignore(worker_id, "unknown worker", repr(msg)[:200])
        return
    w.last_seen = time.monotonic()
    if isinstance(msg, protocol.ProtocolError):
        ap.ignore(worker_id, "malformed", str(msg))
        return
    kind = msg["type"]
    if kind not in protocol.TO_SCHEDULER:
        ap.ignore(worker_id, "wrong direction", f"{kind} is sent to agents, not by them")
    elif kind == "welcome":
        _welcome(ap, w, msg)
    elif kind == "heartbeat":
        w.load = msg.get("load", {})
        w.observe(w.load)
        _reconcile_running(ap, w, msg.get("running", []))
    elif kind == "error":
        log.warning("worker %s refused a message: %s", worker_id, msg["reason"])
    else:
        _attempt_message(ap, w, msg)


def _welcome(ap: Applier, w: WorkerState, msg: dict[str, Any]) -> None:
    if msg["worker"] != w.spec.id:
        ap.ignore(w.spec.id, "wrong worker", f"the agent says it serves {msg['worker']!r}")
        if w.link is not None:
            w.link.closed = True
        return
    w.agent_id, w.facts = msg["agent_id"], msg.get("facts", {})
    reported = w.facts.get("labels")
    if isinstance(reported, dict):  # host labels (arch, runtime.*, gpu_model); the spec's win
        labels = {str(k): str(v) for k, v in reported.items()}
        w.model = attrs.evolve(w.model, labels={**labels, **w.spec.labels})
    if w.state in ("connecting", "lost", "down"):
        w.state, w.reason = "up", f"agent {msg['agent_id'][:8]} pid {msg['pid']}"
        ap.touch_worker(w)
        ap.emit("worker_up", worker=w.spec.id, reason=w.reason, facts=w.facts)
    # reconcile: re-send every attempt we believe is on this worker; the agent's journal
    # makes this idempotent (same attempt -> same run, or its recorded outcome)
    for tid in sorted(w.holding):
        rec = ap.tasks[tid]
        ap.send(w.spec.id, ap.assign_msg(rec))
        ap.sent_at[(tid, rec.attempt)] = time.monotonic()
    ap.kick(replan=True)


def _reconcile_running(ap: Applier, w: WorkerState, running: list[Any]) -> None:
    for item in running:
        if not isinstance(item, dict) or not isinstance(item.get("task"), str) or not isinstance(item.get("attempt"), int):
            ap.ignore(w.spec.id, "malformed", f"heartbeat.running entry {item!r}")
            continue
        rec = ap.tasks.get(item["task"])
        if rec is None or rec.attempt != item["attempt"] or rec.worker != w.spec.id or rec.state not in _ACTIVE:
            ap.send(w.spec.id, protocol.make("cancel", task=item["task"], attempt=item["attempt"],
                                             reason="not the current attempt of this task"))


def _attempt_message(ap: Applier, w: WorkerState, msg: dict[str, Any]) -> None:
    kind, tid, attempt = msg["type"], msg["task"], msg["attempt"]
    rec = ap.tasks.get(tid)
    current = (rec is not None and rec.attempt == attempt and rec.worker == w.spec.id and rec.state in _ACTIVE)
    if not current:
        what = "unknown task" if rec is None else "stale attempt"
        cur = "" if rec is None else f" (current attempt {rec.attempt} on {rec.worker}, {rec.state})"
        ap.ignore(w.spec.id, what, f"{kind} for {tid}#{attempt}{cur}")
        if kind == "finished":
            final = rec is not None and rec.state in TERMINAL and rec.attempt == attempt
            ap.send(w.spec.id, ap.forget_msg(w.spec.id, tid, attempt, final))
        elif kind == "started" and (rec is None or rec.attempt != attempt or rec.state != "cancelled"):
            ap.send(w.spec.id, protocol.make("cancel", task=tid, attempt=attempt, reason="stale attempt"))
        return
    assert rec is not None
    if kind == "started":
        if rec.state == "reserved":
            rec.state, rec.started, rec.reason = "running", ap.clock(), f"running on {w.spec.id}"
            att = ap.attempts.get((tid, attempt))
            if att is not None:
                att.state, att.started = "running", rec.started
                ap._dirty_attempts[(tid, attempt)] = att
            ap.touch(rec)
            ap.emit("started", rec, pid=msg.get("pid"))
    elif kind == "rejected":
        ap.counts["rejected"] += 1
        ap.requeue(rec, "rejected", f"worker {w.spec.id} rejected it: {msg['reason']}", "rejected")
    elif kind == "finished":
        _finished(ap, w, rec, msg)


def _finished(ap: Applier, w: WorkerState, rec: Any, msg: dict[str, Any]) -> None:
    status, reason = msg["status"], msg.get("reason", "")
    if status == "preempted" or (status == "cancelled" and rec.id in ap.preempting):
        ap.preempted(rec, w.spec.id, reason)
    elif status == "succeeded":
        ap.finish(rec, "done", f"succeeded on {w.spec.id}", result=msg)
    elif status in ("failed", "timeout", "error"):
        ap.finish(rec, "failed", f"{status} on {w.spec.id}: {reason}", result=msg)
    else:  # cancelled without a user cancel (agent shutdown) or lost (agent restarted mid-run)
        ap.requeue(rec, status, f"attempt {status} on {w.spec.id}: {reason}", "lost" if status == "lost" else "released")
    ap.send(w.spec.id, ap.forget_msg(w.spec.id, rec.id, msg["attempt"], rec.state in TERMINAL))
