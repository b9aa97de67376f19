"""Pairwise distances on the GPU, written straight into the condensed matrix.

One block computes an output tile of ``ROWS`` rows i by ``blockDim.x`` columns
j (thread t owns column ``j0 + t`` and keeps one accumulator per row), so only
pairs i < j are written, no n x n intermediate exists and no index array is
built. Coordinates are staged through shared memory ``KC`` at a time for both
the tile's rows and columns (coalesced loads; each staged value is reused
``ROWS`` or ``blockDim.x`` times). Output writes are coalesced too: for a fixed
row i the threads write consecutive condensed positions.

The formulas are ``kernels.metrics`` compiled as device functions (one source
for both engines); index arithmetic is int64 (``formulas.condensed_index``).
The caller prepares the rows (float64, centred for correlation) and, for
cosine/correlation, their Euclidean norms.
"""

import math

import numpy as np
from numba import cuda

from . import launch, metrics
from ._config import NUMBA_CACHE

# Threads per block at most (sizes the staged column tile in shared memory:
# MAX_TPB x (KC + 1) float64 = 34 KiB, under the 48 KiB static limit).
MAX_TPB = 256
# Output rows per block: each thread keeps ROWS accumulators in registers.
ROWS = 16
# Coordinates staged per step. The column tile is padded to KC + 1 so that
# threads reading xj[t, c] hit different shared-memory banks.
KC = 16
KC_PADDED = KC + 1
# Partial sums per pair (a module global: local array shapes must be
# compile-time literals, which another module's attribute is not).
LANES = metrics.LANES



@cuda.jit(cache=NUMBA_CACHE)
def row_norms_kernel(X, norms, n, d):
    """Euclidean norm of every row, summed in scipy's order (thread per row)."""
    i = cuda.grid(1)
    if i >= n:
        return
    acc = cuda.local.array(LANES, np.float64)
    for lane in range(metrics.LANES):
        acc[lane] = 0.0
    for k in range(d):
        lane = launch.metric_lane(metrics.COSINE, k, d)
        acc[lane] = launch.metric_accumulate(metrics.COSINE, acc[lane], X[i, k], X[i, k], 2.0)
    norms[i] = math.sqrt(launch.metric_combine(metrics.COSINE, acc[0], acc[1], acc[2]))


def row_norms(X, xp=np, tpb=None):
    """Row norms of the device array X (float64, (n, d)) as scipy's pdist sums them."""
    n, d = int(X.shape[0]), int(X.shape[1])
    norms = xp.empty(n, np.float64)
    if n:
        tpb = launch.check_tpb(tpb, MAX_TPB)
        row_norms_kernel[-(-n // tpb), tpb, launch.stream_for(xp)](
            launch.as_device(X), launch.as_device(norms), np.int64(n), np.int64(d))
    return norms



@cuda.jit(device=True, inline="always", cache=NUMBA_CACHE)
def _load_rows(X, dst, row0, nrows, k0, t, tpb):
    """Rows row0 .. row0 + nrows - 1, coordinates k0 .. k0 + KC - 1 of X into the
    shared tile ``dst`` (zeros past the data), the block's threads striding."""
    n, d = X.shape
    for e in range(t, nrows * KC, tpb):
        r = e // KC
        c = e - r * KC
        i = row0 + r
        k = k0 + c
        dst[r, c] = X[i, k] if (i < n and k < d) else 0.0

@cuda.jit(device=True, cache=NUMBA_CACHE)
def _tile(code, X, norms, out, n, d, p):
    """Fill the output tile of this block (see module docstring).

    Grid: (ceil(n / ROWS), ceil(n / blockDim.x)); block (bx, by) owns rows
    [bx*ROWS, bx*ROWS + ROWS) and columns [by*tpb, by*tpb + tpb). ``norms`` has
    length n for cosine/correlation and is not read otherwise. Each kernel
    below calls it once with a constant ``code``; the compiler inlines it, so
    the metric dispatch disappears from the inner loop (checked in the PTX).
    """
    xi = cuda.shared.array((ROWS, KC), np.float64)
    xj = cuda.shared.array((MAX_TPB, KC_PADDED), np.float64)
    # One accumulator per row and partial sum (metrics.metric_lane: scipy's
    # summation order; only cosine uses lanes 1 and 2, the others fold away).
    acc = cuda.local.array((LANES, ROWS), np.float64)
    tpb = cuda.blockDim.x
    t = cuda.threadIdx.x
    i0 = np.int64(cuda.blockIdx.x) * ROWS
    j0 = np.int64(cuda.blockIdx.y) * tpb
    if j0 + tpb - 1 <= i0:  # tile entirely on or below the diagonal: no pair i < j
        return
    for lane in range(metrics.LANES):
        for r in range(ROWS):
            acc[lane, r] = 0.0
    for k0 in range(0, d, KC):
        _load_rows(X, xi, i0, ROWS, k0, t, tpb)
        _load_rows(X, xj, j0, tpb, k0, t, tpb)
        cuda.syncthreads()
        kc = min(KC, d - k0)
        for c in range(kc):
            v = xj[t, c]
            lane = launch.metric_lane(code, k0 + c, d)
            for r in range(ROWS):
                acc[lane, r] = launch.metric_accumulate(code, acc[lane, r], xi[r, c], v, p)
        cuda.syncthreads()
    j = j0 + t
    if j >= n:
        return
    uses_norms = code == metrics.COSINE or code == metrics.CORRELATION
    norm_j = norms[j] if uses_norms else 0.0
    for r in range(ROWS):
        i = i0 + r
        if i < j:
            norm_i = norms[i] if uses_norms else 0.0
            s = launch.metric_combine(code, acc[0, r], acc[1, r], acc[2, r])
            out[launch.condensed_index(n, i, j)] = launch.metric_finalize(code, s, p, norm_i, norm_j)


# One kernel per metric family with a constant code: the hot loop is then a
# plain subtract/multiply-add (or product) without per-element branches.
@cuda.jit(cache=NUMBA_CACHE)
def pdist_euclidean(X, norms, out, n, d):
    """Euclidean distances."""
    _tile(metrics.EUCLIDEAN, X, norms, out, n, d, 2.0)


@cuda.jit(cache=NUMBA_CACHE)
def pdist_sqeuclidean(X, norms, out, n, d):
    """Squared Euclidean distances (also ward/centroid/median's squared matrix)."""
    _tile(metrics.SQEUCLIDEAN, X, norms, out, n, d, 2.0)


@cuda.jit(cache=NUMBA_CACHE)
def pdist_cosine(X, norms, out, n, d):
    """Cosine distances; correlation is cosine on centred rows."""
    _tile(metrics.COSINE, X, norms, out, n, d, 2.0)


@cuda.jit(cache=NUMBA_CACHE)
def pdist_other(X, norms, out, n, d, code, p):
    """Any metric code (cityblock, chebyshev, minkowski)."""
    _tile(code, X, norms, out, n, d, p)


_SPECIALISED = {
    metrics.EUCLIDEAN: pdist_euclidean,
    metrics.SQEUCLIDEAN: pdist_sqeuclidean,
    metrics.COSINE: pdist_cosine,
    metrics.CORRELATION: pdist_cosine,
}


_ARGS = "float64[:, ::1], float64[::1], {}[::1], int64, int64"
PTX_SIGNATURES = {
    **{name: [f"void({_ARGS.format(dt)})" for dt in ("float32", "float64")]
       for name in ("pdist_euclidean", "pdist_sqeuclidean", "pdist_cosine")},
    "pdist_other": [f"void({_ARGS.format(dt)}, int64, float64)" for dt in ("float32", "float64")],
    "row_norms_kernel": ["void(float64[:, ::1], float64[::1], int64, int64)"],
}


def pdist(X, norms, out, code, p=2.0, xp=np, tpb=None):
    """Launch the distance kernel for ``code`` on the caller's arrays (no host sync).

    Parameters
    ----------
    X : device array, float64, shape (n, d), C-contiguous
        Prepared observations (centred rows for correlation).
    norms : device array, float64
        Row norms (length n) for cosine/correlation; any length-1 array otherwise.
    out : device array, float32 or float64, length n(n-1)/2
        Receives the condensed distances.
    code : int
        ``kernels.metrics`` metric code.
    p : float
        Minkowski exponent (ignored by the other metrics).
    xp : module
        Namespace of the arrays (CuPy on a GPU, NumPy in the simulator).
    tpb : int, optional
        Threads per block (power of two, 32..MAX_TPB).
    """
    n, d = int(X.shape[0]), int(X.shape[1])
    if n < 2:
        return out
    tpb = launch.check_tpb(tpb, MAX_TPB)
    grid = (-(-n // ROWS), -(-n // tpb))
    stream = launch.stream_for(xp)
    args = (launch.as_device(X), launch.as_device(norms), launch.as_device(out),
            np.int64(n), np.int64(d))
    kernel = _SPECIALISED.get(code)
    if kernel is not None:
        kernel[grid, tpb, stream](*args)
    else:
        pdist_other[grid, tpb, stream](*args, np.int64(code), np.float64(p))
    return out
