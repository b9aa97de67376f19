"""The one source of every formula the linkage kernels share.

Plain Python functions on scalars. CPU modules wrap them with ``numba.njit`` and
CUDA modules with ``numba.cuda.jit(device=True)``, so the CPU engine, the CUDA
engine and the simulator all run the same arithmetic. Nothing here may import
anything but the standard library and ``metrics`` (for its metric codes; the
same kind of module): these functions are compiled for both targets.

Two forms of the Lance-Williams update live here. ``lw_update`` works on
squared Euclidean distances for ward/centroid/median (the CUDA and
memory-saving engines: one square at the start, one root at the end).
``lw_update_scipy_form`` is scipy's arithmetic, operation for operation, on
plain distances (the CPU dense engine): equal distances then round the same
way as in scipy, so ties break the same way and the tree is scipy's.

The cluster-summary formulas (``coordinate_metric``, ``cluster_distance``,
``merged_coordinate``, ``merged_extra``) are the memory-saving engines' Lance-
Williams: how a merge updates centroids, sizes and variances, and the linkage
distance read from two summaries, for ``cpu_vector`` and ``cuda_vector`` alike.

Method codes are the integers the kernels dispatch on. The public method table
(``gpu_hclust._methods``) maps names to these codes; nothing else defines them.
"""

import math

from . import metrics  # metric codes only (plain module, compiled for both targets too)

SINGLE = 0
COMPLETE = 1
AVERAGE = 2
WEIGHTED = 3
WARD = 4
CENTROID = 5
MEDIAN = 6


def lw_update(code, d_ik, d_jk, d_ij, n_i, n_j, n_k):
    """Lance-Williams distance from cluster k to the union of clusters i and j.

    ``d_*`` are plain distances for single/complete/average/weighted and
    *squared* Euclidean distances for ward/centroid/median (the kernels square
    the matrix once and take the square root of the heights at the end). Sizes
    are floats. Squared results are clamped at zero: centroid and median can go
    a rounding error below it, and a negative squared distance has no root.
    NaN and -inf (overflow) are kept, not clamped to a plausible 0: the kernels
    then raise once no finite candidate is left.
    """
    if code == SINGLE:
        return d_ik if d_ik < d_jk else d_jk
    if code == COMPLETE:
        return d_ik if d_ik > d_jk else d_jk
    if code == AVERAGE:
        return (n_i * d_ik + n_j * d_jk) / (n_i + n_j)
    if code == WEIGHTED:
        return 0.5 * (d_ik + d_jk)
    if code == WARD:
        r = ((n_i + n_k) * d_ik + (n_j + n_k) * d_jk - n_k * d_ij) / (n_i + n_j + n_k)
    elif code == CENTROID:
        n_ij = n_i + n_j
        r = (n_i * d_ik + n_j * d_jk) / n_ij - (n_i * n_j) * d_ij / (n_ij * n_ij)
    else:  # MEDIAN
        r = 0.5 * d_ik + 0.5 * d_jk - 0.25 * d_ij
    return 0.0 if -math.inf < r < 0.0 else r


def lw_update_scipy_form(code, d_ik, d_jk, d_ij, n_i, n_j, n_k):
    """Lance-Williams update in scipy's form and operation order.

    Same arguments as ``lw_update`` except that every ``d_*`` is a plain
    (unsquared) distance for every method. ward/centroid/median square their
    arguments and take a square root per update, with the multiplications and
    additions grouped as in scipy's ``_hierarchy_distance_update.pxi``
    (left to right, sizes as exact floats). Under ties the squared form of
    ``lw_update`` can round an update one ulp the other way, which changes
    which of two equal-looking pairs merges first; this form cannot.

    No clamp: a radicand a rounding error below zero gives NaN, as in scipy.
    A NaN distance never compares below anything, so it is never merged
    (the kernels raise once no finite candidate is left).
    """
    # The first four methods repeat lw_update's lines (`duplicates` pairs the
    # two forms): a compiled kernel cannot call a plain function, so each form
    # is whole in itself.
    if code == SINGLE:
        return d_ik if d_ik < d_jk else d_jk
    if code == COMPLETE:
        return d_ik if d_ik > d_jk else d_jk
    if code == AVERAGE:
        return (n_i * d_ik + n_j * d_jk) / (n_i + n_j)
    if code == WEIGHTED:
        return 0.5 * (d_ik + d_jk)
    if code == WARD:
        t = 1.0 / (n_i + n_j + n_k)
        r = ((n_k + n_i) * t * d_ik * d_ik + (n_k + n_j) * t * d_jk * d_jk
             - n_k * t * d_ij * d_ij)
    elif code == CENTROID:
        n_ij = n_i + n_j
        r = ((n_i * d_ik * d_ik + n_j * d_jk * d_jk) - (n_i * n_j) * d_ij * d_ij / n_ij) / n_ij
    else:  # MEDIAN
        r = 0.5 * (d_ik * d_ik + d_jk * d_jk) - 0.25 * d_ij * d_ij
    return math.sqrt(r)


# --------------------------------------------------------------------------
# Cluster summaries (the memory-saving engines, CPU and CUDA): a cluster is its
# centroid, its size and, for average/sqeuclidean, its mean squared deviation.
# --------------------------------------------------------------------------

def coordinate_metric(code, metric):
    """Metric code whose ``metric_accumulate`` sums the coordinate term of a cluster distance.

    Centroid summaries need ||ca - cb||^2 (``SQEUCLIDEAN``) except average
    linkage with the cosine metric, which needs the dot product of mean unit
    vectors (``COSINE`` accumulates u * v).
    """
    if code == AVERAGE and metric == metrics.COSINE:
        return metrics.COSINE
    return metrics.SQEUCLIDEAN


def cluster_distance(code, metric, acc, s_a, s_b, e_a, e_b):
    """Linkage distance between clusters a and b from their summaries.

    ``acc`` is the accumulated coordinate term (``coordinate_metric``): the
    squared distance of the centroids, or for average/cosine the dot product of
    the mean unit vectors. ``s_*`` are sizes, ``e_*`` the mean squared deviation
    from the centroid (average/sqeuclidean only). Results, in the units of the
    dense path's working matrix (squared for ward/centroid/median):

    * ward: 2 sa sb / (sa + sb) * ||ca - cb||^2
    * centroid, median: ||ca - cb||^2 (median's "centroid" is the midpoint)
    * average, sqeuclidean: mean of ||x - y||^2 over pairs = ||ca - cb||^2 + ea + eb
    * average, cosine: mean of 1 - ux.uy over pairs = 1 - ua.ub (clamped at 0:
      duplicate rows can round a hair below it, and scipy's cosine clips there)

    Written symmetric in a and b (``e_a + e_b`` summed first), so d(a, b) and
    d(b, a) are the same float: the nearest-neighbour chain relies on it.
    """
    if code == WARD:
        return 2.0 * (s_a * s_b) / (s_a + s_b) * acc
    if code == AVERAGE:
        if metric == metrics.COSINE:
            r = 1.0 - acc
            return 0.0 if -math.inf < r < 0.0 else r
        return acc + (e_a + e_b)
    return acc  # CENTROID, MEDIAN


def merged_coordinate(code, x_a, x_b, s_a, s_b):
    """One coordinate of the merged cluster's centroid (median: the midpoint)."""
    if code == MEDIAN:
        return 0.5 * (x_a + x_b)
    return (s_a * x_a + s_b * x_b) / (s_a + s_b)


def merged_extra(code, metric, e_a, e_b, s_a, s_b, sq_ab):
    """Mean squared deviation of the merged cluster (average/sqeuclidean; else 0).

    ``sq_ab`` is ||ca - cb||^2. Pooled within-cluster variance plus the
    between-cluster term: (sa ea + sb eb) / s + sa sb / s^2 ||ca - cb||^2.
    """
    if code == AVERAGE and metric == metrics.SQEUCLIDEAN:
        s = s_a + s_b
        return (s_a * e_a + s_b * e_b) / s + (s_a * s_b) / (s * s) * sq_ab
    return 0.0


def condensed_index(n, i, j):
    """Position of the pair (i, j), i != j, in a condensed matrix of n points.

    Arguments must already be 64-bit integers in compiled code: ``n * i``
    overflows int32 from n = 46 342.
    """
    if i > j:
        i, j = j, i
    return n * i - (i * (i + 1)) // 2 + (j - i - 1)
