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

_point_tile = cpu_vector._point_tile  # out[:hi - lo] = distances to columns [lo, hi)
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


@numba.njit(nogil=True, inline="always", cache=NUMBA_CACHE)
def _insert_key(D, I, r, d, j):
    """``_topk_insert`` of (d, j) into row r's list; returns the row's new
    admission key (its last entry's distance, ``_admission``). Every scan's
    insert site is this call, after its cheap ``d <= key`` pre-test."""
    _topk_insert(D, I, r, d, j)
    return D[r, D.shape[1] - 1]


# Columns per tile of a block-pair scan. The scans loop over column tiles
# outside and query rows inside, so a tile of the other block (d x COL_TILE
# values, 128 KiB at d = 32 in float64) stays in cache for every row instead of
# streaming the whole block per row (measured 1.6x on the distances alone).
COL_TILE = 512


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _admission(D, need):
    """Per row, the key a candidate must not exceed to enter its top-K list.

    The last entry's distance (inf while the list is not full); -inf for rows
    that do not take candidates in this scan, so one comparison ``x <= t[r]``
    rejects almost every pair before the exact (distance, index) test.
    """
    last = D.shape[1] - 1
    t = np.empty(D.shape[0])
    for r in range(D.shape[0]):
        t[r] = D[r, last] if need[r] else -np.inf
    return t


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _query_rows(CT, rows):
    """Rows ``rows`` of the transposed block as a row-major (len(rows), d) copy:
    a query's d values are then one contiguous read per tile, not d strided ones."""
    Q = np.empty((rows.shape[0], CT.shape[0]), dtype=CT.dtype)
    for t in range(rows.shape[0]):
        for k in range(CT.shape[0]):
            Q[t, k] = CT[k, rows[t]]
    return Q


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _compact_points(CT, norms, cols):
    C = np.empty((CT.shape[0], cols.shape[0]), dtype=CT.dtype)
    nc = np.empty(cols.shape[0])
    for t in range(cols.shape[0]):
        for k in range(CT.shape[0]):
            C[k, t] = CT[k, cols[t]]
        nc[t] = norms[cols[t]]
    return C, nc


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def scan_points(mcode, p, CTa, na, offa, needa, CTb, nb, offb, needb, comp, diag, Da, Ia, Db, Ib):
    """Top-K nearest points in another component, block A x block B, each pair once.

    Rows r of A with ``needa[r]`` get the K nearest columns of B outside their
    component (``comp`` holds global component labels) folded into (Da, Ia);
    columns c of B with ``needb[c]`` get the rows of A folded into (Db, Ib).
    ``diag`` (A is B): only pairs r < c are computed, folded both ways.
    Indices stored are global (``off + local``).

    Distances are ``cpu_vector._point_tile``'s (the same float for a pair in
    any tile); a candidate is tested exactly only when its distance does not
    exceed the list's admission key (``_admission``), which leaves every
    list as the exact top-K under (distance, index) of what was offered.
    """
    d, ba = CTa.shape
    bb = CTb.shape[1]
    ta = _admission(Da, needa)
    tb = ta if diag else _admission(Db, needb)
    rows = np.flatnonzero(needa)
    others = np.flatnonzero(~needa)
    cols = np.flatnonzero(needb)  # B columns that need candidates
    out = np.empty(COL_TILE)
    q = np.empty(d, dtype=CTa.dtype)
    Qa = _query_rows(CTa, rows)
    # 1. needy rows of A against every column of B (folded into B's needy columns too)
    for c0 in range(0, bb, COL_TILE):
        c1 = min(c0 + COL_TILE, bb)
        for ir in range(rows.shape[0]):
            r = rows[ir]
            lo = max(c0, r + 1) if diag else c0
            if lo >= c1:
                break  # diag: rows ascend, later rows start later still
            _point_tile(mcode, CTb, Qa[ir], na[r], nb, p, out, lo, c1)
            ga = offa + r
            ca = comp[ga]
            thr = ta[r]
            for c in range(lo, c1):
                x = out[c - lo]
                if x <= thr and comp[offb + c] != ca:
                    thr = _insert_key(Da, Ia, r, x, offb + c)
                if x <= tb[c] and comp[offb + c] != ca:
                    tb[c] = _insert_key(Db, Ib, c, x, ga)
            ta[r] = thr
    # 2. B's needy columns against the other rows of A (compacted: a contiguous
    # tile), the needy column as the query: only its list changes
    if cols.shape[0] == 0 or others.shape[0] == 0:
        return
    Co, no_ = _compact_points(CTa, na, others)
    nr = others.shape[0]
    for t0 in range(0, nr, COL_TILE):
        t1 = min(t0 + COL_TILE, nr)
        for c in cols:
            hi = t1
            if diag:  # pairs r < c only; the rest came with the needy rows in part 1
                hi = min(t1, np.searchsorted(others, c))
            if hi <= t0:
                continue
            for k in range(d):
                q[k] = CTb[k, c]
            _point_tile(mcode, Co, q, nb[c], no_, p, out, t0, hi)
            gb = offb + c
            cb = comp[gb]
            thr = tb[c]
            for t in range(t0, hi):
                x = out[t - t0]
                if x <= thr and comp[offa + others[t]] != cb:
                    thr = _insert_key(Db, Ib, c, x, offa + others[t])
            tb[c] = thr


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def fold_rows(D, I, rows, Dp, Ip):
    """Fold partial top-K lists (Dp[t], Ip[t]) into the lists of rows[t]."""
    for t in range(rows.shape[0]):
        r = rows[t]
        for e in range(Dp.shape[1]):
            if Ip[t, e] < 0:
                break
            _topk_insert(D, I, r, Dp[t, e], Ip[t, e])


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
                  diag, Da, Ia, Db, Ib):
    """Top-K nearest active clusters (key (distance, slot)), block A x block B, each pair once.

    Active slots of A with ``needa`` get the K nearest active slots of B
    folded into (Da, Ia); active slots of B with ``needb`` get A's into
    (Db, Ib). ``diag``: A is B, pairs r < c only, folded both ways. Column
    tiles outside, rows inside (``COL_TILE``); the exact key test only for
    distances not above the list's admission key (``_admission``).
    """
    ib = np.flatnonzero(actb)
    cols = np.flatnonzero(actb & needb)
    rows = np.flatnonzero(acta & needa)
    others = np.flatnonzero(acta & ~needa)
    ta = _admission(Da, needa)
    tb = ta if diag else _admission(Db, needb)
    d = CTa.shape[0]
    out = np.empty(COL_TILE)
    q = np.empty(d, dtype=CTa.dtype)
    # 1. needy active rows of A against every active column of B
    if rows.shape[0] > 0:
        Cb, s_b, e_b = _compact(CTb, sb, eb, ib)
        Qa = _query_rows(CTa, rows)
        nbc = ib.shape[0]
        for t0 in range(0, nbc, COL_TILE):
            t1 = min(t0 + COL_TILE, nbc)
            for ir in range(rows.shape[0]):
                r = rows[ir]
                lo = t0
                if diag:
                    lo = max(t0, np.searchsorted(ib, r, side="right"))
                    if lo >= t1:
                        break
                _cluster_tile(code, metric, Cb, Qa[ir], sa[r], ea[r], s_b, e_b, out, lo, t1)
                ga = offa + r
                thr = ta[r]
                for t in range(lo, t1):
                    x = out[t - lo]
                    c = ib[t]
                    if x <= thr:
                        thr = _insert_key(Da, Ia, r, x, offb + c)
                    if x <= tb[c]:
                        tb[c] = _insert_key(Db, Ib, c, x, ga)
                ta[r] = thr
    # 2. B's needy active columns against the other active rows of A
    # (compacted: a contiguous tile), the needy column as the query
    if cols.shape[0] == 0 or others.shape[0] == 0:
        return
    Co, s_o, e_o = _compact(CTa, sa, ea, others)
    nr = others.shape[0]
    for t0 in range(0, nr, COL_TILE):
        t1 = min(t0 + COL_TILE, nr)
        for c in cols:
            hi = t1
            if diag:
                hi = min(t1, np.searchsorted(others, c))
            if hi <= t0:
                continue
            for k in range(d):
                q[k] = CTb[k, c]
            _cluster_tile(code, metric, Co, q, sb[c], eb[c], s_o, e_o, out, t0, hi)
            thr = tb[c]
            for t in range(t0, hi):
                x = out[t - t0]
                if x <= thr:
                    thr = _insert_key(Db, Ib, c, x, offa + others[t])
            tb[c] = thr


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def set_bounds(D, I, need, bd, bi):
    """After a scan: each scanned row's bound is its K-th entry (every active
    slot not listed has a key after it); (inf, -1), "after everything", when
    the list holds every other active slot."""
    last = D.shape[1] - 1
    for r in range(D.shape[0]):
        if need[r]:
            bd[r] = D[r, last]
            bi[r] = I[r, last]


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def merge_summaries(code, metric, CT2, size2, extra2):
    """Merge column pairs (2p, 2p+1) of CT2 into column 2p, as the chain engine merges.

    ``cpu_vector._merge_into`` is symmetric in its two clusters, so the merged
    summary does not depend on which child is which.
    """
    for p_ in range(CT2.shape[1] // 2):
        _merge_into(code, metric, CT2, size2, extra2, 2 * p_, 2 * p_ + 1)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def drop_dead(rows, dead, D, I):
    """Drop the entries whose slot merged (``dead``, a global mask) from the
    lists of ``rows``, keeping the others in order; empty entries go last."""
    K = D.shape[1]
    for r in rows:
        w = 0
        for t in range(K):
            j = I[r, t]
            if j < 0:
                break
            if not dead[j]:
                D[r, w] = D[r, t]
                I[r, w] = j
                w += 1
        for t in range(w, K):
            D[r, t] = np.inf
            I[r, t] = -1


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def offer(D, I, bd, bi, r, x, su):
    """Offer the new cluster (x, su) (exact distance, slot) to row r's list.

    It enters if it precedes the bound (bi < 0: no bound). If the list is
    full, the entry it pushes out, or the new cluster itself when it comes
    after the last entry, becomes the bound (lowered: both precede the old
    one). The end state after several offers is the same in any order: the
    list holds the K first of (old list + offers before the old bound), the
    bound is the (K + 1)-th of them or the old bound, whichever comes first.
    Returns the distance a later offer must not exceed (the bound's, inf
    without one).
    """
    last = D.shape[1] - 1
    if bi[r] >= 0 and not _before(x, su, bd[r], bi[r]):
        return bd[r]
    if I[r, last] >= 0:  # full: something leaves the list, its key bounds the rest
        if _before(x, su, D[r, last], I[r, last]):
            bd[r] = D[r, last]
            bi[r] = I[r, last]
            I[r, last] = -1
            _topk_insert(D, I, r, x, su)
        else:
            bd[r] = x
            bi[r] = su
    else:
        _topk_insert(D, I, r, x, su)
    return bd[r] if bi[r] >= 0 else np.inf


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def offer_lists(rows, W, J, D, I, bd, bi):
    """Offer candidates found elsewhere (the GPU tiles): row rows[t] gets the
    offers (W[t, e], J[t, e]) in order, up to the first empty one. The K + 1
    first new clusters of a row decide its list and bound (``offer``), so
    these are all a scan must return."""
    for t in range(rows.shape[0]):
        for e in range(W.shape[1]):
            if J[t, e] < 0:
                break
            offer(D, I, bd, bi, rows[t], W[t, e], J[t, e])


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def drop_and_offer(code, metric, CT, size, extra, rows, dead, D, I, bd, bi, CTnew, snew, enew,
                   slots_new):
    """A round's merges in the candidate lists of the block's surviving rows.

    Invariant per row r (key (distance, slot)): the list holds active slots in
    key order, and every active slot not in it has a key after the bound
    (bd[r], bi[r]) (bi < 0: no bound). Entries whose slot merged (``dead``,
    global mask) are dropped (``drop_dead``); each new cluster is offered
    with its exact distance (``offer``). Reducibility is not needed for
    correctness: the first entry, when there is one, is the exact nearest
    active slot. Row tiles outside, new clusters inside.
    """
    drop_dead(rows, dead, D, I)
    nr = rows.shape[0]
    if nr == 0 or CTnew.shape[1] == 0:
        return
    C, s_r, e_r = _compact(CT, size, extra, rows)
    thr = np.empty(nr)
    for t in range(nr):
        thr[t] = bd[rows[t]] if bi[rows[t]] >= 0 else np.inf
    out = np.empty(COL_TILE)
    q = np.empty(CT.shape[0], dtype=CT.dtype)
    for t0 in range(0, nr, COL_TILE):
        t1 = min(t0 + COL_TILE, nr)
        for u in range(CTnew.shape[1]):
            for k in range(CT.shape[0]):
                q[k] = CTnew[k, u]
            _cluster_tile(code, metric, C, q, snew[u], enew[u], s_r, e_r, out, t0, t1)
            su = slots_new[u]
            for t in range(t0, t1):
                x = out[t - t0]
                if x <= thr[t]:
                    thr[t] = offer(D, I, bd, bi, rows[t], x, su)
