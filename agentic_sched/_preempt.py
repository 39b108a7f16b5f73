"""Preemption decisions on plain data: which running attempts to stop for a waiting task.

Pure functions, no I/O, no live state: the applier builds the inputs from the
registry and its records and applies the answer (``Applier.preempt_for``).

Policy (``choose_victims``): a waiting task may preempt only running work that is
``preemptible`` and of *strictly lower* priority. On each worker where the task could
run, victims are taken lowest priority first, then least progress (latest start,
so the least work is thrown away), until the task fits; victims that turn out to be
unnecessary are put back (most valuable first). Among the workers where this works,
the one with the fewest victims wins, then the lowest highest-victim priority, then
the least total progress lost, then the worker id. GPUs count like any resource: a
task asking for ``gpu = (count, milli)`` fits when ``count`` GPU devices each have
``milli`` free once the victims' device shares are released. Cost: O(W * V log V) for
W workers holding V running attempts each (times the worker's GPUs for GPU tasks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from .model import MILLI_PER_DEVICE

_EPS = 1e-9


@attrs.frozen
class Running:
    """One running attempt as preemption sees it (times on the scheduler clock)."""

    task: str
    priority: float
    demand: Mapping[str, float]
    preemptible: bool
    started: float | None = None      # None: reserved, not yet started (no progress)
    devices: Mapping[int, float] = attrs.field(factory=dict)   # GPU index -> milli held


@attrs.frozen
class Host:
    """One worker the waiting task is eligible for (labels and devices already checked)."""

    id: str
    capacity: Mapping[str, float]
    used: Mapping[str, float]
    running: Sequence[Running] = ()
    gpus: Mapping[int, float] = attrs.field(factory=dict)      # GPU index -> milli in use


@attrs.frozen
class Preemption:
    """The decision: stop ``victims`` on ``worker`` so the task fits there."""

    worker: str
    victims: tuple[str, ...]
    lost_s: float                      # progress thrown away (sum of elapsed run times)


Gpu = tuple[int, float] | None  # (count, milli per device) of the waiting task


def _fits(demand: Mapping[str, float], gpu: Gpu, host: Host, victims: Iterable[Running] = ()) -> bool:
    freed, freed_dev = _free(victims)
    if not all(host.used.get(k, 0.0) - freed.get(k, 0.0) + v <= host.capacity.get(k, 0.0) + _EPS
               for k, v in demand.items() if v > 0):
        return False
    if gpu is None:
        return True
    count, milli = gpu
    free = sum(1 for d, u in host.gpus.items() if u - freed_dev.get(d, 0.0) + milli <= MILLI_PER_DEVICE + _EPS)
    return free >= count


def _free(victims: Iterable[Running]) -> tuple[dict[str, float], dict[int, float]]:
    out: dict[str, float] = {}
    dev: dict[int, float] = {}
    for r in victims:
        for k, v in r.demand.items():
            out[k] = out.get(k, 0.0) + v
        for d, m in r.devices.items():
            dev[d] = dev.get(d, 0.0) + m
    return out, dev


def _progress(r: Running, now: float) -> float:
    return 0.0 if r.started is None else max(0.0, now - r.started)


def victims_on(host: Host, demand: Mapping[str, float], priority: float, now: float,
               gpu: Gpu = None) -> tuple[str, ...] | None:
    """The victims to stop on ``host`` for a task of ``demand``/``priority`` (and ``gpu``),
    or None when even stopping every eligible attempt would not make it fit. An empty
    tuple means it fits already (nothing to preempt)."""
    if _fits(demand, gpu, host):
        return ()
    pool = sorted((r for r in host.running if r.preemptible and r.priority < priority),
                  key=lambda r: (r.priority, -(r.started if r.started is not None else float("inf")), r.task))
    chosen: list[Running] = []
    for r in pool:
        chosen.append(r)
        if _fits(demand, gpu, host, chosen):
            break
    else:
        return None
    # put back victims that are not needed, the most valuable (last taken) first
    for r in reversed(chosen[:-1]):
        rest = [c for c in chosen if c is not r]
        if _fits(demand, gpu, host, rest):
            chosen = rest
    return tuple(r.task for r in chosen)


def choose_victims(demand: Mapping[str, float], priority: float, hosts: Iterable[Host],
                   now: float, gpu: Gpu = None) -> Preemption | None:
    """The cheapest preemption that lets a task of ``demand``, ``priority`` and ``gpu``
    start now on one of ``hosts``, or None (no host could fit it, even with every
    lower-priority preemptible attempt stopped; or it fits somewhere already, so nothing
    is stopped)."""
    best: tuple[tuple[float, float, float, str], Preemption] | None = None
    for host in hosts:
        victims = victims_on(host, demand, priority, now, gpu)
        if victims is None:
            continue
        if not victims:
            return None  # room without preempting: the planner should place it
        by_id = {r.task: r for r in host.running}
        lost = sum(_progress(by_id[v], now) for v in victims)
        key = (float(len(victims)), max(by_id[v].priority for v in victims), lost, host.id)
        if best is None or key < best[0]:
            best = (key, Preemption(host.id, victims, lost))
    return None if best is None else best[1]
