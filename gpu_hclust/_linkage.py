"""``linkage`` and its seven method aliases: validate, pick the engine, canonicalise."""

import numpy as np

from ._backend import resolve_backend
from ._memory import check_fits, condensed_bytes, device_available_bytes, host_available_bytes
from ._methods import get_method
from ._tree import merge_log_to_linkage
from ._validation import validate_linkage_input


def _working_dtype(dtype):
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
            backend=None, dtype=None):
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
    spec = get_method(method)
    work_dtype = _working_dtype(dtype)
    inp = validate_linkage_input(y, spec, metric)
    chosen = resolve_backend(backend, inp.n, inp.is_cupy)
    engine = _engine(chosen)

    needed = condensed_bytes(inp.n, work_dtype)
    if chosen == "cuda" and engine.on_real_gpu():
        check_fits(needed, device_available_bytes(), "GPU", work_dtype)
    else:
        check_fits(needed, host_available_bytes(), "host", work_dtype)

    D = engine.condensed_working_matrix(inp, work_dtype, spec.squared)
    a, b, h = engine.run_family(spec, D, inp.n)
    del D
    Z = merge_log_to_linkage(a, b, h, inp.n, spec)
    if optimal_ordering:
        from ._ordering import optimal_leaf_ordering

        Z = optimal_leaf_ordering(Z, _host(y) if inp.kind == "observations" else _host(inp.data),
                                  metric=inp.metric)
    if inp.is_cupy:
        import cupy

        return cupy.asarray(Z)
    return Z


def _host(x):
    from ._backend import to_host

    return to_host(x)


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
    """
    return method_alias


single = _alias("single")
complete = _alias("complete")
average = _alias("average")
weighted = _alias("weighted")
centroid = _alias("centroid")
median = _alias("median")
ward = _alias("ward")
