"""Workers known to the scheduler: spec, state, liveness, what they hold right now.

States: ``connecting`` (added, no welcome yet) -> ``up`` -> ``draining`` (no new work)
-> ``down`` (drained or removed); ``lost`` when silent for longer than its heartbeat
timeout (any message counts as a sign of life). A lost worker's attempts are
repaired by the scheduler; the registry only detects.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from ._spec import SLOTS, WorkerSpec
from .executors.base import Link
from .model import Resources, Worker

WORKER_STATES = ("connecting", "up", "draining", "down", "lost")


@attrs.define(eq=False)
class WorkerState:
    spec: WorkerSpec
    model: Worker                      # capacity incl. task_slots; running filled per plan
    state: str = "connecting"
    reason: str = ""
    last_seen: float = attrs.field(factory=time.monotonic)   # monotonic
    link: Link | None = None
    agent_id: str | None = None
    facts: dict[str, Any] = attrs.field(factory=dict)
    load: dict[str, Any] = attrs.field(factory=dict)
    holding: set[str] = attrs.field(factory=set)             # task ids reserved/running here
    used: dict[str, float] = attrs.field(factory=dict)       # resource -> amount held now
    devices_used: dict[int, float] = attrs.field(factory=dict)
    # drift correction: free amounts the agent measured (psutil) in its last heartbeat, and
    # what was reserved here since then (not yet visible in the measurement)
    observed_free: dict[str, float] = attrs.field(factory=dict)
    reserved_since_beat: dict[str, float] = attrs.field(factory=dict)

    @property
    def schedulable(self) -> bool:
        return self.state == "up" and self.link is not None and not self.link.closed

    def hold(self, task_id: str, demand: dict[str, float], devices: dict[int, float]) -> None:
        self.holding.add(task_id)
        for k, v in demand.items():
            self.used[k] = self.used.get(k, 0.0) + v
            self.reserved_since_beat[k] = self.reserved_since_beat.get(k, 0.0) + v
        for d, m in devices.items():
            self.devices_used[d] = self.devices_used.get(d, 0.0) + m

    def release(self, task_id: str, demand: dict[str, float], devices: dict[int, float]) -> None:
        if task_id not in self.holding:
            return
        self.holding.discard(task_id)
        for k, v in demand.items():
            self.used[k] = max(0.0, self.used.get(k, 0.0) - v)
        for d, m in devices.items():
            self.devices_used[d] = max(0.0, self.devices_used.get(d, 0.0) - m)

    def observe(self, load: dict[str, Any]) -> None:
        """Take a heartbeat's measurements: ``mem_available_mb`` becomes the observed free
        ``mem_mb`` (memory is not elastic; cpu is, so cpu load is reported, not enforced)."""
        free = load.get("mem_available_mb")
        if isinstance(free, (int, float)) and not isinstance(free, bool):
            self.observed_free["mem_mb"] = float(free)
        self.reserved_since_beat.clear()

    def observed_headroom(self, k: str) -> float | None:
        """Free ``k`` per the last heartbeat minus reservations since, or None if unmeasured."""
        if k not in self.observed_free:
            return None
        return self.observed_free[k] - self.reserved_since_beat.get(k, 0.0)

    def effective_capacity(self) -> Worker:
        """The model with capacity lowered where the host measured less free than the
        registry's optimistic accounting assumes (what planners should see)."""
        cap = self.model.capacity.as_dict()
        changed = False
        for k in self.observed_free:
            if k in cap:
                room = self.observed_headroom(k)
                if room is not None and self.used.get(k, 0.0) + room < cap[k]:
                    cap[k] = max(0.0, self.used.get(k, 0.0) + room)
                    changed = True
        return attrs.evolve(self.model, capacity=Resources(cap)) if changed else self.model

    def fits_now(self, demand: dict[str, float], devices: dict[int, float]) -> str | None:
        """None if ``demand`` fits in the free capacity now, else the reason it does not."""
        for k, v in demand.items():
            cap = self.model.capacity.get(k)
            if self.used.get(k, 0.0) + v > cap + 1e-9:
                what = "concurrency limit reached" if k == SLOTS else f"insufficient {k}"
                return f"{what} on {self.spec.id} ({self.used.get(k, 0.0):g}+{v:g} > {cap:g})"
            room = self.observed_headroom(k)
            if room is not None and v > room + 1e-9:
                return (f"insufficient {k} on {self.spec.id} per its last heartbeat "
                        f"({self.observed_free[k]:g} free, {self.reserved_since_beat.get(k, 0.0):g} reserved since, "
                        f"{v:g} needed)")
        for d, m in devices.items():
            if self.devices_used.get(d, 0.0) + m > 1000 + 1e-9:
                return f"gpu {d} on {self.spec.id} is busy"
        return None


class Registry:
    def __init__(self, heartbeat_timeout_s: float) -> None:
        self.default_timeout = heartbeat_timeout_s
        self.workers: dict[str, WorkerState] = {}

    def get(self, worker_id: str) -> WorkerState | None:
        return self.workers.get(worker_id)

    def timeout_of(self, w: WorkerState) -> float:
        return w.spec.heartbeat_timeout_s or self.default_timeout

    def silent(self) -> list[WorkerState]:
        """Workers up/draining/connecting whose last sign of life is older than their timeout."""
        now = time.monotonic()
        out = []
        for w in self.workers.values():
            limit = self.timeout_of(w) if w.state != "connecting" else max(self.timeout_of(w), 15.0)
            if w.state in ("up", "draining", "connecting") and now - w.last_seen > limit:
                out.append(w)
        return out

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(WORKER_STATES, 0)
        for w in self.workers.values():
            out[w.state] += 1
        return out
