"""Launch helpers shared by every ``cuda_*`` kernel module.

The CUDA modules import numba and numpy only, never CuPy: device arrays reach
them from the caller (CuPy arrays on a GPU, NumPy arrays under numba-cuda's
simulator) together with the array namespace ``xp`` that made them. This module
turns those into something a Numba kernel can be launched on, without a host
synchronisation:

``stream_for(xp)``
    The stream to launch on: CuPy's current stream wrapped by
    ``cuda.external_stream`` on a GPU (so kernels are ordered with the CuPy work
    around them and nothing synchronises implicitly), the simulator's default
    stream otherwise.
``as_device(x)``
    A zero-copy Numba view of a CuPy array (``cuda.as_cuda_array(x,
    sync=False)``: converting once per run, not per launch, avoids the stream
    synchronisation Numba performs on every ``__cuda_array_interface__``
    import), or the NumPy array itself in the simulator.
``blocks(count, tpb)``
    Grid size covering ``count`` items with ``tpb`` threads each, capped so
    kernels use grid-stride loops instead of huge grids.
``check_tpb(tpb, max_tpb)`` / ``default_tpb()``
    Threads per block is a launch argument (the simulator wants 32, a GPU
    128-256). Shared arrays are sized by a module constant ``MAX_TPB`` and
    kernels loop over ``cuda.blockDim.x``, so any power of two from 32 to the
    module's ``MAX_TPB`` is valid.
``index_dtype(n)``
    Stored index arrays over condensed positions use int32 while
    n(n-1)/2 < 2**31 and int64 from there on. Index *arithmetic* inside kernels
    is always int64 (``np.int64(i) * n``) whatever the stored width.
``precedes`` / ``block_min`` (device functions)
    The (distance, index) candidate order with a negative index meaning "none",
    and the block-wide minimum under it, for every module's reductions.
``condensed_index`` / ``row_base`` / ``lw_update`` (device functions)
    ``formulas.condensed_index`` and ``formulas.lw_update`` (the squared form:
    the CUDA engines work on squared distances) compiled once for every module.
``metric_*`` / ``coordinate_metric`` / ``cluster_distance`` / ``merged_*`` (device functions)
    The shared ``metrics`` and cluster-summary ``formulas`` compiled once for
    the distance, memory-saving and chain kernels.
``to_host(x)`` / ``empty_log()`` / ``start(n, code, xp, tpb, max_tpb)``
    One device-to-host copy (``kernels.host.to_host``, also used by the
    package); the merge log of a problem with fewer than two observations;
    the opening of an engine's ``run`` (int arguments, ``tpb``, stream).

Kernel-module contract (read by ``tests/test_ptx.py``)
------------------------------------------------------
Every ``kernels/cuda_*.py`` module exposes

``run(D, n, code, xp=..., tpb=...) -> (a, b, h)``
    The engine entry point (see ``kernels/__init__.py``); ``tpb=None`` means
    ``default_tpb()``.
``PTX_SIGNATURES``
    A dict ``{kernel_name: [signature, ...]}`` naming every ``@cuda.jit``
    kernel of the module (module attribute name) with the explicit signatures
    it is launched with, as Numba signature strings, e.g.
    ``"void(float64[::1], int32[::1], int64)"``. The PTX test compiles each
    ``kernel.py_func`` with each signature for compute capabilities 8.0 and
    9.0 without a GPU, so every kernel that can be launched must be listed,
    for float32 and float64 data. Decorators stay lazy (no signatures there).
"""

import numpy as np
from numba import cuda

# _cuda_rounding: imported for its CUDA overload of metrics.product (metric_*)
from . import _cuda_rounding, formulas, metrics  # noqa: F401
from ._config import NUMBA_CACHE
from .host import to_host  # noqa: F401 (re-exported: the kernels' one host copy)

# Largest threads-per-block any module supports unless it says otherwise:
# shared arrays are sized by this constant (one allocation per source line).
MAX_TPB = 1024

# Grid-stride kernels never need more blocks than this to fill a GPU (an H100
# runs 132 SMs x at most 32 resident blocks).
MAX_BLOCKS = 65535

_SIM_TPB = 32  # simulated threads are Python threads: keep blocks small
_SIM_MAX_BLOCKS = 2  # and grid-stride loops over few blocks
_GPU_TPB = 256


def simulating():
    """True when numba-cuda's simulator is active in this process."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def cooperative_blocks(kernel, args, m, tpb):
    """Blocks of a cooperative launch of ``kernel`` with ``args``: enough to
    cover ``m`` items at ``tpb`` threads per block, at most as many as can be
    resident at once (a grid-wide sync needs every block resident); one in the
    simulator, whose grid sync covers a single block."""
    want = max(1, -(-int(m) // tpb))
    if simulating():
        return 1
    compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
    return int(max(1, min(want, compiled.max_cooperative_grid_blocks(tpb))))


def run_chunks(launch_chunk, state, nlog, status, done, total, step, counter, stalled,
               no_candidate):
    """Drive a persistent kernel that logs merges in chunks until ``total`` are logged.

    ``launch_chunk(limit)`` queues one launch that returns once ``limit``
    merges are logged (or earlier: no candidate left); ``state`` is its device
    control array, ``state[nlog]`` the merges logged, ``state[status]``
    nonzero when no finite candidate is left. One host read per chunk, Ctrl-C
    between chunks (``cancel.check``), ``counter[0]`` the merges logged after
    each. ``step(done)`` gives the next chunk's merges. Raises ValueError with
    ``no_candidate(left)`` when the status says so, RuntimeError with
    ``stalled(left)`` when a chunk logs nothing (it cannot with a finite
    candidate; the loop never spins). Returns the merges logged.
    """
    from . import cancel

    while done < total:
        cancel.check()
        launch_chunk(min(total, done + max(1, int(step(done)))))
        st = to_host(state)  # the chunk's one host read
        if st[status] != 0:
            raise ValueError(no_candidate(total + 1 - int(st[nlog])))
        now = int(st[nlog])
        if now <= done:
            raise RuntimeError(stalled(total + 1 - done))
        done = now
        counter[0] = done
    return done


def default_tpb():
    """Threads per block used when the caller passes ``tpb=None``."""
    return _SIM_TPB if simulating() else _GPU_TPB


def check_tpb(tpb, max_tpb=MAX_TPB):
    """Validate a threads-per-block choice; ``None`` gives ``default_tpb()``.

    Reductions in the kernels halve the active threads each step, so ``tpb``
    must be a power of two, at least one warp and at most ``max_tpb`` (the
    size of the module's shared arrays).
    """
    if tpb is None:
        tpb = min(default_tpb(), max_tpb)
    tpb = int(tpb)
    if tpb < 32 or tpb > max_tpb or tpb & (tpb - 1):
        raise ValueError(
            f"tpb (threads per block) must be a power of two between 32 and "
            f"{max_tpb}; got {tpb}"
        )
    return tpb


def blocks(count, tpb, cap=None):
    """Number of blocks of ``tpb`` threads covering ``count`` items (1 at least).

    Capped at ``cap`` (default ``MAX_BLOCKS`` on a GPU, 2 in the simulator,
    where every block costs ``tpb`` Python threads): kernels launched this way
    must use grid-stride loops.
    """
    if cap is None:
        cap = _SIM_MAX_BLOCKS if simulating() else MAX_BLOCKS
    return int(max(1, min(cap, -(-int(count) // int(tpb)))))


def index_dtype(n):
    """Width for stored condensed-position indices of an n-point problem."""
    return np.dtype(np.int32) if n * (n - 1) // 2 < 2**31 else np.dtype(np.int64)


def stream_for(xp):
    """Stream for launches that work on arrays of namespace ``xp``.

    On a GPU this is CuPy's current stream (``xp.cuda.get_current_stream()``),
    imported into Numba by pointer; in the simulator the default stream.
    """
    if simulating() or xp is np:
        return cuda.default_stream()
    return cuda.external_stream(xp.cuda.get_current_stream().ptr)


def as_device(x):
    """Zero-copy Numba view of a device array (the array itself in the simulator)."""
    if simulating() or isinstance(x, np.ndarray):
        return x
    return cuda.as_cuda_array(x, sync=False)


def start(n, code, xp, tpb, max_tpb):
    """An engine's ``run`` arguments as Python ints, its checked ``tpb`` and stream.

    Returns ``(n, code, tpb, stream)``: ``tpb`` as ``check_tpb`` gives it,
    ``stream`` as ``stream_for(xp)`` does.
    """
    return int(n), int(code), check_tpb(tpb, max_tpb), stream_for(xp)


def empty_log():
    """The merge log ``(a, b, h)`` of a problem with fewer than two observations."""
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)


def _device(func):
    return cuda.jit(device=True, cache=NUMBA_CACHE)(func)


condensed_index = _device(formulas.condensed_index)
lw_update = _device(formulas.lw_update)
metric_accumulate = _device(metrics.metric_accumulate)
metric_finalize = _device(metrics.metric_finalize)
metric_lane = _device(metrics.metric_lane)
metric_combine = _device(metrics.metric_combine)
coordinate_metric = _device(formulas.coordinate_metric)
cluster_distance = _device(formulas.cluster_distance)
merged_coordinate = _device(formulas.merged_coordinate)
merged_extra = _device(formulas.merged_extra)


@cuda.jit(device=True, cache=NUMBA_CACHE)
def summary_distance(CT, size, extra, code, metric, mc, a, b):
    """The memory-saving key of clusters ``a`` and ``b`` from their summaries
    (columns of ``CT``, coordinates summed in order, in float64 for float32
    storage too): what one thread computes for one pair outside the tiles."""
    acc = 0.0
    for k in range(CT.shape[0]):
        acc = metric_accumulate(mc, acc, np.float64(CT[k, a]), np.float64(CT[k, b]), 0.0)
    return cluster_distance(code, metric, acc, size[a], size[b], extra[a], extra[b])


@cuda.jit(device=True, cache=NUMBA_CACHE)
def row_base(n, i):
    """``D[row_base(n, i) + j]`` is the pair (i, j) for j > i (``cpu_common.row_base``).

    The position of (i, i + 1) minus (i + 1), computed as the formula at the
    diagonal (i, i) minus i: the same integer. Arguments int64.
    """
    return condensed_index(n, i, i) - i


@cuda.jit(device=True, cache=NUMBA_CACHE)
def row_entry(D, n, row, i, k):
    """D's pair (i, k), k != i, with ``row = row_base(n, i)``: row i's contiguous
    half for k > i, the strided column half (row k's entry) for k < i."""
    if k > i:
        return D[row + k]
    return D[condensed_index(n, k, i)]


@cuda.jit(device=True, cache=NUMBA_CACHE)
def precedes(d_a, j_a, d_b, j_b):
    """(d_a, j_a) comes before (d_b, j_b): smaller distance, then smaller index.

    j < 0 means "no candidate" and comes last (even after a real candidate at
    +inf or NaN); with indices >= 0 this is the plain lexicographic order.
    """
    if j_a < 0:
        return False
    if j_b < 0:
        return True
    return d_a < d_b or (d_a == d_b and j_a < j_b)


@cuda.jit(device=True, cache=NUMBA_CACHE)
def block_min(sd, sj, d, j):
    """Block-wide minimum of every thread's (d, j) under ``precedes``; all threads get it.

    Every thread of the block must call it. ``sd``/``sj`` are shared scratch
    arrays of at least blockDim.x entries (blockDim.x a power of two). The
    closing syncthreads lets the caller reuse the scratch at once.
    """
    t = cuda.threadIdx.x
    sd[t] = d
    sj[t] = j
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if t < half and precedes(sd[t + half], sj[t + half], sd[t], sj[t]):
            sd[t] = sd[t + half]
            sj[t] = sj[t + half]
        cuda.syncthreads()
        half //= 2
    rd = sd[0]
    rj = sj[0]
    cuda.syncthreads()
    return rd, rj
