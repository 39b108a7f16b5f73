"""The scheduler <-> worker-agent protocol, version 1: JSON lines, every message validated.

One message per line, UTF-8 JSON object, at most ``MAX_MESSAGE_BYTES`` bytes including
the newline. Every message carries ``"v": 1`` and a ``"type"``; the fields of each type
are listed in ``SCHEMAS`` (required and optional, with their JSON types). Unknown
types, unknown fields, missing fields, wrong types and oversized lines raise
``ProtocolError`` with a message naming the offending field.

Scheduler -> agent: ``hello`` (start of a session), ``assign`` (run one attempt),
``cancel`` (kill one attempt), ``preempt`` (stop one attempt for a higher-priority
task: SIGTERM, ``grace_s`` to save a checkpoint, then SIGKILL; it ends with status
``preempted``), ``forget`` (the scheduler committed an outcome; drop it from the
journal; ``final``: the task is over, its checkpoint directory may go), ``shutdown``.
Agent -> scheduler: ``welcome`` (answer to hello), ``started`` (the ack: the attempt is
claimed and running), ``rejected``, ``finished`` (outcome), ``heartbeat``, ``error``
(the agent refused a malformed message).

Additions within version 1 are optional and negotiated: an agent lists what it
understands in ``welcome.facts.features`` (``"preempt"``: the ``preempt`` message, the
``preempted`` status and ``forget.final``; ``"checkpoint"``: every attempt gets
``$AGSCHED_CHECKPOINT_DIR``). A scheduler sends them only to agents that list them
(else it falls back to ``cancel``), so old agents and new schedulers interoperate.

Exactly-once contract: the agent claims ``(task, attempt)`` in its journal before it
starts anything, so an ``assign`` repeated for the same attempt (after a scheduler
restart) never starts a second run: the agent answers with the attempt's current
state instead (``started`` again, or its ``finished``). Outcomes stay in the journal
until ``forget`` and are re-sent after every ``welcome``.

This module imports only the standard library: it is shipped to remote hosts with
the agent and imported by the scheduler's executors.
"""

from __future__ import annotations

import json
import math
from typing import Any

VERSION = 1
MAX_MESSAGE_BYTES = 1 << 20

#: Outcome of an attempt in ``finished.status``.
STATUSES = ("succeeded", "failed", "timeout", "cancelled", "lost", "error", "preempted")

#: What this side's agent understands beyond the base protocol (``welcome.facts.features``).
FEATURES = ("preempt", "checkpoint")

_STR, _INT, _NUM, _BOOL, _LIST, _OBJ, _NULL = "string", "integer", "number", "boolean", "array", "object", "null"

# type -> {field: (allowed JSON types, required)}
SCHEMAS: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    # scheduler -> agent
    "hello": {"session": ((_STR,), True), "heartbeat_s": ((_NUM,), True), "worker": ((_STR,), True)},
    "assign": {
        "task": ((_STR,), True), "attempt": ((_INT,), True), "runtime": ((_STR,), True),
        "argv": ((_LIST,), True), "env": ((_OBJ,), False), "cwd": ((_STR, _NULL), False),
        "timeout_s": ((_NUM, _NULL), False), "options": ((_OBJ,), False),
    },
    "cancel": {"task": ((_STR,), True), "attempt": ((_INT,), True), "reason": ((_STR,), False)},
    "preempt": {"task": ((_STR,), True), "attempt": ((_INT,), True), "grace_s": ((_NUM,), True),
                "reason": ((_STR,), False)},
    "forget": {"task": ((_STR,), True), "attempt": ((_INT,), True), "final": ((_BOOL,), False)},
    "shutdown": {"reason": ((_STR,), False)},
    # agent -> scheduler
    "welcome": {
        "worker": ((_STR,), True), "agent_id": ((_STR,), True), "pid": ((_INT,), True),
        "runtimes": ((_LIST,), True), "facts": ((_OBJ,), False),
    },
    "started": {"task": ((_STR,), True), "attempt": ((_INT,), True), "pid": ((_INT, _NULL), False)},
    "rejected": {"task": ((_STR,), True), "attempt": ((_INT,), True), "reason": ((_STR,), True)},
    "finished": {
        "task": ((_STR,), True), "attempt": ((_INT,), True), "status": ((_STR,), True),
        "exit_code": ((_INT, _NULL), False), "runtime_s": ((_NUM,), False),
        "reason": ((_STR,), False), "stdout": ((_STR, _NULL), False), "stderr": ((_STR, _NULL), False),
    },
    "heartbeat": {"seq": ((_INT,), True), "running": ((_LIST,), False), "load": ((_OBJ,), False)},
    "error": {"reason": ((_STR,), True)},
}

TO_AGENT = frozenset({"hello", "assign", "cancel", "preempt", "forget", "shutdown"})
TO_SCHEDULER = frozenset({"welcome", "started", "rejected", "finished", "heartbeat", "error"})


class ProtocolError(ValueError):
    """A message is malformed, oversized, of an unknown type or has a bad field."""


def _json_type(value: Any) -> str:
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int):
        return _INT
    if isinstance(value, float):
        return _NUM
    names: dict[type, str] = {str: _STR, list: _LIST, dict: _OBJ}
    return names.get(type(value), type(value).__name__)


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not a finite number")


def validate(msg: Any) -> dict[str, Any]:
    """Check one decoded message against ``SCHEMAS``; return it or raise ``ProtocolError``."""
    if not isinstance(msg, dict):
        raise ProtocolError(f"a message must be a JSON object, got {_json_type(msg)}")
    if msg.get("v") != VERSION:
        raise ProtocolError(f"v: unsupported protocol version {msg.get('v')!r} (this side speaks {VERSION})")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise ProtocolError(f"type: unknown message type {kind!r} (known: {', '.join(sorted(SCHEMAS))})")
    schema = SCHEMAS[kind]
    for key, value in msg.items():
        if key in ("v", "type"):
            continue
        if key not in schema:
            raise ProtocolError(f"{kind}.{key}: unknown field (allowed: {', '.join(sorted(schema))})")
        allowed = schema[key][0]
        got = _json_type(value)
        if got not in allowed and not (got == _INT and _NUM in allowed):
            raise ProtocolError(f"{kind}.{key}: expected {' or '.join(allowed)}, got {got}")
        if got == _NUM and not math.isfinite(value):
            raise ProtocolError(f"{kind}.{key}: must be finite")
    for key, (_, required) in schema.items():
        if required and key not in msg:
            raise ProtocolError(f"{kind}.{key}: missing required field")
    _check_semantics(kind, msg)
    return msg


def _check_semantics(kind: str, msg: dict[str, Any]) -> None:
    if "attempt" in msg and msg["attempt"] < 1:
        raise ProtocolError(f"{kind}.attempt: must be >= 1, got {msg['attempt']}")
    if "task" in msg and not msg["task"]:
        raise ProtocolError(f"{kind}.task: must be a non-empty string")
    if kind == "assign":
        argv = msg["argv"]
        if not all(isinstance(a, str) for a in argv):
            raise ProtocolError("assign.argv: every element must be a string")
        env = msg.get("env", {})
        if not all(isinstance(v, str) for v in env.values()):
            raise ProtocolError("assign.env: every value must be a string")
        if msg.get("timeout_s") is not None and msg["timeout_s"] <= 0:
            raise ProtocolError("assign.timeout_s: must be > 0")
    elif kind == "finished" and msg["status"] not in STATUSES:
        raise ProtocolError(f"finished.status: unknown status {msg['status']!r} (known: {', '.join(STATUSES)})")
    elif kind == "preempt" and msg["grace_s"] < 0:
        raise ProtocolError("preempt.grace_s: must be >= 0")
    elif kind == "hello" and msg["heartbeat_s"] <= 0:
        raise ProtocolError("hello.heartbeat_s: must be > 0")


def make(kind: str, **fields: Any) -> dict[str, Any]:
    """Build and validate a message of type ``kind`` (None-valued optional fields dropped)."""
    schema = SCHEMAS.get(kind, {})
    msg: dict[str, Any] = {"v": VERSION, "type": kind}
    msg.update({k: v for k, v in fields.items() if v is not None or (k in schema and schema[k][1])})
    return validate(msg)


def encode(msg: dict[str, Any]) -> bytes:
    """Serialise a validated message to one line (raises ``ProtocolError`` if oversized)."""
    line = json.dumps(msg, separators=(",", ":"), allow_nan=False).encode() + b"\n"
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(line)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    return line


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse and validate one line; raises ``ProtocolError`` naming what is wrong."""
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(line)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    try:
        msg = json.loads(line, parse_constant=_reject_constant)
    except ProtocolError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    return validate(msg)
