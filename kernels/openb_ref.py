"""Plain-Python references for ``openb.py`` (same arguments, same results, no numba).

Written to be read, not to be fast: every score is recomputed from scratch, every GPU
of a node is tried, nothing is cached. The tests compare them with the kernels.
"""

import math

import numpy as np

MILLI = 1000


def _fits_py(cpu_free, mem_free, gpu_free, gpu_count, model, n, cpu, mem, ngpu, milli, mask):
    if cpu_free[n] < cpu or mem_free[n] < mem:
        return False
    if ngpu == 0:
        return True  # CPU-only pods may go on any node
    if not (int(mask) >> int(model[n])) & 1:
        return False
    gpus = [int(gpu_free[n, g]) for g in range(gpu_count[n])]
    if ngpu == 1:
        return any(f >= milli for f in gpus)
    return sum(f >= MILLI for f in gpus) >= ngpu


def _gpus_left(gpu_free, gpu_count, n):
    return [int(gpu_free[n, g]) for g in range(gpu_count[n])]


def _lowest_free(gpus, ngpu):
    idx = [g for g, f in enumerate(gpus) if f >= MILLI][:ngpu]
    return sum(1 << g for g in idx)


def bestfit_scores_py(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask):
    req = milli if ngpu == 1 else ngpu * MILLI
    out = np.full(len(cpu_free), -1, dtype=np.int64)
    for n in range(len(cpu_free)):
        if _fits_py(cpu_free, mem_free, gpu_free, gpu_count, model, n, cpu, mem, ngpu, milli, mask):
            gtot = sum(_gpus_left(gpu_free, gpu_count, n))
            x = 0.5 * (int(cpu_free[n]) - cpu) / 128000.0 + 0.5 * (gtot - req) / 8000.0
            out[n] = int(100.0 * (1.0 - x))
    return out


def _select_py(scores, node_rank):
    cands = [(-int(s), int(node_rank[n]), n) for n, s in enumerate(scores) if s >= 0]
    return min(cands)[2] if cands else -1


def bestfit_place_py(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, cpu, mem, ngpu, milli, mask):
    scores = bestfit_scores_py(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask)
    n = _select_py(scores, node_rank)
    if n < 0 or ngpu == 0:
        return n, 0
    gpus = _gpus_left(gpu_free, gpu_count, n)
    if ngpu == 1:
        g = min((f, g) for g, f in enumerate(gpus) if f >= milli)[1]
        return n, 1 << g
    return n, _lowest_free(gpus, ngpu)


def node_frag_py(cpu_n, gpus, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """F(n) from the node's cpu and its list of per-GPU free milli."""
    total = sum(gpus)
    frag = 0.0
    for t in range(len(typ_p)):
        k = int(typ_ngpu[t])
        f = total
        if k > 0:
            need = int(typ_milli[t]) if k == 1 else MILLI
            ok = cpu_n >= typ_cpu[t] and (int(typ_mask[t]) >> int(model_n)) & 1
            if ok and sum(x >= need for x in gpus) >= k:
                f = sum(x for x in gpus if x < need)
        frag += float(typ_p[t]) * f
    return frag


def fgd_scores_py(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask,
                  typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    typ = (typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    scores = np.full(len(cpu_free), -1, dtype=np.int64)
    taken = np.zeros(len(cpu_free), dtype=np.int64)
    for n in range(len(cpu_free)):
        if not _fits_py(cpu_free, mem_free, gpu_free, gpu_count, model, n, cpu, mem, ngpu, milli, mask):
            continue
        gpus = _gpus_left(gpu_free, gpu_count, n)
        before = node_frag_py(int(cpu_free[n]), gpus, model[n], *typ)
        options = []  # (gpu bitmask, GPUs after placement)
        if ngpu == 1:
            for g, f in enumerate(gpus):
                if f >= milli:
                    options.append((1 << g, gpus[:g] + [f - milli] + gpus[g + 1:]))
        else:
            bits = _lowest_free(gpus, ngpu) if ngpu > 1 else 0
            options.append((bits, [f - MILLI if (bits >> g) & 1 else f for g, f in enumerate(gpus)]))
        for bits, after_gpus in options:
            after = node_frag_py(int(cpu_free[n]) - cpu, after_gpus, model[n], *typ)
            s = int(100.0 * (1.0 / (1.0 + math.exp(-((before - after) / 1000.0)))))
            if s > scores[n]:
                scores[n] = s
                taken[n] = bits
    return scores, taken


def fgd_place_py(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, cpu, mem, ngpu, milli, mask,
                 typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    scores, taken = fgd_scores_py(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask,
                                  typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    n = _select_py(scores, node_rank)
    return (n, 0) if n < 0 else (n, int(taken[n]))


def replay_py(policy, cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
              pod_cpu, pod_mem, pod_ngpu, pod_milli, pod_mask,
              typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """Reference of ``replay``: policy 0 = BestFit, 1 = FGD; node arrays updated in place."""
    placed = np.full(len(pod_cpu), -1, dtype=np.int64)
    taken = np.zeros(len(pod_cpu), dtype=np.int64)
    typ = (typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    for i in range(len(pod_cpu)):
        pod = (int(pod_cpu[i]), int(pod_mem[i]), int(pod_ngpu[i]), int(pod_milli[i]), int(pod_mask[i]))
        nodes = (cpu_free, mem_free, gpu_free, gpu_count, model, node_rank)
        if policy == 1:
            n, bits = fgd_place_py(*nodes, *pod, *typ)
        else:
            n, bits = bestfit_place_py(*nodes, *pod)
        if n < 0:
            continue
        cpu, mem, ngpu, milli, _ = pod
        cpu_free[n] -= cpu
        mem_free[n] -= mem
        for g in range(8):
            if (bits >> g) & 1:
                gpu_free[n, g] -= milli if ngpu == 1 else MILLI
        placed[i] = n
        taken[i] = bits
    return placed, taken
