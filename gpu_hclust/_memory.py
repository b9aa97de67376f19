"""Predict a run's memory before allocating, and refuse clearly when it cannot fit."""

import os

import numpy as np


def condensed_bytes(n, dtype):
    """Bytes of one condensed distance matrix of n points."""
    return n * (n - 1) // 2 * np.dtype(dtype).itemsize


# O(n) scratch of the engines beyond the matrix, bytes per observation (generous:
# nearest-neighbour caches, Borůvka component arrays, the merge log).
_SCRATCH_PER_OBSERVATION = 600


def working_bytes(inp, on_gpu):
    """Bytes a dense run holds besides the condensed matrix.

    On the GPU the observations are prepared in float64 on the device (a second
    copy for correlation's centring). On the host that copy already exists.
    """
    extra = inp.n * _SCRATCH_PER_OBSERVATION
    if on_gpu and inp.kind == "observations":
        copies = 2 if inp.metric == "correlation" else 1
        extra += copies * inp.data.size * 8
    return extra


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
