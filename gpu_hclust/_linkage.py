"""``linkage`` and its seven method aliases.

The story of a run: validate -> plan (``_plan``: backend, path, dtype, memory) ->
distances -> family kernel (or the memory-saving engine) -> canonicalise (``_tree``) ->
the input's array namespace.
"""

from ._backend import simulator_enabled, to_host
from ._methods import get_method
from ._plan import make_plan, working_dtype
from ._progress import phase_bar, progress_enabled
from ._tree import merge_log_to_linkage
from ._validation import validate_linkage_input
from .kernels import cancel


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
    working_dtype(dtype)  # a bad dtype is reported before the input is scanned
    inp = validate_linkage_input(y, spec, metric)
    plan = make_plan(inp, spec, backend, dtype, low_memory)
    show = progress_enabled(progress, n=inp.n)
    phase = _phase_runner(plan.backend, inp.n)
    merge_log = _memory_saving_log if plan.memory_saving else _dense_log
    a, b, h, form = merge_log(inp, spec, plan, show, phase)
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


def _dense_log(inp, spec, plan, show, phase):
    """Distances, then the family kernel: the merge log and its ``LogForm``."""
    engine = _engine(plan.backend)
    form = engine.log_form(spec)
    with phase_bar(show, "distances", 1, unit="matrix") as bar:
        D = phase(lambda: engine.condensed_working_matrix(inp, plan.dtype, form.squared))
        bar.update(1)
    with phase_bar(show, "merges", inp.n - 1, unit="merge") as bar:
        a, b, h = phase(lambda: engine.run_family(spec, D, inp.n, counter=cancel.current()),
                        bar if show else None)
    return a, b, h, engine.log_form(spec, D)  # with the run's scale, where the engine has one


def _memory_saving_log(inp, spec, plan, show, phase):
    """The memory-saving engine from the observations: the merge log and its ``LogForm``."""
    from ._lowmem import memory_saving_log

    with phase_bar(show, "merges (memory-saving)", inp.n - 1, unit="merge") as bar:
        return phase(lambda: memory_saving_log(inp.data, spec, inp.metric, plan.backend,
                                               plan.dtype, counter=cancel.current()),
                     bar if show else None)


def _phase_runner(chosen, n):
    """How ``linkage`` runs a phase: ``run(func, bar=None)``, i.e. ``kernels.cancel.run``.

    Ctrl-C stops it (a worker thread from n = ``WORKER_MIN_N``, always for
    CUDA, whose simulated launches are slow at any n); ``func`` reaches its
    phase's control array with ``cancel.current()`` (the engines' counter),
    whose merge count is mirrored into ``bar`` if given. On the caller's GPU
    and CuPy stream (a new thread starts on device 0 and the default stream).
    """
    size = None if chosen == "cuda" else n
    on_device = _same_device(chosen)

    def run(func, bar=None):
        return cancel.run(on_device(func), n=size, bar=bar)

    return run


def _same_device(chosen):
    """Wrap a phase so that a worker thread uses the caller's CuPy device and stream."""
    if chosen != "cuda" or simulator_enabled():
        return lambda func: func
    import cupy

    device, stream = cupy.cuda.Device(), cupy.cuda.get_current_stream()

    def on_device(func):
        def call():
            with device, stream:
                return func()

        return call

    return on_device


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
