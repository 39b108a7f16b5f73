"""Plain-Python references for ``openb_batch.py`` (same arguments, same results, no numba).

Everything is recomputed from scratch for every pod and every node; the tests compare
these with the kernels.
"""

import math

import numpy as np

from .openb_ref import _fits_py, node_frag_py

MILLI = 1000
FGD_WEIGHT = 1.0e6


def _stream_py(cpu_n, gpus, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """(stream fragmentation, cpu-stranded milli) from the node's cpu and its list of
    per-GPU free milli: per target, the milli a stream of copies cannot use, and the milli
    it could use by GPUs alone but not with the node's cpu."""
    total = sum(gpus)
    frag = strand = 0.0
    for t in range(len(typ_p)):
        k = int(typ_ngpu[t])
        usable = by_gpu = 0
        if k > 0 and (int(typ_mask[t]) >> int(model_n)) & 1:
            by_cpu = cpu_n // int(typ_cpu[t]) if typ_cpu[t] > 0 else 1 << 40
            if k == 1 and typ_milli[t] > 0:
                s = int(typ_milli[t])
                copies = sum(f // s for f in gpus)
                usable, by_gpu = min(copies, by_cpu) * s, copies * s
            else:
                copies = sum(f >= MILLI for f in gpus) // k
                usable, by_gpu = min(copies, by_cpu) * k * MILLI, copies * k * MILLI
        frag += float(typ_p[t]) * (total - usable)
        strand += float(typ_p[t]) * (by_gpu - usable)
    return frag, strand


def stream_frag_py(cpu_n, gpus, model_n, *typ):
    """Stream fragmentation from the node's cpu and its list of per-GPU free milli."""
    return _stream_py(cpu_n, gpus, model_n, *typ)[0]


def cpu_strand_py(cpu_n, gpus, model_n, *typ):
    """Cpu-stranded stream milli from the node's cpu and its list of per-GPU free milli."""
    return _stream_py(cpu_n, gpus, model_n, *typ)[1]


def _score_py(cpu_n, before, after, model_n, T, S, mode, cpu_weight=0.0):
    d = stream_frag_py(cpu_n[0], before, model_n, *S) - stream_frag_py(cpu_n[1], after, model_n, *S)
    if mode == 0:
        return d
    x = node_frag_py(cpu_n[0], before, model_n, *T) - node_frag_py(cpu_n[1], after, model_n, *T)
    if cpu_weight != 0.0:
        x += cpu_weight * (cpu_strand_py(cpu_n[0], before, model_n, *S) - cpu_strand_py(cpu_n[1], after, model_n, *S))
    return int(100.0 / (1.0 + math.exp(-x / 1000.0))) * FGD_WEIGHT + d


def plan_place_py(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, cpu, mem, ngpu, milli, mask, T, S, mode,
                  cpu_weight=0.0):
    """Best ``(node, gpus)`` for one pod: highest score, then smallest rank; (-1, 0) if none."""
    best = None
    for n in range(len(cpu_free)):
        if not _fits_py(cpu_free, mem_free, gpu_free, gpu_count, model, n, cpu, mem, ngpu, milli, mask):
            continue
        gpus = [int(gpu_free[n, g]) for g in range(gpu_count[n])]
        cpus = (int(cpu_free[n]), int(cpu_free[n]) - cpu)
        if ngpu == 1:
            options = []
            for g, f in enumerate(gpus):
                if f >= milli:
                    after = list(gpus)
                    after[g] -= milli
                    options.append((-_score_py(cpus, gpus, after, model[n], T, S, mode, cpu_weight), g))
            s, g = min(options)  # best score, lowest index on ties
            cand = (s, int(node_rank[n]), n, 1 << g)
        else:
            idx = [g for g, f in enumerate(gpus) if f >= MILLI][:ngpu] if ngpu > 1 else []
            after = [f - MILLI if g in idx else f for g, f in enumerate(gpus)]
            cand = (-_score_py(cpus, gpus, after, model[n], T, S, mode, cpu_weight), int(node_rank[n]), n,
                    sum(1 << g for g in idx))
        if best is None or cand[:2] < best[:2]:
            best = cand
    return (-1, 0) if best is None else (best[2], best[3])


def replay_planner_py(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
                      pod_cpu, pod_mem, pod_ngpu, pod_milli, pod_mask, T, S, mode, batch, order_keys, select=1,
                      cpu_weight=0.0):
    """Same as ``replay_planner``: per batch, try each order on a copy, commit the best."""
    m = len(pod_cpu)
    placed = np.full(m, -1, dtype=np.int64)
    taken = np.zeros(m, dtype=np.int64)

    def run(c, me, g, idx):
        out = []
        for i in idx:
            pod = (int(pod_cpu[i]), int(pod_mem[i]), int(pod_ngpu[i]), int(pod_milli[i]), int(pod_mask[i]))
            n, b = plan_place_py(c, me, g, gpu_count, model, node_rank, *pod, T, S, mode, cpu_weight)
            if n >= 0:
                c[n] -= pod[0]
                me[n] -= pod[1]
                for x in range(8):
                    if (b >> x) & 1:
                        g[n, x] -= pod[3] if pod[2] == 1 else MILLI
            out.append((i, n, b))
        return out

    for start in range(0, m, batch):
        stop = min(m, start + batch)
        orders = [start + np.argsort(order_keys[r, start:stop], kind="mergesort") for r in range(len(order_keys))]
        best_r, best_key = 0, None
        if len(orders) > 1:
            for r, idx in enumerate(orders):
                c, me, g = cpu_free.copy(), mem_free.copy(), gpu_free.copy()
                res = run(c, me, g, idx)
                got = sum((int(pod_milli[i]) if pod_ngpu[i] == 1 else int(pod_ngpu[i]) * MILLI)
                          for i, n, _ in res if n >= 0)
                frag = 0.0
                for n in range(len(c)):
                    row = [int(g[n, x]) for x in range(gpu_count[n])]
                    if select == 3:
                        frag += node_frag_py(int(c[n]), row, model[n], *T) + cpu_weight * cpu_strand_py(
                            int(c[n]), row, model[n], *S)
                        continue
                    if select != 0:
                        frag += node_frag_py(int(c[n]), row, model[n], *T)
                    if select != 1:
                        frag += stream_frag_py(int(c[n]), row, model[n], *S)
                key = (-got, frag)
                if best_key is None or key < best_key:
                    best_r, best_key = r, key
        for i, n, b in run(cpu_free, mem_free, gpu_free, orders[best_r]):
            placed[i], taken[i] = n, b
    return placed, taken
