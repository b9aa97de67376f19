"""The CPU engine behind ``linkage(..., backend='cpu')``.

Two jobs, called by ``_linkage.linkage``: build the working condensed matrix
(a new array the kernels may overwrite; the caller's input is never touched)
and run the method's family kernel on it. The kernels live in ``kernels/cpu_*``.

The kernels follow scipy's algorithms and arithmetic (plain distances for
every method, scipy's form of the Lance-Williams updates), so that ``Z``
is scipy's also under ties: :func:`log_form` says so to ``_linkage``, which
asks for an unsquared working matrix and canonicalises accordingly.
"""

import numpy as np

from . import kernels
from ._backend import to_host
from ._scaling import (DEGREE, distance_exponent, observation_exponent, range_error,
                       unscale_heights)
from ._tree import scipy_form
from ._validation import NONFINITE as _NONFINITE
from .kernels import cpu_pdist, metrics

# Overflow: data beyond a safe range is scaled by a power of two (exact) and
# the heights scaled back; the rule and its reasons are in ``_scaling``.


def log_form(method, work=None):
    """How this engine works on ``method`` (a ``_tree.LogForm``).

    Plain distances and no height lift for every method: scipy's form, so
    ties round and break as in scipy. ``_linkage`` passes ``.squared`` to
    :func:`condensed_working_matrix` and the form to
    ``_tree.merge_log_to_linkage``. ``work`` (the run's working matrix) is
    accepted for the engines' common interface: :func:`run_family` scales
    its heights back itself, so the form has no exponent.
    """
    return scipy_form(method)


def condensed_working_matrix(inp, dtype, squared):
    """A new condensed distance matrix for the kernels to work in.

    Parameters
    ----------
    inp : gpu_hclust._validation.LinkageInput
        Validated input: condensed distances or observations (float64).
    dtype : numpy.dtype
        float32 or float64: the precision of the working matrix. Distances
        are computed in float64 and rounded once.
    squared : bool
        Store squared distances. The CPU kernels want plain ones
        (``log_form(method).squared`` is False); True is kept for callers
        that prepare a squared matrix for other engines.

    Returns
    -------
    ndarray of ``dtype``, shape (n(n-1)/2,)
        Never shares memory with ``inp.data``.

    Raises
    ------
    ValueError
        The distances are not all finite (e.g. cosine of an all-zero row, or
        overflow), with scipy's message.
    """
    data = to_host(inp.data)
    n = inp.n
    out = np.empty(n * (n - 1) // 2, dtype=dtype)
    if inp.kind == "condensed":
        # float32 (or squaring) can overflow what float64 held: counted
        if cpu_pdist.copy_cast(data, out, squared):
            raise range_error(dtype, "squared distances" if squared else "distances")
    elif not _compiled_pdist(data, _kernel_metric(inp.metric, squared), out):
        _scipy_pdist(data, inp.metric, out)
    return out


def _kernel_metric(metric, squared):
    """The metric the distance kernel should compute for linkage's metric."""
    if squared:
        # Accumulating the square directly is exact to one rounding,
        # sqrt-then-square is not (the metric is Euclidean: validated).
        return "sqeuclidean"
    if metric == "minkowski":
        # linkage passes no p, so scipy uses p = 2: the Euclidean distance.
        return "euclidean"
    return metric


def _compiled_pdist(X, metric, out):
    """Fill ``out`` with the Numba kernel; False when the metric has none.

    Cosine/correlation with a zero-norm row (scipy: nan) also answer False,
    so scipy produces its own nan and the finite check raises its error.
    """
    code = metrics.METRIC_CODES.get(metric) if isinstance(metric, str) else None
    if code is None:
        return False
    X = np.ascontiguousarray(X, dtype=np.float64)
    k = observation_exponent(float(np.abs(X).max()) if X.size else 0.0, X.shape[1], np.float64)
    if k:
        X = np.ldexp(X, -k)  # a new array: the caller's data is never written
    norms = np.ones(X.shape[0], dtype=np.float64)
    if metric in ("cosine", "correlation"):
        if metric == "correlation":
            X = X - X.mean(axis=1, keepdims=True)  # scipy's centring, O(n d)
        norms = cpu_pdist.row_norms(X)
        # scipy divides by the product of two norms: defer whenever one
        # product could be zero (or underflow to it).
        if float(norms.min()) ** 2 == 0.0:
            return False
    if cpu_pdist.pdist_into(X, code, 2.0, norms, out):
        if out.dtype == np.float32:
            raise range_error(out.dtype, "distances")
        raise ValueError(_NONFINITE)
    e = DEGREE[metric] * k
    if e:
        with np.errstate(over="ignore"):  # reported below, with the cause
            np.ldexp(out, e, out=out)
        if not cpu_pdist.all_finite(out):
            raise range_error(out.dtype, "distances")
    return True


def _scipy_pdist(X, metric, out):
    """Every other metric and callables: scipy's pdist, cast into ``out``."""
    from scipy.spatial.distance import pdist

    if out.dtype == np.float64:
        pdist(X, metric, out=out)
    else:
        full = pdist(X, metric)  # float64 temporary: scipy has no float32 output
        cpu_pdist.copy_cast(full, out, False)
        del full
    if not cpu_pdist.all_finite(out):
        raise ValueError(_NONFINITE)


def run_family(method, D, n, counter=None):
    """Run ``method``'s family kernel on the working matrix ``D`` (overwritten).

    ``counter`` (optional one-element int64 array) receives the number of
    merges done while the kernel runs, for progress bars. Returns the merge
    log ``(a, b, h)`` described in ``kernels.__init__``.
    """
    engine = kernels.get_engine("cpu", method.family)
    # Distances beyond the safe range: scaled down (exactly, in place; D is
    # the engine's own) so no update overflows, heights scaled back.
    k = distance_exponent(float(D.max()) if D.size else 0.0, D.dtype)
    if k:
        np.ldexp(D, -k, out=D)
    a, b, h = engine.run(D, n, method.code, counter=counter)
    return a, b, unscale_heights(h, k)
