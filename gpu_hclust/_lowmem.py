"""Memory-saving linkage from observations: O(n*d) memory instead of n(n-1)/2 distances.

The dense path stores every pairwise distance (8 n(n-1)/2 bytes in float64:
40 GB at n = 100 000). For the (method, metric) pairs in :data:`SUPPORT` the
same tree can be computed exactly from the observations alone:

* **single**, any metric with a compiled kernel (``kernels.metrics.METRIC_CODES``):
  the minimum spanning tree, with distances recomputed from the points when
  needed (Prim on the CPU, Borůvka rounds on the GPU).
* **ward, centroid, median** (Euclidean, as scipy requires for observations):
  every cluster is its centroid and size; the Lance-Williams recurrences of
  these methods are exactly the distances between centroids
  (ward: 2 sa sb / (sa + sb) ||ca - cb||^2; centroid and median: ||ca - cb||^2,
  median's centroid being the midpoint of the merged ones).
* **average with sqeuclidean**: the mean squared distance between the points of
  two clusters is ||ca - cb||^2 + va + vb (v the mean squared deviation from
  the centroid), so a cluster is (centroid, size, v).
* **average with cosine**: rows normalised once; the mean cosine distance
  between two clusters is 1 - ua.ub (u the mean of the cluster's unit rows).
* **average with correlation**: correlation is the cosine distance of centred
  rows, so the cosine summary applies after centring.

Why the other pairs cannot: a linkage has a memory-saving exact path when the
distance between two clusters is a function of fixed-size summaries of the two
point sets. *Complete* linkage is the largest pairwise distance, which no
summary smaller than the points determines (each merge would need all pairs
between the two clusters again). *Weighted* linkage (WPGMA) halves the weight
of each side at every merge, so it depends on the merge history, not on the
point sets: equal clusters built in different orders have different distances.
*Average* with a metric that is not an inner product of fixed feature vectors
(euclidean, cityblock, chebyshev, minkowski: a square root, absolute values or
a maximum inside the sum) has no decomposition of the mean over pairs into
per-cluster sums. *Single* with a metric that has no compiled kernel (scipy's
other metrics, callables) would call Python for each of the ~n^2/2 pairs.
Those pairs use the dense path (``low_memory=False``) or precomputed distances.

Cost: O(n^2 d) time like the dense path (single: n^2/2 point distances;
ward/average: about 3 nearest-neighbour sweeps per merge on the CPU), and
``predict_bytes`` memory: one transposed working copy of the data plus O(n)
(at n = 10^6, d = 32: about 0.45 GB against 4 TB for the float64 matrix).

Engines: ``kernels.cpu_vector`` (Numba; each sweep on one thread or on all,
chosen by measured throughput) and ``kernels.cuda_vector`` (Numba CUDA).
Heights equal the dense path to about 1e-12 relative on data without ties;
under ties the merge order among equal heights may differ from scipy's (the
tree is still a valid one, every merge at the current minimum).
"""

import numpy as np

from ._backend import to_host
from ._linkage import _working_dtype
from ._methods import METHODS
from .kernels import formulas, metrics

# The one (method -> metrics) table of the memory-saving path. Metric names are
# scipy's canonical names (gpu_hclust._validation.canonical_metric).
SUPPORT = {
    "single": frozenset(metrics.METRIC_CODES),
    "ward": frozenset({"euclidean"}),
    "centroid": frozenset({"euclidean"}),
    "median": frozenset({"euclidean"}),
    "average": frozenset({"sqeuclidean", "cosine", "correlation"}),
    "complete": frozenset(),
    "weighted": frozenset(),
}

# Minkowski exponent: linkage passes no metric arguments, so scipy's default.
MINKOWSKI_P = 2.0

# O(n) arrays the engines hold beyond the transposed copy of the data, in bytes
# per observation (generous: slot maps, bounds, scratch, the merge log, and on
# the GPU the per-round lists and partial results).
_PER_OBSERVATION_BYTES = 192


def _method_name(method):
    return getattr(method, "name", method)


def supports(method_name, metric):
    """True when the memory-saving path computes ``method`` with ``metric`` exactly.

    Parameters
    ----------
    method_name : str or gpu_hclust._methods.Method
        scipy method name.
    metric : str or callable
        Canonical scipy metric name; callables are never supported.

    Returns
    -------
    bool

    Examples
    --------
    >>> supports("average", "cosine"), supports("average", "euclidean")
    (True, False)
    """
    if not isinstance(metric, str):
        return False
    return metric in SUPPORT.get(_method_name(method_name), frozenset())


def predict_bytes(n, d, method, dtype=None):
    """Working memory of a memory-saving run, in bytes (the input itself excluded).

    One transposed copy of the observations in ``dtype`` plus O(n) bookkeeping;
    the same on the host (CPU) and on the device (CUDA).

    Parameters
    ----------
    n, d : int
        Observations and features.
    method : str or gpu_hclust._methods.Method
    dtype : {None, np.float32, np.float64}
        Working precision (None: float64).
    """
    itemsize = np.dtype(np.float64 if dtype is None else dtype).itemsize
    return int(n) * int(d) * itemsize + int(n) * _PER_OBSERVATION_BYTES


def largest_n(available, d, dtype=None):
    """Most observations of ``d`` features a memory-saving run fits in ``available`` bytes.

    Parameters
    ----------
    available : int or None
        Free bytes (None: unknown, returns None).
    d : int
        Features per observation.
    dtype : {None, np.float32, np.float64}
        Working precision (None: float64).

    Returns
    -------
    int or None

    Examples
    --------
    >>> largest_n(16 * 2**30, 384)  # a 16 GiB GPU, 384-dimensional embeddings
    5263440
    """
    if available is None:
        return None
    return int(available) // predict_bytes(1, d, None, dtype)  # linear in n


def _check_supported(method, metric):
    if not supports(method, metric):
        name = _method_name(method)
        ok = sorted(SUPPORT.get(name, ()))
        hint = f"metric in {ok}" if ok else "no metric (use low_memory=False)"
        raise ValueError(
            f"low_memory=True cannot compute method={name!r} with metric={metric!r} exactly "
            f"without the distance matrix; it supports {hint} for this method. "
            "Pass low_memory=False (or None) to use the dense path."
        )


def _row_norms(XT, xp, metric):
    """Euclidean norms of the rows (columns of XT); zero rows make cosine undefined."""
    norms = xp.sqrt(xp.einsum("ij,ij->j", XT, XT))  # no n x d temporary (XT is float64 here)
    if bool((norms == 0).any()):
        bad = np.flatnonzero(np.asarray(to_host(norms)) == 0)[:5].tolist()
        what = "constant" if metric == "correlation" else "all-zero"
        raise ValueError(
            f"metric={metric!r} is undefined for {what} observations (rows {bad} of `y`); "
            "remove them or choose another metric."
        )
    return norms


# Metrics whose distances are unchanged by translating the data: their points
# are centred (column means subtracted) before anything is summed, so that
# sums and squares work on the spread of the data, not on its distance from
# the origin (map coordinates: 5e6 +- 1000).
_TRANSLATION_INVARIANT = frozenset({"euclidean", "sqeuclidean", "cityblock", "chebyshev",
                                    "minkowski"})
# Metrics whose distances scale with the data (degree 1) or its square (2).
# The data is multiplied by a power of two that brings its largest magnitude
# near 1: exact, so no squared term overflows (1e154) or underflows (1e-160);
# the heights are multiplied back at the end. Cosine and correlation are
# scale-invariant (rows are normalised) and are left alone.
_SCALE_DEGREE = {"euclidean": 1, "cityblock": 1, "chebyshev": 1, "minkowski": 1,
                 "sqeuclidean": 2}


def _shift_and_exponent(X, metric, xp):
    """Column means to subtract (or None) and the power of two e to divide by."""
    if metric not in _SCALE_DEGREE:
        return None, 0
    shift = X.mean(axis=0) if metric in _TRANSLATION_INVARIANT else None
    return shift, scaling_exponent(float(xp.abs(X).max()), shift, xp)


def scaling_exponent(absmax, shift, xp=np):
    """The power of two e with 2**-e * max|x - shift| <= 1, from max|x| and the shift.

    Split out so that a caller holding the data in pieces (``gpu_hclust.dask``)
    scales every piece alike from global reductions.
    """
    # max |x - shift| <= max |x| + max |shift|, both finite (validated input);
    # halved first so that the sum cannot overflow.
    big = absmax * 0.5
    if shift is not None:
        big += float(xp.abs(shift).max()) * 0.5
    if big == 0.0:
        return 0
    return int(np.frexp(big)[1]) + 1


def height_exponent(method, metric, e):
    """Power of two that undoes a scaling by ``2**-e`` on ``method``'s heights."""
    spec = METHODS[_method_name(method)]
    return (2 if spec.squared else _SCALE_DEGREE.get(metric, 0)) * e


def prepare(X, method, metric, dtype, xp=np):
    """``prepare_scaled`` without the height exponent (callers that only need
    the engine's inputs, e.g. ``benchmarks/count_gpu_work.py``)."""
    return prepare_scaled(X, method, metric, dtype, xp)[:4]


def prepare_scaled(X, method, metric, dtype, xp=np, *, scaling=None):
    """Working arrays for an engine: transposed data in ``dtype``, row norms, codes.

    Euclidean-family rows are centred and scaled by a power of two (see
    ``_SCALE_DEGREE``); correlation rows are centred, cosine/correlation rows
    of average linkage are normalised (their centroids are mean unit vectors).
    ``X`` is not modified.

    Returns
    -------
    CT : array, shape (d, n), C-contiguous, ``dtype``
    norms : array of float64, shape (n,) (ones where unused)
    code, mcode : int
        ``formulas`` method code and ``metrics`` code.
    height_exponent : int
        Multiply the engine's heights by ``2**height_exponent`` to undo the
        scaling (0 where the data was not scaled).

    ``scaling`` (keyword-only): a ``(shift, e)`` pair to use instead of the
    one computed from ``X`` (data prepared in pieces must share it).
    """
    spec = METHODS[_method_name(method)]
    mcode = metrics.METRIC_CODES[metric]
    shift, e = _shift_and_exponent(X, metric, xp) if scaling is None else scaling
    reshape = metric in ("cosine", "correlation")
    if shift is not None or e:
        # Row by row (one O(n) float64 temporary), straight into the working
        # dtype: float32 storage then holds the centred, scaled values rounded
        # once, and never overflows.
        n, d = X.shape
        CT = xp.empty((d, n), dtype=dtype)
        scale = float(np.ldexp(1.0, -e))
        for k in range(d):
            col = xp.asarray(X[:, k], dtype=np.float64)
            if shift is not None:
                col = col - shift[k]
            CT[k] = col * scale
    else:
        # A transposed copy (X is never written); straight to the working dtype
        # unless rows must be centred or normalised first, done in float64.
        CT = X.T.astype(np.float64 if reshape else dtype, order="C", copy=True)
    if metric == "correlation":
        CT -= CT.mean(axis=0)
    if reshape:
        norms = _row_norms(CT, xp, metric)
        if spec.code == formulas.AVERAGE:
            CT /= norms
            mcode = metrics.COSINE  # centred rows: correlation is their cosine
    else:
        norms = xp.ones(CT.shape[1], dtype=np.float64)
    if CT.dtype != dtype:
        CT = xp.ascontiguousarray(CT, dtype=dtype)
    return CT, norms, spec.code, mcode, height_exponent(spec, metric, e)


def _unscale(h, exponent, method, metric):
    """Heights in the data's units; ValueError where they exceed float64's range."""
    if exponent:
        with np.errstate(over="ignore"):  # reported below, with the cause
            h = np.ldexp(np.asarray(h, dtype=np.float64), exponent)
    if not np.isfinite(h).all():
        squared = " (squared, as this method's working distances are)" if METHODS[
            _method_name(method)].squared or metric == "sqeuclidean" else ""
        raise ValueError(
            f"The linkage heights of method={_method_name(method)!r}, metric={metric!r} "
            f"exceed the float64 range{squared} for this input (largest finite value "
            f"{np.finfo(np.float64).max:.3g}); rescale the observations (e.g. divide them "
            "by a power of ten) and multiply the heights back."
        )
    return h


def _mst_merge_order(a, b, h):
    """MST edges in a valid merge order: by weight (Prim emits them in tree order)."""
    order = np.argsort(h, kind="stable")
    return a[order], b[order], h[order]


def run_vector(X, method, metric, backend="cpu", dtype=None, *, tpb=None, counter=None):
    """Merge log of a memory-saving linkage run.

    Parameters
    ----------
    X : ndarray, shape (n, d), float64, C-contiguous
        Observations (NumPy; for backend 'cuda' a CuPy array, or NumPy under the
        simulator). Never modified.
    method : gpu_hclust._methods.Method
    metric : str
        Canonical scipy metric name; ``supports(method.name, metric)`` must hold.
    backend : {'cpu', 'cuda'}
    dtype : {None, np.float32, np.float64}
        Precision of the working copy of the data (None: float64).
    tpb : int, optional, keyword-only
        Threads per block for the CUDA kernels (default: ``launch.default_tpb()``).
    counter : ndarray of int64, shape (1,), optional, keyword-only
        Receives the number of merges done as the run goes, for a progress bar
        (``gpu_hclust._progress.track``): written by the CPU engines while they
        run (their compiled steps release the GIL), and by the CUDA driver after
        each round or step. Starts at 0.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        An observation in each merged cluster, in the engine's merge order.
    h : ndarray of float64, shape (n-1,)
        Merge heights, squared where ``method.squared`` (ward/centroid/median),
        so that ``gpu_hclust._tree.merge_log_to_linkage`` gives ``Z``.

    Raises
    ------
    ValueError
        Unsupported (method, metric) pair; all-zero rows with cosine, constant
        rows with correlation.
    """
    _check_supported(method, metric)
    dt = _working_dtype(dtype)
    spec = METHODS[_method_name(method)]
    if backend == "cuda":
        from ._backend import device_namespace
        from .kernels import cuda_vector

        xp = device_namespace()
        Xd = xp.asarray(X)
        CT, norms, code, mcode, exponent = prepare_scaled(Xd, spec, metric, dt, xp)
        a, b, h = cuda_vector.run(CT, norms, code, mcode, MINKOWSKI_P, xp=xp, tpb=tpb,
                                  counter=counter)
        h = _unscale(h, exponent, spec, metric)
        return _mst_merge_order(a, b, h) if spec.family == "mst" else (a, b, h)
    if backend != "cpu":
        raise ValueError(f"backend must be 'cpu' or 'cuda'; got {backend!r}")
    from .kernels import cpu_vector

    X = np.asarray(X)
    n = X.shape[0]
    CT, norms, code, mcode, exponent = prepare_scaled(X, spec, metric, dt, np)
    a = np.empty(n - 1, dtype=np.int64)
    b = np.empty(n - 1, dtype=np.int64)
    h = np.empty(n - 1, dtype=np.float64)
    if counter is None:
        counter = np.zeros(1, dtype=np.int64)
    counter[0] = 0
    if spec.family == "mst":
        cpu_vector.single(mcode, CT, norms, MINKOWSKI_P, a, b, h, counter)
        return _mst_merge_order(a, b, _unscale(h, exponent, spec, metric))
    size = np.ones(n, dtype=np.float64)
    extra = np.zeros(n, dtype=np.float64)
    engine = cpu_vector.generic if spec.family == "generic" else cpu_vector.reducible
    engine(code, mcode, CT, size, extra, a, b, h, counter)
    return a, b, _unscale(h, exponent, spec, metric)
