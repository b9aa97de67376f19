"""The CPU engine behind ``linkage(..., backend='cpu')``.

Two jobs, called by ``_linkage.linkage``: build the working condensed matrix
(a new array the kernels may overwrite; the caller's input is never touched)
and run the method's family kernel on it. The kernels live in ``kernels/cpu_*``.
"""

import numpy as np

from . import kernels
from ._backend import to_host
from .kernels import cpu_pdist, metrics

_NONFINITE = "The condensed distance matrix must contain only finite values."


def on_real_gpu():
    """The CPU engine never runs on a GPU (memory checks use host memory)."""
    return False


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
        Store squared distances (ward, centroid, median).

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
        cpu_pdist.copy_cast(data, out, squared)
        return out
    metric = inp.metric
    if squared:
        # Euclidean only (validated): square-free accumulation is exact to one
        # rounding, where sqrt-then-square is not.
        metric = "sqeuclidean"
    elif metric == "minkowski":
        # linkage passes no p, so scipy uses p = 2: the Euclidean distance.
        metric = "euclidean"
    code = metrics.METRIC_CODES.get(metric) if isinstance(metric, str) else None
    if code is not None:
        X = np.ascontiguousarray(data, dtype=np.float64)
        if metric == "correlation":
            X = X - X.mean(axis=1, keepdims=True)  # scipy's centring, O(n d)
        norms = np.ones(n, dtype=np.float64)
        if metric in ("cosine", "correlation"):
            norms = cpu_pdist.row_norms(X)
            # scipy divides by the product of norms and yields nan when it is
            # zero; defer to scipy whenever a product could be zero.
            if float(norms.min()) ** 2 == 0.0:
                code = None
        if code is not None:
            bad = cpu_pdist.pdist_into(X, code, 2.0, norms, out)
            if bad:
                raise ValueError(_NONFINITE)
            return out
    from scipy.spatial.distance import pdist

    # Every other metric, callables, and cosine with zero rows: scipy's pdist
    # (squared methods never get here: they are Euclidean-only on observations).
    if out.dtype == np.float64:
        pdist(data, inp.metric, out=out)
    else:
        full = pdist(data, inp.metric)
        cpu_pdist.copy_cast(full, out, False)
        del full
    if not cpu_pdist.all_finite(out):
        raise ValueError(_NONFINITE)
    return out


def run_family(method, D, n):
    """Run ``method``'s family kernel on the working matrix ``D`` (overwritten).

    Returns the merge log ``(a, b, h)`` described in ``kernels.__init__``.
    """
    engine = kernels.get_engine("cpu", method.family)
    return engine.run(D, n, method.code)
