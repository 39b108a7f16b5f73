"""Batched joint planner for openb: kernels vs plain-Python references, an independent
feasibility checker on a real reduced replay, online-ness (a prefix of whole batches is
placed exactly as in the full run, so nothing placed ever moves and no future pod is
seen), determinism. No wall-clock asserts."""

import numpy as np
import pytest
from agentic_sched.kernels import openb_batch as KB
from agentic_sched.kernels import openb_batch_ref as RB
from test_openb import random_cluster, random_pods, random_typical

from agentic_sched.sim import openb as O
from agentic_sched.sim import openb_batch as OB


@pytest.fixture(scope="module")
def data():
    try:
        return O.load_openb()
    except FileNotFoundError:
        pytest.skip("openb CSVs not available")


def _targets(rng):
    t, s = random_typical(rng), random_typical(rng, t=8)
    return tuple(np.asarray(a) for a in t), tuple(np.asarray(a) for a in s)


@pytest.mark.parametrize("seed", range(20))
def test_stream_frag_matches_reference(seed):
    rng = np.random.default_rng(seed)
    cpu, _, gpu, count, model, _ = random_cluster(rng)
    _, s = _targets(rng)
    for n in range(len(cpu)):
        k = KB.stream_frag(cpu[n], gpu[n], count[n], model[n], *s)
        r = RB.stream_frag_py(int(cpu[n]), [int(x) for x in gpu[n, :count[n]]], model[n], *s)
        assert k == pytest.approx(r, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_stream_terms_match_reference(seed):
    rng = np.random.default_rng(50 + seed)
    cpu, _, gpu, count, model, _ = random_cluster(rng)
    _, s = _targets(rng)
    for n in range(len(cpu)):
        f, c = KB.stream_terms(cpu[n], gpu[n], count[n], model[n], *s)
        row = [int(x) for x in gpu[n, :count[n]]]
        assert f == RB.stream_frag_py(int(cpu[n]), row, model[n], *s) == KB.stream_frag(cpu[n], gpu[n], count[n],
                                                                                        model[n], *s)
        assert c == RB.cpu_strand_py(int(cpu[n]), row, model[n], *s) == KB.cpu_strand(cpu[n], gpu[n], count[n],
                                                                                      model[n], *s)
        assert c >= 0.0


def test_cpu_strand_hand_worked():
    # 470-share with 8000 cpu: GPUs 1000, 530, 0 take 3 copies by GPU; cpu allows 12, 2, 0
    tgt = (np.array([8000]), np.array([470]), np.array([1]), np.array([-1]), np.array([1.0]))
    row = np.array([1000, 530, 0, 0, 0, 0, 0, 0])
    assert KB.cpu_strand(100000, row, 3, 0, *tgt) == 0
    assert KB.cpu_strand(16000, row, 3, 0, *tgt) == 470
    assert KB.cpu_strand(7999, row, 3, 0, *tgt) == 3 * 470
    whole = (np.array([64000]), np.array([1000]), np.array([8]), np.array([-1]), np.array([1.0]))
    assert KB.cpu_strand(60000, np.full(8, 1000), 8, 0, *whole) == 8000
    cpu_free = (np.array([0]), np.array([470]), np.array([1]), np.array([-1]), np.array([1.0]))
    assert KB.cpu_strand(0, row, 3, 0, *cpu_free) == 0  # a target asking no cpu is never stranded


def test_stream_frag_hand_worked():
    # one target: 470-share with 8000 cpu, p = 1. GPUs 1000, 530, 0 -> 2 + 1 copies by GPU
    tgt = (np.array([8000]), np.array([470]), np.array([1]), np.array([-1]), np.array([1.0]))
    row = np.array([1000, 530, 0, 0, 0, 0, 0, 0])
    assert KB.stream_frag(100000, row, 3, 0, *tgt) == 1530 - 3 * 470  # gpu-bound
    assert KB.stream_frag(16000, row, 3, 0, *tgt) == 1530 - 2 * 470  # cpu-bound: 2 copies
    assert KB.stream_frag(7999, row, 3, 0, *tgt) == 1530  # no copy fits
    whole = (np.array([64000]), np.array([1000]), np.array([8]), np.array([-1]), np.array([1.0]))
    full = np.full(8, 1000)
    assert KB.stream_frag(96000, full, 8, 0, *whole) == 0
    assert KB.stream_frag(60000, full, 8, 0, *whole) == 8000


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("mode,cpu_weight", [(OB.MODE_STREAM, 0.0), (OB.MODE_HYBRID, 0.0), (OB.MODE_HYBRID, 0.25),
                                             (OB.MODE_HYBRID, 1.0)])
def test_plan_place_matches_reference(seed, mode, cpu_weight):
    rng = np.random.default_rng(100 + seed)
    cpu, mem, gpu, count, model, rank = random_cluster(rng)
    t, s = _targets(rng)
    for pod in zip(*random_pods(rng, 10), strict=True):
        pod = tuple(int(x) for x in pod)
        k = KB.plan_place(cpu, mem, gpu, count, model, rank, *pod, t, s, mode, cpu_weight)
        r = RB.plan_place_py(cpu, mem, gpu, count, model, rank, *pod, t, s, mode, cpu_weight)
        assert tuple(int(x) for x in k) == r


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("batch,orders,select,cpu_weight", [(1, 1, 1, 0.0), (4, 3, 1, 0.0), (7, 2, 0, 0.25),
                                                            (5, 3, 2, 0.25), (4, 3, 1, 1.0), (4, 3, 3, 0.25)])
def test_replay_planner_matches_reference(seed, batch, orders, select, cpu_weight):
    rng = np.random.default_rng(200 + seed)
    cpu, mem, gpu, count, model, rank = random_cluster(rng, n_nodes=6)
    t, s = _targets(rng)
    pods = random_pods(rng, 30)
    keys = np.vstack([np.arange(30.0), rng.random((orders - 1, 30))])
    k = KB.replay_planner(cpu.copy(), mem.copy(), gpu.copy(), count, model, rank, *pods, t, s,
                          OB.MODE_HYBRID, batch, keys, select, cpu_weight)
    r = RB.replay_planner_py(cpu.copy(), mem.copy(), gpu.copy(), count, model, rank, *pods, t, s,
                             OB.MODE_HYBRID, batch, keys, select, cpu_weight)
    np.testing.assert_array_equal(k[0], r[0])
    np.testing.assert_array_equal(k[1], r[1])


def check_feasible(data, wl, outcome):
    """Independent checker: the final cluster (no departures, so the final load is the
    peak) respects every node's cpu, memory and per-GPU capacity; each pod has exactly
    its number of GPUs, on GPUs the node has, of an allowed model."""
    n_nodes = len(data.node_cpu)
    cpu_used = np.zeros(n_nodes, dtype=np.int64)
    mem_used = np.zeros(n_nodes, dtype=np.int64)
    gpu_used = np.zeros((n_nodes, 8), dtype=np.int64)
    for i, p in enumerate(wl.pods):
        n, bits = int(outcome.node[i]), int(outcome.gpus[i])
        if n < 0:
            assert bits == 0
            continue
        cpu_used[n] += data.pod_cpu[p]
        mem_used[n] += data.pod_mem[p]
        ngpu = int(data.pod_ngpu[p])
        taken = [g for g in range(8) if (bits >> g) & 1]
        assert len(taken) == ngpu, (i, taken, ngpu)
        assert all(g < data.node_gpus[n] for g in taken)
        if ngpu:
            assert (int(data.pod_mask[p]) >> int(data.node_model[n])) & 1
        for g in taken:
            gpu_used[n, g] += data.pod_milli[p] if ngpu == 1 else 1000
    assert (cpu_used <= data.node_cpu).all()
    assert (mem_used <= data.node_mem).all()
    assert (gpu_used <= 1000).all()
    placed = outcome.node >= 0
    assert outcome.alloc_milli[-1] == data.pod_request[wl.pods][placed].sum()


def _reduced(data, seed, m):
    wl = O.build_workload(data, seed)
    return O.Workload(wl.seed, wl.pods[:m], wl.node_rank)


def _small_cluster(data, nodes=120):
    """The first ``nodes`` nodes of the cluster (a reduced replay that still saturates)."""
    sl = slice(0, nodes)
    return O.OpenbData(data.node_cpu[sl], data.node_mem[sl], data.node_gpus[sl], data.node_model[sl],
                       data.model_names, data.pod_cpu, data.pod_mem, data.pod_ngpu, data.pod_milli,
                       data.pod_mask, data.typical)


def test_planner_feasible_online_deterministic(data):
    small = _small_cluster(data)
    wl = _reduced(small, 42, 900)  # ~1.4x the small cluster's GPUs: failures happen
    pol = OB.planner_policy(batch=16, orders=3)
    out = pol(small, wl)
    check_feasible(small, wl, out)
    assert (out.node < 0).any() and (out.node >= 0).sum() > 500
    again = pol(small, wl)
    np.testing.assert_array_equal(out.node, again.node)
    np.testing.assert_array_equal(out.gpus, again.gpus)
    # online: the first 20 batches alone are placed exactly as in the full run, so later
    # arrivals never influence (or move) an earlier batch's placements
    head = O.Workload(wl.seed, wl.pods[:320], wl.node_rank)
    out_head = pol(small, head)
    np.testing.assert_array_equal(out_head.node, out.node[:320])
    np.testing.assert_array_equal(out_head.gpus, out.gpus[:320])


def test_planner_one_by_one_matches_plan_place(data):
    small = _small_cluster(data, 40)
    wl = _reduced(small, 43, 150)
    out = OB.planner_policy(batch=1, orders=1)(small, wl)
    cpu, mem, gpu = small.empty_cluster()
    T, S = small.typical.arrays(), OB.stream_targets(small)
    for i, pod in enumerate(zip(*wl.pod_arrays(small), strict=True)):
        pod = tuple(int(x) for x in pod)
        n, b = KB.plan_place(cpu, mem, gpu, small.node_gpus, small.node_model, wl.node_rank, *pod, T, S,
                             OB.MODE_HYBRID, OB.CPU_WEIGHT)
        assert (n, b) == (out.node[i], out.gpus[i])
        if n >= 0:
            from agentic_sched.kernels.openb import apply_placement
            apply_placement(cpu, mem, gpu, n, b, *pod[:4])


def test_batch_end_credit_and_registration(data):
    small = _small_cluster(data, 60)
    wl = _reduced(small, 44, 300)
    a = OB.planner_policy(batch=32, orders=2)(small, wl)
    b = OB.planner_policy(batch=32, orders=2, credit="batch_end")(small, wl)
    np.testing.assert_array_equal(a.node, b.node)
    assert (b.alloc_milli <= a.alloc_milli).all() and b.alloc_milli[-1] == a.alloc_milli[-1]
    assert "planner" in O._policies()
    with pytest.raises(ValueError):
        OB.planner_policy(mode=7)


def test_stream_targets(data):
    cpu, milli, ngpu, mask, p = OB.stream_targets(data)
    assert len(cpu) == len(data.typical.p) + 13  # 13 multi-GPU shapes in the default list
    assert p.sum() == pytest.approx(1.0) and (p > 0).all()
    assert (milli[ngpu > 1] == 1000).all()
