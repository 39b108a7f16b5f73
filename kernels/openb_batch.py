"""Stream-fragmentation scorer and the batched joint planner for the openb replay (numba).

FGD (``openb.py``) measures a node's fragmentation for a typical pod t as the free GPU
milli that *one* copy of t could not use, and counts cpu only as "does one copy fit".
That misses two losses that remain at 100 % load: GPUs stranded because the node's cpu
runs out before its GPUs do (FGD scores almost every node 50 for a cpu-only pod, so the
random tie order decides), and shares that leave an unusable residue once several copies
are packed on a GPU (470 + 470 leaves 60).

Stream fragmentation: for target pod t, the free milli a *stream* of copies of t could
not use on the node:

    copies_gpu = sum_g floor(free_g / s)     (s = share; k-GPU pods: nfull // k, s = 1000)
    copies_cpu = cpu_free // cpu_t           (unbounded if cpu_t = 0)
    f_t = total_free - min(copies_gpu, copies_cpu) * s * k   (f_t = total_free if the model
                                                              is not allowed or t is cpu-only)

and F(n) = sum_t p_t f_t. Its cpu-stranded part C(n) = sum_t p_t (copies_gpu -
min(copies_gpu, copies_cpu)) * s * k is the milli the streams could use by GPUs alone but
not with the node's cpu (``stream_terms`` gives both). Scores (higher is better), ``mode``:

- 1 (hybrid, the planner's): the integer score int(100 sigmoid(x / 1000)) first, with
  x = Fgd(n) - Fgd(n') + w (C(n) - C(n')) (w = ``cpu_weight``; w = 0 is FGD's own score),
  the stream difference F(n) - F(n') breaking its ties (``FGD_WEIGHT``);
- 0: the stream difference alone.

The cpu term matters because FGD only asks whether *one* copy of a typical pod still
fits the node's cpu: on 8-GPU nodes with 12 cores per GPU, cpu-hungry shares (two
470-milli pods with 11.9 cores each on one GPU) leave whole GPUs and 220..540-milli holes
with no cpu left for any pod that would fit them. On openb (seed 42, 100 % arrived load)
such holes hold 0.16 % of the cluster's GPU milli with w = 0 and 0.06 % with w = 0.1;
the planner's 10-seed mean goes 95.90 -> 95.98 (w = 0.15: 95.96, 0.25: 95.95; 0.5 and 1
are worse on seed 42: 95.89, 95.76).

A shared pod tries every GPU that fits (best score, lowest index on ties), multi-GPU
pods take the lowest-index free GPUs, ties between nodes go to the smallest
``node_rank``. ``T`` and ``S`` are the FGD typical pods and the stream targets, each a
tuple ``(cpu, milli, ngpu, mask, p)``.

Arrays are as in ``openb.py``; ``openb_batch_ref.py`` holds the plain-Python reference.
"""

import numpy as np
from numba import njit

from .openb import (
    MAX_GPUS,
    MILLI,
    apply_placement,
    exclusive_gpus,
    fits_summary,
    gpu_request,
    node_frag,
    node_summaries,
    update_summary,
)

BIG = np.int64(1) << 40


@njit(cache=True)
def stream_terms(cpu_n, gpu_row, count, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """``(F(n), C(n))`` of one node (milli, float64): stream fragmentation and its
    cpu-stranded part C(n) = sum_t p_t (copies_gpu - min(copies_gpu, copies_cpu)) s k, the
    milli a stream of t could use by GPUs alone but not with the node's cpu. O(T * 8)."""
    total = 0
    nfull = 0
    for g in range(count):
        total += gpu_row[g]
        if gpu_row[g] >= MILLI:
            nfull += 1
    frag = 0.0
    strand = 0.0
    for t in range(typ_p.shape[0]):
        k = typ_ngpu[t]
        usable = 0
        by_gpu = 0
        if k > 0 and ((typ_mask[t] >> model_n) & 1) != 0:
            copies_cpu = cpu_n // typ_cpu[t] if typ_cpu[t] > 0 else BIG
            if k == 1 and typ_milli[t] > 0:
                s = typ_milli[t]
                copies = 0
                for g in range(count):
                    copies += gpu_row[g] // s
                usable = min(copies, copies_cpu) * s
                by_gpu = copies * s
            else:
                usable = min(nfull // k, copies_cpu) * k * MILLI
                by_gpu = (nfull // k) * k * MILLI
        frag += typ_p[t] * (total - usable)
        strand += typ_p[t] * (by_gpu - usable)
    return frag, strand


@njit(cache=True)
def stream_frag(cpu_n, gpu_row, count, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """Stream fragmentation F(n) of one node (milli, float64). O(T * 8)."""
    return stream_terms(cpu_n, gpu_row, count, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)[0]


@njit(cache=True)
def cpu_strand(cpu_n, gpu_row, count, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """Cpu-stranded stream milli C(n) of one node (see ``stream_terms``). O(T * 8)."""
    return stream_terms(cpu_n, gpu_row, count, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)[1]


FGD_WEIGHT = 1.0e6  # hybrid mode: one FGD score point outweighs any stream difference


@njit(cache=True)
def _fgd_int(fgd_before, fgd_after):
    return int(100.0 * (1.0 / (1.0 + np.exp(-((fgd_before - fgd_after) / 1000.0)))))


@njit(cache=True)
def _fgd_int_x(x):
    return int(100.0 * (1.0 / (1.0 + np.exp(-(x / 1000.0)))))


@njit(cache=True)
def _score(fgd_before, fgd_after, sf_before, sf_after, mode):
    """mode 0: stream difference; mode 1: FGD's int(100 sigmoid) first, stream difference second."""
    d = sf_before - sf_after
    if mode == 0:
        return d
    return _fgd_int(fgd_before, fgd_after) * FGD_WEIGHT + d


@njit(cache=True)
def _frags_after(cpu_after, row, count, model_n, T, S):
    """``(FGD F, stream F, cpu-stranded C)`` of one node state."""
    fa = node_frag(cpu_after, row, count, model_n, T[0], T[1], T[2], T[3], T[4])
    sa, ca = stream_terms(cpu_after, row, count, model_n, S[0], S[1], S[2], S[3], S[4])
    return fa, sa, ca


@njit(cache=True)
def _option(cpu_after, row, count, model_n, ff_n, sf_n, cs_n, T, S, mode, floor_int, cpu_weight):
    """Score of one option; in hybrid mode -inf without computing the stream term when
    its FGD int score is below ``floor_int`` (it cannot win: |stream diff| << FGD_WEIGHT).
    Hybrid with ``cpu_weight`` w != 0: the int score is int(100 sigmoid(x / 1000)) with
    x = Fgd(n) - Fgd(n') + w (C(n) - C(n'))."""
    if mode == 1:
        fa = node_frag(cpu_after, row, count, model_n, T[0], T[1], T[2], T[3], T[4])
        if cpu_weight != 0.0:
            if cpu_weight > 0.0 and _fgd_int_x((ff_n - fa) + cpu_weight * cs_n) < floor_int:
                return -np.inf  # C(n') >= 0 bounds the score from above
            sa, ca = stream_terms(cpu_after, row, count, model_n, S[0], S[1], S[2], S[3], S[4])
            f = _fgd_int_x((ff_n - fa) + cpu_weight * (cs_n - ca))
            if f < floor_int:
                return -np.inf
            return f * FGD_WEIGHT + (sf_n - sa)
        f = _fgd_int(ff_n, fa)
        if f < floor_int:
            return -np.inf
        sa = stream_frag(cpu_after, row, count, model_n, S[0], S[1], S[2], S[3], S[4])
        return f * FGD_WEIGHT + (sf_n - sa)
    fa, sa, _ = _frags_after(cpu_after, row, count, model_n, T, S)
    return _score(ff_n, fa, sf_n, sa, mode)


@njit(cache=True)
def _sf_node(cpu_free, gpu_free, gpu_count, model, n, ff_n, sf_n, cs_n, cpu, ngpu, milli, T, S, mode, floor_int, row,
             cpu_weight):
    """``(score, gpus)`` of feasible node ``n`` (score -inf if, in hybrid mode, no option
    reaches FGD int score ``floor_int``); ``row`` is scratch int64[8]."""
    count = gpu_count[n]
    for g in range(MAX_GPUS):
        row[g] = gpu_free[n, g]
    cpu_after = cpu_free[n] - cpu
    if ngpu != 1:
        gpus = exclusive_gpus(gpu_free, gpu_count, n, ngpu) if ngpu > 1 else 0
        for g in range(count):
            if (gpus >> g) & 1:
                row[g] -= MILLI
        return _option(cpu_after, row, count, model[n], ff_n, sf_n, cs_n, T, S, mode, floor_int, cpu_weight), gpus
    best_s = -np.inf
    best_g = -1
    for g in range(count):
        f = row[g]
        if f < milli:
            continue
        dup = False
        for h in range(g):
            if row[h] == f:
                dup = True
                break
        if dup:
            continue
        row[g] = f - milli
        s = _option(cpu_after, row, count, model[n], ff_n, sf_n, cs_n, T, S, mode, floor_int, cpu_weight)
        row[g] = f
        if best_g < 0 or s > best_s:
            best_s = s
            best_g = g
            if mode == 1 and s > -np.inf:
                floor_int = max(floor_int, int(np.round(s / FGD_WEIGHT)))
    return best_s, 1 << best_g


@njit(cache=True)
def place_cached(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, ffrag, sfrag, cstrand, gmax, nfull,
                 cpu, mem, ngpu, milli, mask, T, S, mode, cpu_weight):
    """Best node ``(node, gpus)`` for one pod given cached FGD F(n), stream F(n), C(n), gmax, nfull."""
    row = np.empty(MAX_GPUS, dtype=np.int64)
    best, best_s, best_b = -1, -np.inf, 0
    for n in range(cpu_free.shape[0]):
        if not fits_summary(cpu_free[n], mem_free[n], gmax[n], nfull[n], model[n], cpu, mem, ngpu, milli, mask):
            continue
        floor_int = int(np.round(best_s / FGD_WEIGHT)) if best >= 0 and best_s > -np.inf else -1
        s, b = _sf_node(cpu_free, gpu_free, gpu_count, model, n, ffrag[n], sfrag[n], cstrand[n], cpu, ngpu, milli,
                        T, S, mode, floor_int, row, cpu_weight)
        if best < 0 or s > best_s or (s == best_s and node_rank[n] < node_rank[best]):
            best, best_s, best_b = n, s, b
    return best, best_b


@njit(cache=True)
def _all_frags(cpu_free, gpu_free, gpu_count, model, T, S):
    nn = cpu_free.shape[0]
    ff = np.empty(nn, dtype=np.float64)
    sf = np.empty(nn, dtype=np.float64)
    cs = np.empty(nn, dtype=np.float64)
    for n in range(nn):
        ff[n], sf[n], cs[n] = _frags_after(cpu_free[n], gpu_free[n], gpu_count[n], model[n], T, S)
    return ff, sf, cs


@njit(cache=True)
def plan_place(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, cpu, mem, ngpu, milli, mask, T, S, mode,
               cpu_weight=0.0):
    """Placement ``(node, gpus)`` of one pod from scratch; node -1 if it fits nowhere.
    ``T``, ``S``: FGD typical pods and stream targets, each ``(cpu, milli, ngpu, mask, p)``;
    ``cpu_weight``: weight of the cpu-stranded milli in the hybrid int score (``_option``)."""
    ff, sf, cs = _all_frags(cpu_free, gpu_free, gpu_count, model, T, S)
    _, gmax, nfull = node_summaries(gpu_free, gpu_count)
    return place_cached(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, ff, sf, cs, gmax, nfull,
                        cpu, mem, ngpu, milli, mask, T, S, mode, cpu_weight)


@njit(cache=True)
def _place_apply(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, gtot, gmax, nfull, ff, sf, cs,
                 cpu, mem, ngpu, milli, mask, T, S, mode, cpu_weight):
    n, b = place_cached(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, ff, sf, cs, gmax, nfull,
                        cpu, mem, ngpu, milli, mask, T, S, mode, cpu_weight)
    if n >= 0:
        apply_placement(cpu_free, mem_free, gpu_free, n, b, cpu, mem, ngpu, milli)
        update_summary(gpu_free, gpu_count, n, gtot, gmax, nfull)
        ff[n], sf[n], cs[n] = _frags_after(cpu_free[n], gpu_free[n], gpu_count[n], model[n], T, S)
    return n, b


@njit(cache=True)
def replay_planner(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
                   pod_cpu, pod_mem, pod_ngpu, pod_milli, pod_mask, T, S, mode, batch, order_keys, select=1,
                   cpu_weight=0.0):
    """Batched joint planner: arrivals ``batch`` at a time; for each batch every candidate
    order (row r of ``order_keys`` float64[R, m], ties by arrival) is placed pod by pod
    with the scorer (``mode``) on a copy of the cluster, and the order placing the most
    GPU milli, then the smallest total fragmentation (``select`` 0: stream, 1: FGD's,
    2: their sum, 3: FGD's + ``cpu_weight`` x cpu-stranded), then the lowest r is
    committed; ``cpu_weight``: see ``_option``. Placed pods never move; a pod unplaced in
    the committed order fails.
    ``batch`` = 1 with one order is the one-at-a-time replay. Node arrays are updated in
    place. Returns ``(node int64[m], gpus int64[m])`` by arrival, node -1 = failed.
    """
    m = pod_cpu.shape[0]
    n_orders = order_keys.shape[0]
    placed = np.full(m, -1, dtype=np.int64)
    taken = np.zeros(m, dtype=np.int64)
    gtot, gmax, nfull = node_summaries(gpu_free, gpu_count)
    ff, sf, cs = _all_frags(cpu_free, gpu_free, gpu_count, model, T, S)
    for start in range(0, m, batch):
        stop = min(m, start + batch)
        best_r, best_milli, best_frag = 0, -1, 0.0
        if n_orders > 1:
            for r in range(n_orders):
                idx = start + np.argsort(order_keys[r, start:stop], kind="mergesort")
                c, me, g = cpu_free.copy(), mem_free.copy(), gpu_free.copy()
                gt, gm, nf, f1, f2, f3 = gtot.copy(), gmax.copy(), nfull.copy(), ff.copy(), sf.copy(), cs.copy()
                got = 0
                for i in idx:
                    n, b = _place_apply(c, me, g, gpu_count, model, node_rank, gt, gm, nf, f1, f2, f3,
                                        pod_cpu[i], pod_mem[i], pod_ngpu[i], pod_milli[i], pod_mask[i], T, S, mode,
                                        cpu_weight)
                    if n >= 0:
                        got += gpu_request(pod_ngpu[i], pod_milli[i])
                total_frag = 0.0
                for x in range(f1.shape[0]):
                    if select == 3:
                        total_frag += f1[x] + cpu_weight * f3[x]
                        continue
                    if select != 0:
                        total_frag += f1[x]
                    if select != 1:
                        total_frag += f2[x]
                if got > best_milli or (got == best_milli and total_frag < best_frag):
                    best_r, best_milli, best_frag = r, got, total_frag
        idx = start + np.argsort(order_keys[best_r, start:stop], kind="mergesort")
        for i in idx:
            placed[i], taken[i] = _place_apply(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
                                               gtot, gmax, nfull, ff, sf, cs,
                                               pod_cpu[i], pod_mem[i], pod_ngpu[i], pod_milli[i], pod_mask[i],
                                               T, S, mode, cpu_weight)
    return placed, taken
