"""Memory-saving linkage from observations: O(n*d) memory instead of n(n-1)/2 distances.

For the (method, metric) pairs in the method table
(``_methods.Method.memory_saving_metrics``) the tree is computed exactly from
the observations alone: single linkage as a minimum spanning tree with
distances recomputed from the points; ward, centroid and median from cluster
centroids and sizes; average with sqeuclidean, cosine or correlation from
per-cluster sums (centroid and spread, or the mean unit vector). Why the other
pairs cannot, the cost and the measured speed: README, "Memory-saving path".

This module prepares the engines' input (a transposed, centred and scaled
working copy of the points, row norms, codes) and runs the backend's
memory-saving engine (``kernels.REGISTRY[backend]["vector"]``). Whether the
path is taken and whether it fits is decided before, by ``_plan.make_plan``;
its memory is ``_memory.memory_saving_bytes``.
"""

import numpy as np

from ._backend import to_host
from ._methods import METHODS
from ._tree import squared_form
from .kernels import formulas, get_engine, metrics

# Minkowski exponent: linkage passes no metric arguments, so scipy's default.
MINKOWSKI_P = 2.0


def _method_name(method):
    return getattr(method, "name", method)


def supports(method_name, metric):
    """True when the memory-saving path computes ``method`` with ``metric`` exactly.

    The method table's answer (``Method.supports_memory_saving``), for a name.

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
    spec = METHODS.get(_method_name(method_name))
    return spec is not None and spec.supports_memory_saving(metric)


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


def memory_saving_log(X, method, metric, backend="cpu", dtype=None, *, tpb=None, counter=None):
    """Merge log of a memory-saving linkage run, in the engine's units, and how to read it.

    The caller has planned the run (``_plan.make_plan``): the pair is
    supported, the backend and dtype are valid and the memory fits; none of
    that is checked again here.

    Parameters
    ----------
    X : ndarray, shape (n, d), float64, C-contiguous
        Observations (NumPy; for backend 'cuda' a CuPy array, or NumPy under the
        simulator). Never modified.
    method : gpu_hclust._methods.Method
    metric : str
        Canonical scipy metric name; ``method.supports_memory_saving(metric)``.
    backend : {'cpu', 'cuda'}
    dtype : {None, np.float32, np.float64}
        Precision of the working copy of the data (None: float64).
    tpb : int, optional, keyword-only
        Threads per block for the CUDA kernels (default: ``launch.default_tpb()``).
    counter : ndarray of int64, shape (1,), optional, keyword-only
        Receives the number of merges done as the run goes, for a progress bar
        (``kernels.cancel.run(..., bar=)``): written by the CPU engines while they
        run (their compiled steps release the GIL), and by the CUDA driver after
        each round or step. Starts at 0.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        An observation in each merged cluster, in the engine's merge order
        (single linkage: the tree's edges, in the order the engine found
        them; ``_tree`` sorts them by height).
    h : ndarray of float64, shape (n-1,)
        Merge heights of the centred, power-of-two scaled working copy,
        squared where ``method.squared`` (ward/centroid/median).
    form : gpu_hclust._tree.LogForm
        How ``gpu_hclust._tree.merge_log_to_linkage`` reads the log into ``Z``:
        squared where the method is, and the scaling's exponent, applied after
        the square root (the squared heights may exceed float64 where the
        heights do not).

    Raises
    ------
    ValueError
        All-zero rows with cosine, constant rows with correlation.
    """
    dt = np.dtype(np.float64 if dtype is None else dtype)
    spec = METHODS[_method_name(method)]
    engine = get_engine(backend, "vector")
    if backend == "cuda":
        from ._backend import device_namespace

        xp = device_namespace()
        Xd = xp.asarray(X)
        CT, norms, code, mcode, exponent = prepare_scaled(Xd, spec, metric, dt, xp)
        a, b, h = engine.run(CT, norms, code, mcode, MINKOWSKI_P, xp=xp, tpb=tpb,
                             counter=counter)
        return a, b, h, log_form(spec, exponent)
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
        engine.single(mcode, CT, norms, MINKOWSKI_P, a, b, h, counter)
    else:
        size = np.ones(n, dtype=np.float64)
        extra = np.zeros(n, dtype=np.float64)
        run = engine.generic if spec.family == "generic" else engine.reducible
        run(code, mcode, CT, size, extra, a, b, h, counter)
    return a, b, h, log_form(spec, exponent)


def log_form(spec, height_exp):
    """The memory-saving engines' ``LogForm`` (also the Dask path's): squared where
    the method is, lifted, with the scaling's exponent ``height_exp``
    (``height_exponent``) turned into the units of the heights after the root."""
    exponent = height_exp // 2 if spec.squared else height_exp  # 2e -> e for squared heights
    return squared_form(spec)._replace(exponent=exponent)


def run_vector(X, method, metric, backend="cpu", dtype=None, *, tpb=None, counter=None):
    """``memory_saving_log`` with its heights in the data's units, in the engine's form.

    For tests and benchmarks that compare engines' logs: the heights are
    squared where ``method.squared``, so they can exceed float64 where the
    linkage's heights do not (``linkage`` itself reads ``memory_saving_log``
    and never squares the scale back).

    Raises
    ------
    ValueError
        As ``memory_saving_log``; also heights beyond the float64 range.
    """
    a, b, h, form = memory_saving_log(X, method, metric, backend, dtype, tpb=tpb,
                                      counter=counter)
    spec = METHODS[_method_name(method)]
    exponent = 2 * form.exponent if form.squared else form.exponent
    return a, b, _unscale(h, exponent, spec, metric)
