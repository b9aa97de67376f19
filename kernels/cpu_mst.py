"""Single linkage on the CPU: a minimum spanning tree of the condensed matrix.

Single linkage is the minimum spanning tree sorted by weight; the merge
heights are input distances, so with distinct distances the result is exactly
scipy's whatever algorithm finds the tree. Two algorithms, picked by n:

* Prim (small n): one vertex joins per step; every outside vertex keeps its
  distance to the tree. Serial, O(n) memory, no thread start-up.
* Boruvka (large n): each round, every component takes its lightest edge to
  another component. A round is one contiguous, parallel pass over the matrix.
  Prim reads half of each new vertex's distances down a *column* of the
  condensed matrix (one cache miss per entry: measured 10x slower than the
  row half at n = 10 000); Boruvka only ever reads rows, and needs few rounds
  (at most log2 n; 4 on random data at n = 10 000).

Ties: Boruvka orders edges by the key (distance, smaller end, larger end), a
strict total order, so the chosen edges never close a cycle. Either way the
sorted heights equal scipy's; only the order of equal-height merges can differ.

The merge log is returned sorted by height (stable). Prim's and Boruvka's
emission orders are not valid merge orders for single linkage (a light edge
can be found after a heavier one it hangs from), so the caller's canonicaliser
must see them sorted.
"""

import numba
import numpy as np

from . import formulas
from ._config import NUMBA_CACHE

_condensed_index = numba.njit(nogil=True, cache=NUMBA_CACHE)(formulas.condensed_index)

# Below this many points Prim runs (no thread start-up, trivial work anyway).
PRIM_MAX_N = 2048
# Rows per work unit in a Boruvka pass: blocks r and nb-1-r go to the same
# thread so every unit carries about the same number of matrix entries.
_ROW_BLOCK = 64


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def prim(D, n):
    """Prim's minimum spanning tree of condensed ``D`` (read only).

    Returns ``(a, b, h)``: edges in the order they join the tree (``a`` in the
    tree, ``b`` new) and their weights (float64). Ties go to the smallest
    vertex index, as in scipy.
    """
    n = np.int64(n)
    a = np.empty(n - 1, dtype=np.int64)
    b = np.empty(n - 1, dtype=np.int64)
    h = np.empty(n - 1, dtype=np.float64)
    # Vertices outside the tree in ascending order, with their distances to
    # the tree beside them: the scan streams through two small arrays.
    live = np.arange(1, n)
    near = np.full(n - 1, np.inf, dtype=np.float64)
    m = n - 1
    x = np.int64(0)
    for k in range(n - 1):
        best = np.inf
        bpos = 0
        row = _condensed_index(n, x, x + 1) - (x + 1) if x < n - 1 else np.int64(0)
        for p in range(m):
            i = live[p]
            dd = D[_condensed_index(n, i, x)] if i < x else D[row + i]
            if dd < near[p]:
                near[p] = dd
            if near[p] < best:
                best = near[p]
                bpos = p
        y = live[bpos]
        a[k] = x
        b[k] = y
        h[k] = best
        for q in range(bpos, m - 1):  # keep ascending order (tie rule)
            live[q] = live[q + 1]
            near[q] = near[q + 1]
        m -= 1
        x = y
    return a, b, h


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _key_less(d1, lo1, hi1, d2, lo2, hi2):
    """Edge order (distance, smaller end, larger end): strict and total."""
    if d1 != d2:
        return d1 < d2
    if lo1 != lo2:
        return lo1 < lo2
    return hi1 < hi2


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _scan_rows(D, n, comp, r0, r1, row_d, row_j, col_d, col_i):
    """Lightest edge to another component, for rows r0..r1-1.

    Row i's own best (over j > i) goes to row_d/row_j[i]; every entry also
    offers itself to column j's best (over i < j) in this thread's
    col_d/col_i. Strict '<' in increasing i and j keeps the smallest ends
    among equal distances, consistent with ``_key_less``.
    """
    for i in range(r0, r1):
        ci = comp[i]
        base = _condensed_index(n, i, i + 1) - (i + 1)
        bd = np.inf
        bj = np.int64(-1)
        for j in range(i + 1, n):
            if comp[j] != ci:
                d = np.float64(D[base + j])
                if d < bd:
                    bd = d
                    bj = j
                if d < col_d[j]:
                    col_d[j] = d
                    col_i[j] = i
        row_d[i] = bd
        row_j[i] = bj


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(parallel=True, nogil=True, cache=NUMBA_CACHE)
def boruvka(D, n, nthreads):
    """Boruvka's minimum spanning tree of condensed ``D`` (read only).

    ``nthreads`` work units run in parallel, each with its own column
    minima. Returns ``(a, b, h)``: the n-1 tree edges, round by round, and
    their weights (float64).
    """
    n = np.int64(n)
    a = np.empty(n - 1, dtype=np.int64)
    b = np.empty(n - 1, dtype=np.int64)
    h = np.empty(n - 1, dtype=np.float64)
    comp = np.arange(n)  # component root of every vertex
    parent = np.arange(n)
    row_d = np.empty(n, dtype=np.float64)
    row_j = np.empty(n, dtype=np.int64)
    col_d = np.empty((nthreads, n), dtype=np.float64)
    col_i = np.empty((nthreads, n), dtype=np.int64)
    best_d = np.empty(n, dtype=np.float64)
    best_lo = np.empty(n, dtype=np.int64)
    best_hi = np.empty(n, dtype=np.int64)
    nblocks = (n + _ROW_BLOCK - 1) // _ROW_BLOCK
    npairs = (nblocks + 1) // 2
    k = 0
    while k < n - 1:
        col_d[:, :] = np.inf
        for t in numba.prange(nthreads):
            for r in range(npairs * t // nthreads, npairs * (t + 1) // nthreads):
                _scan_rows(D, n, comp, r * _ROW_BLOCK, min((r + 1) * _ROW_BLOCK, n),
                           row_d, row_j, col_d[t], col_i[t])
                o = nblocks - 1 - r
                if o > r:
                    _scan_rows(D, n, comp, o * _ROW_BLOCK, min((o + 1) * _ROW_BLOCK, n),
                               row_d, row_j, col_d[t], col_i[t])
        # Lightest edge per component, under the full key.
        best_d[:] = np.inf
        best_lo[:] = -1
        best_hi[:] = -1
        for v in range(n):
            c = comp[v]
            if row_j[v] >= 0 and _key_less(row_d[v], v, row_j[v], best_d[c], best_lo[c], best_hi[c]):
                best_d[c] = row_d[v]
                best_lo[c] = v
                best_hi[c] = row_j[v]
            for t in range(nthreads):
                d = col_d[t, v]
                if d < np.inf and _key_less(d, col_i[t, v], v, best_d[c], best_lo[c], best_hi[c]):
                    best_d[c] = d
                    best_lo[c] = col_i[t, v]
                    best_hi[c] = v
        # Join along the chosen edges; an edge chosen from both sides is added once.
        for c in range(n):
            if comp[c] == c and best_lo[c] >= 0:
                ru = _find(parent, best_lo[c])
                rw = _find(parent, best_hi[c])
                if ru != rw:
                    parent[ru] = rw
                    a[k] = best_lo[c]
                    b[k] = best_hi[c]
                    h[k] = best_d[c]
                    k += 1
        for v in range(n):
            comp[v] = _find(parent, v)
    return a, b, h


def run(D, n, code, **options):
    """Engine entry point (see ``kernels.__init__``): single linkage merge log.

    ``code`` must be ``formulas.SINGLE``. ``D`` is only read. The log comes
    back sorted by height (stable), a valid merge order.
    """
    if code != formulas.SINGLE:
        raise ValueError(f"cpu_mst runs single linkage only (method code {code})")
    if n <= PRIM_MAX_N:
        a, b, h = prim(D, np.int64(n))
    else:
        a, b, h = boruvka(D, np.int64(n), numba.get_num_threads())
    order = np.argsort(h, kind="stable")
    return a[order], b[order], h[order]
