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

from typing import Any, NamedTuple

import numpy as np

from . import _backend
from ._scaling import DEGREE, distance_exponent, observation_exponent, range_error
from ._tree import squared_form
from ._validation import NONFINITE as _NONFINITE_MESSAGE
from .kernels import get_engine, launch, metrics

# Host-to-device copies of host condensed matrices that must change precision
# go in chunks of this many elements, so no full-size float64 staging copy is
# ever held on the device next to the float32 matrix.
_TRANSFER_CHUNK = 1 << 26


class WorkingMatrix(NamedTuple):
    """The engine's working matrix and its scale.

    Attributes
    ----------
    D : device array, length n(n-1)/2
        The distances divided by ``2**exponent``, squared where asked.
    exponent : int
        Overflow scaling (``_scaling``): 0 unless the distances, or a bound on
        them from the observations, exceed ``2**SAFE_DISTANCE_EXP[dtype]``.
    """

    D: Any
    exponent: int


def log_form(method, work=None):
    """Squared distances for ward/centroid/median, lifted heights (``_tree.squared_form``).

    With the run's ``work`` (:class:`WorkingMatrix`), the form also carries
    its scaling exponent, for ``_tree`` to scale the heights back.
    """
    form = squared_form(method)
    return form if work is None else form._replace(exponent=work.exponent)


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
    """Distances computed on the device, from observations scaled into the safe range.

    The scale comes from a bound on the distances (``observation_exponent``),
    so the kernel's sums and the squares of ward/centroid/median never
    overflow and no second pass over the matrix is needed.
    """
    from .kernels import cuda_pdist

    n = inp.n
    code = metrics.METRIC_CODES[inp.metric]
    X = xp.ascontiguousarray(xp.asarray(inp.data), dtype=np.float64)
    k = observation_exponent(float(launch.to_host(xp.max(xp.abs(X)))) if X.size else 0.0,
                             X.shape[1], dtype)
    if k:
        X = X * 2.0 ** -k  # exact; a new array, the input is never written
    if code == metrics.CORRELATION:
        X = X - X.mean(axis=1, keepdims=True)
    if code in (metrics.COSINE, metrics.CORRELATION):
        norms = cuda_pdist.row_norms(X, xp=xp)  # scipy's summation order
        _check_device_norms(norms, inp.metric, xp)
    else:
        norms = xp.zeros(1, np.float64)
    direct = squared and code == metrics.EUCLIDEAN
    if direct:
        code = metrics.SQEUCLIDEAN  # the kernel writes d^2 directly (one rounding)
    out = xp.empty(n * (n - 1) // 2, dtype)
    cuda_pdist.pdist(X, norms, out, code, p=2.0, xp=xp)
    if squared and not direct:
        xp.multiply(out, out, out=out)
    exponent = DEGREE[inp.metric] * k
    _check_range(_largest(out, xp), 2 if squared else 1, exponent, dtype)
    return WorkingMatrix(out, exponent)


def _host_pdist(inp, dtype, xp):
    """Other metrics and callables: scipy's pdist on the host, copied to the device."""
    from scipy.spatial.distance import pdist

    y = pdist(_backend.to_host(inp.data), inp.metric)
    if not np.isfinite(y).all():
        raise ValueError(
            f"{_NONFINITE_MESSAGE} metric={inp.metric!r} produced NaN or inf distances "
            "for this input (scipy.spatial.distance.pdist); check the observations."
        )
    with np.errstate(over="ignore"):  # float32 cast: _check_range reports
        return _to_device(y, dtype, xp)


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
    WorkingMatrix
        ``D``: a device array of ``dtype``, length n(n-1)/2 (CuPy on a GPU,
        NumPy under the simulator; a CuPy input's data stays on the device;
        never aliases the input), holding the distances divided by
        ``2**exponent`` (squared where asked). ``exponent`` > 0 only where
        the distances, or the squares and updates of them, would overflow.

    Raises
    ------
    ValueError
        NaN distances, or distances beyond ``dtype``'s range (a float32 cast),
        with scipy's message and the cause.
    """
    xp = _backend.device_namespace()
    if inp.kind == "condensed":
        with np.errstate(over="ignore"):  # float32 cast: _check_range reports
            D = _to_device(inp.data, dtype, xp)
    elif isinstance(inp.metric, str) and inp.metric in metrics.METRIC_CODES:
        return _device_pdist(inp, dtype, squared, xp)
    else:
        D = _host_pdist(inp, dtype, xp)
    top = _largest(D, xp)
    _check_range(top, 1, 0, dtype)
    # Plain distances: into the safe range (exact), then squared, which now
    # cannot overflow.
    k = distance_exponent(top, dtype)
    if k:
        D *= 2.0 ** -k
    if squared:
        xp.multiply(D, D, out=D)
    return WorkingMatrix(D, k)


def _largest(D, xp):
    """max |D| without a temporary: two reductions, one read (NaN propagates; 0 if empty).

    Condensed input may hold negative values (scipy accepts them for some
    methods), and their squares count as much as the positive ones'.
    """
    if D.size == 0:
        return 0.0
    return float(launch.to_host(xp.stack([xp.max(D), -xp.min(D)]).max()))


def _check_range(top, power, exponent, dtype):
    """scipy's ValueError when the largest working value ``top`` is NaN, or the
    distance it stands for, ``top**(1/power) * 2**exponent``, leaves ``dtype``.

    The distances themselves are finite here (validated input, checked pdist
    output) unless the kernel overflowed or the cast to float32 did. The range
    is the CPU engine's: float32 storage holds the distances themselves.
    """
    if np.isnan(top):
        raise ValueError(
            f"{_NONFINITE_MESSAGE} The distances computed on the GPU hold NaN for this "
            "input; check the observations."
        )
    with np.errstate(over="ignore"):  # an overflow is the answer here
        distance = np.ldexp(np.sqrt(top) if power == 2 else top, exponent)
    if not distance <= np.finfo(dtype).max:
        raise range_error(dtype, "distances")


def run_family(method, work, n, counter=None):
    """Run ``method``'s family kernel on the device; returns the host merge log.

    Parameters
    ----------
    method : gpu_hclust._methods.Method
    work : WorkingMatrix
        From :func:`condensed_working_matrix`; the engine may overwrite ``work.D``.
    n : int
    counter : ndarray of int64, shape (1,), optional
        Progress: set to n - 1 when the merge log is back (the device loops
        are seconds long at most, so they report no intermediate counts).

    Returns
    -------
    a, b : ndarray of int64
    h : ndarray of float64
        The merge log (see ``kernels/__init__.py``), on the host, heights in
        the working matrix's units: ``log_form(method, work)`` says how
        ``_tree`` reads them.
    """
    engine = get_engine("cuda", method.family)
    # Threads per block: 256 on a GPU, 32 in the simulator, within the module's cap.
    tpb = min(launch.default_tpb(), getattr(engine, "MAX_TPB", launch.MAX_TPB))
    log = engine.run(work.D, n, method.code, xp=_backend.device_namespace(), tpb=tpb)
    if counter is not None:
        counter[0] = n - 1
    return log
