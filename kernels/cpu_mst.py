"""Single linkage on the CPU: Prim's minimum spanning tree on the condensed matrix.

Single linkage is the minimum spanning tree sorted by weight. The tree grows
one vertex per step; every vertex outside it keeps its distance to the tree,
lowered with the new vertex's distances, and the closest joins next. Each
matrix entry is read exactly once: one pass over the matrix, O(n) memory.

The vertices outside the tree sit in a compact ascending list with their
distances beside them, so a step streams through two small arrays and ties go
to the smallest index, exactly as in scipy: the merge log, sorted stably by
height, is scipy's (bitwise, ties included, for the same condensed input).

Half of the new vertex's distances lie down a column of the condensed matrix
(a cache miss per entry); those reads are prefetched ahead. Prim was kept over
a Boruvka variant (rows only, parallel rounds), which was slower on one thread
(figures: benchmarks/README.md, "Design measurements").
"""

import numba
import numpy as np

from . import formulas
from ._config import NUMBA_CACHE
from .cpu_common import PREFETCH_AHEAD, cancelled, lower_bound, merge_counter, prefetch, row_base


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def prim(D, n, counter):
    """Prim's minimum spanning tree of condensed ``D`` (read only).

    Parameters
    ----------
    D : ndarray of float32 or float64, shape (n(n-1)/2,)
        Condensed distances (any sign).
    n : int
        Number of points.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Per step, the vertex added last (inside the tree) and the vertex
        joining it: the two clusters single linkage merges.
    h : ndarray of float64, shape (n-1,)
        The joining vertex's distance to the tree: the merge height.
    """
    n = np.int64(n)
    a = np.empty(n - 1, dtype=np.int64)
    b = np.empty(n - 1, dtype=np.int64)
    h = np.empty(n - 1, dtype=np.float64)
    live = np.arange(1, n)  # vertices outside the tree, ascending
    near = np.full(n - 1, np.inf, dtype=np.float64)  # near[p]: live[p]'s distance to the tree
    m = n - 1
    x = np.int64(0)
    for k in range(n - 1):
        if cancelled(counter):  # Ctrl-C (cancel.py): the log is discarded
            break
        best = np.inf
        bpos = 0
        split = lower_bound(live, m, x)
        for p in range(split):  # i < x: down column x
            if p + PREFETCH_AHEAD < split:
                j = live[p + PREFETCH_AHEAD]
                prefetch(D, row_base(n, j) + x)
            i = live[p]
            dd = np.float64(D[row_base(n, i) + x])
            if dd < near[p]:
                near[p] = dd
            if near[p] < best:
                best = near[p]
                bpos = p
        row = row_base(n, x)
        for p in range(split, m):  # i > x: along row x
            dd = np.float64(D[row + live[p]])
            if dd < near[p]:
                near[p] = dd
            if near[p] < best:
                best = near[p]
                bpos = p
        y = live[bpos]
        a[k] = x
        counter[0] = k + 1
        b[k] = y
        h[k] = best
        for q in range(bpos, m - 1):  # drop y, keep the order (tie rule)
            live[q] = live[q + 1]
            near[q] = near[q + 1]
        m -= 1
        x = y
    return a, b, h


def run(D, n, code, counter=None, **options):
    """Engine entry point (see ``kernels.__init__``): single linkage merge log.

    ``code`` must be ``formulas.SINGLE``; ``D`` is only read. The log comes
    back sorted by height (stable), because Prim's order is not a valid merge
    order (a light edge can join after a heavier one it hangs from).
    """
    if code != formulas.SINGLE:
        raise ValueError(f"cpu_mst runs single linkage only (method code {code})")
    a, b, h = prim(D, np.int64(n), merge_counter(counter))
    order = np.argsort(h, kind="stable")
    return a[order], b[order], h[order]
