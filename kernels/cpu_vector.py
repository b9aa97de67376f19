"""Memory-saving linkage from observations on the CPU: O(n*d) memory, no distance matrix.

Three engines, all exact (same tree and, to rounding, the same heights as the
dense path on data without ties):

``single``
    single linkage, any compiled metric (``kernels.metrics``): Prim's minimum
    spanning tree, the distances from each new tree vertex to the points not yet
    in the tree recomputed from the points in tiles.
``reducible``
    reducible linkages from cluster summaries (ward; average with sqeuclidean
    or cosine): the nearest-neighbour chain, each nearest-neighbour search a
    sweep over the cluster centroids.
``generic``
    centroid and median (not reducible: inversions occur): the generic
    algorithm with a nearest-neighbour cache over centroids; a cached distance
    is a lower bound, checked when it reaches the top and rescanned if stale.

Data layout. Points/centroids are stored transposed, ``CT[k, slot]`` (d rows of
n slots), and the active slots are kept packed in ``[0, m)`` (a removed slot is
refilled by the last one), so a sweep is d contiguous row segments: the inner
loop runs over slots, independent lanes the compiler vectorises, while each
pair's sum over coordinates stays in coordinate order (no reassociation, so a
distance does not depend on the tile it was computed in). Sweeps over many
slots can run on all threads (blocks of ``BLOCK`` slots, ``prange``); whether
they do is decided by measurement (``Pacer``): the engines are resumable step
functions (``prim_steps``, ``nn_chain_steps``, ``generic_steps``) driven in
timed chunks of merges, because a fork/join per merge stalls badly on an
oversubscribed machine. Small sweeps always run on one thread.

Cluster formulas (plain functions, compiled here with ``numba.njit`` and in
``cuda_vector`` with ``cuda.jit(device=True)``) are ``cluster_distance``,
``merged_coordinate`` and ``merged_extra`` in ``kernels.formulas``; point
distances come from ``kernels.metrics``. Every engine writes a merge log ``(a, b, h)`` as described
in ``kernels/__init__.py`` and stores the number of merges done in
``counter[0]`` as it goes (for progress bars).
"""

import numba
import numpy as np

from . import cancel, formulas, metrics
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE

# Slots per tile: a tile's accumulators stay in L1 while the d coordinate rows
# stream through.
TILE = 256
# Slots per parallel task (a multiple of TILE).
BLOCK = 2048
# Below this many coordinate pairs (slots x d) a sweep runs on the calling thread.
PAR_MIN_WORK = 1 << 17
# Rows per task in the all-pairs initial nearest-neighbour pass: the column
# tile is reused from cache by this many rows.
ROW_GROUP = 8
# Slot returned by a search whose minimum is not among its values (a NaN, or
# only infinities under the fast-math minimum). Sticky through the folds
# (``_take_better``, ``_reduce_best``), so the step functions see a negative
# slot and stop (return False) instead of indexing with it or spinning; the
# drivers raise ValueError(NO_FINITE_CANDIDATE). Finite summaries never give it.
POISONED = -2


# --------------------------------------------------------------------------
# Cluster formulas (``formulas``: one source for the CPU and the CUDA engines)
# --------------------------------------------------------------------------

_coordinate_metric = numba.njit(inline="always", cache=NUMBA_CACHE)(formulas.coordinate_metric)
# fastmath=False explicitly: numba would compile these with a caller's flags.
_accumulate = numba.njit(inline="always", cache=NUMBA_CACHE, fastmath=False)(
    metrics.metric_accumulate)
_finalize = numba.njit(inline="always", cache=NUMBA_CACHE, fastmath=False)(
    metrics.metric_finalize)
_cluster_distance = numba.njit(inline="always", cache=NUMBA_CACHE)(formulas.cluster_distance)
_merged_coordinate = numba.njit(inline="always", cache=NUMBA_CACHE)(formulas.merged_coordinate)
_merged_extra = numba.njit(inline="always", cache=NUMBA_CACHE)(formulas.merged_extra)


# --------------------------------------------------------------------------
# Tiles: distances from one query vector to the slots [lo, hi)
# --------------------------------------------------------------------------

@numba.njit(nogil=True, inline="always", cache=NUMBA_CACHE)
def _tile_accumulate(mcode, CT, q, p, out, lo, hi):
    """out[:hi - lo] = accumulated metric terms of q against CT[:, lo:hi].

    Inlined where ``mcode`` is a literal, so the metric's branches fold away and
    the slot loop vectorises. Slices keep the indices provably non-negative (no
    wrap-around selects, which would turn the loads into gathers).
    """
    w = hi - lo
    o = out[:w]
    for i in range(w):
        o[i] = 0.0
    for k in range(CT.shape[0]):
        qk = q[k]
        row = CT[k, lo:hi]
        for i in range(w):
            # float64 terms from float32 storage too: the data is rounded once, not each term
            o[i] = _accumulate(mcode, o[i], np.float64(row[i]), np.float64(qk), p)


@numba.njit(nogil=True, inline="always", cache=NUMBA_CACHE)
def _point_tile_literal(mcode, CT, q, qnorm, norms, p, out, lo, hi):
    _tile_accumulate(mcode, CT, q, p, out, lo, hi)
    nt = norms[lo:hi]
    for i in range(hi - lo):
        out[i] = _finalize(mcode, out[i], p, nt[i], qnorm)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _point_tile(mcode, CT, q, qnorm, norms, p, out, lo, hi):
    """out[:hi - lo] = metric distances from point q to the points CT[:, lo:hi].

    The metric is dispatched once per tile to a copy compiled for that literal
    code, so its branches fold away and the slot loops vectorise.
    """
    if mcode == metrics.EUCLIDEAN:
        _point_tile_literal(metrics.EUCLIDEAN, CT, q, qnorm, norms, p, out, lo, hi)
    elif mcode == metrics.SQEUCLIDEAN:
        _point_tile_literal(metrics.SQEUCLIDEAN, CT, q, qnorm, norms, p, out, lo, hi)
    elif mcode == metrics.CITYBLOCK:
        _point_tile_literal(metrics.CITYBLOCK, CT, q, qnorm, norms, p, out, lo, hi)
    elif mcode == metrics.CHEBYSHEV:
        _point_tile_literal(metrics.CHEBYSHEV, CT, q, qnorm, norms, p, out, lo, hi)
    elif mcode == metrics.MINKOWSKI:
        _point_tile_literal(metrics.MINKOWSKI, CT, q, qnorm, norms, p, out, lo, hi)
    elif mcode == metrics.COSINE:
        _point_tile_literal(metrics.COSINE, CT, q, qnorm, norms, p, out, lo, hi)
    else:
        _point_tile_literal(metrics.CORRELATION, CT, q, qnorm, norms, p, out, lo, hi)


@numba.njit(nogil=True, inline="always", cache=NUMBA_CACHE)
def _cluster_tile_literal(code, metric, CT, q, s_q, e_q, size, extra, out, lo, hi):
    _tile_accumulate(_coordinate_metric(code, metric), CT, q, 0.0, out, lo, hi)
    st = size[lo:hi]
    et = extra[lo:hi]
    for i in range(hi - lo):
        out[i] = _cluster_distance(code, metric, out[i], s_q, st[i], e_q, et[i])


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _cluster_tile(code, metric, CT, q, s_q, e_q, size, extra, out, lo, hi):
    """out[:hi - lo] = linkage distances from the cluster (q, s_q, e_q) to slots [lo, hi).

    Dispatched once per tile to a copy compiled for the literal (method,
    summary) pair, as in ``_point_tile``.
    """
    if code == formulas.WARD:
        _cluster_tile_literal(formulas.WARD, metrics.SQEUCLIDEAN, CT, q, s_q, e_q, size, extra,
                              out, lo, hi)
    elif code == formulas.CENTROID:
        _cluster_tile_literal(formulas.CENTROID, metrics.SQEUCLIDEAN, CT, q, s_q, e_q, size,
                              extra, out, lo, hi)
    elif code == formulas.MEDIAN:
        _cluster_tile_literal(formulas.MEDIAN, metrics.SQEUCLIDEAN, CT, q, s_q, e_q, size,
                              extra, out, lo, hi)
    elif metric == metrics.COSINE:
        _cluster_tile_literal(formulas.AVERAGE, metrics.COSINE, CT, q, s_q, e_q, size, extra,
                              out, lo, hi)
    else:
        _cluster_tile_literal(formulas.AVERAGE, metrics.SQEUCLIDEAN, CT, q, s_q, e_q, size,
                              extra, out, lo, hi)


# --------------------------------------------------------------------------
# Single linkage: Prim on the fly
# --------------------------------------------------------------------------

@numba.njit(nogil=True, cache=NUMBA_CACHE, fastmath={"nnan", "ninf", "reassoc", "nsz"})
def _min_value(x):
    """Smallest element of x. min is exact in any order, so the reassociation
    flags only let the loop vectorise; inputs are finite."""
    v = np.inf
    for i in range(x.shape[0]):
        v = min(v, x[i])
    return v


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _first_equal(x, v):
    """Index of the first element of x equal to v (-1 if none)."""
    for i in range(x.shape[0]):
        if x[i] == v:
            return i
    return -1


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _take_better(best, bslot, x, lo):
    """Fold the minimum of tile x (slots lo...) into (best, bslot); ties keep the lower slot.

    A tile whose minimum is not one of its values (NaN) poisons the result."""
    if bslot == POISONED:
        return best, bslot
    v = _min_value(x)
    if bslot < 0 or v < best or v != v:
        i = _first_equal(x, v)
        if i < 0:
            return np.nan, POISONED
        return v, lo + i
    return best, bslot


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _prim_block(mcode, XT, q, qnorm, qobs, norms, p, mind, par, dist, lo, hi):
    """Relax slots [lo, hi) with the new tree vertex; return their best (distance, slot)."""
    best = np.inf
    bslot = -1
    for t0 in range(lo, hi, TILE):
        t1 = min(hi, t0 + TILE)
        dt = dist[t0:t1]
        _point_tile(mcode, XT, q, qnorm, norms, p, dt, t0, t1)
        mt = mind[t0:t1]
        pt = par[t0:t1]
        for i in range(t1 - t0):
            if dt[i] < mt[i]:
                mt[i] = dt[i]
                pt[i] = qobs
        best, bslot = _take_better(best, bslot, mt, t0)
    return best, bslot


@numba.njit(nogil=True, parallel=True, cache=NUMBA_CACHE)
def _prim_sweep_parallel(mcode, XT, q, qnorm, qobs, norms, p, mind, par, dist, m, bbest, bslot):
    nb = (m + BLOCK - 1) // BLOCK
    for blk in numba.prange(nb):
        lo = blk * BLOCK
        bbest[blk], bslot[blk] = _prim_block(mcode, XT, q, qnorm, qobs, norms, p, mind, par,
                                             dist, lo, min(m, lo + BLOCK))


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _reduce_best(bbest, bslot, nb):
    """(value, slot) minimum over the blocks' results; ties go to the lower slot.
    A poisoned block poisons the result."""
    for blk in range(nb):
        if bslot[blk] == POISONED:
            return np.nan, POISONED
    best = bbest[0]
    slot = bslot[0]
    for blk in range(1, nb):
        if bslot[blk] >= 0 and (slot < 0 or bbest[blk] < best):
            best = bbest[blk]
            slot = bslot[blk]
    return best, slot


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def prim_steps(mcode, XT, norms, p, obs, mind, par, dist, q, qstate, bbest, bslot, a, b, h,
               counter, limit, parallel):
    """Prim's algorithm from merge ``counter[0]`` up to ``limit`` (resumable).

    State (see ``single``): ``XT`` (d, n) holds the points not yet in the tree
    packed in slots [0, m), m = n - 1 - counter[0] (a removed slot is refilled
    by the last one), with ``obs`` their observation, ``mind`` their distance
    to the tree and ``par`` the tree point at that distance; ``q`` and
    ``qstate = [norm, observation]`` describe the point added last. Each step
    relaxes the slots with that point and adds the nearest. ``parallel`` runs
    the sweep on all threads (blocks of ``BLOCK`` slots) when it is large.
    Returns False (the step not taken) when the nearest point is at no finite
    distance (NaN/inf: only after overflow), True otherwise; the other two step
    functions do the same.
    """
    d, n = XT.shape
    while counter[0] < limit:
        step = counter[0]
        m = n - 1 - step
        qnorm = qstate[0]
        qobs = np.int64(qstate[1])
        if parallel and m * d >= PAR_MIN_WORK:
            _prim_sweep_parallel(mcode, XT, q, qnorm, qobs, norms, p, mind, par, dist, m, bbest, bslot)
            best, s = _reduce_best(bbest, bslot, (m + BLOCK - 1) // BLOCK)
        else:
            best, s = _prim_block(mcode, XT, q, qnorm, qobs, norms, p, mind, par, dist, 0, m)
        if s < 0 or not best < np.inf:
            return False
        a[step] = par[s]
        b[step] = obs[s]
        h[step] = best
        for k in range(d):
            q[k] = XT[k, s]
        qstate[0] = norms[s]
        qstate[1] = obs[s]
        m -= 1  # slot s leaves: the last slot moves into it
        if s != m:
            for k in range(d):
                XT[k, s] = XT[k, m]
            obs[s] = obs[m]
            mind[s] = mind[m]
            par[s] = par[m]
            norms[s] = norms[m]
        counter[0] = step + 1
    return True


# --------------------------------------------------------------------------
# Cluster summaries: sweeps, merges
# --------------------------------------------------------------------------

@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _nearest_block(code, metric, CT, q, s_q, e_q, size, extra, dist, self_slot, lo, hi):
    """Nearest slot in [lo, hi) to the cluster q (excluding ``self_slot``); dist[] filled."""
    best = np.inf
    bslot = -1
    for t0 in range(lo, hi, TILE):
        t1 = min(hi, t0 + TILE)
        dt = dist[t0:t1]
        _cluster_tile(code, metric, CT, q, s_q, e_q, size, extra, dt, t0, t1)
        if t0 <= self_slot < t1:
            keep = dt[self_slot - t0]
            dt[self_slot - t0] = np.inf
            best, bslot = _take_better(best, bslot, dt, t0)
            dt[self_slot - t0] = keep
        else:
            best, bslot = _take_better(best, bslot, dt, t0)
    return best, bslot


# Hot-loop variant of _prim_block/_prim_sweep_parallel (same tiles and blocks;
# a compiled kernel takes no function argument cheaply, so each sweep is whole).
@numba.njit(nogil=True, parallel=True, cache=NUMBA_CACHE)
def _nearest_parallel(code, metric, CT, q, s_q, e_q, size, extra, dist, self_slot, m, bbest, bslot):
    nb = (m + BLOCK - 1) // BLOCK
    for blk in numba.prange(nb):
        lo = blk * BLOCK
        bbest[blk], bslot[blk] = _nearest_block(code, metric, CT, q, s_q, e_q, size, extra, dist,
                                                self_slot, lo, min(m, lo + BLOCK))


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _nearest(code, metric, CT, x, size, extra, dist, q, m, bbest, bslot, parallel):
    """Nearest active slot to slot x: (distance, slot); distances to all slots in dist[:m]."""
    d = CT.shape[0]
    for k in range(d):
        q[k] = CT[k, x]
    if parallel and m * d >= PAR_MIN_WORK:
        _nearest_parallel(code, metric, CT, q, size[x], extra[x], size, extra, dist, x, m, bbest, bslot)
        return _reduce_best(bbest, bslot, (m + BLOCK - 1) // BLOCK)
    return _nearest_block(code, metric, CT, q, size[x], extra[x], size, extra, dist, x, 0, m)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _merge_into(code, metric, CT, size, extra, lo, hi):
    """Replace slot lo's summary by that of the union of slots lo and hi."""
    s_a = size[lo]
    s_b = size[hi]
    sq = 0.0
    for k in range(CT.shape[0]):
        sq = _accumulate(metrics.SQEUCLIDEAN, sq, np.float64(CT[k, lo]), np.float64(CT[k, hi]),
                         0.0)
    extra[lo] = _merged_extra(code, metric, extra[lo], extra[hi], s_a, s_b, sq)
    for k in range(CT.shape[0]):
        CT[k, lo] = _merged_coordinate(code, CT[k, lo], CT[k, hi], s_a, s_b)
    size[lo] = s_a + s_b


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _move_slot(CT, size, extra, rep, src, dst):
    """Copy slot src's summary into slot dst (refilling a removed slot)."""
    for k in range(CT.shape[0]):
        CT[k, dst] = CT[k, src]
    size[dst] = size[src]
    extra[dst] = extra[src]
    rep[dst] = rep[src]


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def nn_chain_steps(code, metric, CT, size, extra, rep, chain, cstate, dist, q, bbest, bslot,
                   a, b, h, counter, limit, parallel):
    """Nearest-neighbour chain from merge ``counter[0]`` up to ``limit`` (resumable).

    Reducible linkages (ward; average with sqeuclidean/cosine). State (see
    ``reducible``): cluster summaries packed in slots [0, m) of ``CT`` (d, n)
    centroids, ``size``, ``extra`` (mean squared deviation), ``rep`` (an
    observation of the cluster); ``chain[:cstate[0]]`` the chain; m = n -
    counter[0]. Each step searches the nearest neighbour of the chain's top,
    preferring the previous element on a tie, so chain distances never
    increase and the chain ends in a reciprocal pair, merged at once: for
    reducible methods the same hierarchy as merging the global closest pair.
    """
    d, n = CT.shape
    clen = cstate[0]
    while counter[0] < limit:
        step = counter[0]
        m = n - step
        if clen == 0:
            chain[0] = 0
            clen = 1
        x = chain[clen - 1]
        best, y = _nearest(code, metric, CT, x, size, extra, dist, q, m, bbest, bslot, parallel)
        if y < 0 or not best < np.inf:
            # No finite neighbour: the chain could never close (NaN compares
            # false) and y would index out of the slots.
            cstate[0] = clen
            return False
        if clen >= 2:
            prev = chain[clen - 2]
            if dist[prev] <= best:
                y = prev
                best = dist[prev]
        if clen < 2 or y != chain[clen - 2]:
            chain[clen] = y
            clen += 1
            continue
        clen -= 2
        a[step] = rep[x]
        b[step] = rep[y]
        h[step] = best
        lo = min(x, y)
        hi = max(x, y)
        _merge_into(code, metric, CT, size, extra, lo, hi)
        m -= 1
        if hi != m:
            _move_slot(CT, size, extra, rep, m, hi)
            for c in range(clen):
                if chain[c] == m:
                    chain[c] = hi
        counter[0] = step + 1
    cstate[0] = clen
    return True


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _block_min(mind, lo, hi):
    x = mind[lo:hi]
    v = _min_value(x)
    i = _first_equal(x, v)
    if i < 0:  # NaN bound
        return np.nan, POISONED
    return v, lo + i


@numba.njit(nogil=True, parallel=True, cache=NUMBA_CACHE)
def _generic_init(code, metric, CT, size, extra, cid, nn_id, mind):
    """Exact nearest neighbour (distance, cluster id) of every slot: all pairs, rows in groups."""
    d, n = CT.shape
    ngroups = (n + ROW_GROUP - 1) // ROW_GROUP
    for g in numba.prange(ngroups):
        r0 = g * ROW_GROUP
        r1 = min(n, r0 + ROW_GROUP)
        nr = r1 - r0
        Q = np.empty((nr, d), dtype=CT.dtype)
        for r in range(nr):
            for k in range(d):
                Q[r, k] = CT[k, r0 + r]
        buf = np.empty(TILE)
        bd = np.full(nr, np.inf)
        bj = np.full(nr, -1, dtype=np.int64)
        for t0 in range(0, n, TILE):
            t1 = min(n, t0 + TILE)
            for r in range(nr):
                i = r0 + r
                bt = buf[:t1 - t0]
                _cluster_tile(code, metric, CT, Q[r], size[i], extra[i], size, extra, bt, t0, t1)
                if t0 <= i < t1:
                    bt[i - t0] = np.inf
                bd[r], bj[r] = _take_better(bd[r], bj[r], bt, t0)
        for r in range(nr):
            mind[r0 + r] = bd[r]
            nn_id[r0 + r] = cid[bj[r]]


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _relax_block(code, metric, CT, q, s_q, e_q, size, extra, dist, u, uid, nn_id, mind,
                 bmin, bmslot, lo, hi):
    """Distances from the new cluster (slot u) to slots [lo, hi): lower the bounds
    they beat, return the nearest, refresh this block's minimum bound."""
    best = np.inf
    bslot = -1
    for t0 in range(lo, hi, TILE):
        t1 = min(hi, t0 + TILE)
        dt = dist[t0:t1]
        _cluster_tile(code, metric, CT, q, s_q, e_q, size, extra, dt, t0, t1)
        if t0 <= u < t1:
            dt[u - t0] = np.inf  # not a candidate for itself; its bound is set by the caller
        mt = mind[t0:t1]
        nt = nn_id[t0:t1]
        for i in range(t1 - t0):
            if dt[i] < mt[i]:
                mt[i] = dt[i]
                nt[i] = uid
        best, bslot = _take_better(best, bslot, dt, t0)
    blk = lo // BLOCK
    bmin[blk], bmslot[blk] = _block_min(mind, lo, hi)
    return best, bslot


@numba.njit(nogil=True, parallel=True, cache=NUMBA_CACHE)
def _relax_parallel(code, metric, CT, q, s_q, e_q, size, extra, dist, u, uid, nn_id, mind,
                    bmin, bmslot, m, bbest, bslot):
    nb = (m + BLOCK - 1) // BLOCK
    for blk in numba.prange(nb):
        lo = blk * BLOCK
        bbest[blk], bslot[blk] = _relax_block(code, metric, CT, q, s_q, e_q, size, extra, dist, u,
                                              uid, nn_id, mind, bmin, bmslot, lo, min(m, lo + BLOCK))


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _refresh_block(mind, bmin, bmslot, slot, m):
    blk = slot // BLOCK
    lo = blk * BLOCK
    bmin[blk], bmslot[blk] = _block_min(mind, lo, min(m, lo + BLOCK))


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def generic_init(code, metric, CT, size, extra, cid, nn_id, mind, bmin, bmslot):
    """Exact nearest neighbour of every slot (parallel) and the block minima of the bounds."""
    n = CT.shape[1]
    _generic_init(code, metric, CT, size, extra, cid, nn_id, mind)
    for blk in range(bmin.shape[0]):
        bmin[blk], bmslot[blk] = _block_min(mind, blk * BLOCK, min(n, (blk + 1) * BLOCK))


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def generic_steps(code, metric, CT, size, extra, rep, cid, slot_of, nn_id, mind, bmin, bmslot,
                  dist, q, bbest, bslot, a, b, h, counter, limit, parallel):
    """Generic algorithm (centroid, median) from merge ``counter[0]`` up to ``limit`` (resumable).

    State (see ``generic``): summaries packed in slots [0, m), m = n -
    counter[0]; ``cid`` the cluster id in each slot (merge k creates n + k),
    ``slot_of`` its inverse (-1: gone); per slot a candidate nearest cluster
    ``nn_id`` and a bound ``mind``: exact while the candidate exists, else a
    lower bound (removing clusters only raises a row's minimum, and every new
    cluster is compared with every bound when it is created). Each step takes
    the smallest bound; if its candidate is gone the row is rescanned and the
    step retried, else that pair is the global minimum and is merged. Block
    minima of the bounds (``BLOCK`` slots each) find the smallest in
    O(n / BLOCK + BLOCK). The log is in merge order (inversions: not sorted).
    """
    d, n = CT.shape
    while counter[0] < limit:
        step = counter[0]
        m = n - step
        nb = (m + BLOCK - 1) // BLOCK
        while True:
            best, i = _reduce_best(bmin, bmslot, nb)
            if i < 0 or not best < np.inf:
                return False
            j = slot_of[nn_id[i]]
            if j >= 0:
                break
            best, j = _nearest(code, metric, CT, i, size, extra, dist, q, m, bbest, bslot, parallel)
            if j < 0 or not best < np.inf:
                # Rescan found nothing finite: retrying would pick the same row forever.
                return False
            mind[i] = best
            nn_id[i] = cid[j]
            _refresh_block(mind, bmin, bmslot, i, m)
        a[step] = rep[i]
        b[step] = rep[j]
        h[step] = best
        lo = min(i, j)
        hi = max(i, j)
        _merge_into(code, metric, CT, size, extra, lo, hi)
        slot_of[cid[lo]] = -1
        slot_of[cid[hi]] = -1
        uid = n + step
        cid[lo] = uid
        slot_of[uid] = lo
        m -= 1
        if hi != m:
            _move_slot(CT, size, extra, rep, m, hi)
            cid[hi] = cid[m]
            nn_id[hi] = nn_id[m]
            mind[hi] = mind[m]
            slot_of[cid[hi]] = hi
        if m > 1:
            for k in range(d):
                q[k] = CT[k, lo]
            nb = (m + BLOCK - 1) // BLOCK
            if parallel and m * d >= PAR_MIN_WORK:
                _relax_parallel(code, metric, CT, q, size[lo], extra[lo], size, extra, dist, lo,
                                uid, nn_id, mind, bmin, bmslot, m, bbest, bslot)
            else:
                for blk in range(nb):
                    bbest[blk], bslot[blk] = _relax_block(
                        code, metric, CT, q, size[lo], extra[lo], size, extra, dist, lo, uid,
                        nn_id, mind, bmin, bmslot, blk * BLOCK, min(m, (blk + 1) * BLOCK))
            best, j = _reduce_best(bbest, bslot, nb)
            if j < 0:  # NaN to every other cluster: cid[j] would be garbage
                return False
            mind[lo] = best
            nn_id[lo] = cid[j]
            _refresh_block(mind, bmin, bmslot, lo, m)
        counter[0] = step + 1
    return True


# --------------------------------------------------------------------------
# Drivers: state set-up and pacing (plain Python)
# --------------------------------------------------------------------------

class Pacer:
    """Runs an engine in chunks of merges, each on one thread or on all threads,
    whichever has measured faster.

    A sweep per merge is tens of microseconds of work, so a parallel run pays a
    fork/join per merge. On an idle machine that is cheap and the threads pay
    off; on an oversubscribed one every join can wait for a descheduled thread's
    time slice (measured on a busy 2-core box: 84 s with 2 threads against 1.0 s
    on one, single linkage, n = 20 000). So the mode is chosen by measurement:
    throughput (work units per second, a unit being one slot x feature of a
    sweep) is measured per mode; the losing mode is re-probed now and then (less
    often each time it loses), each chunk sized to take about ``TARGET_S`` at
    its mode's rate.
    """

    TARGET_S = 0.02
    MIN_CHUNK = 4
    MAX_PROBE_GAP = 256

    def __init__(self, d, threads=None):
        self.d = d
        self.threads = numba.get_num_threads() if threads is None else threads
        self.rate = {False: None, True: None}
        self.warm = False
        self.gap = 4  # chunks between probes of the losing mode
        self.since_probe = 0

    def mode(self, m):
        """True for a parallel chunk at m active slots."""
        if self.threads < 2 or m * self.d < PAR_MIN_WORK:
            return False
        if self.rate[False] is None:
            return False
        if self.rate[True] is None:
            return True
        winner = self.rate[True] > self.rate[False]
        if self.since_probe >= self.gap:
            self.since_probe = 0
            return not winner
        self.since_probe += 1
        return winner

    def chunk(self, m, parallel):
        """Merges in the next chunk: about TARGET_S at the mode's measured rate
        (MIN_CHUNK for a mode not measured yet: it may be very slow)."""
        rate = self.rate[parallel]
        if rate is None:
            return self.MIN_CHUNK
        return max(self.MIN_CHUNK, int(self.TARGET_S * rate / max(1, m * self.d)))

    def record(self, parallel, work, seconds):
        """Set the mode's throughput to the chunk's (the latest measurement wins:
        the machine's load changes). The first chunk only warms up (it may
        include compiling or loading the engine) and is not recorded."""
        if not self.warm:
            self.warm = True
            return
        if seconds <= 0:
            return
        both = self.rate[True] is not None and self.rate[False] is not None
        leader = both and self.rate[True] > self.rate[False]
        self.rate[parallel] = work / seconds
        if both and parallel != leader:  # this chunk probed the losing mode
            won = (self.rate[True] > self.rate[False]) == parallel
            self.gap = 4 if won else min(self.MAX_PROBE_GAP, 2 * self.gap)


def _drive(steps, n, d, counter, pacer=None):
    """Call ``steps(limit, parallel)`` until n - 1 merges are done, in paced chunks.

    ``steps`` returns False when no finite candidate is left: ValueError."""
    import time

    pacer = Pacer(d) if pacer is None else pacer
    while counter[0] < n - 1:
        cancel.check(counter)  # Ctrl-C between chunks (~TARGET_S each)
        done = int(counter[0])
        m = n - done
        parallel = pacer.mode(m)
        limit = min(n - 1, done + pacer.chunk(m, parallel))
        t0 = time.perf_counter()
        if not steps(limit, parallel):
            raise ValueError(NO_FINITE_CANDIDATE)
        pacer.record(parallel, (limit - done) * m * d, time.perf_counter() - t0)


def single(mcode, XT, norms, p, a, b, h, counter, pacer=None):
    """Single linkage merge log (MST edges in Prim's order) from the points.

    Parameters
    ----------
    mcode : int
        ``kernels.metrics`` code.
    XT : ndarray, shape (d, n), float32 or float64, C-contiguous
        Observations, transposed (correlation: rows already centred).
        Overwritten (columns are permuted).
    norms : ndarray of float64, shape (n,)
        Row norms for cosine/correlation (ones otherwise). Permuted.
    p : float
        Minkowski exponent.
    a, b : ndarray of int64, shape (n-1,)
    h : ndarray of float64, shape (n-1,)
        Output: edges (tree point, new point) and weights, in Prim's order
        (sort by weight for a merge order).
    counter : ndarray of int64, shape (1,)
        Merges done, written as the run goes (starts at 0).
    pacer : Pacer, optional
        Thread policy (default: measured, see ``Pacer``).
    """
    d, n = XT.shape
    obs = np.arange(n)
    mind = np.full(n, np.inf)
    par = np.full(n, -1, dtype=np.int64)
    dist = np.empty(n)
    nb = -(-n // BLOCK)
    bbest = np.empty(nb)
    bslot = np.empty(nb, dtype=np.int64)
    q = XT[:, n - 1].copy()  # the last point is the root of the tree
    qstate = np.array([norms[n - 1], n - 1], dtype=np.float64)

    def steps(limit, parallel):
        return prim_steps(mcode, XT, norms, p, obs, mind, par, dist, q, qstate, bbest, bslot,
                          a, b, h, counter, limit, parallel)

    _drive(steps, n, d, counter, pacer)


def reducible(code, metric, CT, size, extra, a, b, h, counter, pacer=None):
    """Ward, or average with sqeuclidean/cosine summaries, by the nearest-neighbour chain.

    Parameters
    ----------
    code, metric : int
        ``formulas`` method code and ``metrics`` code (``formulas.cluster_distance``).
    CT : ndarray, shape (d, n), float32 or float64, C-contiguous
        Initial centroids (the points; average/cosine: unit rows), transposed.
        Overwritten.
    size, extra : ndarray of float64, shape (n,)
        Initial sizes (ones) and mean squared deviations (zeros). Overwritten.
    a, b, h, counter, pacer
        As in ``single``; ``h`` in the method's working units (ward: squared),
        in merge order.
    """
    d, n = CT.shape
    rep = np.arange(n)
    chain = np.empty(n, dtype=np.int64)
    cstate = np.zeros(1, dtype=np.int64)
    dist = np.empty(n)
    q = np.empty(d, dtype=CT.dtype)
    nb = -(-n // BLOCK)
    bbest = np.empty(nb)
    bslot = np.empty(nb, dtype=np.int64)

    def steps(limit, parallel):
        return nn_chain_steps(code, metric, CT, size, extra, rep, chain, cstate, dist, q,
                              bbest, bslot, a, b, h, counter, limit, parallel)

    _drive(steps, n, d, counter, pacer)


def generic(code, metric, CT, size, extra, a, b, h, counter, pacer=None):
    """Centroid or median linkage by the generic algorithm over centroids.

    Parameters as in ``reducible``. The log is in merge order (heights may
    decrease: inversions) and must not be sorted.
    """
    d, n = CT.shape
    rep = np.arange(n)
    cid = np.arange(n)
    slot_of = np.full(2 * n - 1, -1, dtype=np.int64)
    slot_of[:n] = np.arange(n)
    nn_id = np.empty(n, dtype=np.int64)
    mind = np.empty(n)
    dist = np.empty(n)
    q = np.empty(d, dtype=CT.dtype)
    nb = -(-n // BLOCK)
    bbest = np.empty(nb)
    bslot = np.empty(nb, dtype=np.int64)
    bmin = np.empty(nb)
    bmslot = np.empty(nb, dtype=np.int64)
    generic_init(code, metric, CT, size, extra, cid, nn_id, mind, bmin, bmslot)
    if not (mind < np.inf).all():  # a cluster with no finite neighbour from the start
        raise ValueError(NO_FINITE_CANDIDATE)

    def steps(limit, parallel):
        return generic_steps(code, metric, CT, size, extra, rep, cid, slot_of, nn_id, mind,
                             bmin, bmslot, dist, q, bbest, bslot, a, b, h, counter, limit,
                             parallel)

    _drive(steps, n, d, counter, pacer)
