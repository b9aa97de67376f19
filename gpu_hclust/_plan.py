"""The linkage plan: where a run goes, on which path, in which precision, in how much memory.

One function, :func:`make_plan`, decides for a validated input everything
``linkage`` needs before it allocates: the backend, the dense path (a
condensed distance matrix) or the memory-saving one (``_lowmem``, from the
observations), the working dtype, and the memory figure (bytes needed, bytes
free, host or GPU). It raises the refusals (``MemoryError``, ``ValueError``
for an invalid ``low_memory``) and returns a :class:`LinkagePlan`, a small
frozen value that any route through the engines (``linkage``, the Dask path)
can follow.

The memory figures come from ``_memory`` (the one memory model, also behind
``gpu-hclust info``); which pairs have a memory-saving path comes from the
method table (``_methods.Method.memory_saving_metrics``).
"""

from dataclasses import dataclass

import numpy as np

from ._backend import resolve_backend, simulator_enabled
from ._crossovers import GPU_MEMORY_SAVING_MIN_N
from ._memory import (
    check_fits,
    dense_bytes,
    device_available_bytes,
    host_available_bytes,
    memory_saving_bytes,
)

# When low_memory=None, the CPU takes the memory-saving path where it was
# measured faster than the dense one, not only where the matrix does not fit
# (figures: README "Memory-saving path", benchmarks/results/lowmem-crossover-cpu-*.json).
# Single linkage: Prim with distances computed on the fly skips pdist and
# reads no matrix; below a few hundred points both take milliseconds.
_PRIM_ON_THE_FLY_MIN_N = 256
# Ward, and average with sqeuclidean/cosine/correlation: the summary chain
# costs about n^2 d against pdist (n^2 d / 2) plus a chain over an n^2/2
# matrix that falls out of cache as n grows, so the crossover grows with d.
# Centroid and median stay memory-driven (not clearly faster when measured).
_SUMMARY_CHAIN_MIN_N = 20_000
_SUMMARY_CHAIN_REF_D = 32


@dataclass(frozen=True)
class LinkagePlan:
    """What a linkage run will do, decided before anything is allocated.

    Attributes
    ----------
    backend : {'cpu', 'cuda'}
        Where the engines run.
    memory_saving : bool
        True: the memory-saving path (``_lowmem.memory_saving_log``, no distance
        matrix); False: the dense path (condensed matrix + family kernel).
    dtype : numpy.dtype
        float32 or float64: the working matrix's, or the working copy of the
        observations', precision.
    needed : int
        Bytes the chosen path holds (``_memory.dense_bytes`` or
        ``_memory.memory_saving_bytes``).
    available : int or None
        Bytes free where it runs (None: unknown, never refused).
    where : {'host', 'GPU'}
        Whose memory ``available`` is: the GPU's for a CUDA run on a device,
        the host's otherwise (the CPU, and the CUDA simulator).
    """

    backend: str
    memory_saving: bool
    dtype: np.dtype
    needed: int
    available: int | None
    where: str


def working_dtype(dtype):
    """The precision the ``dtype`` argument names: float64 for None, else float32
    or float64; ValueError for anything else."""
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


def make_plan(inp, spec, backend, dtype, low_memory):
    """Plan a linkage run on a validated input; refuse before allocating.

    Parameters
    ----------
    inp : gpu_hclust._validation.LinkageInput
        The validated input (condensed distances or observations).
    spec : gpu_hclust._methods.Method
        The linkage method.
    backend : {None, 'auto', 'cpu', 'cuda'}
        The user's choice (``_backend.resolve_backend``).
    dtype : {None, np.float32, np.float64}
        The user's working precision (:func:`working_dtype`).
    low_memory : {None, True, False}
        The user's choice of the memory-saving path (``linkage``'s parameter).

    Returns
    -------
    LinkagePlan

    Raises
    ------
    ValueError
        Invalid ``dtype``, ``backend`` or ``low_memory``; ``low_memory=True``
        with condensed input or with a pair that has no memory-saving path.
    RuntimeError
        ``backend='cuda'`` without a usable GPU.
    MemoryError
        The chosen path does not fit in the free memory (bytes needed and
        free, and the ways out).
    """
    dt = working_dtype(dtype)
    chosen = resolve_backend(backend, inp.n, inp.is_cupy)
    available, where = _available(chosen)
    on_gpu = where == "GPU"
    dense = dense_bytes(inp.n, dt, on_gpu=on_gpu, d=_features(inp), metric=inp.metric)
    if _memory_saving(low_memory, inp, spec, chosen, dense, available):
        needed = memory_saving_bytes(inp.n, inp.data.shape[1], dt)
        check_fits(needed, available, where, dt,
                   what="working copy of the observations (memory-saving path)")
        return LinkagePlan(chosen, True, dt, needed, available, where)
    check_fits(dense, available, where, dt, extra_hint=_low_memory_hint(inp, spec))
    return LinkagePlan(chosen, False, dt, dense, available, where)


def _features(inp):
    """d of observation input; 0 for a condensed matrix (``_memory``'s convention)."""
    return inp.data.shape[1] if inp.kind == "observations" else 0


def _available(chosen):
    """Free bytes and whose: the device's for CUDA on a GPU, else the host's
    (the simulator's device arrays are host memory)."""
    if chosen == "cuda" and not simulator_enabled():
        return device_available_bytes(), "GPU"
    return host_available_bytes(), "host"


def _memory_saving(low_memory, inp, spec, chosen, dense, available):
    """Take the memory-saving path? (``linkage``'s ``low_memory``)."""
    if low_memory is None or low_memory is False:
        if low_memory is False or inp.kind != "observations":
            return False
        if not spec.supports_memory_saving(inp.metric):
            return False
        if _memory_saving_is_faster(inp, spec, chosen):
            return True
        return available is not None and dense > available
    if low_memory is not True:
        raise ValueError(f"low_memory must be None, True or False; got {low_memory!r}")
    if inp.kind != "observations":
        raise ValueError(
            "low_memory=True needs an (n, d) observation matrix: `y` is a condensed "
            "distance matrix, which is already the dense input. Pass the observations "
            "or low_memory=False."
        )
    if not spec.supports_memory_saving(inp.metric):
        ok = sorted(spec.memory_saving_metrics)
        hint = f"metric in {ok}" if ok else "no metric (use low_memory=False)"
        raise ValueError(
            f"low_memory=True cannot compute method={spec.name!r} with metric={inp.metric!r} "
            f"exactly without the distance matrix; it supports {hint} for this method. "
            "Pass low_memory=False (or None) to use the dense path."
        )
    return True


def _memory_saving_is_faster(inp, spec, chosen):
    """True where the memory-saving path was measured faster than the dense one."""
    if chosen != "cpu":
        # GPU: measured per family (``_crossovers``); unmeasured, only when the
        # matrix does not fit
        min_n = GPU_MEMORY_SAVING_MIN_N.get(spec.family)
        return min_n is not None and inp.n >= min_n
    if spec.family == "mst":
        return inp.n > _PRIM_ON_THE_FLY_MIN_N
    if spec.family == "reducible":
        d = inp.data.shape[1]
        return inp.n >= _SUMMARY_CHAIN_MIN_N * max(1.0, d / _SUMMARY_CHAIN_REF_D)
    return False


def _low_memory_hint(inp, spec):
    """The memory-saving way out of a dense MemoryError, where the pair has one."""
    if inp.kind == "observations" and spec.supports_memory_saving(inp.metric):
        return "low_memory=True (no distance matrix, O(n d) memory)"
    return ""
