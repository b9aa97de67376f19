"""complete, average, weighted and ward linkage on the CPU: nearest-neighbour chain.

The chain follows nearest neighbours until two clusters are each other's
nearest (a reciprocal pair); for reducible methods that pair can be merged at
once and the chain stays valid. The matrix is updated in place with scipy's
form of the Lance-Williams formula (``formulas.lw_update_scipy_form``: plain
distances, ward's square root taken per update); the merged cluster takes the
larger slot. Every choice follows scipy's ``nn_chain``: a new chain starts at
the lowest live slot, a scan runs over ascending slots with strict '<'
starting from the chain's previous element (so it wins ties), and the merged
pair is stored smaller slot first. With the same arithmetic this gives
scipy's merge log even under ties; ``_tree`` then sorts it stably and labels
it as scipy does.

If a scan finds no finite candidate (the updates overflowed to inf or NaN,
e.g. ward on distances above ~1e154), the kernel raises ValueError instead of
following a chain to slot -1.

Live clusters are kept in a sorted compact list, so scans and updates touch
only live rows; the list is split at the scanned slot into the part read down
a column of the condensed matrix and the part read along a row.

Memory: reading down a column of the condensed matrix misses the cache on
every entry (the stride is a whole row). Those loops issue software prefetches
``PREFETCH_AHEAD`` entries ahead: 1.75x faster at n = 10 000 (the out-of-order
core alone keeps too few misses in flight). ``cpu_generic`` uses them too.
"""

import numba
import numpy as np

from . import formulas
from ._config import NUMBA_CACHE
from .cpu_common import (NO_FINITE_CANDIDATE, PREFETCH_AHEAD, cancelled, condensed_index,
                         lower_bound, lw_update_scipy_form, merge_counter, prefetch, row_base)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _nearest(D, n, live, m, x, best, arg):
    """Nearest live cluster to x, starting from (best, arg); ties keep the first.

    Returns (distance, index). Clusters below x are read down column x,
    those above along row x.
    """
    split = lower_bound(live, m, x)
    for p in range(split):
        if p + PREFETCH_AHEAD < split:
            j = live[p + PREFETCH_AHEAD]
            prefetch(D, row_base(n, j) + x)
        i = live[p]
        d = np.float64(D[row_base(n, i) + x])
        if d < best:
            best = d
            arg = i
    row = row_base(n, x)
    for p in range(split, m):
        i = live[p]
        if i != x:
            d = np.float64(D[row + i])
            if d < best:
                best = d
                arg = i
    return best, arg


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def nn_chain(D, n, code, counter, nogood):
    """Merge log of a reducible linkage on condensed ``D`` (overwritten).

    Parameters
    ----------
    D : ndarray of float32 or float64, shape (n(n-1)/2,)
        Working distances (plain, also for ward).
    n : int
        Number of points.
    code : int
        ``formulas.COMPLETE``, ``AVERAGE``, ``WEIGHTED`` or ``WARD``.
    counter : ndarray of int64, shape (1,)
        Merges done so far, written as the loop runs (read by progress bars
        from another thread; the kernel releases the GIL).
    nogood : ndarray of bool, shape (1,)
        Set (and the kernel returns early) when a scan finds no finite
        candidate; ``run`` raises then.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Slots (= an observation of each cluster) merged at each step, a < b.
    h : ndarray of float64, shape (n-1,)
        Merge heights, in merge order.
    """
    n = np.int64(n)
    a = np.empty(n - 1, dtype=np.int64)
    b = np.empty(n - 1, dtype=np.int64)
    h = np.empty(n - 1, dtype=np.float64)
    size = np.ones(n, dtype=np.float64)
    live = np.arange(n)
    m = n
    chain = np.empty(n, dtype=np.int64)
    clen = 0
    for k in range(n - 1):
        if cancelled(counter):  # Ctrl-C (cancel.py): the log is discarded
            break
        if clen == 0:  # scipy: a new chain starts at the lowest live slot
            chain[0] = live[0]
            clen = 1
        while True:
            x = chain[clen - 1]
            if clen > 1:
                y = chain[clen - 2]
                cur = np.float64(D[condensed_index(n, x, y)])
            else:
                y = np.int64(-1)
                cur = np.inf
            cur, y = _nearest(D, n, live, m, x, cur, y)
            if y < 0:  # nothing finite below inf: only after overflow/NaN
                nogood[0] = True
                return a, b, h
            if clen > 1 and y == chain[clen - 2]:
                break
            chain[clen] = y
            clen += 1
        clen -= 2
        if x > y:
            x, y = y, x
        a[k] = x
        counter[0] = k + 1
        b[k] = y
        h[k] = cur
        nx = size[x]
        ny = size[y]
        # Lance-Williams: cluster x+y takes slot y; slot x dies. (Hot-loop
        # variant: cpu_generic.generic runs the same three ranges with bounds.)
        px = lower_bound(live, m, x)
        py = lower_bound(live, m, y)
        rowx = row_base(n, x)
        rowy = row_base(n, y)
        for p in range(px):  # i < x < y: both down columns
            if p + PREFETCH_AHEAD < px:
                j = live[p + PREFETCH_AHEAD]
                bj = row_base(n, j)
                prefetch(D, bj + x)
                prefetch(D, bj + y)
            i = live[p]
            base = row_base(n, i)
            D[base + y] = lw_update_scipy_form(code, np.float64(D[base + x]),
                                               np.float64(D[base + y]), cur, nx, ny, size[i])
        for p in range(px + 1, py):  # x < i < y: row x, column y
            if p + PREFETCH_AHEAD < py:
                j = live[p + PREFETCH_AHEAD]
                prefetch(D, row_base(n, j) + y)
            i = live[p]
            kiy = row_base(n, i) + y
            D[kiy] = lw_update_scipy_form(code, np.float64(D[rowx + i]), np.float64(D[kiy]),
                                          cur, nx, ny, size[i])
        for p in range(py + 1, m):  # x < y < i: both along rows
            i = live[p]
            D[rowy + i] = lw_update_scipy_form(code, np.float64(D[rowx + i]),
                                               np.float64(D[rowy + i]), cur, nx, ny, size[i])
        size[y] = nx + ny
        for q in range(px, m - 1):  # drop x, keep the order
            live[q] = live[q + 1]
        m -= 1
    return a, b, h


def run(D, n, code, counter=None, **options):
    """Engine entry point (see ``kernels.__init__``): reducible-family merge log."""
    if code not in (formulas.COMPLETE, formulas.AVERAGE, formulas.WEIGHTED, formulas.WARD):
        raise ValueError(f"cpu_nnchain runs complete/average/weighted/ward (method code {code})")
    nogood = np.zeros(1, dtype=np.bool_)
    log = nn_chain(D, np.int64(n), np.int64(code), merge_counter(counter), nogood)
    if nogood[0]:
        raise ValueError(NO_FINITE_CANDIDATE)
    return log
