"""``linkage`` and its seven method aliases: validate, pick the engine, canonicalise."""

import numpy as np

from ._backend import resolve_backend, to_host
from ._memory import (
    check_fits,
    condensed_bytes,
    device_available_bytes,
    host_available_bytes,
    working_bytes,
)
from ._methods import get_method
from ._progress import phase_bar, progress_enabled, track
from ._tree import merge_log_to_linkage, squared_form
from ._validation import validate_linkage_input
from .kernels import cancel


def _working_dtype(dtype):
    """The precision the ``dtype`` argument names, for the dense matrix and for
    ``_lowmem``'s summaries alike; ValueError unless None, float32 or float64."""
    if dtype is None:
        return np.dtype(np.float64)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = np.dtype(object)  # not a dtype at all: rejected below
    # compare by name: numpy treats `dtype == None` as float64
    if dt.name not in ("float32", "float64"):
        raise ValueError(
            f"dtype must be None, np.float32 or np.float64 (the working distance "
            f"matrix's precision); got {dtype!r}"
        )
    return dt


def _engine(backend):
    if backend == "cuda":
        from . import _engine_cuda as engine
    else:
        from . import _engine_cpu as engine
    return engine


def linkage(y, method="single", metric="euclidean", optimal_ordering=False, *,
            backend=None, dtype=None, low_memory=None, progress=None):
    """Perform hierarchical (agglomerative) clustering.

    Same contract as :func:`scipy.cluster.hierarchy.linkage`: the result equals
    scipy's (float64, shape (n-1, 4), scipy's cluster numbering and row order)
    on data without tied distances.

    Parameters
    ----------
    y : array_like
        A condensed distance matrix (1-D, length n(n-1)/2, as returned by
        :func:`scipy.spatial.distance.pdist`) or an (n, d) observation matrix.
        NumPy, CuPy or nested lists. Never modified.
    method : str, optional
        'single', 'complete', 'average', 'weighted', 'centroid', 'median' or
        'ward'. Centroid, median and ward need ``metric='euclidean'`` for
        observation input.
    metric : str or callable, optional
        Any :func:`scipy.spatial.distance.pdist` metric, used for observation
        input only.
    optimal_ordering : bool, optional
        Reorder leaves so that adjacent leaves are as close as possible (slow
        for large n, as in scipy).
    backend : {None, 'auto', 'cpu', 'cuda'}, keyword-only
        Where to compute. None/'auto' uses the GPU for CuPy input and for large
        NumPy input when a GPU is usable; 'cuda' without a GPU raises RuntimeError.
    dtype : {None, np.float32, np.float64}, keyword-only
        Precision of the working distance matrix. float32 halves its memory;
        ``Z`` is float64 either way, and near-tied merges may reorder.
    low_memory : {None, True, False}, keyword-only
        Compute from the observations without the distance matrix (O(n d)
        memory) for the (method, metric) pairs that allow it exactly: single
        with a compiled metric, ward/centroid/median (euclidean), average with
        sqeuclidean, cosine or correlation (see ``gpu_hclust._lowmem``). None
        takes this path when the matrix would not fit in memory, and on the
        CPU where it is also faster: single linkage (n > 256), and ward or
        average (sqeuclidean, cosine, correlation) from n >= 20 000 *
        max(1, d / 32); True requires it (ValueError for other pairs or
        condensed input); False never takes it.
    progress : {None, True, False}, keyword-only
        Progress bars per phase (distances, merges, canonicalisation) on
        stderr. None: only at a terminal, outside CI, for n >= 5000.

    Returns
    -------
    Z : ndarray
        The linkage matrix, in the input's array namespace (CuPy in, CuPy out).

    Raises
    ------
    ValueError
        Invalid method, metric, shape, length, non-finite values, dtype or backend.
    RuntimeError
        ``backend='cuda'`` without a usable GPU.
    MemoryError
        The distance matrix cannot fit in the chosen device's free memory.

    See Also
    --------
    scipy.cluster.hierarchy.linkage : the reference implementation.

    Notes
    -----
    The working distance matrix takes ``4 n (n-1)`` bytes in float64 (half in
    float32): 1.6 GB at n = 20 000, 40 GB at n = 100 000. Only one such matrix
    is held (scipy holds two for observation input).

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_hclust import linkage
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    >>> linkage(X, "single", backend="cpu")
    array([[0.        , 1.        , 1.        , 2.        ],
           [2.        , 3.        , 6.40312424, 3.        ]])
    """
    if type(y).__module__.startswith("dask."):  # a dask array (duck type: dask not imported)
        from .dask import linkage_entry

        return linkage_entry(y, method, metric, optimal_ordering, backend=backend, dtype=dtype,
                             low_memory=low_memory, progress=progress)
    spec = get_method(method)
    work_dtype = _working_dtype(dtype)
    inp = validate_linkage_input(y, spec, metric)
    chosen = resolve_backend(backend, inp.n, inp.is_cupy)
    engine = _engine(chosen)
    show = progress_enabled(progress, n=inp.n)
    phase = _phase_runner(chosen, engine, inp.n)

    if _use_low_memory(low_memory, inp, spec, chosen, engine, work_dtype):
        from ._lowmem import predict_bytes, run_vector

        form = squared_form(spec)  # the vector engines work squared, as the CUDA ones
        available, where = _available(chosen, engine)
        check_fits(predict_bytes(inp.n, inp.data.shape[1], spec, work_dtype), available, where,
                   work_dtype, what="working copy of the observations (memory-saving path)")
        with phase_bar(show, "merges (memory-saving)", inp.n - 1, unit="merge") as bar:
            a, b, h = _run_tracked(
                lambda counter: run_vector(inp.data, spec, inp.metric, chosen, work_dtype,
                                           counter=counter), show, bar, phase)
    else:
        _check_fits(inp, chosen, engine, work_dtype, extra_hint=_low_memory_hint(inp, spec))
        with phase_bar(show, "distances", 1, unit="matrix") as bar:
            form = engine.log_form(spec)
            D = phase(lambda: engine.condensed_working_matrix(inp, work_dtype, form.squared))
            bar.update(1)
        with phase_bar(show, "merges", inp.n - 1, unit="merge") as bar:
            a, b, h = _run_tracked(
                lambda counter: engine.run_family(spec, D, inp.n, counter=counter), show, bar, phase)
        del D
    with phase_bar(show, "canonicalisation", 1, unit="tree") as bar:
        Z = phase(lambda: merge_log_to_linkage(a, b, h, inp.n, spec, form))
        bar.update(1)
    if optimal_ordering:
        from ._ordering import optimal_leaf_ordering

        Z = phase(lambda: optimal_leaf_ordering(Z, to_host(inp.data), metric=inp.metric))
    if inp.is_cupy:
        import cupy

        return cupy.asarray(Z)
    return Z


# Single linkage from observations on the CPU: Prim with distances computed on
# the fly beat pdist + Prim on the matrix at n = 12 000, d = 32 (0.48 s vs
# 1.91 s, 2 cores, benchmarks/bench_lowmem.py); below a few hundred points
# both take milliseconds.
_PRIM_ON_THE_FLY_MIN_N = 256

# Reducible linkages from cluster summaries on the CPU (ward; average with
# sqeuclidean, cosine or correlation): the memory-saving chain costs about
# n^2 d, the dense path pdist (n^2 d / 2) plus a chain over an n^2/2 matrix
# that stops fitting in cache as n grows. Memory-saving / dense time of one call
# in a fresh process, 2 cores (benchmarks/results/lowmem-crossover-cpu-*.json):
# d = 32: 0.61-0.91 at n = 10 000, 0.54-0.62 at 20 000, 0.31-0.41 at 40 000;
# d = 64: 1.4-1.6 at 10 000, 0.82 at 20 000; d = 128: 1.9-2.0 at 10 000,
# 1.1-1.4 at 20 000. Hence n >= 20 000 * max(1, d/32), on the safe side.
# Provisional (one 2-core machine). Centroid (0.70 at 20 000, d = 32, but
# 1.7x slower in a run under load) and median stay memory-driven.
_SUMMARY_CHAIN_MIN_N = 20_000
_SUMMARY_CHAIN_REF_D = 32


def _memory_saving_is_faster(inp, spec, chosen):
    """True where the memory-saving path was measured faster than the dense one."""
    if chosen != "cpu":
        return False  # GPU crossover not measured: only when the matrix does not fit
    if spec.family == "mst":
        return inp.n > _PRIM_ON_THE_FLY_MIN_N
    if spec.family == "reducible":
        d = inp.data.shape[1]
        return inp.n >= _SUMMARY_CHAIN_MIN_N * max(1.0, d / _SUMMARY_CHAIN_REF_D)
    return False


def _run_tracked(run, show, bar, phase):
    """Call ``run(control)`` through ``phase`` (``_phase_runner``); with bars on,
    mirror its merge count into ``bar``."""
    control = cancel.new_control()
    return phase(lambda: run(control), control, bar if show else None)


def _phase_runner(chosen, engine, n):
    """How ``linkage`` runs a phase: ``run(func, control=None, bar=None)``.

    Where Ctrl-C stops it (``kernels.cancel.run``: a worker thread from n =
    ``WORKER_MIN_N``, always for CUDA, whose simulated launches are slow at
    any n), on the caller's GPU and CuPy stream (a new thread starts on device
    0 and the default stream), mirroring ``control[0]`` into ``bar`` if given.
    """
    size = None if chosen == "cuda" else n
    on_device = _same_device(chosen, engine)

    def run(func, control=None, bar=None):
        if bar is not None:
            return track(on_device(func), control, bar)
        return cancel.run(on_device(func), control=control, n=size)

    return run


def _same_device(chosen, engine):
    """Wrap a phase so that a worker thread uses the caller's CuPy device and stream."""
    if chosen != "cuda" or not engine.on_real_gpu():
        return lambda func: func
    import cupy

    device, stream = cupy.cuda.Device(), cupy.cuda.get_current_stream()

    def on_device(func):
        def call():
            with device, stream:
                return func()

        return call

    return on_device


def _available(chosen, engine):
    if chosen == "cuda" and engine.on_real_gpu():
        return device_available_bytes(), "GPU"
    return host_available_bytes(), "host"


def _dense_bytes(inp, where, work_dtype):
    """Bytes the dense path holds: the condensed matrix and the engines' working arrays."""
    return condensed_bytes(inp.n, work_dtype) + working_bytes(inp, where == "GPU")


def _check_fits(inp, chosen, engine, work_dtype, extra_hint=""):
    available, where = _available(chosen, engine)
    check_fits(_dense_bytes(inp, where, work_dtype), available, where, work_dtype, extra_hint)


def _low_memory_hint(inp, spec):
    from ._lowmem import supports

    if inp.kind == "observations" and supports(spec.name, inp.metric):
        return "low_memory=True (no distance matrix, O(n d) memory)"
    return ""


def _use_low_memory(low_memory, inp, spec, chosen, engine, work_dtype):
    """Decide the memory-saving path (see ``linkage``'s ``low_memory``)."""
    if low_memory is None or low_memory is False:
        if low_memory is False or inp.kind != "observations":
            return False
        from ._lowmem import supports

        if not supports(spec.name, inp.metric):
            return False
        if _memory_saving_is_faster(inp, spec, chosen):
            return True
        available, where = _available(chosen, engine)
        return available is not None and _dense_bytes(inp, where, work_dtype) > available
    if low_memory is not True:
        raise ValueError(f"low_memory must be None, True or False; got {low_memory!r}")
    if inp.kind != "observations":
        raise ValueError(
            "low_memory=True needs an (n, d) observation matrix: `y` is a condensed "
            "distance matrix, which is already the dense input. Pass the observations "
            "or low_memory=False."
        )
    return True


def _alias(name):
    def method_alias(y):
        return linkage(y, method=name)

    method_alias.__name__ = name
    method_alias.__qualname__ = name
    method_alias.__doc__ = f"""Perform {name} linkage: ``linkage(y, method='{name}')``.

    Parameters
    ----------
    y : array_like
        Condensed distance matrix or (n, d) observations.

    Returns
    -------
    Z : ndarray
        The linkage matrix.

    See Also
    --------
    linkage : the general function, with ``metric``, ``backend`` and ``dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_hclust import linkage, {name}
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [4.0, 0.0], [4.0, 2.0]])
    >>> Z = {name}(X)
    >>> Z.shape, bool(np.array_equal(Z, linkage(X, method="{name}")))
    ((3, 4), True)
    """
    return method_alias


single = _alias("single")
complete = _alias("complete")
average = _alias("average")
weighted = _alias("weighted")
centroid = _alias("centroid")
median = _alias("median")
ward = _alias("ward")
