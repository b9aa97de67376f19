"""Memory-saving linkage from observations on the GPU: O(n*d) device memory.

The device twin of ``cpu_vector`` (same formulas: ``kernels.metrics`` for point
distances, ``formulas.cluster_distance`` / ``merged_coordinate`` /
``merged_extra`` for cluster summaries), organised for many threads:

single (any compiled metric): Borůvka rounds
    ``point_best`` gives points their nearest point in another component (a
    tiled pass over all points, distances recomputed from the points), then
    the component-level steps of ``cuda_mst`` (``vertex_code``, ``hook``,
    ``jump``, ``relabel``) merge along the lightest edges. Edges are ordered by
    (w, min(u, v), max(u, v)), so ties cannot form cycles. Between rounds a
    point's nearest other-component distance can only grow, so a point whose
    scan keeps its TOP_K nearest other-component points; later rounds take the
    first one still outside the component, exactly (``point_carry``), and a
    point with none left whose bound already exceeds its component's minimum
    cannot hold the component's edge: only the rest are rescanned
    (``point_select``). About one full pass in all. Two host reads per round.
ward, average/sqeuclidean, average/cosine (reducible): reciprocal-nearest-neighbour rounds
    Each row keeps its ``RNN_TOP_K`` first (distance, slot) and a bound: every
    active slot not in the list has a key that does not precede the bound.
    First pass (``_Lists.first``), symmetric: the slots in segments of
    ``FIRST_ROWS``, segment s against itself and every later segment in one
    ``fresh_pass`` (pairs between segments computed once: the row side gives
    the segment's own lists, the column side offers each of its rows to the
    later segments' rows), then ``rnn_combine`` folds the row side into the
    offers the segment received earlier: every list and bound is then exactly
    the full scan's, for about n^2 / 2 + n FIRST_ROWS / 2 pairs instead of n^2.
    A round: ``rnn_select`` (nn, nnd from each list's first entry; rows whose
    first entry does not precede the bound are listed: none in round 0),
    ``rnn_scan`` + ``rnn_combine`` (those rows rescanned: K + 1 first),
    ``find_pairs`` + ``merge_pairs`` (every reciprocal pair), ``rnn_drop``
    (both merged slots leave every list), ``fresh_pass`` + ``rnn_combine``
    (new clusters x active slots, each pair once: the new clusters' own lists,
    and each offered to every other row, which inserts it where it precedes
    the bound, the entry pushed out becoming the bound). So nn[i] is the exact
    minimum and the global closest pair is always reciprocal; for reducible
    linkages merging all reciprocal pairs at once gives exactly the sequential
    hierarchy. Three host reads per round (rescan count, pair count, active
    list). Ward's keys need a division: ``_ward_loses`` compares with
    multiplications and a counted rounding margin first, and only a pair that
    may beat the threshold gets its exact key. ``benchmarks/count_gpu_work.py``
    counts the pairs (ward, n = 20 000 x 32: 1.31 n^2, of which
    the first pass 0.53; it was 1.79 n^2 with a full first scan).
    Average with cosine/correlation on a GPU: the scans' dot products as
    float64 GEMM slabs with a rigorous rounding margin, then exact rechecks
    (``cuda_gemm_scan``; the lists are exactly the tiles').
centroid, median (generic): ``cuda_vector_generic``
    The generic loop (one merge at a time, at the global minimum of exact
    nearest-neighbour keys) as one cooperative kernel per chunk of merges:
    pick, relax and rescan phases separated by grid syncs, no host read per
    merge. ``run`` hands these methods to its driver.

Tiles. ``point_best`` and ``rnn_scan`` give each thread one row and walk
the columns in tiles of ``TILE_C``; coordinates arrive in chunks of ``TILE_K``
through shared memory (rows: one value per thread; columns: broadcast), and
each thread keeps ``TILE_C`` accumulators in registers. Every pair's sum runs
over the coordinates in order, from direct differences (no Gram-matrix form,
which cancels on close pairs). Each product is rounded on its own
(``metrics.product``: never fused into an FMA), so a distance has the CPU
engine's bits; d(i, j) == d(j, i) holds bitwise. Shared arrays are sized by ``MAX_TPB`` (256: ``point_best``
needs 216 registers per thread, so 512 threads would not launch); threads per
block is a launch argument. Arithmetic is float64 whatever the storage dtype
(coordinates are widened before ``metrics.metric_accumulate``; float32 storage
halves memory and bandwidth only).

Simulator rules kept: one ``cuda.shared.array`` per source line, no warp
shuffles, grid-stride loops. ``PTX_SIGNATURES`` lists every kernel.
"""

import math

import numpy as np
from numba import cuda

from . import (cancel, cuda_chain, cuda_gemm_scan, cuda_mst, cuda_vector_generic, formulas, launch,
               metrics)
# The candidate lists' device functions, shared with the GEMM scans (cuda_gemm_scan).
from .candidate_lists import _KLIST, RNN_TOP_K_MAX, _klist_insert, _offer  # noqa: F401
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE

# Threads per block at most (sizes the shared arrays).
MAX_TPB = 256
# Columns per tile (register accumulators per thread) and coordinates per chunk.
TILE_C = 32
TILE_K = 8
# Candidates kept per point by single linkage's scans (see ``point_carry``):
# with 4, about one full pass over the points is needed in all.
TOP_K = 4
# Candidates kept per row by the reducible rounds (ward, average): each row's
# list holds its RNN_TOP_K first (distance, slot) and a bound (see ``_rnn_rounds``).
# Read by the driver at each run (tests lower it to exhaust the lists); kernels
# take it as an argument and size their local lists by RNN_TOP_K_MAX.
RNN_TOP_K = 16
# Offers one ``fresh_pass`` block queues at a time (shared: 20 bytes each).
OFFER_QUEUE = 512
# Partial-list entries one ``fresh_pass`` launch may write (shares x (K + 1) x
# new clusters, 12 bytes each): larger rounds are launched in chunks of new clusters.
FRESH_SCRATCH = 1 << 22
# Shared array sizes must be plain constants (a product is not folded at typing).
_SH_ROWS = MAX_TPB * TILE_K
_SH_COLS = TILE_C * TILE_K

_I32 = np.int32
_I64 = np.int64
_F64 = np.float64



@cuda.jit(device=True, inline="always", cache=NUMBA_CACHE)
def _chunk_literal(mcode, sh_r, sh_c, acc, t, bd, p):
    """Fold one chunk of coordinates into the thread's TILE_C accumulators.

    Inlined where ``mcode`` is a literal: the metric's branches fold away.
    """
    for kk in range(TILE_K):
        r = sh_r[kk * bd + t]
        for c in range(TILE_C):
            acc[c] = launch.metric_accumulate(mcode, acc[c], r, sh_c[kk * TILE_C + c], p)


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _chunk(mcode, sh_r, sh_c, acc, t, bd, p):
    """``_chunk_literal`` with the metric dispatched once per chunk."""
    if mcode == metrics.EUCLIDEAN:
        _chunk_literal(metrics.EUCLIDEAN, sh_r, sh_c, acc, t, bd, p)
    elif mcode == metrics.SQEUCLIDEAN:
        _chunk_literal(metrics.SQEUCLIDEAN, sh_r, sh_c, acc, t, bd, p)
    elif mcode == metrics.CITYBLOCK:
        _chunk_literal(metrics.CITYBLOCK, sh_r, sh_c, acc, t, bd, p)
    elif mcode == metrics.CHEBYSHEV:
        _chunk_literal(metrics.CHEBYSHEV, sh_r, sh_c, acc, t, bd, p)
    elif mcode == metrics.MINKOWSKI:
        _chunk_literal(metrics.MINKOWSKI, sh_r, sh_c, acc, t, bd, p)
    elif mcode == metrics.COSINE:
        _chunk_literal(metrics.COSINE, sh_r, sh_c, acc, t, bd, p)
    else:
        _chunk_literal(metrics.CORRELATION, sh_r, sh_c, acc, t, bd, p)


# --------------------------------------------------------------------------
# Single linkage: Borůvka rounds on points
# --------------------------------------------------------------------------

@cuda.jit(device=True, cache=NUMBA_CACHE)
def _top_insert(kw, kj, w, j):
    """``_klist_insert`` into a list of TOP_K entries (single linkage's candidates)."""
    _klist_insert(kw, kj, TOP_K, w, j)


@cuda.jit(cache=NUMBA_CACHE)
def point_best(XT, norms, comp, rows, nrows, n, mcode, p, part_w, part_j):
    """The TOP_K nearest points in other components for each point in ``rows[:nrows]``,
    per column share.

    Grid (row blocks, column splits): thread t of block (x, y) takes row
    rows[x * blockDim + t] against the y-th of gridDim.y equal shares of the
    points (so a few rows still fill the GPU) and writes its list, ascending in the (w, j) order of ``cuda_mst``,
    to part_w[y * TOP_K + k, r], part_j[...] (j = -1: empty).
    """
    sh_r = cuda.shared.array(_SH_ROWS, np.float64)
    sh_c = cuda.shared.array(_SH_COLS, np.float64)
    acc = cuda.local.array(TILE_C, np.float64)
    kw = cuda.local.array(TOP_K, np.float64)
    kj = cuda.local.array(TOP_K, np.int64)
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    d = XT.shape[0]
    y = cuda.blockIdx.y
    share = (n + cuda.gridDim.y - 1) // cuda.gridDim.y
    share = (share + TILE_C - 1) // TILE_C * TILE_C
    cbeg = np.int64(y) * share
    cend = min(n, cbeg + share)
    nblocks = (nrows + bd - 1) // bd
    for rb in range(cuda.blockIdx.x, nblocks, cuda.gridDim.x):
        r = np.int64(rb) * bd + t
        valid = r < nrows
        i = np.int64(rows[r]) if valid else np.int64(0)
        ci = comp[i]
        ni = norms[i]
        for k in range(TOP_K):
            kw[k] = math.inf
            kj[k] = -1
        for c0 in range(cbeg, cend, TILE_C):
            for c in range(TILE_C):
                acc[c] = 0.0
            for k0 in range(0, d, TILE_K):
                for kk in range(TILE_K):
                    k = k0 + kk
                    sh_r[kk * bd + t] = XT[k, i] if (valid and k < d) else 0.0
                for e in range(t, TILE_C * TILE_K, bd):
                    k = k0 + e // TILE_C
                    j = c0 + e % TILE_C
                    sh_c[e] = XT[k, j] if (k < d and j < cend) else 0.0
                cuda.syncthreads()
                _chunk(mcode, sh_r, sh_c, acc, t, bd, p)
                cuda.syncthreads()
            if valid:
                for c in range(TILE_C):
                    j = c0 + c
                    if j < cend and j != i and comp[j] != ci:
                        _top_insert(kw, kj, launch.metric_finalize(mcode, acc[c], p, ni, norms[j]), j)
        if valid:
            for k in range(TOP_K):
                part_w[y * TOP_K + k, r] = kw[k]
                part_j[y * TOP_K + k, r] = kj[k]


@cuda.jit(cache=NUMBA_CACHE)
def point_combine(rows, nrows, part_w, part_j, nsplit, comp, comp_w, cand_w, cand_j, cur_w, cur_j):
    """Merge the shares' lists of ``point_best`` into each row's candidate list;
    the first candidate is the row's bid, atomic-min'd into its component."""
    kw = cuda.local.array(TOP_K, np.float64)
    kj = cuda.local.array(TOP_K, np.int64)
    for r in range(cuda.grid(1), nrows, cuda.gridsize(1)):
        for k in range(TOP_K):
            kw[k] = math.inf
            kj[k] = -1
        for e in range(nsplit * TOP_K):
            if part_j[e, r] >= 0:
                _top_insert(kw, kj, part_w[e, r], part_j[e, r])
        i = rows[r]
        for k in range(TOP_K):
            cand_w[k, i] = kw[k]
            cand_j[k, i] = kj[k]
        cur_w[i] = kw[0]
        cur_j[i] = kj[0]
        if kj[0] >= 0:
            cuda.atomic.min(comp_w, comp[i], kw[0])


@cuda.jit(cache=NUMBA_CACHE)
def point_carry(comp, comp_w, cand_w, cand_j, cur_w, cur_j, n):
    """Each point's bid from its candidate list, without a scan where possible.

    The list holds the TOP_K nearest points that were outside the point's
    component when it was scanned; components only grow, so the first entry
    still outside is exactly the nearest outside point now (its bid, atomic-
    min'd into the component). With none left, the last entry's distance is a
    lower bound (cur_j = -1, cur_w = bound; +inf if the list was not full, as
    then no point is outside any more). Never scanned (cand_j[0] == -2): bound -inf.
    """
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        ci = comp[i]
        bw = -math.inf
        bj = -1
        if cand_j[0, i] != -2:
            last = cand_j[TOP_K - 1, i]
            bw = cand_w[TOP_K - 1, i] if last >= 0 else math.inf
            for k in range(TOP_K):
                j = cand_j[k, i]
                if j >= 0 and comp[j] != ci:
                    bw = cand_w[k, i]
                    bj = j
                    break
        cur_w[i] = bw
        cur_j[i] = bj
        if bj >= 0:
            cuda.atomic.min(comp_w, ci, bw)


@cuda.jit(cache=NUMBA_CACHE)
def point_select(comp, comp_w, cur_w, cur_j, rows, nrows, n):
    """List the points to rescan: no bid, and a lower bound not above their
    component's minimum bid (a point whose bound exceeds it cannot hold the
    component's lightest edge, even under ties)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if cur_j[i] < 0 and not (cur_w[i] > comp_w[comp[i]]):
            rows[cuda.atomic.add(nrows, 0, 1)] = i


# --------------------------------------------------------------------------
# Cluster summaries: nearest neighbours over centroids
# --------------------------------------------------------------------------

@cuda.jit(device=True, cache=NUMBA_CACHE)
def _tile_sums(CT, cols, i, valid, c0, cend, mc, sh_r, sh_c, acc):
    """acc[c] = the coordinate sum of slot i against slot cols[c0 + c], c < TILE_C.

    Every thread of the block calls it (it synchronises): row coordinates go
    through shared memory one value per thread, the TILE_C columns' are
    broadcast; lanes past ``cend`` or of an invalid row sum zeros.
    """
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    d = CT.shape[0]
    for c in range(TILE_C):
        acc[c] = 0.0
    for k0 in range(0, d, TILE_K):
        for kk in range(TILE_K):
            k = k0 + kk
            sh_r[kk * bd + t] = CT[k, i] if (valid and k < d) else 0.0
        for e in range(t, TILE_C * TILE_K, bd):
            k = k0 + e // TILE_C
            jc = c0 + e % TILE_C
            sh_c[e] = CT[k, cols[jc]] if (k < d and jc < cend) else 0.0
        cuda.syncthreads()
        _chunk(mc, sh_r, sh_c, acc, t, bd, 0.0)
        cuda.syncthreads()


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _share(ncols):
    """Column range [cbeg, cend) of this block's share (gridDim.y equal shares, whole tiles)."""
    share = (ncols + cuda.gridDim.y - 1) // cuda.gridDim.y
    share = (share + TILE_C - 1) // TILE_C * TILE_C
    cbeg = np.int64(cuda.blockIdx.y) * share
    return cbeg, min(ncols, cbeg + share)


@cuda.jit(cache=NUMBA_CACHE)
def find_pairs(active, nn, nnd, rep, flag, pair_i, pair_j, npairs, log_a, log_b, log_h, nlog, n):
    """Every reciprocal pair (i, nn[i]), i < nn[i]: listed, logged, flagged.

    flag: 1 for the slot that keeps the merged cluster (i), 2 for the one removed.
    """
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if active[i] == 0:
            continue
        j = nn[i]
        if i < j and nn[j] == i:
            k = cuda.atomic.add(npairs, 0, 1)
            pair_i[k] = i
            pair_j[k] = j
            pos = cuda.atomic.add(nlog, 0, 1)
            log_a[pos] = rep[i]
            log_b[pos] = rep[j]
            log_h[pos] = nnd[i]
            flag[i] = 1
            flag[j] = 2


# --------------------------------------------------------------------------
# Reducible rounds: per-row candidate lists (see ``_rnn_rounds``)
# --------------------------------------------------------------------------

# Ward's division-free filter (``_ward_loses``): thresholds below _WARD_TINY are
# left to the exact key (the rounding bound below needs normal numbers), and
# _WARD_MARGIN = 1 + 2^-50 = 1 + 8u (u = 2^-53) covers the six roundings.
_WARD_TINY = 2.0 ** -1000
_WARD_MARGIN = 1.0 + 2.0 ** -50


@cuda.jit(device=True, inline="always", cache=NUMBA_CACHE)
def _ward_loses(acc, t, s, bw):
    """True only when ward's key of the pair is certainly above ``bw``: then
    the pair cannot precede (bw, j) for any slot j, and its key, whose
    division costs as much as a few dozen FMAs, need not be computed.

    ``acc`` is the pair's coordinate sum, ``t = 2.0 * (s_a * s_b)`` and ``s =
    s_a + s_b`` exactly as ``formulas.cluster_distance`` forms them, whose key
    is w = fl(fl(t / s) * acc). Without a division: L = fl(t * acc) against
    R' = fl(fl(bw * s) * c), c = _WARD_MARGIN. With u = 2^-53 and every
    |e_k| <= u (all quantities normal: bw >= 2^-1000, L finite):

        L  = t acc (1 + e1)            R' = bw s c (1 + e2)(1 + e3)
        L > R'  =>  W := t acc / s > bw c (1 - u)^2 / (1 + u)
        w  = W (1 + e4)(1 + e5) >= W (1 - u)^2 > bw c (1 - u)^4 / (1 + u)

    and c (1 - u)^4 / (1 + u) >= (1 + 8u)(1 - 5u) > 1, so w > bw. (W itself
    is then above 2^-1001, so fl(t / s) and w are normal too; w may overflow
    to +inf, which is above bw all the same.) NaN or +inf ``acc``, a NaN or
    huge ``bw`` (R' = +inf) or a tiny one all give False: the exact key
    decides. Keys that are computed are the formula's, bitwise.
    """
    if not bw >= _WARD_TINY:
        return False
    lhs = t * acc
    return lhs > (bw * s) * _WARD_MARGIN and lhs < math.inf
# Row i's list is LW[:kk, i], LJ[:kk, i]: ascending (distance, slot), empty
# entries (slot -1) last; its bound is (BW[i], BJ[i]) (slot -1: +infinity).
# Invariant: every active slot not in row i's list has a key that does not
# precede the bound, and every listed entry precedes it; listed keys are
# exact for the clusters now in those slots. So when the first entry precedes
# the bound it is row i's nearest neighbour under (distance, slot).

@cuda.jit(cache=NUMBA_CACHE)
def rnn_scan(CT, size, extra, rows, nrows, cols, ncols, code, metric, kk, part_w, part_j):
    """The kk + 1 first (distance, slot) among a share of ``cols[:ncols]`` for each
    slot in ``rows[:nrows]``.

    Grid and tiles of ``point_best`` (clusters instead of points); writes the
    share's ascending list to
    part_w[y * (kk + 1) + q, r], part_j[...] (slot -1: empty). ``rnn_combine``
    folds the shares into the rows' lists and bounds. Ward skips the key of a
    pair that certainly loses to the list's last entry (``_ward_loses``).
    """
    sh_r = cuda.shared.array(_SH_ROWS, np.float64)
    sh_c = cuda.shared.array(_SH_COLS, np.float64)
    acc = cuda.local.array(TILE_C, np.float64)
    kw = cuda.local.array(_KLIST, np.float64)
    kj = cuda.local.array(_KLIST, np.int64)
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    mc = launch.coordinate_metric(code, metric)
    ward = code == formulas.WARD
    y = cuda.blockIdx.y
    cbeg, cend = _share(ncols)
    m = kk + 1
    nblocks = (nrows + bd - 1) // bd
    for rb in range(cuda.blockIdx.x, nblocks, cuda.gridDim.x):
        r = np.int64(rb) * bd + t
        valid = r < nrows
        i = np.int64(rows[r]) if valid else np.int64(0)
        for q in range(m):
            kw[q] = math.inf
            kj[q] = -1
        si = size[i] if valid else 1.0
        for c0 in range(cbeg, cend, TILE_C):
            _tile_sums(CT, cols, i, valid, c0, cend, mc, sh_r, sh_c, acc)
            if valid:
                for c in range(TILE_C):
                    jc = c0 + c
                    if jc < cend:
                        j = cols[jc]
                        if j == i:
                            continue
                        sj = size[j]
                        # a full list's last entry is the threshold to beat
                        if (ward and kj[m - 1] >= 0
                                and _ward_loses(acc[c], 2.0 * (si * sj), si + sj, kw[m - 1])):
                            continue
                        w = launch.cluster_distance(code, metric, acc[c], si, sj, extra[i],
                                                    extra[j])
                        _klist_insert(kw, kj, m, w, j)
        if valid:
            for q in range(m):
                part_w[y * m + q, r] = kw[q]
                part_j[y * m + q, r] = kj[q]


@cuda.jit(cache=NUMBA_CACHE)
def rnn_combine(rows, nrows, part_w, part_j, nsplit, kk, merge, LW, LJ, BW, BJ, nn, nnd):
    """Fold the shares' lists of ``rnn_scan`` / ``fresh_pass`` (shares in order):
    each row's kk first entries become its list, the next its bound, the first
    its (nn, nnd).

    merge 0: the shares hold every candidate (a full scan; the stored list is
    replaced). merge 1 (the first pass, ``_Lists.first``): the stored list and
    bound are the kk + 1 first of a disjoint set of candidates (the offers of
    earlier segments), so they are folded in with the shares.
    """
    kw = cuda.local.array(_KLIST, np.float64)
    kj = cuda.local.array(_KLIST, np.int64)
    m = kk + 1
    for r in range(cuda.grid(1), nrows, cuda.gridsize(1)):
        i = rows[r]
        for q in range(m):
            kw[q] = math.inf
            kj[q] = -1
        if merge != 0:
            for q in range(kk):
                if LJ[q, i] >= 0:
                    _klist_insert(kw, kj, m, LW[q, i], LJ[q, i])
            if BJ[i] >= 0:
                _klist_insert(kw, kj, m, BW[i], BJ[i])
        for e in range(nsplit * m):
            if part_j[e, r] >= 0:
                _klist_insert(kw, kj, m, part_w[e, r], part_j[e, r])
        for q in range(kk):
            LW[q, i] = kw[q]
            LJ[q, i] = kj[q]
        BW[i] = kw[kk]
        BJ[i] = kj[kk]
        nn[i] = kj[0]
        nnd[i] = kw[0]


@cuda.jit(cache=NUMBA_CACHE)
def rnn_select(active, LW, LJ, BW, BJ, nn, nnd, rows, nrows, n):
    """Every active row's (nn, nnd) from its list's first entry; rows whose
    first entry does not precede their bound (or with an empty list) are
    listed in rows[:nrows] for a rescan (list order is arrival order: each
    row's result does not depend on its position)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if active[i] == 0:
            continue
        nn[i] = LJ[0, i]
        nnd[i] = LW[0, i]
        if not launch.precedes(LW[0, i], LJ[0, i], BW[i], BJ[i]):
            rows[cuda.atomic.add(nrows, 0, 1)] = i


@cuda.jit(cache=NUMBA_CACHE)
def rnn_drop(active, flag, LW, LJ, kk, n):
    """Drop the slots merged this round (flag != 0: the kept slot holds a new
    cluster, the other is gone) from every other active row's list, keeping
    the order; the bound stays (the new clusters are offered by ``fresh_pass``)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if active[i] == 0 or flag[i] != 0:
            continue
        keep = 0
        for q in range(kk):
            j = LJ[q, i]
            if j < 0:
                break
            if flag[j] == 0:
                LW[keep, i] = LW[q, i]
                LJ[keep, i] = j
                keep += 1
        for q in range(keep, kk):
            LW[q, i] = math.inf
            LJ[q, i] = -1


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _offer_tile(LW, LJ, BW, BJ, cols, c0, cend, kk, acc, u, valid, sh_bw, sh_bj, sh_take, sh_any,
                sh_qw, sh_qu, sh_qc):
    """``fresh_pass``'s offers of one tile: acc[c] = the key of (u, cols[c0 + c]).

    Every thread of the block calls it. Rounds: each thread queues its
    not-yet-queued candidates that precede their column's bound (as the
    block last read it) while the queue has room; thread c offers column c's
    queued entries and rereads the bound; until nothing was left out.
    """
    t = cuda.threadIdx.x
    done = np.int64(0)  # bit c: this thread's candidate for column c was queued
    while True:
        cuda.syncthreads()  # everyone has read the last round's queue length
        if t == 0:
            sh_any[1] = 0
        cuda.syncthreads()
        if valid:
            for c in range(TILE_C):
                jc = c0 + c
                if (jc < cend and sh_take[c] != 0 and (done >> c) & 1 == 0
                        and cols[jc] != u and launch.precedes(acc[c], u, sh_bw[c], sh_bj[c])):
                    q = cuda.atomic.add(sh_any, 1, 1)
                    if q < OFFER_QUEUE:
                        sh_qw[q] = acc[c]
                        sh_qu[q] = u
                        sh_qc[q] = c
                        done |= np.int64(1) << c
        cuda.syncthreads()
        nq = min(sh_any[1], OFFER_QUEUE)
        if t < TILE_C and c0 + t < cend and sh_take[t] != 0:
            k = cols[c0 + t]
            for e in range(nq):
                if sh_qc[e] == t:
                    _offer(LW, LJ, BW, BJ, k, kk, sh_qw[e], sh_qu[e])
            sh_bw[t] = BW[k]
            sh_bj[t] = BJ[k]
        cuda.syncthreads()
        if sh_any[1] <= OFFER_QUEUE:
            break


@cuda.jit(cache=NUMBA_CACHE)
def fresh_pass(CT, size, extra, rows, nrows, cols, ncols, code, metric, kk, flag, LW, LJ, BW, BJ,
               part_w, part_j):
    """New clusters x active slots, each pair computed once, for two results.

    (a) Each new cluster rows[r]'s kk + 1 first (distance, slot) over its
    block's share of ``cols[:ncols]`` (as ``rnn_scan``: partial lists for
    ``rnn_combine``). (b) Each other active slot k (flag[k] == 0) in the share
    is offered every new cluster whose key, seen from k, precedes k's bound
    (``_offer``).

    Grid (1, shares): block y owns its column share and walks all the new
    clusters (row blocks in order), so it alone writes those rows' lists.
    Offers: a tile's candidates that precede their column's bound go into a
    shared queue (``OFFER_QUEUE`` entries; a shared atomic counter), then
    thread c inserts the queued offers of column c (``_offer``), all columns
    at once, and rereads its bound; candidates that found the queue full are
    queued again against the new bounds. Offers are rare once bounds are
    tight, but the symmetric first pass starts from empty lists (a row
    block's whole tile passes), hence a queue rather than one column at a
    time. Queue order is arrival order, but ``_offer`` keeps the kk + 1
    first of what it is offered whatever the order (and an offer that failed
    an older bound fails every later one), so the lists are the same on
    every run. Hot-loop variant of ``rnn_scan`` (same row loop and tiles,
    plus the offers).
    """
    sh_r = cuda.shared.array(_SH_ROWS, np.float64)
    sh_c = cuda.shared.array(_SH_COLS, np.float64)
    sh_bw = cuda.shared.array(TILE_C, np.float64)
    sh_bj = cuda.shared.array(TILE_C, np.int64)
    sh_take = cuda.shared.array(TILE_C, np.int32)
    sh_any = cuda.shared.array(2, np.int32)  # [0]: some offer this tile; [1]: queue length
    sh_qw = cuda.shared.array(OFFER_QUEUE, np.float64)
    sh_qu = cuda.shared.array(OFFER_QUEUE, np.int64)
    sh_qc = cuda.shared.array(OFFER_QUEUE, np.int32)
    acc = cuda.local.array(TILE_C, np.float64)
    kw = cuda.local.array(_KLIST, np.float64)
    kj = cuda.local.array(_KLIST, np.int64)
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    mc = launch.coordinate_metric(code, metric)
    ward = code == formulas.WARD
    y = cuda.blockIdx.y
    cbeg, cend = _share(ncols)
    m = kk + 1
    nblocks = (nrows + bd - 1) // bd
    for rb in range(nblocks):
        r = np.int64(rb) * bd + t
        valid = r < nrows
        u = np.int64(rows[r]) if valid else np.int64(0)
        su = size[u]
        for q in range(m):
            kw[q] = math.inf
            kj[q] = -1
        for c0 in range(cbeg, cend, TILE_C):
            _tile_sums(CT, cols, u, valid, c0, cend, mc, sh_r, sh_c, acc)
            # the tile's rows' bounds, read after the previous tile's offers
            for e in range(t, TILE_C, bd):
                jc = c0 + e
                take = 0
                if jc < cend:
                    k = cols[jc]
                    sh_bw[e] = BW[k]
                    sh_bj[e] = BJ[k]
                    take = 1 if flag[k] == 0 else 0
                sh_take[e] = take
            if t == 0:
                sh_any[0] = 0
            cuda.syncthreads()
            if valid:
                for c in range(TILE_C):
                    jc = c0 + c
                    if jc < cend:
                        k = cols[jc]
                        if k == u:
                            continue
                        sk = size[k]
                        # ward: no key where it certainly loses both to u's list's last
                        # entry and (if k takes offers) to k's bound
                        if (ward and kj[m - 1] >= 0
                                and (sh_take[c] == 0 or sh_bj[c] >= 0)
                                and _ward_loses(acc[c], 2.0 * (sk * su), sk + su, kw[m - 1])
                                and (sh_take[c] == 0
                                     or _ward_loses(acc[c], 2.0 * (sk * su), sk + su,
                                                    sh_bw[c]))):
                            acc[c] = math.inf  # offered nowhere: precedes no finite bound
                            continue
                        # seen from k (d is symmetric bitwise: the same float either way)
                        w = launch.cluster_distance(code, metric, acc[c], sk, su, extra[k],
                                                    extra[u])
                        acc[c] = w
                        _klist_insert(kw, kj, m, w, k)
                        if sh_take[c] != 0 and launch.precedes(w, u, sh_bw[c], sh_bj[c]):
                            sh_any[0] = 1  # every writer writes 1
            cuda.syncthreads()
            if sh_any[0] != 0:  # shared: the whole block takes the branch
                _offer_tile(LW, LJ, BW, BJ, cols, c0, cend, kk, acc, u, valid, sh_bw, sh_bj,
                            sh_take, sh_any, sh_qw, sh_qu, sh_qc)
        if valid:
            for q in range(m):
                part_w[y * m + q, r] = kw[q]
                part_j[y * m + q, r] = kj[q]


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _merge_slots(CT, size, extra, code, metric, lo, hi):
    """Slot lo becomes the union of slots lo and hi (one thread)."""
    d = CT.shape[0]
    s_a = size[lo]
    s_b = size[hi]
    sq = 0.0
    for k in range(d):
        sq = launch.metric_accumulate(metrics.SQEUCLIDEAN, sq, _F64(CT[k, lo]), _F64(CT[k, hi]), 0.0)
    extra[lo] = launch.merged_extra(code, metric, extra[lo], extra[hi], s_a, s_b, sq)
    for k in range(d):
        CT[k, lo] = launch.merged_coordinate(code, CT[k, lo], CT[k, hi], s_a, s_b)
    size[lo] = s_a + s_b


@cuda.jit(cache=NUMBA_CACHE)
def merge_pairs(CT, size, extra, active, pair_i, pair_j, npairs, code, metric):
    """Merge every listed pair into its first slot; the second slot goes inactive."""
    for k in range(cuda.grid(1), npairs, cuda.gridsize(1)):
        i = pair_i[k]
        j = pair_j[k]
        _merge_slots(CT, size, extra, code, metric, i, j)
        active[j] = 0


_FLOATS = ("float32", "float64")
_A32 = "int32[::1]"
_A64 = "int64[::1]"
_AF = "float64[::1]"
_A8 = "int8[::1]"
PTX_SIGNATURES = {
    "point_best": [
        f"void({dt}[:, ::1], {_AF}, {_A32}, {_A32}, int64, int64, int64, float64, "
        "float64[:, ::1], int32[:, ::1])"
        for dt in _FLOATS
    ],
    "point_combine": [
        f"void({_A32}, int64, float64[:, ::1], int32[:, ::1], int64, {_A32}, {_AF}, "
        f"float64[:, ::1], int32[:, ::1], {_AF}, {_A32})"
    ],
    "point_carry": [f"void({_A32}, {_AF}, float64[:, ::1], int32[:, ::1], {_AF}, {_A32}, int64)"],
    "point_select": [f"void({_A32}, {_AF}, {_AF}, {_A32}, {_A32}, {_A64}, int64)"],
    "rnn_scan": [
        f"void({dt}[:, ::1], {_AF}, {_AF}, {_A32}, int64, {_A32}, int64, int64, int64, int64, "
        "float64[:, ::1], int32[:, ::1])"
        for dt in _FLOATS
    ],
    "rnn_combine": [
        f"void({_A32}, int64, float64[:, ::1], int32[:, ::1], int64, int64, int64, float64[:, ::1], "
        f"int32[:, ::1], {_AF}, {_A32}, {_A32}, {_AF})"
    ],
    "rnn_select": [
        f"void({_A8}, float64[:, ::1], int32[:, ::1], {_AF}, {_A32}, {_A32}, {_AF}, {_A32}, "
        f"{_A64}, int64)"
    ],
    "rnn_drop": [f"void({_A8}, {_A8}, float64[:, ::1], int32[:, ::1], int64, int64)"],
    "fresh_pass": [
        f"void({dt}[:, ::1], {_AF}, {_AF}, {_A32}, int64, {_A32}, int64, int64, int64, int64, "
        f"{_A8}, float64[:, ::1], int32[:, ::1], {_AF}, {_A32}, float64[:, ::1], int32[:, ::1])"
        for dt in _FLOATS
    ],
    "find_pairs": [
        f"void({_A8}, {_A32}, {_AF}, {_A64}, {_A8}, {_A32}, {_A32}, {_A64}, {_A64}, {_A64}, "
        f"{_AF}, {_A64}, int64)"
    ],
    "merge_pairs": [
        f"void({dt}[:, ::1], {_AF}, {_AF}, {_A8}, {_A32}, {_A32}, int64, int64, int64)"
        for dt in _FLOATS
    ],
}


# --------------------------------------------------------------------------
# Drivers
# --------------------------------------------------------------------------

# Aim for this many blocks per tile-kernel launch (an H100 has 132 SMs).
_TARGET_BLOCKS = 1024


def _splits(nrows, ncols, tpb):
    """Column shares per row block: enough blocks to fill the device, and at
    least a few tiles of columns per share."""
    if launch.simulating():
        return 1 if ncols <= TILE_C else 2
    row_blocks = -(-nrows // tpb)
    want = max(1, _TARGET_BLOCKS // row_blocks)
    return int(max(1, min(want, ncols // (4 * TILE_C))))


def fresh_grid(nrows, ncols, tpb, kk):
    """(new clusters per launch, column shares) of ``fresh_pass``.

    Its grid is (1, shares): each block owns its share of the columns (so it
    can insert offers into those rows' lists without a race) and walks every
    new cluster. The partial lists (shares x (kk + 1) per new cluster) are
    bounded by ``FRESH_SCRATCH``: a round with more new clusters is launched
    in chunks (a multiple of ``tpb``).
    """
    if launch.simulating():
        ns = 1 if ncols <= TILE_C else 2
    else:
        ns = int(max(1, min(_TARGET_BLOCKS, ncols // (4 * TILE_C))))
    chunk = max(tpb, FRESH_SCRATCH // (ns * (kk + 1)) // tpb * tpb)
    return int(max(1, min(nrows, chunk))), ns


# Rows per segment of the symmetric first pass (``_Lists.first``): the pairs
# inside a segment are computed from both sides (n * FIRST_ROWS / 2 extra pairs
# in all: 0.03 n^2 at n = 20 000), and a segment is one ``fresh_pass`` launch.
# Read at each run (tests lower it to cut small n into several segments);
# the simulator uses tpb / 2 (several segments at the tests' n <= 40).
FIRST_ROWS = 1024


def first_segments(n, tpb, kk, simulated=None):
    """(lo, rows, column shares) of each ``fresh_pass`` launch of the first pass
    over n active slots: segment s is rows [lo, lo + rows) against [lo, n).
    ``simulated`` (default: ``launch.simulating()``) selects the simulator's rule."""
    rows_max = int(FIRST_ROWS)
    if launch.simulating() if simulated is None else simulated:
        rows_max = min(rows_max, tpb // 2)
    rows_max = max(1, rows_max)
    out = []
    lo = 0
    while lo < n:
        chunk, ns = fresh_grid(n - lo, n - lo, tpb, kk)
        nr = min(chunk, rows_max, n - lo)
        out.append((lo, nr, ns))
        lo += nr
    return out


def _tile_grid(nrows, nsplit, tpb):
    """Grid of a tile kernel: every row block (grid-stride, capped, in the simulator) x shares."""
    rb = launch.blocks(nrows, tpb) if launch.simulating() else -(-nrows // tpb)
    return (rb, nsplit)


class _Scratch:
    """Per-share partial results (distance, index), grown on demand, reused across launches."""

    def __init__(self, xp):
        self.xp = xp
        self.w = self.j = None

    def get(self, nsplit, nrows):
        if self.w is None or self.w.size < nsplit * nrows:
            cap = max(nsplit * nrows, 1024)
            self.w = self.xp.empty(cap, _F64)
            self.j = self.xp.empty(cap, _I32)
        w = self.w[: nsplit * nrows].reshape(nsplit, nrows)
        j = self.j[: nsplit * nrows].reshape(nsplit, nrows)
        return launch.as_device(w), launch.as_device(j)


def _single(XT, norms, mcode, p, xp, tpb, stream, counter):
    d, n = XT.shape
    N = _I64(n)
    comp = xp.empty(n, _I32)
    hook_to = xp.empty(n, _I32)
    comp_w = xp.empty(n, _F64)
    comp_code = xp.empty(n, _I64)
    cand_w = xp.empty((TOP_K, n), _F64)
    cand_j = xp.empty((TOP_K, n), _I32)
    cand_j[0] = -2  # never scanned
    cur_w = xp.empty(n, _F64)
    cur_j = xp.empty(n, _I32)
    rows = xp.empty(n, _I32)
    nrows = xp.zeros(1, _I64)
    edge_u = xp.empty(n, _I32)
    edge_v = xp.empty(n, _I32)
    edge_w = xp.empty(n, _F64)
    count = xp.zeros(1, _I64)
    dv = {k: launch.as_device(v) for k, v in dict(
        XT=XT, norms=norms, comp=comp, hook_to=hook_to, comp_w=comp_w, comp_code=comp_code,
        cand_w=cand_w, cand_j=cand_j, cur_w=cur_w, cur_j=cur_j, rows=rows, nrows=nrows,
        edge_u=edge_u, edge_v=edge_v, edge_w=edge_w, count=count).items()}
    per_vertex = (launch.blocks(n, tpb), tpb, stream)
    part = _Scratch(xp)
    cuda_mst.init_state[per_vertex](dv["comp"], dv["hook_to"], dv["comp_w"], dv["comp_code"],
                                    dv["edge_u"], N)
    components = n
    while components > 1:
        cancel.check()  # Ctrl-C between rounds
        point_carry[per_vertex](dv["comp"], dv["comp_w"], dv["cand_w"], dv["cand_j"],
                                dv["cur_w"], dv["cur_j"], N)
        nrows[...] = 0
        point_select[per_vertex](dv["comp"], dv["comp_w"], dv["cur_w"], dv["cur_j"], dv["rows"],
                                 dv["nrows"], N)
        nr = int(launch.to_host(nrows)[0])
        if nr:
            ns = _splits(nr, n, tpb)
            pw, pj = part.get(ns * TOP_K, nr)
            point_best[_tile_grid(nr, ns, tpb), tpb, stream](
                dv["XT"], dv["norms"], dv["comp"], dv["rows"], _I64(nr), N, _I64(mcode), _F64(p),
                pw, pj)
            point_combine[launch.blocks(nr, tpb), tpb, stream](
                dv["rows"], _I64(nr), pw, pj, _I64(ns), dv["comp"], dv["comp_w"], dv["cand_w"],
                dv["cand_j"], dv["cur_w"], dv["cur_j"])
        cuda_mst.vertex_code[per_vertex](dv["comp"], dv["cur_w"], dv["cur_j"], dv["comp_w"],
                                         dv["comp_code"], N)
        cuda_mst.hook[per_vertex](dv["comp"], dv["comp_w"], dv["comp_code"], dv["hook_to"],
                                  dv["edge_u"], dv["edge_v"], dv["edge_w"], dv["count"], N)
        for _ in range(max(1, math.ceil(math.log2(components)))):
            cuda_mst.jump[per_vertex](dv["comp"], dv["hook_to"], N)
        cuda_mst.relabel[per_vertex](dv["comp"], dv["hook_to"], dv["comp_w"], dv["comp_code"], N)
        remaining = n - int(launch.to_host(count)[0])  # the round's host reads: nrows, count
        if remaining >= components:
            raise ValueError(
                f"{NO_FINITE_CANDIDATE} (single linkage, memory-saving, on the GPU made no "
                f"progress with {components} components left: NaN distances)"
            )
        components = remaining
        counter[0] = n - components
    eu, ev, ew = (launch.to_host(x) for x in (edge_u, edge_v, edge_w))
    logged = eu >= 0
    a = eu[logged].astype(np.int64)
    b = ev[logged].astype(np.int64)
    h = ew[logged].astype(np.float64)
    order = np.lexsort((b, a, h))
    return a[order], b[order], h[order]


def _summaries(n, xp):
    size = xp.ones(n, _F64)
    extra = xp.zeros(n, _F64)
    active = xp.ones(n, np.int8)
    rep = xp.arange(n, dtype=_I64)
    nn = xp.zeros(n, _I32)
    nnd = xp.full(n, np.inf, dtype=_F64)
    return size, extra, active, rep, nn, nnd


class _Lists:
    """Launches the list kernels of the reducible rounds with scratch for the shares."""

    def __init__(self, dv, xp, tpb, stream, code, metric, kk):
        self.dv, self.tpb, self.stream, self.kk = dv, tpb, stream, kk
        self.code, self.metric = _I64(code), _I64(metric)
        self.part = _Scratch(xp)
        # average/cosine: scans as GEMM slabs + exact rechecks (same lists and bounds).
        self.gemm = cuda_gemm_scan.GemmLists(self, xp) if cuda_gemm_scan.enabled(code, metric) \
            else None

    def _combine(self, rows_d, nr, pw, pj, ns, merge=0):
        dv = self.dv
        rnn_combine[launch.blocks(nr, self.tpb), self.tpb, self.stream](
            rows_d, _I64(nr), pw, pj, _I64(ns), _I64(self.kk), _I64(merge), dv["LW"], dv["LJ"],
            dv["BW"], dv["BJ"], dv["nn"], dv["nnd"])

    def first(self, act, flag):
        """Round 0's lists and bounds, each pair computed once (``first_segments``).

        Segment s (rows act[lo:lo + nr]) runs ``fresh_pass`` against act[lo:]:
        its rows' own candidates over their segment and every later one, and
        each of its rows offered to every row of a later segment (``flag``
        marks the segments done, which take no offers). Then ``rnn_combine``
        folds the row-side shares into the offers the rows received from
        earlier segments. Both sides are exact (``_offer`` keeps the kk + 1
        first of what it is offered; d(i, j) is d(j, i) bitwise) over
        disjoint candidate sets whose union is every other slot, so each list
        and bound is the full scan's. With GEMM slabs (average/cosine) the
        first pass is their full scan: the products are cheap there, the
        exact rechecks few.
        """
        if self.gemm is not None:
            return self.gemm.scan(launch.as_device(act), int(act.shape[0]), act)
        dv = self.dv
        for lo, nr, ns in first_segments(int(act.shape[0]), self.tpb, self.kk):
            rows = act[lo:lo + nr]
            flag[rows] = 1  # this segment and the earlier ones take no offers
            rows_d = launch.as_device(rows)
            pw, pj = self.part.get(ns * (self.kk + 1), nr)
            fresh_pass[(1, ns), self.tpb, self.stream](
                dv["CT"], dv["size"], dv["extra"], rows_d, _I64(nr), launch.as_device(act[lo:]),
                _I64(act.shape[0] - lo), self.code, self.metric, _I64(self.kk), dv["flag"],
                dv["LW"], dv["LJ"], dv["BW"], dv["BJ"], pw, pj)
            self._combine(rows_d, nr, pw, pj, ns, merge=1)
        flag[...] = 0

    def scan(self, rows_d, nr, cols):
        """Lists and bounds of rows_d[:nr] from a full scan of ``cols``."""
        if self.gemm is not None:
            return self.gemm.scan(rows_d, nr, cols)
        nc = int(cols.shape[0])
        if nr == 0 or nc == 0:
            return
        ns = _splits(nr, nc, self.tpb)
        pw, pj = self.part.get(ns * (self.kk + 1), nr)
        dv = self.dv
        rnn_scan[_tile_grid(nr, ns, self.tpb), self.tpb, self.stream](
            dv["CT"], dv["size"], dv["extra"], rows_d, _I64(nr), launch.as_device(cols), _I64(nc),
            self.code, self.metric, _I64(self.kk), pw, pj)
        self._combine(rows_d, nr, pw, pj, ns)

    def fresh(self, new, cols):
        """The new clusters' lists, and each offered to every other row in ``cols``."""
        if self.gemm is not None:
            return self.gemm.fresh(new, cols)
        p = int(new.shape[0])
        nc = int(cols.shape[0])
        if p == 0 or nc == 0:
            return
        chunk, ns = fresh_grid(p, nc, self.tpb, self.kk)
        dv = self.dv
        cols_d = launch.as_device(cols)
        for lo in range(0, p, chunk):
            nr = min(chunk, p - lo)
            rows_d = launch.as_device(new[lo:lo + nr])
            pw, pj = self.part.get(ns * (self.kk + 1), nr)
            fresh_pass[(1, ns), self.tpb, self.stream](
                dv["CT"], dv["size"], dv["extra"], rows_d, _I64(nr), cols_d, _I64(nc), self.code,
                self.metric, _I64(self.kk), dv["flag"], dv["LW"], dv["LJ"], dv["BW"], dv["BJ"],
                pw, pj)
            self._combine(rows_d, nr, pw, pj, ns)


def _rnn_rounds(CT, code, metric, xp, tpb, stream, counter):
    """Reciprocal-nearest-neighbour rounds over per-row candidate lists.

    Each active row keeps its K (``RNN_TOP_K``) first (distance, slot) and a
    bound (see the kernels' section). A round: ``rnn_select`` (nn, nnd from
    the lists' heads; rows whose head does not precede the bound are listed),
    ``rnn_scan`` + ``rnn_combine`` (full rescan of those rows), ``find_pairs``
    and ``merge_pairs`` (every reciprocal pair), ``rnn_drop`` (merged slots
    leave every list), ``fresh_pass`` + ``rnn_combine`` (the new clusters
    against every active slot, each pair once: their own lists, and each
    offered to every other row). Round 0's lists come from the symmetric
    first pass (``_Lists.first``), so its select lists no row. Host reads per round: the rescan count, the pair
    count and the active list's length. A round that merged few pairs
    (``cuda_chain.hands_over``: chain-like data) hands the rest to the
    device-side nearest-neighbour chain (``cuda_chain.finish``).
    """
    d, n = CT.shape
    N = _I64(n)
    kk = int(RNN_TOP_K)
    if not 1 <= kk <= RNN_TOP_K_MAX:
        raise ValueError(f"cuda_vector.RNN_TOP_K must be between 1 and {RNN_TOP_K_MAX}; got {kk}")
    size, extra, active, rep, nn, nnd = _summaries(n, xp)
    flag = xp.zeros(n, np.int8)
    pair_i = xp.empty(n, _I32)
    pair_j = xp.empty(n, _I32)
    npairs = xp.zeros(1, _I64)
    log_a = xp.empty(n - 1, _I64)
    log_b = xp.empty(n - 1, _I64)
    log_h = xp.empty(n - 1, _F64)
    nlog = xp.zeros(1, _I64)
    LW = xp.full((kk, n), np.inf, dtype=_F64)
    LJ = xp.full((kk, n), -1, dtype=_I32)
    BW = xp.full(n, np.inf, dtype=_F64)
    BJ = xp.full(n, -1, dtype=_I32)  # no bound yet: every row is scanned in round 0
    rows = xp.empty(n, _I32)
    nrows = xp.zeros(1, _I64)
    # All device state of the rounds lives in dv (a hand-over to another loop takes it whole).
    dv = {k: launch.as_device(v) for k, v in dict(
        CT=CT, size=size, extra=extra, active=active, rep=rep, nn=nn, nnd=nnd, flag=flag,
        pair_i=pair_i, pair_j=pair_j, npairs=npairs, log_a=log_a, log_b=log_b, log_h=log_h,
        nlog=nlog, LW=LW, LJ=LJ, BW=BW, BJ=BJ, rows=rows, nrows=nrows).items()}
    C, M = _I64(code), _I64(metric)
    K = _I64(kk)
    per_slot = (launch.blocks(n, tpb), tpb, stream)
    lists = _Lists(dv, xp, tpb, stream, code, metric, kk)

    act = xp.arange(n, dtype=_I32)
    lists.first(act, flag)  # round 0's lists: each pair once
    m = n
    round_sizes = []
    while m > 1:
        cancel.check()  # Ctrl-C between rounds
        nrows[...] = 0
        rnn_select[per_slot](dv["active"], dv["LW"], dv["LJ"], dv["BW"], dv["BJ"], dv["nn"],
                             dv["nnd"], dv["rows"], dv["nrows"], N)
        nr = int(launch.to_host(nrows)[0])  # host read: rows to rescan
        lists.scan(dv["rows"], nr, act)
        npairs[...] = 0
        find_pairs[per_slot](dv["active"], dv["nn"], dv["nnd"], dv["rep"], dv["flag"],
                             dv["pair_i"], dv["pair_j"], dv["npairs"], dv["log_a"], dv["log_b"],
                             dv["log_h"], dv["nlog"], N)
        p = int(launch.to_host(npairs)[0])  # host read: pairs merged this round
        if p == 0:
            raise ValueError(
                f"{NO_FINITE_CANDIDATE} (memory-saving linkage on the GPU found no reciprocal "
                f"nearest neighbours with {m} clusters left: NaN distances)"
            )
        round_sizes.append(p)
        merge_pairs[(launch.blocks(p, tpb), tpb, stream)](
            dv["CT"], dv["size"], dv["extra"], dv["active"], dv["pair_i"], dv["pair_j"], _I64(p),
            C, M)
        m -= p
        counter[0] = n - m
        if m <= 1:
            break
        if cuda_chain.hands_over(p, m + p):  # chain-like data: finish on the device
            round_sizes += [1] * cuda_chain.finish(dv, m, code, metric, xp, tpb, stream, counter)
            break
        rnn_drop[per_slot](dv["active"], dv["flag"], dv["LW"], dv["LJ"], K, N)
        act = xp.flatnonzero(active).astype(_I32)  # host read: the active list's length
        lists.fresh(pair_i[:p], act)
        flag[...] = 0
    a, b, h = launch.to_host(log_a), launch.to_host(log_b), launch.to_host(log_h)
    # find_pairs logs a round's merges in atomic (run-dependent) order; sorting
    # each round by its observations makes Z reproducible under exact ties.
    rounds = np.repeat(np.arange(len(round_sizes)), round_sizes)
    order = np.lexsort((b, a, rounds))
    return a[order], b[order], h[order]


def _checked(log):
    """The merge log, or ValueError when a step found no finite candidate
    (a negative log entry, or a merge at a non-finite height)."""
    a, b, h = log
    if (a < 0).any() or not np.isfinite(h).all():
        step = int(np.argmax((a < 0) | ~np.isfinite(h)))
        raise ValueError(f"{NO_FINITE_CANDIDATE} (memory-saving linkage on the GPU, step "
                         f"{step} of {a.shape[0]})")
    return a, b, h


def run(CT, norms, code, mcode, p=2.0, xp=np, tpb=None, counter=None):
    """Merge log of a memory-saving linkage on the device.

    Parameters
    ----------
    CT : device array, shape (d, n), float32 or float64, C-contiguous
        Observations transposed (single: correlation rows centred; average
        with cosine/correlation: unit rows). Overwritten for cluster methods.
    norms : device array of float64, shape (n,)
        Row norms (single with cosine/correlation; ignored otherwise).
    code : int
        ``formulas`` method code: SINGLE, WARD, AVERAGE, CENTROID or MEDIAN.
    mcode : int
        ``metrics`` code: the point metric for single; for average,
        SQEUCLIDEAN or COSINE (the cluster summary in use).
    p : float
        Minkowski exponent.
    xp : module
        Namespace of the arrays (CuPy, or NumPy in the simulator).
    tpb : int, optional
        Threads per block (power of two, 32..MAX_TPB).
    counter : ndarray of int64, shape (1,), optional
        Host array receiving the number of merges done (after each round;
        for the generic loop, after each chunk of merges).

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
    h : ndarray of float64, shape (n-1,)
        The merge log (host arrays); heights squared for ward/centroid/median.
        single: MST edges by (weight, min, max); reducible: by round;
        generic: merge order.
    """
    tpb = launch.check_tpb(tpb, MAX_TPB)
    stream = launch.stream_for(xp)
    if counter is None:
        counter = np.zeros(1, dtype=np.int64)
    if code == formulas.SINGLE:
        return _checked(_single(CT, norms, mcode, p, xp, tpb, stream, counter))
    if code in (formulas.CENTROID, formulas.MEDIAN):
        return _checked(cuda_vector_generic.run(CT, code, mcode, xp, tpb, counter))
    if code in (formulas.WARD, formulas.AVERAGE):
        return _checked(_rnn_rounds(CT, code, mcode, xp, tpb, stream, counter))
    raise ValueError(f"cuda_vector has no memory-saving path for method code {code}")
