"""Chain guard of the memory-saving RNN rounds: the nearest-neighbour chain on the device.

Reciprocal-nearest-neighbour rounds (``cuda_vector._rnn_rounds``) merge every
reciprocal pair at once, which is fast on clustered data but degenerates on
chain-like data (a line whose gaps grow, sorted gaps, a spiral, many exact
duplicates): one or a few pairs per round, each round ending in a host read.
When a round merges fewer than ``CHAIN_FRACTION`` of the active clusters (or
a single pair), ``hands_over`` says so and ``finish`` completes the linkage
with the nearest-neighbour chain, run inside one persistent kernel:

``chain_steps`` (cooperative launch: every block resident, grid-wide sync)
    Each chain step: (1) every thread of the grid takes a share of the active
    clusters, computes its distance to the chain's tip ``x`` (the key of
    ``rnn_scan``: ``formulas.cluster_distance`` over the summaries,
    coordinates summed in order), and keeps its first (distance, slot) under
    ``launch.precedes``; one partial per block; the thread that meets the
    chain's previous element records that distance. Grid sync. (2) Block 0
    folds the partials; as the CPU engine (``cpu_vector.nn_chain_steps``) it
    prefers the previous element on a tie, then either pushes the nearest
    cluster onto the chain or, when it is the previous element, merges the
    reciprocal pair: logged (``rep`` of both slots, the key as height), the
    smaller slot keeps the union (``formulas.merged_coordinate`` /
    ``merged_extra``, as ``merge_pairs``), the larger goes inactive and leaves
    the compact list of active slots (the last one takes its place). Grid sync.
    Control state (``state``: chain length, active count, merges logged,
    status) lives in device memory and is written only between the two syncs,
    so every thread reads the same values and leaves the loop together.

The kernel returns after ``limit`` merges (a launch does bounded work, so the
host sees Ctrl-C between chunks), when one cluster is left, or when no finite
candidate is (status 1: the host raises ValueError). The chain, the active
list and the state stay on the device between launches: one host read (the
state, 4 int64) per chunk, and a chunk is usually the whole rest of the run.

Exactness. Reducible linkages (ward; average with sqeuclidean/cosine
summaries) give the same hierarchy whichever reciprocal pairs are merged
first, so rounds followed by the chain give the tree of the CPU engine; each
height is the chain's key of the pair, computed by the same formula as the
CPU engine's (in the simulator: bitwise; on a GPU the fused multiply-adds of
``metric_accumulate`` may differ by ulps, see ``cuda_vector``). Under exact
ties the order is fixed by (distance, slot) and the compact list's order,
never by thread arrival: the same Z on every run, replay-valid.

Co-residency. A cooperative launch needs every block resident at once: the
grid is at most ``max_cooperative_grid_blocks`` of the compiled kernel (the
simulator runs cooperative grids of one block only). Shared arrays are sized
by ``MAX_TPB``. ``PTX_SIGNATURES`` lists the kernel.
"""

import math

import numpy as np
from numba import cuda

from . import formulas, launch, metrics
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE

# Threads per block at most (sizes the shared arrays).
MAX_TPB = 256

# Trigger: a round that merged fewer than this fraction of the clusters active
# at its start hands the rest to the chain (cuhc uses 1 %). Emulated ward and
# average/cosine rounds on Gaussian data (n = 5000, d = 32) merge 7-25 % per
# round down to the last few clusters; chain-like data 1 % or less (one pair
# per round on a growing-gap line; one per group of equal points). 2 % leaves
# the Gaussian rounds alone and catches data at the 1 % edge. A round of one
# pair always hands over: it is the chain's own rate, plus a host read.
CHAIN_FRACTION = 0.02
CHAIN_MIN_PAIRS = 2

# Bounded work per launch, so Ctrl-C is seen between chunks (``cancel.check``):
# at most CHUNK_WORK pair-coordinate terms (~3 chain steps per merge, each over
# the active clusters) and CHUNK_MERGES merges (each step also costs two grid
# syncs). At n = 1e5, d = 32 one launch does the whole chain.
CHUNK_WORK = 1 << 40
CHUNK_MERGES = 1 << 17

# Slots of the int64 control array ``state``.
CLEN = 0     # chain length
ACTIVE = 1   # active clusters (the first ACTIVE entries of ``cols``)
NLOG = 2     # merges logged so far (rounds and chain): the next log position
STATUS = 3   # 0 running, 1 no finite candidate left
STATE_SIZE = 4
NO_CANDIDATE = 1

_I32 = np.int32
_I64 = np.int64
_F64 = np.float64



def hands_over(merged, active):
    """True when a round that merged ``merged`` pairs out of ``active`` clusters
    (active at the round's start) should hand the rest to the chain (``finish``)."""
    return merged < max(CHAIN_MIN_PAIRS, CHAIN_FRACTION * active)


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _needs_sq(code, metric):
    """``formulas.merged_extra`` reads ||ca - cb||^2 only for average/sqeuclidean:
    elsewhere the merge skips that sequential O(d) sum (one thread)."""
    return code == formulas.AVERAGE and metric == metrics.SQEUCLIDEAN


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _decide(CT, size, extra, active, rep, cols, pos, chain, state, dprev, part_d, part_j,
            log_a, log_b, log_h, code, metric, x, prev, clen, m, sd, sj):
    """Block 0, between the grid syncs: fold the partials, then push or merge.

    Every thread of block 0 calls it (block-wide reductions and syncs inside);
    the values deciding the branches are block-uniform.
    """
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    bw = math.inf
    bj = np.int64(-1)
    for b in range(t, cuda.gridDim.x, bd):
        if launch.precedes(part_d[b], part_j[b], bw, bj):
            bw = part_d[b]
            bj = part_j[b]
    bw, y = launch.block_min(sd, sj, bw, bj)
    if y < 0 or not bw < math.inf:
        # No finite neighbour (NaN/inf keys): the chain could never close.
        if t == 0:
            state[STATUS] = NO_CANDIDATE
        return
    if prev >= 0 and dprev[0] <= bw:  # a tie goes to the previous element
        y = prev
        bw = dprev[0]
    if y != prev:
        if t == 0:
            if clen == 0:
                chain[0] = x
                clen = 1
            chain[clen] = y
            state[CLEN] = clen + 1
        return
    # x and y are reciprocal nearest neighbours: merge into the smaller slot.
    lo = min(x, y)
    hi = max(x, y)
    s_a = size[lo]
    s_b = size[hi]
    d = CT.shape[0]
    if t == 0:
        sq = 0.0
        if _needs_sq(code, metric):  # before the coordinates change
            for k in range(d):
                sq = launch.metric_accumulate(metrics.SQEUCLIDEAN, sq, _F64(CT[k, lo]), _F64(CT[k, hi]), 0.0)
        extra[lo] = launch.merged_extra(code, metric, extra[lo], extra[hi], s_a, s_b, sq)
    cuda.syncthreads()
    for k in range(t, d, bd):
        CT[k, lo] = launch.merged_coordinate(code, CT[k, lo], CT[k, hi], s_a, s_b)
    if t == 0:
        size[lo] = s_a + s_b
        active[hi] = 0
        p = pos[hi]  # the last active slot takes hi's place in the list
        last = cols[m - 1]
        cols[p] = last
        pos[last] = p
        k = state[NLOG]
        log_a[k] = rep[lo]
        log_b[k] = rep[hi]
        log_h[k] = bw
        state[NLOG] = k + 1
        state[ACTIVE] = m - 1
        state[CLEN] = clen - 2


@cuda.jit(cache=NUMBA_CACHE)
def chain_steps(CT, size, extra, active, rep, cols, pos, chain, state, dprev, part_d, part_j,
                log_a, log_b, log_h, limit, code, metric):
    """Nearest-neighbour chain steps until ``state[NLOG] == limit``, one cluster
    is left, or no finite candidate is (``state[STATUS]``). Cooperative launch:
    at most ``max_cooperative_grid_blocks`` blocks; part_d/part_j hold one
    entry per block; dprev one float64. See the module docstring.
    Its scan is a hot-loop variant of ``cuda_vector_generic``'s rescan phase
    (one tip, the whole grid, grid syncs instead of a per-row block).
    """
    grid = cuda.cg.this_grid()
    sd = cuda.shared.array(MAX_TPB, np.float64)
    sj = cuda.shared.array(MAX_TPB, np.int64)
    t = cuda.threadIdx.x
    blk = cuda.blockIdx.x
    mc = launch.coordinate_metric(code, metric)
    while state[STATUS] == 0 and state[NLOG] < limit and state[ACTIVE] > 1:
        clen = state[CLEN]
        m = state[ACTIVE]
        x = np.int64(chain[clen - 1]) if clen > 0 else np.int64(cols[0])
        prev = np.int64(chain[clen - 2]) if clen > 1 else np.int64(-1)
        bw = math.inf
        bj = np.int64(-1)
        for p in range(cuda.grid(1), m, cuda.gridsize(1)):
            j = np.int64(cols[p])
            if j == x:
                continue
            w = launch.summary_distance(CT, size, extra, code, metric, mc, x, j)
            if j == prev:
                dprev[0] = w
            if launch.precedes(w, j, bw, bj):
                bw = w
                bj = j
        bw, bj = launch.block_min(sd, sj, bw, bj)
        if t == 0:
            part_d[blk] = bw
            part_j[blk] = bj
        grid.sync()
        if blk == 0:
            _decide(CT, size, extra, active, rep, cols, pos, chain, state, dprev, part_d,
                    part_j, log_a, log_b, log_h, code, metric, x, prev, clen, m, sd, sj)
        grid.sync()


_FLOATS = ("float32", "float64")
_A32 = "int32[::1]"
_A64 = "int64[::1]"
_AF = "float64[::1]"
_A8 = "int8[::1]"
PTX_SIGNATURES = {
    "chain_steps": [
        f"void({dt}[:, ::1], {_AF}, {_AF}, {_A8}, {_A64}, {_A32}, {_A32}, {_A32}, {_A64}, "
        f"{_AF}, {_AF}, {_A64}, {_A64}, {_A64}, {_AF}, int64, int64, int64)"
        for dt in _FLOATS
    ],
}


# --------------------------------------------------------------------------
# Drivers
# --------------------------------------------------------------------------

def chunk_merges(m, d):
    """Merges one ``chain_steps`` launch may do with m active clusters of d coordinates."""
    return int(max(1, min(CHUNK_MERGES, CHUNK_WORK // max(1, 3 * m * d))))


def finish(dv, m, code, metric, xp, tpb, stream, counter, chunk=None):
    """Complete a reducible memory-saving linkage with the device-side nearest-neighbour chain.

    Parameters
    ----------
    dv : dict of device arrays
        The round state of ``cuda_vector._rnn_rounds`` (Numba views, or NumPy
        in the simulator): ``CT`` (d, n) centroids (or mean unit vectors),
        ``size``, ``extra`` (float64, n), ``active`` (int8, n), ``rep``
        (int64, n: an observation of each slot's cluster), ``log_a``,
        ``log_b`` (int64, n - 1), ``log_h`` (float64, n - 1). Updated in
        place: the merges go to log positions n - m .. n - 2.
    m : int
        Active clusters (``active`` has exactly m nonzero entries), >= 1.
    code, metric : int
        ``formulas`` method code (WARD or AVERAGE) and ``metrics`` code.
    xp : module
        Namespace of the arrays (CuPy, or NumPy in the simulator).
    tpb : int
        Threads per block (power of two, 32..MAX_TPB).
    stream
        Stream to launch on (``launch.stream_for(xp)``).
    counter : ndarray of int64, shape (1,)
        Host array receiving the number of merges done, after each chunk.
    chunk : int, optional
        Merges per launch (default ``chunk_merges``; tests use 1 to check that
        the chain resumes across launches).

    Returns
    -------
    int
        Merges done here (m - 1), in merge order after the rounds' (each its
        own round for ``_rnn_rounds``' log order).

    Raises
    ------
    ValueError
        No finite candidate left (NaN/inf keys).
    """
    tpb = launch.check_tpb(tpb, MAX_TPB)
    m = int(m)
    active = xp.asarray(dv["active"])
    n = int(active.shape[0])
    d = int(dv["CT"].shape[0])
    if m <= 1:
        return 0
    # Compact list of the active slots, ascending, without a host read: each
    # active slot goes to its rank, every inactive one to the spare entry m.
    alive = active != 0
    target = xp.where(alive, xp.cumsum(alive, dtype=_I64) - 1, m)
    cols = xp.empty(m + 1, _I32)
    cols[target] = xp.arange(n, dtype=_I32)
    pos = target.astype(_I32)  # slot -> position in cols (inactive: m, never read)
    chain = xp.empty(m, _I32)
    state = xp.asarray(np.array([0, m, n - m, 0], dtype=_I64))
    dprev = xp.zeros(1, _F64)
    own = {k: launch.as_device(v) for k, v in dict(
        cols=cols, pos=pos, chain=chain, state=state, dprev=dprev).items()}
    C, M = _I64(code), _I64(metric)

    def args(limit, part_d, part_j):
        return (dv["CT"], dv["size"], dv["extra"], dv["active"], dv["rep"], own["cols"],
                own["pos"], own["chain"], own["state"], own["dprev"], part_d, part_j,
                dv["log_a"], dv["log_b"], dv["log_h"], _I64(limit), C, M)

    probe = xp.empty(1, _F64), xp.empty(1, _I64)
    probe_args = args(0, *(launch.as_device(p) for p in probe))
    blocks = launch.cooperative_blocks(chain_steps, probe_args, m, tpb)
    part_d = launch.as_device(xp.empty(blocks, _F64))
    part_j = launch.as_device(xp.empty(blocks, _I64))
    launch.run_chunks(
        lambda limit: chain_steps[blocks, tpb, stream](*args(limit, part_d, part_j)),
        state, NLOG, STATUS, n - m, n - 1,
        lambda done: chunk_merges(n - done, d) if chunk is None else chunk, counter,
        lambda left: f"cuda_chain.chain_steps made no progress at {left} clusters",
        lambda left: (f"{NO_FINITE_CANDIDATE} (memory-saving linkage on the GPU, "
                      f"nearest-neighbour chain, {left} clusters left: NaN distances)"))
    return m - 1


def run(CT, code, metric, xp=np, tpb=None, counter=None):
    """Merge log of a reducible memory-saving linkage by the device-side chain alone.

    The chain from the initial summaries (no rounds): the same engine as
    ``finish`` handed the whole problem, for tests and comparisons.

    Parameters
    ----------
    CT : device array, shape (d, n), float32 or float64, C-contiguous
        Prepared observations, transposed (``gpu_hclust._lowmem.prepare``).
        Overwritten.
    code, metric : int
        ``formulas.WARD`` or ``formulas.AVERAGE``; the ``metrics`` code
        (average: SQEUCLIDEAN or COSINE, the summary in use).
    xp : module
        Namespace of ``CT`` (CuPy, or NumPy in the simulator).
    tpb : int, optional
        Threads per block (default ``launch.default_tpb()``).
    counter : ndarray of int64, shape (1,), optional
        Receives the merges done after each chunk.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
    h : ndarray of float64, shape (n-1,)
        The merge log in merge order (host arrays); heights squared for ward.
    """
    if code not in (formulas.WARD, formulas.AVERAGE):
        raise ValueError(f"cuda_chain runs reducible summaries only (ward, average); got "
                         f"method code {code}")
    tpb = launch.check_tpb(tpb, MAX_TPB)
    stream = launch.stream_for(xp)
    counter = np.zeros(1, dtype=np.int64) if counter is None else counter
    d, n = CT.shape
    if n < 2:
        return launch.empty_log()
    host = dict(size=xp.ones(n, _F64), extra=xp.zeros(n, _F64), active=xp.ones(n, np.int8),
                rep=xp.arange(n, dtype=_I64), log_a=xp.empty(n - 1, _I64),
                log_b=xp.empty(n - 1, _I64), log_h=xp.empty(n - 1, _F64))
    dv = {k: launch.as_device(v) for k, v in host.items()}
    dv["CT"] = launch.as_device(CT)
    finish(dv, n, code, metric, xp, tpb, stream, counter)
    return (launch.to_host(host["log_a"]), launch.to_host(host["log_b"]),
            launch.to_host(host["log_h"]))
