"""centroid and median linkage on the CPU: scipy's generic algorithm, step for step.

These methods are not reducible (a merge can bring clusters closer: inversions),
so every step must merge the globally closest pair. Each live slot i below the
last keeps a candidate ``nn[i]`` (a live slot above i) and a lower bound
``bound[i]`` on its distance to every live slot above it; the bounds sit in a
binary min-heap keyed by slot. A step looks at the heap's root x: if its
candidate's current distance equals the bound, (x, nn[x]) is the global minimum
and merges; otherwise row x is rescanned, its heap value changed, and the root
looked at again.

Merge order is the output order (scipy does not sort these methods), so under
ties the tree depends on which of several equal bounds the heap offers first.
Everything that decides that follows scipy's ``fast_linkage`` (and its
``Heap``): the heap is built bottom-up from the bounds of slots 0..n-2 in
slot order; a changed value sifts up if it decreased, else down; sift-down
takes the right child only if strictly smaller and swaps only on strict '>';
the merged root is removed by swapping in the last entry; a rescan reads the
live slots above the row in ascending order with strict '<'. After x, y
(x < y) merge into slot y, in ascending order of z: D[z, y] takes scipy's
Lance-Williams update (``formulas.lw_update_scipy_form``: plain distances, a
square root per update); candidates pointing at the dead slot x move to y (a
guess, checked when it surfaces); rows z < y whose new distance undercuts
their bound take y with that bound (heap changed in the same order); then row
y is rescanned. Same arithmetic and the same sequence of heap operations give
scipy's merge log, ties included.

A rescan that finds no finite candidate (NaN/inf after overflow: scipy raises
ValueError there too) stops the kernel and ``run`` raises ValueError; no loop
can follow slot -1. Column reads are prefetched as in ``cpu_nnchain``.
"""

import numba
import numpy as np

from . import formulas
from ._config import NUMBA_CACHE
from .cpu_common import (NO_FINITE_CANDIDATE, PREFETCH_AHEAD, cancelled, condensed_index,
                         lower_bound, lw_update_scipy_form, merge_counter, prefetch, row_base)


# --------------------------------------------------------------------------
# Binary min-heap over keys 0..size-1 (scipy's Heap, same comparisons): hval
# and hkey by heap position, hpos by key. Children of position i: 2i+1, 2i+2.


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _heap_swap(hval, hkey, hpos, i, j):
    hval[i], hval[j] = hval[j], hval[i]
    ki = hkey[i]
    kj = hkey[j]
    hkey[i] = kj
    hkey[j] = ki
    hpos[ki] = j
    hpos[kj] = i


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _sift_up(hval, hkey, hpos, i):
    while i > 0:
        parent = (i - 1) >> 1
        if not hval[parent] > hval[i]:
            break
        _heap_swap(hval, hkey, hpos, i, parent)
        i = parent


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _sift_down(hval, hkey, hpos, size, i):
    child = 2 * i + 1
    while child < size:
        if child + 1 < size and hval[child + 1] < hval[child]:
            child += 1
        if not hval[i] > hval[child]:
            break
        _heap_swap(hval, hkey, hpos, i, child)
        i = child
        child = 2 * i + 1


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _heap_change(hval, hkey, hpos, size, key, value):
    """Set ``key``'s value; sift up if it decreased, else down (scipy's rule)."""
    i = hpos[key]
    old = hval[i]
    hval[i] = value
    if value < old:
        _sift_up(hval, hkey, hpos, i)
    else:
        _sift_down(hval, hkey, hpos, size, i)


# --------------------------------------------------------------------------


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _rescan(D, n, live, m, p, nn, bound):
    """Exact nearest live slot above live[p] (row read, contiguous).

    Ascending slots, strict '<': the first of equal distances wins. Returns
    False when no distance is below inf (all NaN/inf), leaving nn/bound as
    they were.
    """
    i = live[p]
    row = row_base(n, i)
    best = np.inf
    arg = np.int64(-1)
    for q in range(p + 1, m):
        j = live[q]
        d = np.float64(D[row + j])
        if d < best:
            best = d
            arg = j
    if arg < 0:
        return False
    nn[i] = arg
    bound[i] = best
    return True


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def generic(D, n, code, counter, nogood):
    """Merge log of centroid/median linkage on condensed ``D`` (overwritten).

    Parameters
    ----------
    D : ndarray of float32 or float64, shape (n(n-1)/2,)
        Euclidean distances (plain, not squared).
    n : int
        Number of points.
    code : int
        ``formulas.CENTROID`` or ``formulas.MEDIAN``.
    counter : ndarray of int64, shape (1,)
        Merges done so far, written as the loop runs.
    nogood : ndarray of bool, shape (1,)
        Set (and the kernel returns early) when a rescan finds no finite
        candidate; ``run`` raises then.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Slots merged at each step (a < b; the new cluster lives in slot b).
    h : ndarray of float64, shape (n-1,)
        Merge heights in merge order (not monotone in general).
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
        if not _rescan(D, n, live, m, p, nn, bound):
            nogood[0] = True
            return a, b, h
    # Slot n-1 never dies (it is the larger slot of every pair it is in) and
    # has nothing above it: the heap holds slots 0..n-2, built bottom-up.
    hsize = n - 1
    hval = bound[:hsize].copy()
    hkey = np.arange(hsize)
    hpos = np.arange(hsize)
    for i in range(hsize // 2 - 1, -1, -1):
        _sift_down(hval, hkey, hpos, hsize, i)
    for k in range(n - 1):
        if cancelled(counter):  # Ctrl-C (cancel.py): the log is discarded
            break
        # Terminates: a rescanned row is exact (its bound is its candidate's
        # distance) until the next merge, so each retry fixes one more row.
        while True:
            x = hkey[0]
            dxy = hval[0]
            y = nn[x]
            if dxy == np.float64(D[condensed_index(n, x, y)]):
                break
            px = lower_bound(live, m, x)
            if not _rescan(D, n, live, m, px, nn, bound):
                nogood[0] = True
                return a, b, h
            _heap_change(hval, hkey, hpos, hsize, x, bound[x])
        # Remove the root (x): the last entry takes its place and sifts down.
        _heap_swap(hval, hkey, hpos, 0, hsize - 1)
        hsize -= 1
        _sift_down(hval, hkey, hpos, hsize, 0)
        a[k] = x
        counter[0] = k + 1
        b[k] = y
        h[k] = dxy
        nx = size[x]
        ny = size[y]
        px = lower_bound(live, m, x)
        py = lower_bound(live, m, y)
        rowx = row_base(n, x)
        rowy = row_base(n, y)
        # Hot-loop variant of cpu_nnchain.nn_chain's merge update (same three
        # ranges, same prefetch; `duplicates` pairs them): here each row's bound
        # and heap entry change inside the loop, where the chain has none.
        # scipy updates every row, then moves candidates from x to y, then
        # lowers bounds below y; per row these touch only that row, so one
        # pass in ascending order does the same (heap changes in that order).
        for p in range(px):  # z < x < y: both down columns
            if p + PREFETCH_AHEAD < px:
                j = live[p + PREFETCH_AHEAD]
                bj = row_base(n, j)
                prefetch(D, bj + x)
                prefetch(D, bj + y)
            z = live[p]
            base = row_base(n, z)
            D[base + y] = lw_update_scipy_form(code, np.float64(D[base + x]),
                                               np.float64(D[base + y]), dxy, nx, ny, size[z])
            d = np.float64(D[base + y])  # as stored (float32 rounds): bounds must be exact
            if nn[z] == x:
                nn[z] = y
            if d < bound[z]:
                bound[z] = d
                nn[z] = y
                _heap_change(hval, hkey, hpos, hsize, z, d)
        for p in range(px + 1, py):  # x < z < y: row x, column y
            if p + PREFETCH_AHEAD < py:
                j = live[p + PREFETCH_AHEAD]
                prefetch(D, row_base(n, j) + y)
            z = live[p]
            kzy = row_base(n, z) + y
            D[kzy] = lw_update_scipy_form(code, np.float64(D[rowx + z]), np.float64(D[kzy]),
                                          dxy, nx, ny, size[z])
            d = np.float64(D[kzy])
            if d < bound[z]:
                bound[z] = d
                nn[z] = y
                _heap_change(hval, hkey, hpos, hsize, z, d)
        for p in range(py + 1, m):  # x < y < z: both along rows
            z = live[p]
            D[rowy + z] = lw_update_scipy_form(code, np.float64(D[rowx + z]),
                                               np.float64(D[rowy + z]), dxy, nx, ny, size[z])
        size[y] = nx + ny
        for q in range(px, m - 1):  # drop x, keep the order
            live[q] = live[q + 1]
        m -= 1
        if y < n - 1:
            if not _rescan(D, n, live, m, py - 1, nn, bound):
                nogood[0] = True
                return a, b, h
            _heap_change(hval, hkey, hpos, hsize, y, bound[y])
    return a, b, h


def run(D, n, code, counter=None, **options):
    """Engine entry point (see ``kernels.__init__``): generic-family merge log.

    Raises
    ------
    ValueError
        No finite distance is left between the remaining clusters (the
        updates overflowed or gave NaN), as scipy's ``fast_linkage`` does.
    """
    if code not in (formulas.CENTROID, formulas.MEDIAN):
        raise ValueError(f"cpu_generic runs centroid/median (method code {code})")
    nogood = np.zeros(1, dtype=np.bool_)
    log = generic(D, np.int64(n), np.int64(code), merge_counter(counter), nogood)
    if nogood[0]:
        raise ValueError(NO_FINITE_CANDIDATE)
    return log
