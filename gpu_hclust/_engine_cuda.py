"""CUDA engine: the working condensed matrix on the device and the family kernels.

Same interface as the CPU engine (``log_form``, ``condensed_working_matrix``,
``run_family``). Device arrays are CuPy arrays on
a GPU and NumPy arrays under numba-cuda's simulator (``_backend.device_namespace()``); the kernels
themselves (``kernels/cuda_*.py``) never see CuPy, only arrays exposing
``__cuda_array_interface__``.

Distances from observations are computed on the device for the metrics in
``kernels.metrics.METRIC_CODES`` (CuPy prepares the rows, ``cuda_pdist`` writes
the condensed matrix). Any other metric, and callables, go through
``scipy.spatial.distance.pdist`` on the host and the result is copied over;
for CuPy input that means one device-to-host copy of the observations first.
"""

import numpy as np

from . import _backend
from ._tree import squared_form
from ._validation import NONFINITE as _NONFINITE_MESSAGE
from .kernels import get_engine, launch, metrics

# Host-to-device copies of host condensed matrices that must change precision
# go in chunks of this many elements, so no full-size float64 staging copy is
# ever held on the device next to the float32 matrix.
_TRANSFER_CHUNK = 1 << 26


def log_form(method):
    """Squared distances for ward/centroid/median, lifted heights (``_tree.squared_form``)."""
    return squared_form(method)


def _to_device(y, dtype, xp):
    """A new device array holding ``y`` in ``dtype`` (never aliases ``y``)."""
    if xp is np or _backend.is_cupy_array(y):
        return y.astype(dtype, copy=True)
    if np.dtype(dtype) == y.dtype:
        return xp.array(y)
    out = xp.empty(y.shape[0], dtype)
    for start in range(0, y.shape[0], _TRANSFER_CHUNK):
        stop = min(start + _TRANSFER_CHUNK, y.shape[0])
        out[start:stop] = xp.asarray(y[start:stop])
    return out


def _check_device_norms(norms, metric, xp):
    """scipy turns all-zero rows into NaN distances for cosine/correlation, which
    linkage then rejects; refuse the same input (one device-to-host read)."""
    zero = xp.flatnonzero(norms == 0)
    if zero.size:
        rows = launch.to_host(zero[:5]).tolist()
        raise ValueError(
            f"{_NONFINITE_MESSAGE} metric={metric!r} is undefined for observations whose "
            f"{'centred ' if metric == 'correlation' else ''}values are all zero "
            f"(rows {rows}{', ...' if zero.size > 5 else ''}); drop those rows or use another metric."
        )


def _device_pdist(inp, dtype, squared, xp):
    from .kernels import cuda_pdist

    n = inp.n
    code = metrics.METRIC_CODES[inp.metric]
    X = xp.ascontiguousarray(xp.asarray(inp.data), dtype=np.float64)
    if code == metrics.CORRELATION:
        X = X - X.mean(axis=1, keepdims=True)
    if code in (metrics.COSINE, metrics.CORRELATION):
        norms = cuda_pdist.row_norms(X, xp=xp)  # scipy's summation order
        _check_device_norms(norms, inp.metric, xp)
    else:
        norms = xp.zeros(1, np.float64)
    if squared and code == metrics.EUCLIDEAN:
        code, squared = metrics.SQEUCLIDEAN, False  # the kernel writes d^2 directly
    out = xp.empty(n * (n - 1) // 2, dtype)
    cuda_pdist.pdist(X, norms, out, code, p=2.0, xp=xp)
    if squared:
        xp.multiply(out, out, out=out)
    return out


def _host_pdist(inp, dtype, squared, xp):
    from scipy.spatial.distance import pdist

    y = pdist(_backend.to_host(inp.data), inp.metric)
    if not np.isfinite(y).all():
        raise ValueError(
            f"{_NONFINITE_MESSAGE} metric={inp.metric!r} produced NaN or inf distances "
            "for this input (scipy.spatial.distance.pdist); check the observations."
        )
    D = _to_device(y, dtype, xp)
    if squared:
        xp.multiply(D, D, out=D)
    return D


def condensed_working_matrix(inp, dtype, squared):
    """The working condensed matrix on the device, owned by the engine.

    Parameters
    ----------
    inp : gpu_hclust._validation.LinkageInput
        Validated input (condensed distances or observations, NumPy or CuPy).
    dtype : numpy.dtype
        float32 or float64.
    squared : bool
        Store squared distances (ward, centroid, median).

    Returns
    -------
    D : device array of ``dtype``, length n(n-1)/2
        CuPy on a GPU, NumPy under the simulator. A CuPy input's data stays on
        the device. Never aliases the input.
    """
    xp = _backend.device_namespace()
    if inp.kind == "condensed":
        with np.errstate(over="ignore"):  # float32 cast, squares: _check_finite reports
            D = _to_device(inp.data, dtype, xp)
            if squared:
                xp.multiply(D, D, out=D)
    elif isinstance(inp.metric, str) and inp.metric in metrics.METRIC_CODES:
        D = _device_pdist(inp, dtype, squared, xp)
    else:
        D = _host_pdist(inp, dtype, squared, xp)
    _check_finite(D, dtype, squared, xp)
    return D


def _check_finite(D, dtype, squared, xp):
    """scipy's ValueError for NaN/inf working distances: one reduction, one scalar read.

    The distances themselves are finite here (validated input, checked pdist
    output) unless the kernel overflowed or the cast to float32 or the squares
    of ward/centroid/median left the dtype's range. NaN propagates through max.
    """
    if D.size == 0:
        return
    top = float(launch.to_host(xp.max(D)))
    if np.isfinite(top):
        return
    if np.isnan(top):
        raise ValueError(
            f"{_NONFINITE_MESSAGE} The distances computed on the GPU hold NaN for this "
            "input; check the observations."
        )
    from ._engine_cpu import _range_error

    raise _range_error(dtype, "squared distances" if squared else "distances")


def run_family(method, D, n, counter=None):
    """Run ``method``'s family kernel on the device; returns the host merge log.

    Parameters
    ----------
    method : gpu_hclust._methods.Method
    D : device array
        From :func:`condensed_working_matrix`; the engine may overwrite it.
    n : int
    counter : ndarray of int64, shape (1,), optional
        Progress: set to n - 1 when the merge log is back (the device loops
        are seconds long at most, so they report no intermediate counts).

    Returns
    -------
    a, b : ndarray of int64
    h : ndarray of float64
        The merge log (see ``kernels/__init__.py``), on the host.
    """
    engine = get_engine("cuda", method.family)
    # Threads per block: 256 on a GPU, 32 in the simulator, within the module's cap.
    tpb = min(launch.default_tpb(), getattr(engine, "MAX_TPB", launch.MAX_TPB))
    log = engine.run(D, n, method.code, xp=_backend.device_namespace(), tpb=tpb)
    if counter is not None:
        counter[0] = n - 1
    return log
