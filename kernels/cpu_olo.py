"""Optimal leaf ordering on the CPU, equal to scipy's result.

Bar-Joseph et al.'s dynamic programme with scipy's arithmetic and choices:
M[u, w], the cost of the best ordering of a node's leaves from end leaf u to
end leaf w, is float32, each candidate being
float32(float32(M[u, m] + M[w, k]) + D[m, k]) for an inner pair (m, k); every
node orients its children by its own best (u, w), the first in (u, w) order.

Leaves are addressed by position in the current leaf order, so each node's
leaves form a range; M and a float32 copy of D (``permuted_distances``) are
condensed matrices over positions. ``optimal_swaps`` visits the merges bottom
up; per merge and per choice of grandchildren (U, Ms | K, W) one block
(``_olo_block_impl``) fills M[u, w] for u in U, w in W in phases:

1. ``_nearest_inner``: for every k in K, the inner leaves m in Ms sorted by
   D[m, k] (a prefix, with a bound for the rest);
2. ``_outer_row``: for every w in W, the row M[k, w] over k and its smallest
   entries in order;
3. per u (``_fill_rows``):
   stage 1, ``_best_inner``: T[u, k] = min_m M[u, m] + D[m, k], by the
   threshold algorithm over m by increasing M[u, m] and by increasing D[m, k];
   stage 2, ``_best_outer``: V[u, w] = min_k T[u, k] + M[k, w], by the
   threshold algorithm over k by increasing M[k, w] and by increasing
   T[u, k];
   both in float64; then ``_exact_in_window``: the float32 value scipy would
   get is the minimum of the exact candidate expression over the pairs (m, k)
   within a relative window ``_WINDOW`` of V (which covers float32 rounding
   and the float32 copy of D).

Every stop is a valid lower bound, so the minimum is exact, not heuristic.
Finally each merge's best (u, w) (``_olo_argmin``) decides whether its
children's children must swap, and ``_swaps_from_orientation`` turns those
decisions into the rows of Z to swap.
"""

import numba
import numpy as np

from . import cancel
from ._config import NUMBA_CACHE
from .cpu_common import cancelled, condensed_index, heap_offer, row_base, select_smallest
from .cpu_post import leaf_layout

_jit = numba.njit(nogil=True, cache=NUMBA_CACHE)
_pjit = numba.njit(nogil=True, cache=NUMBA_CACHE, parallel=True)
# Inlined at the IR level: helpers on arrays called in inner loops would
# otherwise pay a reference-count round trip per argument per call.
_jit_inline = numba.njit(nogil=True, cache=NUMBA_CACHE, inline="always")

# Relative window around the float64 minimum searched for the exact float32
# value (float32 rounding of M and of the copy of D stays far inside it).
_WINDOW = 2.0 ** -20
# Candidate inner leaves k kept per (u, w); more near-ties than this: scan all k.
_MAXCAND = 8
# Inner leaves k per parallel task when sorting the columns of D.
_KCHUNK = 256
# Nearest inner leaves m kept per k, sorted by D[m, k].
_NEAR = 32
# Smallest entries kept in order per list (M[u, .], M[., w], T[u, .]).
_PREFIX = 128
# Blocks with less work than this run on the calling thread: starting the
# thread pool costs microseconds, and most merges are small.
_PARALLEL_WORK = 1 << 14


# --------------------------------------------------------------------------
# distances and costs by leaf position
# --------------------------------------------------------------------------

@_jit_inline
def _mval(M, n, p, q):
    """M at positions (p, q); 0 on the diagonal (a leaf alone)."""
    if p == q:
        return np.float32(0.0)
    return M[condensed_index(n, p, q)]


@_jit
def _permuted_row(y, n, order, i, out):
    base = row_base(n, i)
    oi = order[i]
    for j in range(i + 1, n):
        out[base + j] = y[condensed_index(n, oi, order[j])]


@_pjit
def permuted_distances(y, n, order):
    """float32 condensed distances between leaf positions. Row t is paired
    with row n-2-t so every parallel task does the same work."""
    out = np.empty(n * (n - 1) // 2, dtype=np.float32)
    for t in numba.prange(n // 2):
        _permuted_row(y, n, order, t, out)
        if n - 2 - t != t:
            _permuted_row(y, n, order, n - 2 - t, out)
    return out


@_jit
def _exact_value(a32, b32, d):
    """scipy's candidate: float32(float32(M[u, m] + M[w, k]) + D[m, k])."""
    s = a32 + b32
    return np.float32(np.float64(s) + d)


@_jit_inline
def _full_order(src, out_val, out_idx):
    """All of ``src`` in ascending order (values and indices): what a search
    that ran past a list's sorted prefix walks instead."""
    srt = np.argsort(src)
    for i in range(src.shape[0]):
        out_idx[i] = srt[i]
        out_val[i] = src[srt[i]]


# --------------------------------------------------------------------------
# phases 1 and 2: the lists shared by every u of a block
# --------------------------------------------------------------------------

@_jit_inline
def _nearest_inner(Dp, n, m0, nm, k0, ka, kb, dval, didx, drest):
    """For k in [ka, kb) (offsets from k0): the ``npre`` inner leaves m with the
    smallest D[m, k], ascending, in ``dval[k]``/``didx[k]``, and in
    ``drest[k]`` a bound D[m, k] >= drest[k] for every m not among them.

    D is read row by row (a bounded max-heap per k) so that the reads stay
    contiguous.
    """
    npre = dval.shape[1]
    for i in range(nm):
        base = condensed_index(n, m0 + i, k0)
        for j in range(ka, kb):
            heap_offer(dval[j], didx[j], npre, i, np.float64(Dp[base + j]))
    for j in range(ka, kb):
        if npre < nm:
            drest[j] = dval[j, 0]
        srt = np.argsort(dval[j])
        sv = dval[j][srt]
        si = didx[j][srt]
        dval[j, :] = sv
        didx[j, :] = si


@_jit_inline
def _outer_row(M, n, w, k0, nk, brow, bv, bi):
    """M[k, w] for every inner leaf k into ``brow``, and its ``len(bv)``
    smallest entries in order in ``bv``/``bi``; returns the bound every entry
    left out is >= (+inf when none is left out)."""
    pb = bv.shape[0]
    for j in range(nk):
        brow[j] = _mval(M, n, w, k0 + j)
    select_smallest(brow, nk, pb, bv, bi)
    if pb < nk:
        return bv[pb - 1]
    return np.inf


# --------------------------------------------------------------------------
# phase 3: per u, the two min-plus stages and the exact float32 value
# --------------------------------------------------------------------------

@_jit_inline
def _inner_costs(M, n, ua, ub, m0, nm, u_before):
    """The tile M[u, m] for u in [ua, ub), m in [m0, m0 + nm)."""
    tile = np.empty((ub - ua, nm), dtype=np.float64)
    if u_before or nm == 1:
        for u in range(ua, ub):
            for i in range(nm):
                tile[u - ua, i] = _mval(M, n, u, m0 + i)
    else:
        # u after m: M[m, u] is contiguous over consecutive u
        for i in range(nm):
            base = condensed_index(n, m0 + i, ua)
            for u in range(ua, ub):
                tile[u - ua, i] = M[base + u - ua]
    return tile


@_jit_inline
def _best_inner(Dp, n, m0, k0, j, arow, a_val, a_idx, alen, arest,
                dval, didx, drest, stamped, stamp, bmax):
    """Stage 1 for one (u, k = k0 + j): T[u, k] = min_m M[u, m] + D[m, k].

    The threshold algorithm over m by increasing M[u, m] (``a_val``/``a_idx``,
    ``alen`` of them sorted, the rest >= ``arest``) and m by increasing D[m, k]
    (``dval[j]``/``didx[j]``), remembering whether a second m comes within
    the window. When both lists run out, the A list is extended to the full
    order in place and walked again (m already seen, marked with ``stamp`` in
    ``stamped``, are skipped).

    Returns ``(best, arg, bound, alen, arest)``: the minimum, its m, a bound
    that every other m costs at least (seen or not), and the A list's state.
    """
    npre = dval.shape[1]
    nm = arow.shape[0]
    best = np.inf
    second = np.inf
    rest = np.inf
    arg = 0
    d = 0
    while True:
        for side in range(2):
            if side == 0:
                if d >= alen:
                    continue
                m = a_idx[d]
                v = a_val[d] + np.float64(Dp[condensed_index(n, m0 + m, k0 + j)])
            else:
                if d >= npre:
                    continue
                m = didx[j, d]
                v = arow[m] + dval[j, d]
            if stamped[m] == stamp:
                continue
            stamped[m] = stamp
            if v < best:
                second = best
                best = v
                arg = m
            elif v < second:
                second = v
        # every m not yet seen lies past position d in both lists
        a_next = a_val[d + 1] if d + 1 < alen else arest
        d_next = dval[j, d + 1] if d + 1 < npre else drest[j]
        rest = a_next + d_next
        if rest > best + (best + bmax) * _WINDOW:
            break
        d += 1
        if d >= alen and d >= npre:
            _full_order(arow, a_val, a_idx)
            alen = nm
            arest = np.inf
            d = 0
    bound = second if second < rest else rest
    return best, arg, bound, alen, arest


@_jit_inline
def _best_outer(T, brow, bval, bidx, brest, wi, tval, tidx, tlen, trest, tmin,
                two_lists, cand):
    """Stage 2 for one (u, w = w0 + wi): V[u, w] = min_k T[u, k] + M[k, w].

    The threshold algorithm over k by increasing M[k, w] (``bval[wi]``/
    ``bidx[wi]``) and k by increasing T[u, k] (``tval``/``tidx``; with one
    list only, M[k, w] alone, bounded by ``tmin`` = min T): an unseen k costs
    at least the values reached, so the walk stops once that exceeds the
    window of the best. Inner leaves k within the window are kept in ``cand``;
    a count past ``_MAXCAND`` flags more near-ties than it holds. When both
    lists run out, the T list is extended to the full order in place (with
    one list only: every k is scanned).

    Returns ``(best, nc, tlen, trest)``: V, the number of candidates, and the
    T list's state.
    """
    nk = T.shape[0]
    pb = bval.shape[1]
    best = np.inf
    nc = 0
    d = 0
    while True:
        for side in range(2 if two_lists else 1):
            if side == 0:
                if d >= pb:
                    continue
                k = bidx[wi, d]
            else:
                if d >= tlen:
                    continue
                k = tidx[d]
            v = T[k] + brow[k]
            if v > best * (1.0 + _WINDOW):
                continue
            seen = False
            for q in range(min(nc, _MAXCAND)):
                if cand[q] == k:
                    seen = True
            if seen:
                continue
            if v < best:
                best = v
                if nc <= _MAXCAND:
                    keep = 0
                    for q in range(nc):
                        kq = cand[q]
                        if T[kq] + brow[kq] <= best * (1.0 + _WINDOW):
                            cand[keep] = kq
                            keep += 1
                    nc = keep
            if nc < _MAXCAND:
                cand[nc] = k
                nc += 1
            else:
                nc = _MAXCAND + 1
        b_next = bval[wi, d + 1] if d + 1 < pb else brest[wi]
        if two_lists:
            t_next = tval[d + 1] if d + 1 < tlen else trest
        else:
            t_next = tmin
        if b_next + t_next > best * (1.0 + _WINDOW):
            break
        d += 1
        if d >= pb and d >= tlen:
            if two_lists:
                _full_order(T, tval, tidx)
                tlen = nk
                trest = np.inf
                d = 0
            else:
                # the exact minimum over every k; the window is then
                # searched in full
                for k in range(nk):
                    v = T[k] + brow[k]
                    if v < best:
                        best = v
                nc = _MAXCAND + 1
                break
    return best, nc, tlen, trest


@_jit
def _window_min(Dp, y, n, order, m0, nm, k0, k, b, limit, T, targ, t2, arow):
    """Smallest exact candidate with inner leaf k (M[k, w] = b) whose total
    stays within ``limit``; +inf if none."""
    best = np.float32(np.inf)
    if T[k] + b > limit:
        return best
    if t2[k] + b > limit:
        # no other m comes within the window
        m = targ[k]
        d = y[condensed_index(n, order[m0 + m], order[k0 + k])]
        return _exact_value(np.float32(arow[m]), np.float32(b), d)
    for m in range(nm):  # near-ties (rare): every m
        a = arow[m]
        if a + np.float64(Dp[condensed_index(n, m0 + m, k0 + k)]) + b <= limit:
            d = y[condensed_index(n, order[m0 + m], order[k0 + k])]
            v = _exact_value(np.float32(a), np.float32(b), d)
            if v < best:
                best = v
    return best


@_jit_inline
def _exact_in_window(Dp, y, n, order, m0, k0, best, cand, nc, brow, T, targ, t2, arow):
    """scipy's float32 M[u, w]: the smallest exact candidate within the window
    of the float64 minimum ``best``, over the ``nc`` inner leaves k in
    ``cand`` (every k when ``nc`` exceeds ``_MAXCAND``)."""
    nm = arow.shape[0]
    limit = best * (1.0 + _WINDOW)
    res = np.float32(np.inf)
    if nc <= _MAXCAND:
        for q in range(nc):
            k = cand[q]
            v32 = _window_min(Dp, y, n, order, m0, nm, k0, k, brow[k], limit,
                              T, targ, t2, arow)
            if v32 < res:
                res = v32
    else:
        for k in range(T.shape[0]):
            if T[k] + brow[k] <= limit:
                v32 = _window_min(Dp, y, n, order, m0, nm, k0, k, brow[k],
                                  limit, T, targ, t2, arow)
                if v32 < res:
                    res = v32
    return res


@_jit
def _fill_rows(M, Dp, y, n, order, ua, ub, m0, nm, w0, nw, k0, nk, u_before, two_lists,
               dval, didx, drest, bdense, bval, bidx, brest, bmax):
    """Phase 3 for u in [ua, ub): M[u, w] for every w of the block."""
    tile = _inner_costs(M, n, ua, ub, m0, nm, u_before)
    pa = min(_PREFIX, nm)
    pt = min(_PREFIX, nk)
    # the _PREFIX smallest first; the full order only when a search needs it
    a_val = np.empty(nm, dtype=np.float64)
    a_idx = np.empty(nm, dtype=np.int64)
    T = np.empty(nk, dtype=np.float64)
    targ = np.empty(nk, dtype=np.int64)
    t2 = np.empty(nk, dtype=np.float64)
    stamped = np.full(nm, -1, dtype=np.int64)
    tval = np.empty(nk, dtype=np.float64)
    tidx = np.empty(nk, dtype=np.int64)
    cand = np.empty(_MAXCAND, dtype=np.int64)
    for u in range(ua, ub):
        arow = tile[u - ua]
        select_smallest(arow, nm, pa, a_val, a_idx)
        alen = pa
        arest = a_val[pa - 1] if pa < nm else np.inf
        # stage 1: T[u, k] for every k
        tmin = np.inf
        for j in range(nk):
            best, arg, bound, alen, arest = _best_inner(
                Dp, n, m0, k0, j, arow, a_val, a_idx, alen, arest,
                dval, didx, drest, stamped, (u - ua) * nk + j, bmax)
            T[j] = best
            targ[j] = arg
            t2[j] = bound  # no m but targ[j] costs less than this
            if best < tmin:
                tmin = best
        # stage 2 follows both lists when there are enough w to pay for
        # ordering this u's T
        tlen = 0
        trest = np.inf
        if two_lists:
            select_smallest(T, nk, pt, tval, tidx)
            tlen = pt
            trest = tval[pt - 1] if pt < nk else np.inf
        row = condensed_index(n, u, w0)
        for wi in range(nw):
            brow = bdense[wi]
            best, nc, tlen, trest = _best_outer(T, brow, bval, bidx, brest, wi, tval, tidx,
                                                tlen, trest, tmin, two_lists, cand)
            M[row + wi] = _exact_in_window(Dp, y, n, order, m0, k0, best, cand, nc, brow,
                                           T, targ, t2, arow)


# --------------------------------------------------------------------------
# one block, one merge, the whole tree
# --------------------------------------------------------------------------

def _olo_block_impl(M, Dp, y, n, order, u0, u1, m0, m1, w0, w1, k0, k1, chunk, control):
    """Fill M[u, w] for u in [u0, u1), w in [w0, w1) (all u < w): the best
    over m in [m0, m1), k in [k0, k1) of M[u, m] + D[m, k] + M[k, w].

    Sorted lists are prefixes (the _PREFIX smallest) with a bound for the
    rest; a search that runs past both prefixes falls back to the full order.
    Compiled twice: parallel (three parallel loops) for large blocks, serial
    for the many small ones.
    """
    nm = m1 - m0
    nk = k1 - k0
    nw = w1 - w0
    nu = u1 - u0
    # phase 1: the _NEAR nearest inner leaves m of every k
    npre = min(_NEAR, nm)
    dval = np.empty((nk, npre), dtype=np.float64)
    didx = np.empty((nk, npre), dtype=np.int64)
    drest = np.full(nk, np.inf)
    for c in numba.prange((nk + _KCHUNK - 1) // _KCHUNK):
        ka = c * _KCHUNK
        _nearest_inner(Dp, n, m0, nm, k0, ka, min(nk, ka + _KCHUNK), dval, didx, drest)
    # phase 2: M[k, w] for every w as a row, and its _PREFIX smallest
    pb = min(_PREFIX, nk)
    bdense = np.empty((nw, nk), dtype=np.float64)
    bval = np.empty((nw, pb), dtype=np.float64)
    bidx = np.empty((nw, pb), dtype=np.int64)
    brest = np.empty(nw, dtype=np.float64)
    for wi in numba.prange(nw):
        brest[wi] = _outer_row(M, n, w0 + wi, k0, nk, bdense[wi], bval[wi], bidx[wi])
    bmax = 0.0
    for wi in range(nw):
        for j in range(nk):
            if bdense[wi, j] > bmax:
                bmax = bdense[wi, j]
    # phase 3: chunks of u
    two_lists = nw >= 8
    u_before = u0 < m0
    for c in numba.prange((nu + chunk - 1) // chunk):
        if cancelled(control):  # Ctrl-C (cancel.py): M is discarded
            continue
        ua = u0 + c * chunk
        _fill_rows(M, Dp, y, n, order, ua, min(u1, ua + chunk), m0, nm, w0, nw, k0, nk,
                   u_before, two_lists, dval, didx, drest, bdense, bval, bidx, brest, bmax)


_olo_block_parallel = _pjit(_olo_block_impl)
_olo_block_serial = _jit(_olo_block_impl)


@_jit
def _olo_argmin(M, n, u0, u1, w0, w1):
    """First (u, w) in row-major order with the smallest M[u, w]."""
    best = np.float32(np.inf)
    bu = u0
    bw = w0
    for u in range(u0, u1):
        row = condensed_index(n, u, w0)
        for j in range(w1 - w0):
            v = M[row + j]
            if v < best:
                best = v
                bu = u
                bw = w0 + j
    return bu, bw


@_jit
def _end_and_inner(c, side, outer, inner, n):
    """The part of child ``c`` that holds the end leaves and the part next to
    the other child, as node ids: for ``side = 0`` its ``outer`` and ``inner``
    children, for ``side = 1`` the other way round; a leaf is both."""
    if c < n:
        return c, c
    if side == 0:
        return outer[c - n], inner[c - n]
    return inner[c - n], outer[c - n]


@_jit
def _swaps_from_orientation(left, right, n, must):
    """Rows to swap: those where an odd number of the row and its ancestors
    must swap (a swap of a node reverses its whole subtree)."""
    m = n - 1
    swap = np.zeros(m, dtype=np.bool_)
    for r in range(m - 1, -1, -1):
        swap[r] = swap[r] ^ must[r]
        if left[r] >= n:
            swap[left[r] - n] = swap[r]
        if right[r] >= n:
            swap[right[r] - n] = swap[r]
    return swap


def optimal_swaps(left, right, n, y, chunk):
    """Rows of Z whose two children scipy's optimal leaf ordering swaps.

    ``y`` is the condensed distance matrix (float64); ``chunk`` is the number
    of rows u per parallel task. Returns a bool array of length n-1. Memory:
    two float32 condensed matrices (4·n(n-1) bytes). Minutes at large n:
    runs where Ctrl-C stops it (``cancel.run``).
    """
    return cancel.run(lambda: _optimal_swaps(left, right, n, y, chunk, cancel.current()), n=n)


@_jit
def _optimal_swaps(left, right, n, y, chunk, control):
    m = n - 1
    order, start, size = leaf_layout(left, right, n)
    Dp = permuted_distances(y, n, order)
    M = np.zeros(n * (n - 1) // 2, dtype=np.float32)
    must = np.zeros(m, dtype=np.bool_)
    for r in range(m):
        if cancelled(control):  # Ctrl-C (cancel.py): the result is discarded
            break
        lc = left[r]
        rc = right[r]
        for sl in range(1 if lc < n else 2):
            # u from the left child's left part (sl = 0) or right part (sl = 1)
            ucl, mcl = _end_and_inner(lc, sl, left, right, n)
            for sr in range(1 if rc < n else 2):
                # w from the right child's right part (sr = 0) or left part (sr = 1)
                wcl, kcl = _end_and_inner(rc, sr, right, left, n)
                args = (M, Dp, y, n, order,
                        start[ucl], start[ucl] + size[ucl],
                        start[mcl], start[mcl] + size[mcl],
                        start[wcl], start[wcl] + size[wcl],
                        start[kcl], start[kcl] + size[kcl], chunk, control)
                work = size[ucl] * (size[wcl] + size[kcl]) + size[mcl] * size[kcl]
                if work >= _PARALLEL_WORK:
                    _olo_block_parallel(*args)
                else:
                    _olo_block_serial(*args)
        # orient this merge's children by its own best pair of end leaves
        bu, bw = _olo_argmin(M, n, start[lc], start[lc] + size[lc],
                             start[rc], start[rc] + size[rc])
        if lc >= n:
            rl = right[lc - n]
            must[lc - n] = start[rl] <= bu and bu < start[rl] + size[rl]
        if rc >= n:
            lr = left[rc - n]
            must[rc - n] = start[lr] <= bw and bw < start[lr] + size[lr]
    return _swaps_from_orientation(left, right, n, must)
