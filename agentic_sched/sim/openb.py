"""Replay of the openb GPU-cluster trace (Alibaba 2023) under the FGD paper's protocol.

``benchmarks/data/openb/PROVENANCE.md`` is the specification: workload per seed
(shuffle + inflation to 130 % of cluster GPU), one pod at a time, no departures,
allocation ratio measured at arrived load X. ``run_openb`` runs a policy over seeds;
a policy is any callable ``(OpenbData, Workload) -> Outcome`` (see ``PlacementPolicy``),
so BestFit, FGD and the batched planners (``batched_policy``, ``agentic_sched.sim.openb_batch``) share
the loader, the workload and the measurement.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from agentic_sched.kernels import openb as K

NODE_CSV = "openb_node_list_gpu_node.csv"
POD_CSV = "openb_pod_list_default.csv"
PUBLISHED_CSV = "summary_gpu_alloc_ratio_mean10seeds.csv"
DEFAULT_SEEDS = tuple(range(42, 52))
DEFAULT_LOADS = (90, 100, 110, 130)
INFLATION = 1.3
TYPICAL_COVERAGE = 0.95
DATA_ENV = "AGENTIC_SCHED_OPENB_DATA"


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding the openb CSVs.

    Order: ``data_dir``, ``$AGENTIC_SCHED_OPENB_DATA``, ``<repo>/benchmarks/data/openb``,
    ``<repo>/../shared/data/openb``. Raises FileNotFoundError if none has the CSVs.
    """
    repo = Path(__file__).resolve().parents[2]
    candidates = [data_dir, os.environ.get(DATA_ENV), repo / "benchmarks" / "data" / "openb",
                  repo.parent / "shared" / "data" / "openb"]
    for c in candidates:
        if c and (Path(c) / NODE_CSV).is_file() and (Path(c) / POD_CSV).is_file():
            return Path(c)
    raise FileNotFoundError(f"openb CSVs ({NODE_CSV}, {POD_CSV}) not found in any of "
                            f"{[str(c) for c in candidates if c]}")


@dataclass(frozen=True)
class TypicalPods:
    """FGD's target workload: the most frequent pod shapes and their probabilities."""

    cpu: np.ndarray
    milli: np.ndarray
    ngpu: np.ndarray
    mask: np.ndarray
    p: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.cpu, self.milli, self.ngpu, self.mask, self.p


@dataclass(frozen=True)
class OpenbData:
    """The cluster (node arrays) and the original pod list, as int64 arrays."""

    node_cpu: np.ndarray
    node_mem: np.ndarray
    node_gpus: np.ndarray  # GPU count per node
    node_model: np.ndarray  # index into model_names
    model_names: tuple[str, ...]
    pod_cpu: np.ndarray
    pod_mem: np.ndarray
    pod_ngpu: np.ndarray
    pod_milli: np.ndarray  # share of one GPU for single-GPU pods (as in the CSV)
    pod_mask: np.ndarray  # allowed GPU models as a bitmask over model_names
    typical: TypicalPods

    @property
    def capacity_milli(self) -> int:
        return int(self.node_gpus.sum()) * K.MILLI

    @property
    def pod_request(self) -> np.ndarray:
        """GPU milli each original pod asks for (num_gpu x 1000, or the share)."""
        return np.where(self.pod_ngpu == 1, self.pod_milli, self.pod_ngpu * K.MILLI)

    def empty_cluster(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh ``(cpu_free, mem_free, gpu_free[n, 8])``; absent GPUs have 0 free."""
        gpu_free = np.zeros((len(self.node_cpu), K.MAX_GPUS), dtype=np.int64)
        gpu_free[np.arange(K.MAX_GPUS)[None, :] < self.node_gpus[:, None]] = K.MILLI
        return self.node_cpu.copy(), self.node_mem.copy(), gpu_free


def _model_mask(spec: str, models: tuple[str, ...]) -> int:
    if not spec.strip():
        return int(K.ANY_MODEL)
    allowed = set(spec.split("|"))
    return sum(1 << i for i, m in enumerate(models) if m in allowed)


def typical_pods(cpu, milli, ngpu, spec, models, coverage=TYPICAL_COVERAGE) -> TypicalPods:
    """Distinct (cpu, gpu_milli, num_gpu, gpu_spec), most frequent first (first seen on
    equal counts), until they cover ``coverage`` of the pods; probabilities renormalised."""
    counts = Counter(zip(cpu.tolist(), milli.tolist(), ngpu.tolist(), spec, strict=True))
    chosen, covered = [], 0
    for key, c in counts.most_common():
        chosen.append((key, c))
        covered += c
        if covered >= coverage * len(cpu):
            break
    total = float(sum(c for _, c in chosen))
    col = lambda j: np.array([k[j] for k, _ in chosen], dtype=np.int64)  # noqa: E731
    return TypicalPods(col(0), col(1), col(2),
                       np.array([_model_mask(k[3], models) for k, _ in chosen], dtype=np.int64),
                       np.array([c / total for _, c in chosen], dtype=np.float64))


def load_openb(data_dir: str | os.PathLike | None = None) -> OpenbData:
    """Read the node and pod CSVs (see ``find_data_dir``) into ``OpenbData``."""
    d = find_data_dir(data_dir)
    with open(d / NODE_CSV, newline="") as f:
        nodes = list(csv.DictReader(f))
    with open(d / POD_CSV, newline="") as f:
        pods = list(csv.DictReader(f))
    models = tuple(sorted({r["model"] for r in nodes}))
    col = lambda rows, k: np.array([int(r[k]) for r in rows], dtype=np.int64)  # noqa: E731
    spec = [r["gpu_spec"] for r in pods]
    pod_cpu, pod_milli, pod_ngpu = col(pods, "cpu_milli"), col(pods, "gpu_milli"), col(pods, "num_gpu")
    return OpenbData(
        node_cpu=col(nodes, "cpu_milli"), node_mem=col(nodes, "memory_mib"), node_gpus=col(nodes, "gpu"),
        node_model=np.array([models.index(r["model"]) for r in nodes], dtype=np.int64),
        model_names=models,
        pod_cpu=pod_cpu, pod_mem=col(pods, "memory_mib"), pod_ngpu=pod_ngpu, pod_milli=pod_milli,
        pod_mask=np.array([_model_mask(s, models) for s in spec], dtype=np.int64),
        typical=typical_pods(pod_cpu, pod_milli, pod_ngpu, spec, models),
    )


def load_published(data_dir: str | os.PathLike | None = None, workload: str = "openb_pod_list_default"):
    """Published FGD-paper results ``{policy: {load: pct}}`` (policy as 'BestFit', 'FGD', ...)."""
    with open(find_data_dir(data_dir) / PUBLISHED_CSV, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["workload"] == workload]
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        for k, v in r.items():
            if k not in ("workload", "arrived_pct_of_cluster_gpu"):
                out.setdefault(k.split("-", 1)[1], {})[int(r["arrived_pct_of_cluster_gpu"])] = float(v)
    return out


@dataclass(frozen=True)
class Workload:
    """One seed's arrival sequence (indices into the original pods) and node tie order."""

    seed: int
    pods: np.ndarray  # int64[m], original pod index of the i-th arrival
    node_rank: np.ndarray  # int64[n], smaller wins ties

    def pod_arrays(self, data: OpenbData, order: np.ndarray | None = None):
        """``(cpu, mem, ngpu, milli, mask)`` of the arrivals (optionally re-ordered)."""
        idx = self.pods if order is None else self.pods[order]
        return (data.pod_cpu[idx], data.pod_mem[idx], data.pod_ngpu[idx], data.pod_milli[idx],
                data.pod_mask[idx])


def build_workload(data: OpenbData, seed: int, inflation: float = INFLATION) -> Workload:
    """PROVENANCE step 1 with ``numpy.random.default_rng(seed)``: node tie order
    (a permutation), then all pods shuffled, then uniform draws with replacement appended
    until the next draw would pass ``inflation`` x cluster GPU milli."""
    rng = np.random.default_rng(seed)
    node_rank = rng.permutation(len(data.node_cpu)).astype(np.int64)
    order = rng.permutation(len(data.pod_cpu)).astype(np.int64)
    req = data.pod_request
    limit = inflation * data.capacity_milli
    total = int(req.sum())
    extra = []
    while True:
        j = int(rng.integers(len(req)))
        if total + req[j] > limit:
            break
        total += int(req[j])
        extra.append(j)
    return Workload(seed, np.concatenate([order, np.array(extra, dtype=np.int64)]), node_rank)


class Outcome(NamedTuple):
    """What a policy did with a workload, indexed by arrival.

    ``node[i]``: node of arrival i (-1 = failed); ``gpus[i]``: GPU bitmask;
    ``alloc_milli[i]``: cluster GPU milli counted as allocated when arrival i is measured
    (for one-at-a-time policies: everything placed among arrivals 0..i).
    """

    node: np.ndarray
    gpus: np.ndarray
    alloc_milli: np.ndarray


PlacementPolicy = Callable[[OpenbData, Workload], Outcome]


def placed_by_arrival(data: OpenbData, wl: Workload, node: np.ndarray, gpus: np.ndarray) -> Outcome:
    """Outcome whose allocation at arrival i counts the placed pods among arrivals 0..i."""
    req = data.pod_request[wl.pods]
    return Outcome(node, gpus, np.cumsum(np.where(node >= 0, req, 0)))


def _replay_policy(policy_id: int) -> PlacementPolicy:
    def run(data: OpenbData, wl: Workload) -> Outcome:
        cpu, mem, gpu = data.empty_cluster()
        node, gpus = K.replay(policy_id, cpu, mem, gpu, data.node_gpus, data.node_model, wl.node_rank,
                              *wl.pod_arrays(data), *data.typical.arrays())
        return placed_by_arrival(data, wl, node, gpus)

    return run


bestfit_policy: PlacementPolicy = _replay_policy(K.POLICY_BESTFIT)
fgd_policy: PlacementPolicy = _replay_policy(K.POLICY_FGD)


def measure(data: OpenbData, wl: Workload, outcome: Outcome, loads: Iterable[float] = DEFAULT_LOADS):
    """PROVENANCE step 7: mean allocated % over arrivals whose arrived % (2 decimals)
    lies in [X - 0.5, X + 0.5); ``{X: pct}`` (nan if no arrival falls in the window)."""
    cap = data.capacity_milli
    arrived = np.round(np.cumsum(data.pod_request[wl.pods]) / cap * 100.0, 2)
    alloc = np.round(outcome.alloc_milli / cap * 100.0, 2)
    out = {}
    for x in loads:
        sel = (arrived >= x - 0.5) & (arrived < x + 0.5)
        out[x] = float(alloc[sel].mean()) if sel.any() else float("nan")
    return out


def batch_order_keys(data: OpenbData, wl: Workload, orders: int) -> np.ndarray:
    """Candidate within-batch orders for ``replay_batched`` as sort keys float64[orders, m]:
    row 0 arrival order, row 1 whole-GPU pods first, further rows random (seeded by the
    workload seed, so runs are deterministic)."""
    _, _, ngpu, milli, _ = wl.pod_arrays(data)
    m = len(ngpu)
    keys = [np.arange(m, dtype=np.float64), -((ngpu > 1) | (milli >= K.MILLI)).astype(np.float64)]
    rng = np.random.default_rng([wl.seed, 1])
    while len(keys) < orders:
        keys.append(rng.random(m))
    return np.array(keys[:max(orders, 1)])


def credit_at_batch_end(outcome: Outcome, batch: int) -> Outcome:
    """The same placements, counted as allocated only once their whole batch of
    ``batch`` arrivals has arrived (the final short batch at the last arrival)."""
    i = np.arange(len(outcome.node))
    done = (i + 1) // batch * batch - 1  # last arrival of the newest complete batch
    done[-1:] = len(i) - 1
    alloc = np.where(done >= 0, outcome.alloc_milli[np.maximum(done, 0)], 0)
    return Outcome(outcome.node, outcome.gpus, alloc)


def batched_policy(batch: int = 64, orders: int = 8, base: str = "fgd",
                   credit: str = "arrival") -> PlacementPolicy:
    """The batched planner (``kernels.openb.replay_batched``) as a ``PlacementPolicy``.

    Arrivals are taken ``batch`` at a time; ``orders`` candidate orders of the batch are
    each placed pod by pod with ``base`` ('fgd' or 'bestfit') on a copy of the cluster and
    the one placing the most GPU milli (then least total fragmentation) is committed.
    ``credit`` says when a placement counts as allocated for the measurement:
    'arrival' at its own arrival index (as for one-at-a-time policies), 'batch_end' only
    once the last pod of its batch has arrived (the planner cannot place earlier).
    Raises ValueError for an unknown ``base`` or ``credit``.
    """
    if base not in ("fgd", "bestfit") or credit not in ("arrival", "batch_end"):
        raise ValueError(f"unknown base {base!r} or credit {credit!r}")
    policy_id = K.POLICY_FGD if base == "fgd" else K.POLICY_BESTFIT

    def run(data: OpenbData, wl: Workload) -> Outcome:
        cpu, mem, gpu = data.empty_cluster()
        node, gpus = K.replay_batched(policy_id, cpu, mem, gpu, data.node_gpus, data.node_model, wl.node_rank,
                                      *wl.pod_arrays(data), *data.typical.arrays(),
                                      batch, batch_order_keys(data, wl, orders))
        out = placed_by_arrival(data, wl, node, gpus)
        return credit_at_batch_end(out, batch) if credit == "batch_end" else out

    run.__name__ = f"batched(batch={batch}, orders={orders}, base={base}, credit={credit})"
    return run


def _policies() -> dict[str, PlacementPolicy]:
    from .openb_batch import planner_policy  # imports this module

    return {"bestfit": bestfit_policy, "fgd": fgd_policy, "batched": batched_policy(), "planner": planner_policy()}


def run_openb(policy: str | PlacementPolicy, seeds: Iterable[int] = DEFAULT_SEEDS,
              loads: Iterable[float] = DEFAULT_LOADS, data: OpenbData | None = None,
              data_dir: str | os.PathLike | None = None) -> dict:
    """Replay ``policy`` ('bestfit', 'fgd', 'batched', 'planner' or a ``PlacementPolicy``) per seed.

    Returns ``{"policy", "seeds", "loads", "per_seed": {seed: {load: pct}},
    "mean": {load: pct}, "std": {load: pct}}`` (std over seeds, ddof=0).
    Raises KeyError for an unknown policy name.
    """
    data = data if data is not None else load_openb(data_dir)
    name = policy if isinstance(policy, str) else getattr(policy, "__name__", repr(policy))
    fn = _policies()[policy] if isinstance(policy, str) else policy
    seeds, loads = list(seeds), list(loads)
    per_seed = {}
    for s in seeds:
        wl = build_workload(data, s)
        per_seed[s] = measure(data, wl, fn(data, wl), loads)
    table = np.array([[per_seed[s][x] for x in loads] for s in seeds])
    return {"policy": name, "seeds": seeds, "loads": loads, "per_seed": per_seed,
            "mean": dict(zip(loads, table.mean(axis=0).tolist(), strict=True)),
            "std": dict(zip(loads, table.std(axis=0).tolist(), strict=True))}
