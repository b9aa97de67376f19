"""The one source of the pairwise-distance formulas both engines compute.

Plain scalar functions, wrapped by ``numba.njit`` (cpu_pdist) and
``numba.cuda.jit(device=True)`` (cuda_pdist). A distance is accumulated over the
d coordinates with ``metric_accumulate`` and finished with ``metric_finalize``.

Distances are computed from direct differences (no ||x||^2 + ||y||^2 - 2x.y
expansion: it cancels on close pairs and flips merges). Cosine and correlation
follow scipy: correlation first centres each row (done by the caller on whole
arrays); both accumulate the dot product of the raw rows and divide by the
product of the row norms, which the caller precomputes once per row.

Rounding. Cosine and correlation distances of near-parallel rows are
1 - (a value within a few ulp of 1): every rounding of the dot product shows in
the result, so it is summed in coordinate order with each product rounded on
its own, as scipy does. Two compiler features would change that and are kept
out: reassociation (``fastmath``; numba passes a caller's flags on to callees
compiled without their own, so every CPU wrapper of these functions sets
``fastmath=False`` explicitly) and fused multiply-add contraction, which NVVM
applies by default (``-fma=1``, and numba-cuda offers no switch): the dot
product's multiply goes through :func:`product`, which the CUDA modules compile
as an explicitly rounded multiply (``mul.rn``, never fused; see
``_cuda_rounding``). Every sum, including the non-negative ones
(euclidean, cityblock), is rounded term by term too: the same bits as scipy's
pdist make the same tie-breaks downstream (a one-ulp difference between two
tied distances picks a different merge).

Summation order (scipy 1.17.1's x86-64 wheel, read from its source and its
compiled code). Euclidean, sqeuclidean, cityblock, chebyshev and minkowski
(``_distance_pybind``) sum each pair's terms in coordinate order, one
accumulator per pair. Cosine and correlation (``_distance_wrap``) are compiled
with a vectorised reduction: the dot product and the row norms are two partial
sums, one over the even and one over the odd coordinates of the leading
``2 * (d // 2)`` ones, each in order, then ``even + odd``, then the last
coordinate's product when d is odd. :func:`metric_lane` assigns coordinates to
those partial sums and :func:`metric_combine` joins them, so every caller sums
in that order.
"""

import math

from numba import extending

EUCLIDEAN = 0
SQEUCLIDEAN = 1
CITYBLOCK = 2
CHEBYSHEV = 3
MINKOWSKI = 4
COSINE = 5
CORRELATION = 6

# Metrics with a compiled kernel on both backends, by scipy's canonical name.
# Every other scipy metric (and callables) goes through scipy's pdist on the CPU.
METRIC_CODES = {
    "euclidean": EUCLIDEAN,
    "sqeuclidean": SQEUCLIDEAN,
    "cityblock": CITYBLOCK,
    "chebyshev": CHEBYSHEV,
    "minkowski": MINKOWSKI,
    "cosine": COSINE,
    "correlation": CORRELATION,
}


def product(u, v):
    """u * v rounded on its own, never fused with the add that consumes it.

    Plain Python (the CUDA simulator runs it as is); the CPU overload below is
    an ordinary multiply, compiled with its caller's flags, the CUDA one
    (``_cuda_rounding``) an explicitly rounded multiply.
    """
    return u * v


# Inlined into each caller's IR: a separately compiled implementation would be
# compiled once, with the flags of whichever caller came first (numba passes a
# caller's fast-math flags on), and then shared by every caller.
@extending.overload(product, inline="always")
def _product_cpu(u, v):
    def impl(u, v):
        return u * v

    return impl


def metric_accumulate(code, acc, u, v, p):
    """Fold one coordinate pair (u, v) into the running accumulator."""
    if code == COSINE or code == CORRELATION:
        return acc + product(u, v)  # mixed signs: no fusion, see the module docstring
    diff = u - v
    if code == EUCLIDEAN or code == SQEUCLIDEAN:
        return acc + product(diff, diff)  # scipy's rounding: not fused on the GPU either
    a = diff if diff >= 0.0 else -diff
    if code == CITYBLOCK:
        return acc + a
    if code == CHEBYSHEV:
        return a if a > acc else acc
    return acc + a ** p  # MINKOWSKI


# Number of partial sums a caller keeps per pair (see metric_lane).
LANES = 3


def metric_lane(code, k, d):
    """Which partial sum (0, 1 or 2) coordinate k of d is accumulated in.

    Cosine/correlation: 0 for even and 1 for odd coordinates among the leading
    ``2 * (d // 2)``, 2 for the last coordinate when d is odd (scipy's
    vectorised dot product, see the module docstring). Every other metric: 0
    (one sum in coordinate order).
    """
    if code == COSINE or code == CORRELATION:
        if k == d - 1 and d % 2 == 1:
            return 2
        return k % 2
    return 0


def metric_combine(code, acc0, acc1, acc2):
    """Join the partial sums of :func:`metric_lane` (every one starts at 0)."""
    if code == COSINE or code == CORRELATION:
        return (acc0 + acc1) + acc2
    return acc0


def metric_finalize(code, acc, p, norm_i, norm_j):
    """Turn the accumulator into the distance.

    ``norm_i``/``norm_j`` are the Euclidean norms of the (centred) rows, used by
    cosine/correlation only. Like scipy, the cosine similarity is clipped to
    [-1, 1] and a zero-norm row gives similarity 0 (scipy warns and gives nan;
    callers reject that case before launching).
    """
    if code == EUCLIDEAN:
        return math.sqrt(acc)  # IEEE sqrt, as scipy; pow(x, 0.5) is slower on GPUs
    if code == MINKOWSKI:
        return acc ** (1.0 / p)
    if code == COSINE or code == CORRELATION:
        denom = norm_i * norm_j
        sim = acc / denom if denom > 0.0 else 0.0
        if sim > 1.0:
            sim = 1.0
        elif sim < -1.0:
            sim = -1.0
        return 1.0 - sim
    return acc
