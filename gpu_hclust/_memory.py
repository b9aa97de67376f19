"""Predict a run's memory before allocating, and refuse clearly when it cannot fit."""

import os

import numpy as np


def condensed_bytes(n, dtype):
    """Bytes of one condensed distance matrix of n points."""
    return n * (n - 1) // 2 * np.dtype(dtype).itemsize


# O(n) scratch of the engines beyond the matrix, bytes per observation (generous:
# nearest-neighbour caches, Borůvka component arrays, the merge log).
_SCRATCH_PER_OBSERVATION = 600


def _extra_bytes(n, on_gpu, d, metric):
    """The dense path's bytes beyond the matrix for n observations of d features (d = 0:
    condensed input).

    On the GPU the observations are prepared in float64 on the device (a second
    copy for correlation's centring). On the host that copy already exists.
    """
    extra = n * _SCRATCH_PER_OBSERVATION
    if on_gpu and d:
        copies = 2 if metric == "correlation" else 1
        extra += copies * n * d * 8
    return extra


def dense_bytes(n, dtype, *, on_gpu=False, d=0, metric="euclidean"):
    """Bytes the dense path holds: the condensed matrix and the engines' working arrays.

    The figure ``linkage`` compares with the free memory before allocating
    (``gpu_hclust._plan.make_plan``).

    Parameters
    ----------
    n : int
        Observations.
    dtype : {np.float32, np.float64}
        Precision of the working matrix.
    on_gpu : bool
        The run is on a CUDA device.
    d : int
        Features of observation input; 0 for a condensed matrix.
    metric : str
        Metric of observation input (correlation prepares two copies on the GPU).

    Examples
    --------
    >>> dense_bytes(20_000, np.float64)  # 1.6 GB matrix + 600 B per observation
    1611920000
    """
    return condensed_bytes(n, dtype) + _extra_bytes(n, on_gpu, d, metric)


def largest_n(available, dtype, *, on_gpu=False, d=0, metric="euclidean"):
    """Most observations whose dense run fits in ``available`` bytes (None when unknown).

    The largest n with ``dense_bytes(n, ...) <= available``: exactly the
    boundary of the check ``linkage`` makes before allocating the matrix.

    Parameters
    ----------
    available : int or None
        Free bytes.
    dtype, on_gpu, d, metric
        As for :func:`dense_bytes`.

    Returns
    -------
    int or None

    Examples
    --------
    >>> largest_n(80 * 10**9, np.float64)  # 80 GB: a condensed float64 matrix of ~141k points
    141346
    >>> largest_n(80 * 10**9, np.float32)
    199850
    """
    if available is None:
        return None

    def fits(n):
        return dense_bytes(n, dtype, on_gpu=on_gpu, d=d, metric=metric) <= available

    if not fits(1):
        return 0
    lo, hi = 1, 2  # invariant: lo fits, hi does not (once the doubling stops)
    while fits(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


# O(n) arrays the memory-saving engines hold beyond the transposed copy of the
# data, in bytes per observation (generous: slot maps, bounds, scratch, the
# merge log, and on the GPU the per-round lists and partial results).
_SAVING_PER_OBSERVATION = 192


def memory_saving_bytes(n, d, dtype=None):
    """Working memory of a memory-saving run (``_lowmem``), in bytes (the input excluded).

    One transposed copy of the observations in ``dtype`` plus O(n) bookkeeping;
    the same on the host (CPU) and on the device (CUDA), for every method.

    Parameters
    ----------
    n, d : int
        Observations and features.
    dtype : {None, np.float32, np.float64}
        Working precision (None: float64).

    Examples
    --------
    >>> memory_saving_bytes(10**6, 32)  # 256 MB of points + 192 B per observation
    448000000
    """
    itemsize = np.dtype(np.float64 if dtype is None else dtype).itemsize
    return int(n) * int(d) * itemsize + int(n) * _SAVING_PER_OBSERVATION


def memory_saving_largest_n(available, d, dtype=None):
    """Most observations of ``d`` features a memory-saving run fits in ``available`` bytes.

    The largest n with ``memory_saving_bytes(n, d, dtype) <= available``: the
    boundary of the check ``linkage`` makes on that path.

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
    >>> memory_saving_largest_n(16 * 2**30, 384)  # a 16 GiB GPU, 384-dimensional embeddings
    5263440
    """
    if available is None:
        return None
    return int(available) // memory_saving_bytes(1, d, dtype)  # linear in n


def _fmt(nbytes):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes} B"
        nbytes /= 1024


def host_available_bytes():
    """Memory the OS can give this process now, or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_available_bytes():
    """Free memory on the current CUDA device (CuPy's pool counted as free)."""
    import cupy

    free, _total = cupy.cuda.runtime.memGetInfo()
    pool = cupy.get_default_memory_pool()
    return free + pool.free_bytes()


def check_fits(needed, available, where, dtype, extra_hint="", what="distance matrix"):
    """Raise MemoryError naming the size and the ways out if ``needed`` > ``available``.

    ``what`` names the dominant allocation (the one float32 halves).
    """
    if available is None or needed <= available:
        return
    ways = [extra_hint] if extra_hint else []
    if np.dtype(dtype) != np.float32:
        ways.append(f"dtype=np.float32 (halves the {what})")
    ways.append("fewer observations")
    if where == "GPU":
        ways.append('backend="cpu"')
    raise MemoryError(
        f"linkage needs {_fmt(needed)} of {where} memory for its {what} but "
        f"only {_fmt(available)} is free. Ways out: {'; '.join(ways)}."
    )
