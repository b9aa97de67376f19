"""Compiled block-pair kernels for the Dask engines (CPU workers).

Distances come from the memory-saving engine's own tile functions
(``kernels.cpu_vector._point_tile`` for point metrics, ``_cluster_tile`` for
cluster summaries), so a pair's distance is the same float here as in
``gpu_hclust.linkage(..., low_memory=True)``: both tiles accumulate
coordinates in order and every formula is symmetric in its two arguments
(``(u - v)**2``, ``|u - v|``, ``u * v``; the cluster formulas sum ``e_a +
e_b`` first), so which block holds the query row does not matter.

Order of candidates. A row's candidates are ordered by the key (distance,
global index of the other point or slot): a strict total order, so every
reduction below gives the same answer whatever order tasks finish in. For a
fixed row u, (w, min(u, v), max(u, v)) orders the candidates v exactly as
(w, v) does, so the per-component rule of Borůvka is this key restricted to
one row.
"""

import numba
import numpy as np

from ..kernels import cpu_vector
from ..kernels._config import NUMBA_CACHE

_point_tile = cpu_vector._point_tile
_cluster_tile = cpu_vector._cluster_tile
_merge_into = cpu_vector._merge_into


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _before(d, j, d0, j0):
    """(d, j) precedes (d0, j0); j0 < 0 marks an empty entry, after everything."""
    return j0 < 0 or d < d0 or (d == d0 and j < j0)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _topk_insert(D, I, r, d, j):
    """Insert candidate (d, j) into row r's sorted top-K list (D, I) if it belongs."""
    last = D.shape[1] - 1
    if not _before(d, j, D[r, last], I[r, last]):
        return
    pos = last
    while pos > 0 and _before(d, j, D[r, pos - 1], I[r, pos - 1]):
        D[r, pos] = D[r, pos - 1]
        I[r, pos] = I[r, pos - 1]
        pos -= 1
    D[r, pos] = d
    I[r, pos] = j


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _row_tile(mcode, p, CT, norms, q, qnorm, out, lo, hi):
    """out[c] = distance from q to column c of CT for c in [lo, hi).

    One call over the whole range: the block's rows stream through once per
    query row, and per-TILE calls measured 2.7x slower here (the call and
    metric dispatch per 256 columns outweigh the cache reuse).
    """
    if hi > lo:
        _point_tile(mcode, CT, q, qnorm, norms, p, out[lo:], lo, hi)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def scan_points(mcode, p, CTa, na, offa, needa, CTb, nb, offb, needb, comp, diag, Da, Ia, Db, Ib):
    """Top-K nearest points in another component, block A x block B, each pair once.

    Rows r of A with ``needa[r]`` get the K nearest columns of B outside their
    component (``comp`` holds global component labels) folded into (Da, Ia);
    columns c of B with ``needb[c]`` get the rows of A folded into (Db, Ib).
    ``diag`` (A is B): only pairs r < c are computed, folded both ways.
    Indices stored are global (``off + local``).
    """
    d, ba = CTa.shape
    bb = CTb.shape[1]
    cols = np.flatnonzero(needb)  # B columns that need candidates
    CTn = np.empty((d, cols.shape[0]), dtype=CTb.dtype)
    nn_ = np.empty(cols.shape[0])
    for t in range(cols.shape[0]):
        for k in range(d):
            CTn[k, t] = CTb[k, cols[t]]
        nn_[t] = nb[cols[t]]
    out = np.empty(bb)
    q = np.empty(d, dtype=CTa.dtype)
    for r in range(ba):
        ga = offa + r
        ca = comp[ga]
        for k in range(d):
            q[k] = CTa[k, r]
        if needa[r]:
            lo = r + 1 if diag else 0
            _row_tile(mcode, p, CTb, nb, q, na[r], out, lo, bb)
            for c in range(lo, bb):
                gb = offb + c
                if comp[gb] == ca:
                    continue
                _topk_insert(Da, Ia, r, out[c], gb)
                if needb[c]:
                    _topk_insert(Db, Ib, c, out[c], ga)
        elif cols.shape[0] > 0:
            # only the needy columns of B want this row
            lo = 0
            if diag:
                lo = np.searchsorted(cols, r, side="right")
            _row_tile(mcode, p, CTn, nn_, q, na[r], out, lo, cols.shape[0])
            for t in range(lo, cols.shape[0]):
                gb = offb + cols[t]
                if comp[gb] != ca:
                    _topk_insert(Db, Ib, cols[t], out[t], ga)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def fold_lists(D, I, need, Dp, Ip):
    """Fold a partial top-K list (Dp, Ip) into (D, I) for the rows in ``need``."""
    for r in range(D.shape[0]):
        if not need[r]:
            continue
        for t in range(Dp.shape[1]):
            if Ip[r, t] < 0:
                break
            _topk_insert(D, I, r, Dp[r, t], Ip[r, t])


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def best_outside(D, I, off, comp, w, v, stale):
    """Each row's nearest point in another component from its list, or stale.

    The list holds the K nearest points outside the row's component when it
    was scanned; components only grow, so the first entry still outside is
    the exact nearest outside point (any point not listed was outside then and
    is not nearer than the list's last entry). No entry outside: stale.
    """
    for r in range(D.shape[0]):
        c = comp[off + r]
        w[r] = np.inf
        v[r] = -1
        stale[r] = True
        for t in range(D.shape[1]):
            j = I[r, t]
            if j < 0:
                break
            if comp[j] != c:
                w[r] = D[r, t]
                v[r] = j
                stale[r] = False
                break


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def hook_edges(parent, eu, ev):
    """Union the chosen edges; returns False if one closes a cycle (a broken tie rule)."""
    for k in range(eu.shape[0]):
        ru = _find(parent, eu[k])
        rv = _find(parent, ev[k])
        if ru == rv:
            return False
        if ru < rv:
            parent[rv] = ru
        else:
            parent[ru] = rv
    return True


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def flatten(parent, comp):
    """comp[x] = root of x (the smallest index of its component)."""
    for x in range(parent.shape[0]):
        comp[x] = _find(parent, x)


# --------------------------------------------------------------------------
# Cluster summaries (ward; average with sqeuclidean / cosine)
# --------------------------------------------------------------------------

@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _cluster_row_tile(code, metric, CT, q, s_q, e_q, size, extra, out, lo, hi):
    """out[c] = linkage distance from cluster q to column c of CT for c in [lo, hi) (one call)."""
    if hi > lo:
        _cluster_tile(code, metric, CT, q, s_q, e_q, size, extra, out[lo:], lo, hi)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _compact(CT, size, extra, idx):
    d = CT.shape[0]
    C = np.empty((d, idx.shape[0]), dtype=CT.dtype)
    s = np.empty(idx.shape[0])
    e = np.empty(idx.shape[0])
    for t in range(idx.shape[0]):
        for k in range(d):
            C[k, t] = CT[k, idx[t]]
        s[t] = size[idx[t]]
        e[t] = extra[idx[t]]
    return C, s, e


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def scan_clusters(code, metric, CTa, sa, ea, acta, needa, offa, CTb, sb, eb, actb, needb, offb,
                  diag, bda, bia, bdb, bib):
    """Nearest active cluster (key (distance, slot)), block A x block B, each pair once.

    Active slots of A with ``needa`` get their nearest active slot of B folded
    into (bda, bia); active slots of B with ``needb`` get A's into (bdb, bib).
    ``diag``: A is B, pairs r < c only, folded both ways.
    """
    ia = np.flatnonzero(acta)
    ib = np.flatnonzero(actb)
    nb_need = np.flatnonzero(actb & needb)
    Cb, s_b, e_b = _compact(CTb, sb, eb, ib)
    Cn, s_n, e_n = _compact(CTb, sb, eb, nb_need)
    d = CTa.shape[0]
    out = np.empty(max(ib.shape[0], 1))
    q = np.empty(d, dtype=CTa.dtype)
    for r in ia:
        ga = offa + r
        for k in range(d):
            q[k] = CTa[k, r]
        if needa[r]:
            lo = np.searchsorted(ib, r, side="right") if diag else 0
            _cluster_row_tile(code, metric, Cb, q, sa[r], ea[r], s_b, e_b, out, lo, ib.shape[0])
            for t in range(lo, ib.shape[0]):
                c = ib[t]
                gb = offb + c
                if _before(out[t], gb, bda[r], bia[r]):
                    bda[r] = out[t]
                    bia[r] = gb
                if needb[c] and _before(out[t], ga, bdb[c], bib[c]):
                    bdb[c] = out[t]
                    bib[c] = ga
        elif nb_need.shape[0] > 0:
            lo = np.searchsorted(nb_need, r, side="right") if diag else 0
            _cluster_row_tile(code, metric, Cn, q, sa[r], ea[r], s_n, e_n, out, lo,
                              nb_need.shape[0])
            for t in range(lo, nb_need.shape[0]):
                c = nb_need[t]
                if _before(out[t], ga, bdb[c], bib[c]):
                    bdb[c] = out[t]
                    bib[c] = ga


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def merge_summaries(code, metric, CT2, size2, extra2):
    """Merge column pairs (2p, 2p+1) of CT2 into column 2p, as the chain engine merges.

    ``cpu_vector._merge_into`` is symmetric in its two clusters, so the merged
    summary does not depend on which child is which.
    """
    for p_ in range(CT2.shape[1] // 2):
        _merge_into(code, metric, CT2, size2, extra2, 2 * p_, 2 * p_ + 1)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def offer_new(code, metric, CT, size, extra, rows, nn, nnd, CTnew, snew, enew, slots_new):
    """Offer each new cluster to the given rows: take it where (d, slot) beats (nnd, nn)."""
    C, s_r, e_r = _compact(CT, size, extra, rows)
    out = np.empty(max(rows.shape[0], 1))
    q = np.empty(CT.shape[0], dtype=CT.dtype)
    for u in range(CTnew.shape[1]):
        for k in range(CT.shape[0]):
            q[k] = CTnew[k, u]
        _cluster_row_tile(code, metric, C, q, snew[u], enew[u], s_r, e_r, out, 0, rows.shape[0])
        su = slots_new[u]
        for t in range(rows.shape[0]):
            r = rows[t]
            if _before(out[t], su, nnd[r], nn[r]):
                nnd[r] = out[t]
                nn[r] = su
