"""The one source of the pairwise-distance formulas both engines compute.

Plain scalar functions, wrapped by ``numba.njit`` (cpu_pdist) and
``numba.cuda.jit(device=True)`` (cuda_pdist). A distance is accumulated over the
d coordinates with ``metric_accumulate`` and finished with ``metric_finalize``.

Distances are computed from direct differences (no ||x||^2 + ||y||^2 - 2x.y
expansion: it cancels on close pairs and flips merges). Cosine and correlation
follow scipy: correlation first centres each row (done by the caller on whole
arrays); both accumulate the dot product of the raw rows and divide by the
product of the row norms, which the caller precomputes once per row.
"""

import math

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


def metric_accumulate(code, acc, u, v, p):
    """Fold one coordinate pair (u, v) into the running accumulator."""
    if code == COSINE or code == CORRELATION:
        return acc + u * v
    diff = u - v
    if code == EUCLIDEAN or code == SQEUCLIDEAN:
        return acc + diff * diff
    a = diff if diff >= 0.0 else -diff
    if code == CITYBLOCK:
        return acc + a
    if code == CHEBYSHEV:
        return a if a > acc else acc
    return acc + a ** p  # MINKOWSKI


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
