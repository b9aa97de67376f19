"""centroid and median linkage on the CPU: the generic algorithm with an NN cache.

These methods are not reducible (a merge can bring clusters closer: inversions),
so every step must merge the globally closest pair. Each live slot i keeps a
candidate ``nn[i]`` (a live slot above i) and a lower bound ``bound[i]`` on its
distance to every live slot above it. A step takes the smallest bound; if the
candidate's current distance equals it, that pair is the global minimum and
merges; otherwise the row is stale and is rescanned. Merge order is the output
order (scipy does not sort these methods), so on generic data the log equals
scipy's row by row.

After x, y (x < y) merge into slot y, with the Lance-Williams formula from
``formulas.py``: rows below y whose new distance to y undercuts their bound
take y as candidate; candidates pointing at the dead slot x move to y (a
guess, checked when it surfaces); row y is rescanned. Column reads are
prefetched as in ``cpu_nnchain``.
"""

import numba
import numpy as np

from . import formulas
from ._config import NUMBA_CACHE
from .cpu_common import PREFETCH_AHEAD, cancelled, lower_bound, merge_counter, prefetch

_condensed_index = numba.njit(nogil=True, cache=NUMBA_CACHE)(formulas.condensed_index)
_lw_update = numba.njit(nogil=True, cache=NUMBA_CACHE)(formulas.lw_update)


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _rescan(D, n, live, m, p, nn, bound):
    """Exact nearest live slot above live[p] (row read, contiguous)."""
    i = live[p]
    row = _condensed_index(n, i, i + 1) - (i + 1)
    best = np.inf
    arg = np.int64(-1)
    for q in range(p + 1, m):
        j = live[q]
        d = np.float64(D[row + j])
        if d < best:
            best = d
            arg = j
    nn[i] = arg
    bound[i] = best


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def generic(D, n, code, counter):
    """Merge log of centroid/median linkage on condensed squared ``D`` (overwritten).

    Parameters
    ----------
    D : ndarray of float32 or float64, shape (n(n-1)/2,)
        Squared Euclidean distances.
    n : int
        Number of points.
    code : int
        ``formulas.CENTROID`` or ``formulas.MEDIAN``.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Slots merged at each step (a < b; the new cluster lives in slot b).
    h : ndarray of float64, shape (n-1,)
        Squared merge heights in merge order (not monotone in general).
    """
    n = np.int64(n)
    a = np.empty(n - 1, dtype=np.int64)
    b = np.empty(n - 1, dtype=np.int64)
    h = np.empty(n - 1, dtype=np.float64)
    size = np.ones(n, dtype=np.float64)
    live = np.arange(n)
    m = n
    nn = np.full(n, -1, dtype=np.int64)
    bound = np.full(n, np.inf, dtype=np.float64)
    for p in range(n - 1):
        _rescan(D, n, live, m, p, nn, bound)
    for k in range(n - 1):
        if cancelled(counter):  # Ctrl-C (cancel.py): the log is discarded
            break
        while True:
            # Smallest bound; the first (lowest slot) among equals.
            best = np.inf
            px = 0
            for p in range(m - 1):
                bp = bound[live[p]]
                if bp < best:
                    best = bp
                    px = p
            x = live[px]
            y = nn[x]
            dxy = np.float64(D[_condensed_index(n, x, y)])
            if dxy == best:
                break
            _rescan(D, n, live, m, px, nn, bound)
        a[k] = x
        counter[0] = k + 1
        b[k] = y
        h[k] = dxy
        nx = size[x]
        ny = size[y]
        py = lower_bound(live, m, y)
        rowx = _condensed_index(n, x, x + 1) - (x + 1)
        rowy = _condensed_index(n, y, y + 1) - (y + 1)
        for p in range(px):  # i < x < y: both down columns
            if p + PREFETCH_AHEAD < px:
                j = live[p + PREFETCH_AHEAD]
                bj = n * j - (j * (j + 1)) // 2 - j - 1
                prefetch(D, bj + x)
                prefetch(D, bj + y)
            i = live[p]
            base = n * i - (i * (i + 1)) // 2 - i - 1
            d = _lw_update(code, np.float64(D[base + x]), np.float64(D[base + y]),
                           dxy, nx, ny, size[i])
            D[base + y] = d
            d = np.float64(D[base + y])  # as stored (float32 rounds): bounds must be exact
            if d < bound[i]:
                bound[i] = d
                nn[i] = y
            elif nn[i] == x:
                nn[i] = y
        for p in range(px + 1, py):  # x < i < y: row x, column y
            if p + PREFETCH_AHEAD < py:
                j = live[p + PREFETCH_AHEAD]
                prefetch(D, n * j - (j * (j + 1)) // 2 + (y - j - 1))
            i = live[p]
            kiy = n * i - (i * (i + 1)) // 2 + (y - i - 1)
            d = _lw_update(code, np.float64(D[rowx + i]), np.float64(D[kiy]),
                           dxy, nx, ny, size[i])
            D[kiy] = d
            d = np.float64(D[kiy])
            if d < bound[i]:
                bound[i] = d
                nn[i] = y
        for p in range(py + 1, m):  # x < y < i: both along rows
            i = live[p]
            D[rowy + i] = _lw_update(code, np.float64(D[rowx + i]), np.float64(D[rowy + i]),
                                     dxy, nx, ny, size[i])
        size[y] = nx + ny
        bound[x] = np.inf
        for q in range(px, m - 1):  # drop x, keep the order
            live[q] = live[q + 1]
        m -= 1
        _rescan(D, n, live, m, py - 1, nn, bound)
    return a, b, h


def run(D, n, code, counter=None, **options):
    """Engine entry point (see ``kernels.__init__``): generic-family merge log."""
    if code not in (formulas.CENTROID, formulas.MEDIAN):
        raise ValueError(f"cpu_generic runs centroid/median (method code {code})")
    return generic(D, np.int64(n), np.int64(code), merge_counter(counter))
