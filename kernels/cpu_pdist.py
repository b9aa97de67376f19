"""Condensed pairwise distances on the CPU: Numba-parallel over rows.

The formulas come from ``metrics.py`` (the same source the CUDA kernel
compiles); this module only arranges the loops. The output array is allocated
by the caller in the working dtype (float32 or float64): every distance is
computed in float64 and rounded once when stored, so float32 runs need no
float64 temporary of the whole matrix.

Load balance: row i of the condensed matrix has n-1-i pairs, so a static split
of rows over threads would give the first thread most of the work. Rows are
processed in pairs (r, n-2-r), every pair holding n-1 distances, and each
thread takes a contiguous range of pairs.

Small inputs run serially: starting the thread pool costs more than the work
below ``PARALLEL_MIN_WORK`` element operations (and on a busy machine a
parallel region waits for every thread to be scheduled).
"""

import types

import numba
import numpy as np

from . import cancel, formulas, metrics
from ._config import NUMBA_CACHE
from .cpu_common import cancelled

# Below this many element operations (~5 ms of work) a loop runs on the calling
# thread.
PARALLEL_MIN_WORK = 1 << 25

# Two compilations of the metric formulas. The strict one (fastmath=False,
# spelled out) keeps scipy's rounding for every metric; the fast-math one is
# inlined into the summing loops of euclidean/sqeuclidean/cityblock only.
# Two numba behaviours shape this:
# * a callee compiled inside a fast-math function gets the caller's flags even
#   when it says fastmath=False (numba only overrides the caller's context with
#   a truthy flag set), so no strict function is ever called from a fast-math
#   one: the fast loops call only the inlined fast copies below;
# * numba's on-disk cache keys a function by signature, not by flags, so two
#   dispatchers of one Python function with different flags would load each
#   other's machine code: the fast copies are never cached.
_STRICT = {"nogil": True, "cache": NUMBA_CACHE, "fastmath": False}
# Sums of non-negative terms may be reassociated (and fused): LLVM then
# vectorises the coordinate loop. The result moves by a few ulp at most
# (relative error <= d * eps for any order); measured 2.3x (euclidean) and 3x
# (cityblock) faster at d = 32. Inlined so the metric code is a constant.
_SUM_FASTMATH = {"reassoc", "contract"}
_SUM = {"nogil": True, "cache": False, "fastmath": _SUM_FASTMATH, "inline": "always"}


def _store_value(out, k, v):
    """Write one distance (cast to out's dtype); return 1 if the stored value
    is not finite (a float64 distance beyond float32's range becomes inf)."""
    out[k] = v
    return 0 if np.isfinite(out[k]) else 1


def _twin(fn):
    """A second function object with fn's code, globals and name + '_fast'."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_fast",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_fast"
    return twin


_accumulate = numba.njit(**_STRICT)(metrics.metric_accumulate)
_finalize = numba.njit(**_STRICT)(metrics.metric_finalize)
_store = numba.njit(**_STRICT)(_store_value)
_accumulate_sum = numba.njit(**_SUM)(_twin(metrics.metric_accumulate))
_finalize_sum = numba.njit(**_SUM)(_twin(metrics.metric_finalize))
_store_sum = numba.njit(**_SUM)(_twin(_store_value))
_condensed_index = numba.njit(nogil=True, cache=NUMBA_CACHE)(formulas.condensed_index)


@numba.njit(**_STRICT)
def _fill_row(X, i, code, p, norms, out):
    """Distances from row i to rows i+1..n-1; returns how many are not finite.

    Four columns at a time: four independent accumulators hide the latency of
    the dependent adds (each sum still runs over the coordinates in order, so
    the result is the same as one column at a time).
    """
    n, d = X.shape
    start = _condensed_index(np.int64(n), np.int64(i), np.int64(i) + 1) - (i + 1)
    ni = norms[i]
    bad = 0
    j = i + 1
    while j + 3 < n:
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for t in range(d):
            u = X[i, t]
            a0 = _accumulate(code, a0, u, X[j, t], p)
            a1 = _accumulate(code, a1, u, X[j + 1, t], p)
            a2 = _accumulate(code, a2, u, X[j + 2, t], p)
            a3 = _accumulate(code, a3, u, X[j + 3, t], p)
        k = start + j
        bad += _store(out, k, _finalize(code, a0, p, ni, norms[j]))
        bad += _store(out, k + 1, _finalize(code, a1, p, ni, norms[j + 1]))
        bad += _store(out, k + 2, _finalize(code, a2, p, ni, norms[j + 2]))
        bad += _store(out, k + 3, _finalize(code, a3, p, ni, norms[j + 3]))
        j += 4
    while j < n:
        acc = 0.0
        for t in range(d):
            acc = _accumulate(code, acc, X[i, t], X[j, t], p)
        bad += _store(out, start + j, _finalize(code, acc, p, ni, norms[j]))
        j += 1
    return bad


@numba.njit(**_SUM)
def _fill_row_sum(X, i, code, p, norms, out):
    """``_fill_row`` for metrics that sum non-negative terms, vectorised.

    Inlined into the per-metric functions below with a constant ``code``, so
    each metric gets its own loop.
    """
    n, d = X.shape
    start = _condensed_index(np.int64(n), np.int64(i), np.int64(i) + 1) - (i + 1)
    ni = norms[i]
    bad = 0
    for j in range(i + 1, n):
        acc = 0.0
        for t in range(d):
            acc = _accumulate_sum(code, acc, X[i, t], X[j, t], p)
        bad += _store_sum(out, start + j, _finalize_sum(code, acc, p, ni, norms[j]))
    return bad


_FAST = {"nogil": True, "cache": NUMBA_CACHE, "fastmath": _SUM_FASTMATH}


@numba.njit(**_FAST)
def _fill_row_euclidean(X, i, p, norms, out):
    return _fill_row_sum(X, i, metrics.EUCLIDEAN, p, norms, out)


@numba.njit(**_FAST)
def _fill_row_sqeuclidean(X, i, p, norms, out):
    return _fill_row_sum(X, i, metrics.SQEUCLIDEAN, p, norms, out)


@numba.njit(**_FAST)
def _fill_row_cityblock(X, i, p, norms, out):
    return _fill_row_sum(X, i, metrics.CITYBLOCK, p, norms, out)


@numba.njit(**_STRICT)
def _fill_any_row(X, i, code, p, norms, out):
    # Strict itself, so that _fill_row (chebyshev: a max; minkowski: a pow per
    # term; the dot products of cosine/correlation: mixed signs, scipy's
    # summation order) is compiled without fast-math flags.
    if code == metrics.EUCLIDEAN:
        return _fill_row_euclidean(X, i, p, norms, out)
    if code == metrics.SQEUCLIDEAN:
        return _fill_row_sqeuclidean(X, i, p, norms, out)
    if code == metrics.CITYBLOCK:
        return _fill_row_cityblock(X, i, p, norms, out)
    return _fill_row(X, i, code, p, norms, out)


@numba.njit(**_STRICT)
def _fill_row_pairs(X, code, p, norms, out, r0, r1, control):
    """Rows r and n-2-r for r in [r0, r1); returns the non-finite count."""
    n = X.shape[0]
    bad = 0
    for r in range(r0, r1):
        if cancelled(control):  # Ctrl-C (cancel.py): the matrix is discarded
            break
        bad += _fill_any_row(X, r, code, p, norms, out)
        other = n - 2 - r
        if other > r:
            bad += _fill_any_row(X, other, code, p, norms, out)
    return bad


@numba.njit(parallel=True, nogil=True, cache=NUMBA_CACHE)
def _pdist_parallel(X, code, p, norms, out, nthreads, control):
    half = X.shape[0] // 2
    bad = np.zeros(nthreads, dtype=np.int64)
    for t in numba.prange(nthreads):
        bad[t] = _fill_row_pairs(X, code, p, norms, out,
                                 half * t // nthreads, half * (t + 1) // nthreads, control)
    return bad.sum()


def pdist_into(X, code, p, norms, out):
    """Fill ``out`` (length n(n-1)/2) with the condensed distances of rows of X.

    Parameters
    ----------
    X : ndarray of float64, shape (n, d), C-contiguous
        Observations (already centred for correlation).
    code : int
        Metric code from ``metrics.METRIC_CODES``.
    p : float
        Minkowski exponent (ignored by the other metrics).
    norms : ndarray of float64, shape (n,)
        Row norms for cosine/correlation (any values otherwise).
    out : ndarray of float32 or float64
        Output, written in place.

    Returns
    -------
    int
        Number of non-finite distances written (overflow, zero norms).
    """
    n, d = X.shape
    code = np.int64(code)
    p = np.float64(p)
    control = cancel.current()  # polled per row for Ctrl-C
    if out.shape[0] * max(d, 1) < PARALLEL_MIN_WORK:
        return int(_fill_row_pairs(X, code, p, norms, out, 0, n // 2, control))
    return int(_pdist_parallel(X, code, p, norms, out, numba.get_num_threads(), control))


@numba.njit(**_STRICT)
def row_norms(X):
    """Euclidean norm of every row of X (float64), summed in coordinate order."""
    n, d = X.shape
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        s = 0.0
        for t in range(d):
            s += X[i, t] * X[i, t]
        out[i] = np.sqrt(s)
    return out


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _copy_range(src, out, squared, k0, k1):
    if squared:
        for k in range(k0, k1):
            v = src[k]
            out[k] = v * v
    else:
        for k in range(k0, k1):
            out[k] = src[k]


@numba.njit(parallel=True, nogil=True, cache=NUMBA_CACHE)
def _copy_parallel(src, out, squared, nthreads):
    m = src.shape[0]
    for t in numba.prange(nthreads):
        _copy_range(src, out, squared, m * t // nthreads, m * (t + 1) // nthreads)


def copy_cast(src, out, squared):
    """out[k] = src[k] (squared in float64 first when ``squared``).

    Copies a float64 condensed matrix into the working dtype without a second
    float64 temporary; squaring before the cast keeps float32 results exact to
    one rounding.
    """
    m = src.shape[0]
    if m < PARALLEL_MIN_WORK:
        _copy_range(src, out, bool(squared), 0, m)
    else:
        _copy_parallel(src, out, bool(squared), numba.get_num_threads())


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _count_nonfinite(a, k0, k1):
    bad = 0
    for k in range(k0, k1):
        if not np.isfinite(a[k]):
            bad += 1
    return bad


@numba.njit(parallel=True, nogil=True, cache=NUMBA_CACHE)
def _count_parallel(a, nthreads):
    m = a.shape[0]
    bad = np.zeros(nthreads, dtype=np.int64)
    for t in numba.prange(nthreads):
        bad[t] = _count_nonfinite(a, m * t // nthreads, m * (t + 1) // nthreads)
    return bad.sum()


def all_finite(a):
    """True when no entry of the 1-D array ``a`` is NaN or infinite.

    A count instead of ``np.isfinite(a).all()``, which would allocate a
    boolean temporary the size of the condensed matrix.
    """
    m = a.shape[0]
    if m < PARALLEL_MIN_WORK:
        return _count_nonfinite(a, 0, m) == 0
    return _count_parallel(a, numba.get_num_threads()) == 0
