"""Chain guard of the dense RNN rounds: the nearest-neighbour chain on the condensed matrix.

``cuda_reducible``'s rounds merge every reciprocal nearest-neighbour pair at
once, with one host read per round. On chain-like data (a line whose gaps
grow, sorted gaps, a spiral, groups of duplicates) a round merges one or two
pairs, so a linkage takes ~n/2 rounds of launches and host reads. When a round
merges few pairs (``cuda_chain.hands_over``, the one trigger rule of both
engines), ``finish`` completes the linkage with the nearest-neighbour chain
inside one persistent kernel, on the same condensed matrix ``D``:

``dense_chain_steps`` (cooperative launch: every block resident, grid-wide sync)
    Phase 1, the scan. The chain's tip ``x`` (a new chain starts at the lowest
    active slot, as the CPU engine does) against every active slot: each
    thread of the grid takes a share of the sorted active list, reads
    ``D[x, k]`` (the contiguous half ``D[row_base(x) + k]`` for k > x, the
    strided half for k < x, as ``cuda_reducible.rescan_rows``) and keeps its
    first (distance, slot) under ``launch.precedes``; one partial per block.
    Every thread also reads what a merge with the previous chain element
    ``p`` would need: ``D[x, p]`` and both sizes. Grid sync.
    Phase 2, the decision, taken by every block from the same partials (so
    no extra sync is needed to broadcast it). The previous element wins an
    exact tie (as ``cpu_nnchain`` and ``cuda_chain``). Push: the nearest slot
    goes on the chain. Merge (the nearest is ``p``: a reciprocal pair): the
    grid writes the Lance-Williams distance of the union to every other
    active column, ``launch.lw_update`` with the argument order of
    ``cuda_reducible.update_pairs``' non-nested branch (kept slot ``lo``
    first); the same threads copy the active list without the dead slot
    ``hi`` into the second buffer (the lists alternate with the parity of the
    active count, so the copy never overwrites what is being read); one
    thread logs ``(lo, hi, D[lo, hi])``, sets ``size[lo]`` and the control
    state. Grid sync.
    Each written entry ``D[lo, k]`` belongs to one thread; the sizes of ``lo``
    and ``hi`` were read in phase 1, so the write of ``size[lo]`` races with
    nothing. Control state (``state``: chain length, active count, merges
    logged, status) is written only in phase 2, so every thread reads the
    same values at the top of the loop and all leave it together.

The kernel returns after ``limit`` merges (bounded work per launch: the host
sees Ctrl-C between chunks), when one cluster is left, or when no finite
candidate is (status ``NO_CANDIDATE``: the host raises ValueError). The chain,
the lists and the state stay on the device between launches: one host read
(the state, 4 int64) per chunk, and a chunk is usually the rest of the run.

Exactness. complete, average, weighted and ward are reducible: the hierarchy
does not depend on which reciprocal pairs merge first, so rounds followed by
the chain give the tree of the CPU engine and scipy on tie-free data (after
``_tree``'s height sort); the chain reads and writes the same stored (rounded)
matrix the rounds do, with the same update formula. Under exact ties the
choices are fixed by the (distance, slot) order and the preference for the
previous element, never by thread arrival: the same Z on every run, and every
merge is at the current minimum (replay-valid). Along a chain the distance
strictly decreases (a tie goes to the previous element), so a chain never
revisits a slot; with NaN keys that order breaks, and a chain that would
outgrow the active count sets ``NO_CANDIDATE`` instead of spinning.

Co-residency. The grid is at most ``max_cooperative_grid_blocks`` of the
compiled kernel (the simulator runs cooperative grids of one block only);
shared arrays are sized by ``MAX_TPB``. ``PTX_SIGNATURES`` lists the kernel.
"""

import math

import numpy as np
from numba import cuda, float64, int64

from . import formulas, launch
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE
from .launch import block_min, condensed_index, lw_update, precedes, row_base, row_entry

# Threads per block at most (sizes the shared arrays). A cooperative grid must
# be resident as a whole: 256 keeps several blocks per SM (as cuda_chain).
MAX_TPB = 256

# Bounded work per launch, so the host sees Ctrl-C between chunks. A merge
# costs ~3 chain steps of two grid syncs each, plus a scan and an update over
# the active slots: CHUNK_MERGES merges is well under a second of syncs on a
# current GPU (an estimate, not a measurement), and CHUNK_WORK caps the matrix
# entries touched (~4 per active slot per merge) when many slots are active.
CHUNK_MERGES = 1 << 14
CHUNK_WORK = 1 << 34

# Slots of the int64 control array ``state``.
CLEN = 0     # chain length
ACTIVE = 1   # active clusters: the first ACTIVE entries of cols[ACTIVE & 1]
NLOG = 2     # merges logged so far (rounds and chain): the next log position
STATUS = 3   # 0 running, NO_CANDIDATE when no finite candidate is left
STATE_SIZE = 4
NO_CANDIDATE = 1

_I64 = np.int64
_F64 = np.float64


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _merge(D, n, code, cur, nxt, m, size, lo, hi, dij, s_lo, s_hi):
    """Phase 2 of a merge, every thread of the grid: Lance-Williams rows and
    the active list without ``hi`` (``cur`` sorted ascending -> ``nxt``)."""
    for p in range(cuda.grid(1), m, cuda.gridsize(1)):
        k = cur[p]
        if k != lo and k != hi:
            pik = condensed_index(n, lo, k)
            D[pik] = lw_update(code, D[pik], D[condensed_index(n, hi, k)], dij, s_lo, s_hi,
                               size[k])
        if p < m - 1:
            nxt[p] = k if k < hi else cur[p + 1]


@cuda.jit(cache=NUMBA_CACHE)
def dense_chain_steps(D, n, code, cols, size, chain, state, part_d, part_j,
                      log_a, log_b, log_h, limit):
    """Nearest-neighbour chain steps on condensed ``D`` until ``state[NLOG] ==
    limit``, one cluster is left, or no finite candidate is (``state[STATUS]``).

    Cooperative launch of at most ``max_cooperative_grid_blocks`` blocks.
    ``cols`` (2, capacity): the sorted active list in row ``state[ACTIVE] & 1``;
    ``chain`` holds up to capacity slots; ``part_d``/``part_j`` one entry per
    block. Its scan is a hot-loop variant of ``cuda_reducible.rescan_rows``'
    (one row, the whole grid). See the module docstring.
    """
    grid = cuda.cg.this_grid()
    sd = cuda.shared.array(MAX_TPB, float64)
    sj = cuda.shared.array(MAX_TPB, int64)
    t = cuda.threadIdx.x
    blk = cuda.blockIdx.x
    while state[STATUS] == 0 and state[NLOG] < limit and state[ACTIVE] > 1:
        clen = state[CLEN]
        m = state[ACTIVE]
        cur = cols[m & 1]
        x = chain[clen - 1] if clen > 0 else cur[0]
        prev = chain[clen - 2] if clen > 1 else int64(-1)
        # Phase 1: the tip's row, and what a merge with prev reads.
        row = row_base(n, x)
        bd = math.inf
        bk = int64(-1)
        for p in range(cuda.grid(1), m, cuda.gridsize(1)):
            k = cur[p]
            if k != x:
                d = row_entry(D, n, row, x, k)
                if precedes(d, k, bd, bk):
                    bd = d
                    bk = k
        bd, bk = block_min(sd, sj, bd, bk)
        if t == 0:
            part_d[blk] = bd
            part_j[blk] = bk
        dxp = D[0]  # typed as D's element; the real value below when prev exists
        s_x = size[x]
        s_p = 0.0
        if prev >= 0:
            dxp = D[condensed_index(n, x, prev)]
            s_p = size[prev]
        grid.sync()
        # Phase 2: every block folds the same partials to the same decision
        # (a one-block grid has its result already: the branch is grid-uniform).
        if cuda.gridDim.x > 1:
            bd = math.inf
            bk = int64(-1)
            for b in range(t, cuda.gridDim.x, cuda.blockDim.x):
                if precedes(part_d[b], part_j[b], bd, bk):
                    bd = part_d[b]
                    bk = part_j[b]
            bd, bk = block_min(sd, sj, bd, bk)
        y = bk
        if prev >= 0 and dxp <= bd:  # an exact tie goes to the previous element
            y = prev
            bd = dxp
        lead = blk == 0 and t == 0
        if y < 0 or not bd < math.inf or (y != prev and clen + 1 > m):
            # No finite candidate (NaN/inf keys); or a chain longer than the
            # active clusters, possible only when NaN breaks the key order.
            if lead:
                state[STATUS] = NO_CANDIDATE
        elif y != prev:
            if lead:
                if clen == 0:
                    chain[0] = x
                    clen = 1
                chain[clen] = y
                state[CLEN] = clen + 1
        else:
            # x and prev are reciprocal nearest neighbours: the union keeps the smaller slot.
            lo = min(x, prev)
            hi = max(x, prev)
            s_lo = s_x if x == lo else s_p
            s_hi = s_p if x == lo else s_x
            _merge(D, n, code, cur, cols[(m - 1) & 1], m, size, lo, hi, dxp, s_lo, s_hi)
            if lead:
                size[lo] = s_lo + s_hi
                q = state[NLOG]
                log_a[q] = lo
                log_b[q] = hi
                log_h[q] = dxp
                state[NLOG] = q + 1
                state[ACTIVE] = m - 1
                state[CLEN] = clen - 2
        grid.sync()


def _sig(D, i, a2, f, a, st):
    return f"void({D}, {i}, {i}, {a2}, {f}, {a}, {st}, {f}, {a}, {a}, {a}, {f}, {i})"


# Every kernel with explicit signatures, for the PTX compilation test.
PTX_SIGNATURES = {
    "dense_chain_steps": [
        _sig(f"{dt}[::1]", "int64", "int64[:, ::1]", "float64[::1]", "int64[::1]", "int64[::1]")
        for dt in ("float32", "float64")
    ],
}


# --------------------------------------------------------------------------
# Drivers
# --------------------------------------------------------------------------

def chunk_merges(m):
    """Merges one ``dense_chain_steps`` launch may do with m active clusters."""
    return int(max(1, min(CHUNK_MERGES, CHUNK_WORK // max(1, 4 * m))))


def finish(D, n, alist, m, size, log_a, log_b, log_h, merges, code, xp, tpb, stream,
           counter, chunk=None, slots=None):
    """Complete a dense reducible linkage with the device-side nearest-neighbour chain.

    Continues from any state of ``cuda_reducible.run``'s rounds in which
    ``D`` and ``size`` hold every merge logged so far.

    Parameters
    ----------
    D : device array, shape (n*(n-1)/2,)
        Condensed working distances, float32 or float64 (squared for ward),
        with every merge so far applied. Updated in place.
    n : int
        Number of observations (slots).
    alist : device array of int64
        Its first ``m`` entries are the active slots, in any order (read only:
        the chain keeps its own sorted copy).
    m : int
        Number of active clusters, >= 1.
    size : device array of float64, shape (n,)
        Cluster sizes per slot. Updated in place.
    log_a, log_b : device arrays of int64, shape (n-1,)
    log_h : device array of float64, shape (n-1,)
        The merge log; positions ``merges`` .. ``merges + m - 2`` are written
        (slot, slot, height in D's units), in merge order.
    merges : int
        Merges logged so far; ``merges + m == n`` for a consistent state.
    code : int
        ``formulas`` method code: COMPLETE, AVERAGE, WEIGHTED or WARD.
    xp : module
        Namespace of the arrays (CuPy, or NumPy in the simulator).
    tpb : int
        Threads per block, a power of two from 32; values above ``MAX_TPB``
        are lowered to it (the cooperative grid must fit on the device).
    stream
        Stream to launch on (``launch.stream_for(xp)``).
    counter : ndarray of int64, shape (1,)
        Host array receiving the merges logged so far (rounds and chain)
        after each chunk.
    chunk : int, optional
        Merges per launch (default ``chunk_merges``; tests use small values
        to check that the chain resumes across launches).
    slots : int, optional
        D's dimension when the rounds compacted it (slots renumbered; the log
        then gets slots of that numbering, which the caller maps back);
        default ``n``.

    Returns
    -------
    int
        Merges logged here (``m - 1``); each is its own round for the caller's
        within-round ordering.

    Raises
    ------
    ValueError
        No finite candidate left (NaN/inf distances).
    """
    tpb = launch.check_tpb(min(int(tpb), MAX_TPB), MAX_TPB)
    n, m, merges, code = int(n), int(m), int(merges), int(code)
    if m <= 1:
        return 0
    if merges + m != n:
        raise ValueError(f"cuda_dense_chain.finish: merges ({merges}) + active clusters ({m}) "
                         f"must equal n ({n})")
    # The sorted active list in row m & 1 (the kernel's parity rule); the other
    # row receives the list after the next merge.
    cols = xp.empty((2, m), dtype=_I64)
    cols[m & 1] = xp.sort(xp.asarray(alist)[:m])
    chain = xp.empty(m, dtype=_I64)
    state = xp.asarray(np.array([0, m, merges, 0], dtype=_I64))
    own = {k: launch.as_device(v) for k, v in dict(cols=cols, chain=chain, state=state).items()}

    def args(limit, part_d, part_j):
        return (D, _I64(n if slots is None else slots), _I64(code), own["cols"], size,
                own["chain"], own["state"], part_d, part_j, log_a, log_b, log_h, _I64(limit))

    probe = launch.as_device(xp.empty(1, _F64)), launch.as_device(xp.empty(1, _I64))
    blocks = launch.cooperative_blocks(dense_chain_steps, args(0, *probe), m, tpb)
    part_d = launch.as_device(xp.empty(blocks, _F64))
    part_j = launch.as_device(xp.empty(blocks, _I64))
    launch.run_chunks(
        lambda limit: dense_chain_steps[blocks, tpb, stream](*args(limit, part_d, part_j)),
        state, NLOG, STATUS, merges, n - 1,
        lambda done: chunk_merges(n - done) if chunk is None else chunk, counter,
        lambda left: f"cuda_dense_chain.dense_chain_steps made no progress at {left} clusters",
        lambda left: (f"{NO_FINITE_CANDIDATE} (RNN rounds on the GPU, nearest-neighbour chain, "
                      f"{left} clusters left: NaN or inf distances)"))
    return m - 1


def run(D, n, code, xp=np, tpb=None, counter=None, chunk=None):
    """Merge log of a dense reducible linkage by the device-side chain alone.

    The chain from the initial matrix (no rounds): the same engine as
    ``finish`` handed the whole problem, for tests and comparisons.

    Parameters
    ----------
    D : device array, shape (n*(n-1)/2,)
        Condensed distances, float32 or float64 (squared for ward). Overwritten.
    n : int
        Number of observations.
    code : int
        ``formulas`` method code: COMPLETE, AVERAGE, WEIGHTED or WARD.
    xp : module
        Namespace of ``D`` (CuPy, or NumPy in the simulator).
    tpb : int, optional
        Threads per block (default ``launch.default_tpb()``, at most ``MAX_TPB``).
    counter : ndarray of int64, shape (1,), optional
        Receives the merges done after each chunk.
    chunk : int, optional
        Merges per launch (see ``finish``).

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Slots of the merged clusters, smaller first.
    h : ndarray of float64, shape (n-1,)
        Merge heights in merge order (squared for ward), on the host.

    Raises
    ------
    ValueError
        ``code`` is not a reducible method, or no finite candidate is left.
    """
    if code not in (formulas.COMPLETE, formulas.AVERAGE, formulas.WEIGHTED, formulas.WARD):
        raise ValueError(f"cuda_dense_chain runs the reducible methods only (complete, "
                         f"average, weighted, ward); got method code {code}")
    n, code, tpb, stream = launch.start(n, code, xp, tpb, MAX_TPB)
    if n < 2:
        return launch.empty_log()
    counter = np.zeros(1, dtype=_I64) if counter is None else counter
    host = dict(alist=xp.arange(n, dtype=_I64), size=xp.ones(n, dtype=_F64),
                log_a=xp.empty(n - 1, dtype=_I64), log_b=xp.empty(n - 1, dtype=_I64),
                log_h=xp.empty(n - 1, dtype=_F64))
    v = {k: launch.as_device(a) for k, a in host.items()}
    finish(launch.as_device(D), n, v["alist"], n, v["size"], v["log_a"], v["log_b"], v["log_h"],
           0, code, xp, tpb, stream, counter, chunk=chunk)
    return tuple(launch.to_host(host[k]) for k in ("log_a", "log_b", "log_h"))
