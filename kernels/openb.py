"""BestFit and FGD placement kernels for the openb GPU-cluster replay (numba).

The protocol and formulas are those of "Beware of Fragmentation" (FGD, USENIX ATC'23)
as written down in ``benchmarks/data/openb/PROVENANCE.md``. Arrays in, arrays out;
nothing of ``agentic_sched`` is imported. ``openb_ref.py`` holds the plain-Python
references that the tests compare these kernels with.

Node arrays (``n`` nodes): ``cpu_free``, ``mem_free`` int64[n]; ``gpu_free``
int64[n, 8] free milli per GPU (GPUs at index >= ``gpu_count`` are ignored);
``gpu_count`` int64[n]; ``model`` int64[n] (a model id < 63); ``node_rank`` int64[n],
the per-seed random tie-break order (smallest rank wins among equal scores).

A pod is ``(cpu, mem, ngpu, milli, model_mask)``: ``milli`` is the share of one GPU
for ``ngpu == 1`` (ignored otherwise: multi-GPU pods take whole GPUs),
``model_mask`` has bit ``m`` set if GPU model ``m`` is allowed (all bits = any).

Typical pods (FGD) are the same fields as arrays ``typ_cpu, typ_milli, typ_ngpu,
typ_mask`` plus their probabilities ``typ_p`` (float64, summing to 1).

A placement is ``(node, gpus)``: the node index (-1 = fits nowhere) and a bitmask of
the GPUs taken (0 for CPU-only pods).
"""

import numpy as np
from numba import njit

MAX_GPUS = 8
MILLI = 1000
CPU_NORM = 128000.0  # the simulator's per-node maximum milli-cpu (BestFit normaliser)
GPU_NORM = 8000.0  # 8 GPUs x 1000 milli
ANY_MODEL = np.int64(-1)  # model_mask accepting every model

POLICY_BESTFIT = 0
POLICY_FGD = 1


@njit(cache=True)
def gpu_request(ngpu, milli):
    """GPU milli a pod asks for: its share for one GPU, 1000 per GPU otherwise."""
    if ngpu == 1:
        return milli
    return ngpu * MILLI


@njit(cache=True)
def pod_fits(cpu_free, mem_free, gpu_free, gpu_count, model, n, cpu, mem, ngpu, milli, mask):
    """True if the pod passes every filter on node ``n`` (cpu, memory, model, GPUs)."""
    if cpu_free[n] < cpu or mem_free[n] < mem:
        return False
    if ngpu == 0:
        return True
    if ((mask >> model[n]) & 1) == 0:
        return False
    need = milli if ngpu == 1 else MILLI
    cnt = 0
    for g in range(gpu_count[n]):
        if gpu_free[n, g] >= need:
            cnt += 1
    return cnt >= ngpu


@njit(cache=True)
def exclusive_gpus(gpu_free, gpu_count, n, ngpu):
    """Bitmask of the ``ngpu`` lowest-index wholly free GPUs of node ``n`` (0 if too few)."""
    bits = 0
    k = 0
    for g in range(gpu_count[n]):
        if k == ngpu:
            break
        if gpu_free[n, g] >= MILLI:
            bits |= 1 << g
            k += 1
    if k < ngpu:
        return 0
    return bits


@njit(cache=True)
def tightest_gpu(gpu_free, gpu_count, n, milli):
    """Bitmask of the GPU with the least free milli >= ``milli`` (lowest index on ties)."""
    best = -1
    for g in range(gpu_count[n]):
        f = gpu_free[n, g]
        if f >= milli and (best < 0 or f < gpu_free[n, best]):
            best = g
    if best < 0:
        return 0
    return 1 << best


@njit(cache=True)
def select_node(scores, node_rank):
    """Index of the highest score (>= 0), smallest ``node_rank`` among ties; -1 if none."""
    best = -1
    for n in range(scores.shape[0]):
        s = scores[n]
        if s < 0:
            continue
        if best < 0 or s > scores[best] or (s == scores[best] and node_rank[n] < node_rank[best]):
            best = n
    return best


@njit(cache=True)
def apply_placement(cpu_free, mem_free, gpu_free, n, gpus, cpu, mem, ngpu, milli):
    """Take the pod's resources from node ``n`` in place (``gpus`` is the GPU bitmask)."""
    cpu_free[n] -= cpu
    mem_free[n] -= mem
    take = milli if ngpu == 1 else MILLI
    for g in range(MAX_GPUS):
        if (gpus >> g) & 1:
            gpu_free[n, g] -= take


# ---------------------------------------------------------------- BestFit


@njit(cache=True)
def node_summaries(gpu_free, gpu_count):
    """Per node: total free GPU milli, largest free milli on one GPU, wholly free GPUs."""
    n_nodes = gpu_count.shape[0]
    gtot = np.zeros(n_nodes, dtype=np.int64)
    gmax = np.zeros(n_nodes, dtype=np.int64)
    nfull = np.zeros(n_nodes, dtype=np.int64)
    for n in range(n_nodes):
        update_summary(gpu_free, gpu_count, n, gtot, gmax, nfull)
    return gtot, gmax, nfull


@njit(cache=True)
def update_summary(gpu_free, gpu_count, n, gtot, gmax, nfull):
    """Recompute node ``n``'s entries of ``node_summaries`` in place."""
    tot = 0
    big = 0
    full = 0
    for g in range(gpu_count[n]):
        f = gpu_free[n, g]
        tot += f
        big = max(big, f)
        if f >= MILLI:
            full += 1
    gtot[n] = tot
    gmax[n] = big
    nfull[n] = full


@njit(cache=True)
def fits_summary(cpu_n, mem_n, gmax_n, nfull_n, model_n, cpu, mem, ngpu, milli, mask):
    """``pod_fits`` from one node's summary values (O(1); scalars only, so it inlines)."""
    if cpu_n < cpu or mem_n < mem:
        return False
    if ngpu > 0:
        if ((mask >> model_n) & 1) == 0:
            return False
        if ngpu == 1:
            if gmax_n < milli:
                return False
        elif nfull_n < ngpu:
            return False
    return True


@njit(cache=True)
def bestfit_node_score(cpu_left, gpu_left):
    """int(100 * (1 - (0.5 * cpu_left / 128000 + 0.5 * gpu_left / 8000)))."""
    return int(100.0 * (1.0 - (0.5 * cpu_left / CPU_NORM + 0.5 * gpu_left / GPU_NORM)))


@njit(cache=True)
def _bestfit_select(cpu_free, mem_free, gtot, gmax, nfull, model, node_rank, cpu, mem, ngpu, milli, mask):
    req = gpu_request(ngpu, milli)
    best = -1
    best_s = -1
    for n in range(cpu_free.shape[0]):
        if not fits_summary(cpu_free[n], mem_free[n], gmax[n], nfull[n], model[n], cpu, mem, ngpu, milli, mask):
            continue
        s = bestfit_node_score(cpu_free[n] - cpu, gtot[n] - req)
        if s > best_s or (s == best_s and node_rank[n] < node_rank[best]):
            best = n
            best_s = s
    return best


@njit(cache=True)
def bestfit_scores(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask):
    """BestFit score 0..100 of every node for one pod, -1 where it does not fit.

    score = int(100 * (1 - (0.5 * cpu_left / 128000 + 0.5 * gpu_milli_left / 8000))),
    the resources left on the node after placing the pod. O(n * 8).
    """
    gtot, gmax, nfull = node_summaries(gpu_free, gpu_count)
    scores = np.full(cpu_free.shape[0], -1, dtype=np.int64)
    req = gpu_request(ngpu, milli)
    for n in range(cpu_free.shape[0]):
        if fits_summary(cpu_free[n], mem_free[n], gmax[n], nfull[n], model[n], cpu, mem, ngpu, milli, mask):
            scores[n] = bestfit_node_score(cpu_free[n] - cpu, gtot[n] - req)
    return scores


@njit(cache=True)
def bestfit_gpus(gpu_free, gpu_count, n, ngpu, milli):
    """BestFit device choice on node ``n``: tightest GPU for one, lowest free for several."""
    if ngpu == 0:
        return 0
    if ngpu == 1:
        return tightest_gpu(gpu_free, gpu_count, n, milli)
    return exclusive_gpus(gpu_free, gpu_count, n, ngpu)


@njit(cache=True)
def bestfit_place(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, cpu, mem, ngpu, milli, mask):
    """BestFit placement ``(node, gpus)`` of one pod; node -1 if it fits nowhere.

    Shared pods take the tightest-fitting GPU, multi-GPU pods the lowest-index free GPUs.
    """
    scores = bestfit_scores(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask)
    n = select_node(scores, node_rank)
    if n < 0:
        return n, 0
    return n, bestfit_gpus(gpu_free, gpu_count, n, ngpu, milli)


# ---------------------------------------------------------------- FGD


@njit(cache=True)
def node_frag(cpu_n, gpu_row, count, model_n, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """Expected GPU fragmentation F(n) = sum_t p_t f_t(n) of one node (milli).

    f_t = free milli on the GPUs with less free than typical pod t needs per GPU if t
    could be placed (model, cpu, enough such GPUs), else all free milli; CPU-only t
    count all free milli. O(T * 8).
    """
    total = 0
    for g in range(count):
        total += gpu_row[g]
    frag = 0.0
    for t in range(typ_p.shape[0]):
        f = total
        k = typ_ngpu[t]
        if k > 0 and cpu_n >= typ_cpu[t] and ((typ_mask[t] >> model_n) & 1) != 0:
            need = typ_milli[t] if k == 1 else MILLI
            cnt = 0
            below = 0
            for g in range(count):
                if gpu_row[g] >= need:
                    cnt += 1
                else:
                    below += gpu_row[g]
            if cnt >= k:
                f = below
        frag += typ_p[t] * f
    return frag


@njit(cache=True)
def node_frags(cpu_free, gpu_free, gpu_count, model, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """F(n) of every node (float64[n])."""
    n_nodes = cpu_free.shape[0]
    out = np.empty(n_nodes, dtype=np.float64)
    for n in range(n_nodes):
        out[n] = node_frag(cpu_free[n], gpu_free[n], gpu_count[n], model[n],
                           typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    return out


@njit(cache=True)
def _frag_score(frag_before, frag_after):
    return int(100.0 * (1.0 / (1.0 + np.exp(-((frag_before - frag_after) / 1000.0)))))


@njit(cache=True)
def _fgd_node(cpu_free, gpu_free, gpu_count, model, n, frag_n, cpu, ngpu, milli,
              typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p, row):
    """FGD ``(score, gpus)`` of a feasible node ``n``; ``row`` is scratch int64[8]."""
    count = gpu_count[n]
    for g in range(MAX_GPUS):
        row[g] = gpu_free[n, g]
    cpu_after = cpu_free[n] - cpu
    if ngpu != 1:
        gpus = exclusive_gpus(gpu_free, gpu_count, n, ngpu) if ngpu > 1 else 0
        for g in range(count):
            if (gpus >> g) & 1:
                row[g] -= MILLI
        after = node_frag(cpu_after, row, count, model[n], typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
        return _frag_score(frag_n, after), gpus
    best_score = -1
    best_g = -1
    for g in range(count):
        f = row[g]
        if f < milli:
            continue
        dup = False  # a GPU with the same free milli as an earlier one scores the same
        for h in range(g):
            if row[h] == f:
                dup = True
                break
        if dup:
            continue
        row[g] = f - milli
        after = node_frag(cpu_after, row, count, model[n], typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
        row[g] = f
        s = _frag_score(frag_n, after)
        if s > best_score:
            best_score = s
            best_g = g
    return best_score, 1 << best_g


@njit(cache=True)
def _fgd_scores_cached(cpu_free, mem_free, gpu_free, gpu_count, model, frag, gmax, nfull,
                       cpu, mem, ngpu, milli, mask, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    n_nodes = cpu_free.shape[0]
    scores = np.full(n_nodes, -1, dtype=np.int64)
    gpus = np.zeros(n_nodes, dtype=np.int64)
    row = np.empty(MAX_GPUS, dtype=np.int64)
    for n in range(n_nodes):
        if not fits_summary(cpu_free[n], mem_free[n], gmax[n], nfull[n], model[n], cpu, mem, ngpu, milli, mask):
            continue
        s, b = _fgd_node(cpu_free, gpu_free, gpu_count, model, n, frag[n], cpu, ngpu, milli,
                         typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p, row)
        scores[n] = s
        gpus[n] = b
    return scores, gpus


@njit(cache=True)
def fgd_scores(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask,
               typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """FGD score 0..100 of every node (-1 = does not fit) and the GPUs it would take.

    score = int(100 * sigmoid((F(n) - F(n')) / 1000)), n' = n after placing the pod; a
    shared pod tries every GPU that fits (best score, lowest index on ties), multi-GPU
    pods take the lowest-index free GPUs. Returns ``(scores int64[n], gpus int64[n])``.
    O(n * 8 * T * 8).
    """
    frag = node_frags(cpu_free, gpu_free, gpu_count, model, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    _, gmax, nfull = node_summaries(gpu_free, gpu_count)
    return _fgd_scores_cached(cpu_free, mem_free, gpu_free, gpu_count, model, frag, gmax, nfull,
                              cpu, mem, ngpu, milli, mask, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)


@njit(cache=True)
def fgd_place(cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, cpu, mem, ngpu, milli, mask,
              typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """FGD placement ``(node, gpus)`` of one pod; node -1 if it fits nowhere."""
    scores, gpus = fgd_scores(cpu_free, mem_free, gpu_free, gpu_count, model, cpu, mem, ngpu, milli, mask,
                              typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    n = select_node(scores, node_rank)
    if n < 0:
        return n, 0
    return n, gpus[n]


# ---------------------------------------------------------------- whole sequences


@njit(cache=True)
def _place_one(policy, cpu_free, mem_free, gpu_free, gpu_count, model, node_rank, gtot, gmax, nfull, frag,
               cpu, mem, ngpu, milli, mask, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """Choose a node for one pod and apply it (summaries and F(n) kept current)."""
    if policy == POLICY_FGD:
        scores, gpus = _fgd_scores_cached(cpu_free, mem_free, gpu_free, gpu_count, model, frag, gmax, nfull,
                                          cpu, mem, ngpu, milli, mask,
                                          typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
        n = select_node(scores, node_rank)
        b = gpus[n] if n >= 0 else 0
    else:
        n = _bestfit_select(cpu_free, mem_free, gtot, gmax, nfull, model, node_rank,
                            cpu, mem, ngpu, milli, mask)
        b = bestfit_gpus(gpu_free, gpu_count, n, ngpu, milli) if n >= 0 else 0
    if n >= 0:
        apply_placement(cpu_free, mem_free, gpu_free, n, b, cpu, mem, ngpu, milli)
        update_summary(gpu_free, gpu_count, n, gtot, gmax, nfull)
        if policy == POLICY_FGD:
            frag[n] = node_frag(cpu_free[n], gpu_free[n], gpu_count[n], model[n],
                                typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    return n, b


@njit(cache=True)
def _initial_frag(policy, cpu_free, gpu_free, gpu_count, model, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    if policy == POLICY_FGD:
        return node_frags(cpu_free, gpu_free, gpu_count, model, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    return np.zeros(cpu_free.shape[0], dtype=np.float64)


@njit(cache=True)
def replay(policy, cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
           pod_cpu, pod_mem, pod_ngpu, pod_milli, pod_mask,
           typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p):
    """Place pods one at a time in array order, no departures; a pod that fits nowhere fails.

    ``policy`` is POLICY_BESTFIT or POLICY_FGD (typical pods are ignored by BestFit).
    The node arrays are updated in place (pass copies to keep the originals).
    Returns ``(node int64[m], gpus int64[m])``, node -1 for failed pods.
    Cost per pod: O(n) for BestFit, O(n * 8 * T * 8) for FGD (F(n) cached per node).
    """
    m = pod_cpu.shape[0]
    placed = np.full(m, -1, dtype=np.int64)
    taken = np.zeros(m, dtype=np.int64)
    gtot, gmax, nfull = node_summaries(gpu_free, gpu_count)
    frag = _initial_frag(policy, cpu_free, gpu_free, gpu_count, model, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    for i in range(m):
        placed[i], taken[i] = _place_one(policy, cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
                                         gtot, gmax, nfull, frag,
                                         pod_cpu[i], pod_mem[i], pod_ngpu[i], pod_milli[i], pod_mask[i],
                                         typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    return placed, taken


@njit(cache=True)
def replay_batched(policy, cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
                   pod_cpu, pod_mem, pod_ngpu, pod_milli, pod_mask,
                   typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p, batch, order_keys):
    """Batched planner: take arrivals ``batch`` at a time; for each batch try every
    candidate order (row r of ``order_keys`` float64[R, m]: the batch's pods sorted by
    key, ties by arrival), placing pod by pod with ``policy`` on a copy of the cluster,
    and commit the order that places the most GPU milli, then the smallest total F
    (FGD fragmentation; 0 for BestFit), then the lowest r. Same arrival sequence, no
    departures, a pod that fits nowhere in the committed order fails for good.
    Returns ``(node, gpus)`` indexed by arrival, like ``replay``. Cost: R x ``replay``.
    """
    m = pod_cpu.shape[0]
    n_orders = order_keys.shape[0]
    placed = np.full(m, -1, dtype=np.int64)
    taken = np.zeros(m, dtype=np.int64)
    gtot, gmax, nfull = node_summaries(gpu_free, gpu_count)
    frag = _initial_frag(policy, cpu_free, gpu_free, gpu_count, model, typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    for start in range(0, m, batch):
        stop = min(m, start + batch)
        best_r, best_milli, best_frag = -1, -1, 0.0
        for r in range(n_orders):
            idx = start + np.argsort(order_keys[r, start:stop], kind="mergesort")
            c, me, g = cpu_free.copy(), mem_free.copy(), gpu_free.copy()
            gt, gm, nf, fr = gtot.copy(), gmax.copy(), nfull.copy(), frag.copy()
            got = 0
            for i in idx:
                n, b = _place_one(policy, c, me, g, gpu_count, model, node_rank, gt, gm, nf, fr,
                                  pod_cpu[i], pod_mem[i], pod_ngpu[i], pod_milli[i], pod_mask[i],
                                  typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
                if n >= 0:
                    got += gpu_request(pod_ngpu[i], pod_milli[i])
            total_frag = fr.sum()
            if got > best_milli or (got == best_milli and total_frag < best_frag):
                best_r, best_milli, best_frag = r, got, total_frag
        idx = start + np.argsort(order_keys[best_r, start:stop], kind="mergesort")
        for i in idx:
            placed[i], taken[i] = _place_one(policy, cpu_free, mem_free, gpu_free, gpu_count, model, node_rank,
                                             gtot, gmax, nfull, frag,
                                             pod_cpu[i], pod_mem[i], pod_ngpu[i], pod_milli[i], pod_mask[i],
                                             typ_cpu, typ_milli, typ_ngpu, typ_mask, typ_p)
    return placed, taken
