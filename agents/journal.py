"""The agent's durable journal of attempts: claims, outcomes, cancels and forgets.

An append-only JSON-lines file (``journal.jsonl`` in the agent's state dir). Each
record is one ``os.write`` on an ``O_APPEND`` descriptor, so a record is either whole
or absent after a crash of the agent or of the machine's processes (the page cache
survives a SIGKILL; there is no fsync, a power loss may drop the tail).

- ``claim(task, attempt)`` is written *before* an attempt starts; a second claim of
  the same attempt is refused by the caller, which is what makes a re-sent ``assign``
  harmless (exactly one run per attempt).
- ``result(msg)`` stores the ``finished`` message until the scheduler ``forget``s it.
- On open, a claim without a result means the agent died while the attempt ran: it
  becomes a ``lost`` result ("outcome unknown"), reported like any other outcome.
The file is compacted (live records rewritten, atomic rename) on open and whenever
dead records outnumber live ones by a wide margin.
"""

from __future__ import annotations

import json
import os
from typing import Any

Key = tuple[str, int]


class Journal:
    """Per-agent attempt journal; not thread-safe (the agent is single-threaded asyncio)."""

    def __init__(self, state_dir: str) -> None:
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "journal.jsonl")
        self.claims: dict[Key, str] = {}           # key -> "claimed" | "cancelled"
        self.results: dict[Key, dict[str, Any]] = {}
        self._records = 0
        self._replay()
        self._compact()

    # ------------------------------------------------------------------ reading
    def _replay(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    key = (rec["task"], int(rec["attempt"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash
                op = rec.get("op")
                if op == "claim":
                    self.claims.setdefault(key, "claimed")
                elif op == "cancel":
                    self.claims[key] = "cancelled"
                elif op == "result":
                    self.claims.setdefault(key, "claimed")
                    self.results[key] = rec["msg"]
                elif op == "forget":
                    self.claims.pop(key, None)
                    self.results.pop(key, None)
        for key, state in self.claims.items():
            if key not in self.results:
                status = "cancelled" if state == "cancelled" else "lost"
                self.results[key] = {
                    "v": 1, "type": "finished", "task": key[0], "attempt": key[1], "status": status,
                    "exit_code": None, "runtime_s": 0.0,
                    "reason": "the agent restarted while this attempt ran; its outcome is unknown",
                }

    def _compact(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            for key, state in self.claims.items():
                f.write(_line({"op": "claim", "task": key[0], "attempt": key[1]}))
                if key in self.results:
                    f.write(_line({"op": "result", "task": key[0], "attempt": key[1], "msg": self.results[key]}))
                elif state == "cancelled":
                    f.write(_line({"op": "cancel", "task": key[0], "attempt": key[1]}))
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._records = 2 * len(self.claims)

    # ------------------------------------------------------------------ writing
    def _append(self, rec: dict[str, Any]) -> None:
        os.write(self._fd, _line(rec))
        self._records += 1

    def known(self, key: Key) -> bool:
        return key in self.claims

    def claim(self, key: Key) -> None:
        self.claims[key] = "claimed"
        self._append({"op": "claim", "task": key[0], "attempt": key[1]})

    def cancel(self, key: Key) -> None:
        """Record that ``key`` must never start (a cancel arrived before or during the run)."""
        self.claims[key] = "cancelled"
        self._append({"op": "cancel", "task": key[0], "attempt": key[1]})

    def result(self, key: Key, msg: dict[str, Any]) -> None:
        self.results[key] = msg
        self._append({"op": "result", "task": key[0], "attempt": key[1], "msg": msg})

    def forget(self, key: Key) -> None:
        if key not in self.claims:
            return
        self.claims.pop(key, None)
        self.results.pop(key, None)
        self._append({"op": "forget", "task": key[0], "attempt": key[1]})
        if self._records > 10_000 and self._records > 8 * (len(self.claims) + 1):
            os.close(self._fd)
            self._compact()

    def close(self) -> None:
        os.close(self._fd)


def _line(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode() + b"\n"
