"""Centroid and median linkage on the GPU's memory-saving path: the generic loop in one kernel.

The device twin of ``cpu_vector.generic`` (centroid and median are not
reducible, so merges happen one at a time, at the global minimum). Each active
slot i keeps its nearest active cluster ``nn[i]`` and that key ``nnd[i]``,
always exact: a row whose neighbour merged is rescanned before the next pick.
Keys are ``launch.summary_distance`` (``formulas.cluster_distance`` over the
centroids, coordinates summed in order, float64 whatever the storage dtype);
candidates are ordered by ``launch.precedes`` ((key, slot), smaller slot first
on a tie). The merged cluster keeps the smaller slot, so slot s always holds
observation s and the log names slots.

``generic_steps`` (cooperative launch: every block resident, grid-wide sync)
runs merges until a limit, one iteration per merge in three phases:

S, rescan (whole grid)
    Every stale row (``stale[:state[NSTALE]]``) is scanned against every active
    slot, each row split into ``_shares`` column shares so a few rows still
    spread over the grid: one block per (row, share), its threads over the
    columns, one partial per item. At the first launch every row is stale,
    which is the initial exact nearest-neighbour pass.
A, pick (block 0)
    Folds the rescanned rows' partials into (nn, nnd), the previous merge's
    new cluster's nearest from R's per-block partials, and takes the minimum
    (nnd[i], i) over every active row: the stale rows, the new cluster, and
    R's per-block minima of all other rows. Merges i and nn[i] (logged:
    slots and key), the larger slot goes inactive, and writes the control
    state (``state``).
R, relax (whole grid)
    Distances from the new cluster u to every active slot: rows that pointed
    at either merged slot become stale (appended with an atomic counter);
    every other row takes u where (d, u) precedes its key, and its key enters
    the block's minimum; the block's nearest of u is kept too.

Grid syncs separate the phases. The control state (merges logged, active
count, status, stale count, the last merge's slots, a NaN flag) lives in
device memory. What the loop condition and the phases branch on is written
only by block 0 in A, so every thread reads the same values and all leave the
loop together. (A block can still be reading the loop condition while another
is in S, so S and R only raise the NaN flag and count stale rows, which A
reads after a sync.) The kernel returns after ``limit`` merges (bounded work
per launch: the host sees Ctrl-C between chunks), when one cluster is left, or
when no finite candidate is (a NaN key anywhere, or a pick without a finite
key: ``state[STATUS]``; the driver raises ValueError). Everything, R's
partials included, stays on the device between launches (same grid each
launch): one host read per chunk (the state, 7 int64).

Exactness and ties. Every key is computed by the same function as the CPU
engine's, and every minimum is taken under the total order of ``precedes``,
so no result depends on thread or block arrival (the stale list's order does
not matter): the same Z on every run. In the simulator the merges and heights
are bitwise those of the four-launch loop this kernel replaced; on a GPU the
fused multiply-adds of ``metric_accumulate`` may move a key by ulps. Slots
never move here, where the CPU engine packs its active slots, so under exact
ties the two may take tied pairs in different orders (both replay-valid).

Cost per merge: one pass over the active slots (R) plus one per stale row (S),
three grid syncs, no host read. The first launch's S is the all-pairs pass
(each pair from both sides, untiled). A cooperative grid is at most
``max_cooperative_grid_blocks`` of the compiled kernel (the simulator runs one
block). Shared arrays are sized by ``MAX_TPB``; ``PTX_SIGNATURES`` lists the
kernel.
"""

import math

import numpy as np
from numba import cuda

from . import formulas, launch
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE

# Threads per block at most (sizes the shared arrays).
MAX_TPB = 256

# Bounded work per launch, so Ctrl-C is seen between chunks (``cancel.check``):
# at most CHUNK_WORK pair-coordinate terms (a merge costs about 3 passes over
# the active clusters: the relax and one or two rescans) and CHUNK_MERGES
# merges (three grid syncs each). Estimates for a fraction of a second per
# launch on a current GPU; not measured.
CHUNK_WORK = 1 << 36
CHUNK_MERGES = 1 << 14

# Slots of the int64 control array ``state``.
NLOG = 0     # merges logged so far: the next log position
ACTIVE = 1   # active clusters
STATUS = 2   # 0 running, NO_CANDIDATE: no finite candidate left
NSTALE = 3   # rows listed in ``stale`` (to rescan in the next S phase)
U = 4        # slot of the last merge's new cluster (-1: none yet)
GONE = 5     # slot the last merge removed
NAN = 6      # a NaN key was seen (S, R); A turns it into STATUS
STATE_SIZE = 7
NO_CANDIDATE = 1

_NAMES = {formulas.CENTROID: "centroid", formulas.MEDIAN: "median"}

_I32 = np.int32
_I64 = np.int64
_F64 = np.float64


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _shares(count, spread):
    """Column shares per stale row: about ``spread`` (row, share) items in all."""
    if count <= 0:
        return np.int64(1)
    return max(np.int64(1), spread // count)


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _rescan(CT, size, extra, active, stale, state, sp_d, sp_j, spread, code, metric, mc, sd, sj):
    """Phase S: each (stale row, column share) item's first (key, slot), one block per item."""
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    n = active.shape[0]
    count = state[NSTALE]
    ns = _shares(count, spread)
    width = (n + ns - 1) // ns
    for item in range(cuda.blockIdx.x, count * ns, cuda.gridDim.x):
        i = np.int64(stale[item // ns])
        c0 = (item % ns) * width
        c1 = min(n, c0 + width)
        if c0 >= c1:  # past the last column (block-uniform): no scan, no syncs
            if t == 0:
                sp_d[item] = math.inf
                sp_j[item] = -1
            continue
        bw = math.inf
        bj = np.int64(-1)
        for k in range(c0 + t, c1, bd):
            if active[k] == 0 or k == i:
                continue
            w = launch.summary_distance(CT, size, extra, code, metric, mc, k, i)
            if w != w:  # the CPU engine stops at a NaN key (poisoned minimum)
                state[NAN] = 1
            if launch.precedes(w, k, bw, bj):
                bw = w
                bj = k
        bw, bj = launch.block_min(sd, sj, bw, bj)
        if t == 0:
            sp_d[item] = bw
            sp_j[item] = bj


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _pick(CT, size, extra, active, nn, nnd, stale, state, sp_d, sp_j, part_d, part_j,
          log_a, log_b, log_h, spread, code, metric, sd, sj):
    """Phase A (block 0, every thread): fold the partials, take the global minimum, merge.

    The values deciding the branches are block-uniform (state read after a
    grid sync; the minimum from ``block_min``).
    """
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    if state[NAN] != 0:
        if t == 0:
            state[STATUS] = NO_CANDIDATE
            state[U] = -1  # R does nothing
        return
    count = state[NSTALE]
    ns = _shares(count, spread)
    bw = math.inf
    bi = np.int64(-1)
    for r in range(t, count, bd):  # rescanned rows: their exact nearest
        i = np.int64(stale[r])
        w = math.inf
        j = np.int64(-1)
        for s in range(r * ns, (r + 1) * ns):
            if launch.precedes(sp_d[s], sp_j[s], w, j):
                w = sp_d[s]
                j = sp_j[s]
        nn[i] = j
        nnd[i] = w
        if launch.precedes(w, i, bw, bi):
            bw = w
            bi = i
    for b in range(t, cuda.gridDim.x, bd):  # every other row, per relax block
        if launch.precedes(part_d[1, b], part_j[1, b], bw, bi):
            bw = part_d[1, b]
            bi = part_j[1, b]
    u = state[U]
    if u >= 0:  # the last new cluster's nearest, from the relax blocks (u: block-uniform)
        w = math.inf
        j = np.int64(-1)
        for b in range(t, cuda.gridDim.x, bd):
            if launch.precedes(part_d[0, b], part_j[0, b], w, j):
                w = part_d[0, b]
                j = part_j[0, b]
        w, j = launch.block_min(sd, sj, w, j)
        if t == 0:
            nn[u] = j
            nnd[u] = w
            if launch.precedes(w, u, bw, bi):
                bw = w
                bi = u
    bw, i = launch.block_min(sd, sj, bw, bi)  # syncs: nn/nnd above are visible
    j = np.int64(nn[i]) if i >= 0 else np.int64(-1)
    if j < 0 or not bw < math.inf:
        if t == 0:
            state[STATUS] = NO_CANDIDATE
            state[U] = -1
        return
    lo = min(i, j)
    hi = max(i, j)
    s_a = size[lo]
    s_b = size[hi]
    cuda.syncthreads()  # every thread has read the sizes before thread 0 updates them
    for k in range(t, CT.shape[0], bd):
        CT[k, lo] = launch.merged_coordinate(code, CT[k, lo], CT[k, hi], s_a, s_b)
    if t == 0:
        # Centroid and median summaries carry no spread term: merged_extra is 0
        # and never reads ||ca - cb||^2.
        extra[lo] = launch.merged_extra(code, metric, extra[lo], extra[hi], s_a, s_b, 0.0)
        size[lo] = s_a + s_b
        active[hi] = 0
        step = state[NLOG]
        log_a[step] = i
        log_b[step] = j
        log_h[step] = bw
        state[NLOG] = step + 1
        state[ACTIVE] = state[ACTIVE] - 1
        state[NSTALE] = 0
        state[U] = lo
        state[GONE] = hi


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _relax(CT, size, extra, active, nn, nnd, stale, state, part_d, part_j, code, metric, mc,
           sd, sj):
    """Phase R: the new cluster against every active slot (grid-stride over slots)."""
    u = state[U]
    if u < 0:  # no merge yet, or A stopped the run
        return
    gone = state[GONE]
    n = active.shape[0]
    uw = math.inf
    uj = np.int64(-1)
    rw = math.inf
    ri = np.int64(-1)
    for k in range(cuda.grid(1), n, cuda.gridsize(1)):
        if active[k] == 0 or k == u:
            continue
        w = launch.summary_distance(CT, size, extra, code, metric, mc, k, u)
        if w != w:
            state[NAN] = 1
        if launch.precedes(w, k, uw, uj):
            uw = w
            uj = k
        if nn[k] == u or nn[k] == gone:
            pos = cuda.atomic.add(state, NSTALE, 1)
            stale[pos] = k
        else:
            if launch.precedes(w, u, nnd[k], nn[k]):
                nnd[k] = w
                nn[k] = u
            if launch.precedes(nnd[k], k, rw, ri):
                rw = nnd[k]
                ri = k
    uw, uj = launch.block_min(sd, sj, uw, uj)
    rw, ri = launch.block_min(sd, sj, rw, ri)
    if cuda.threadIdx.x == 0:
        b = cuda.blockIdx.x
        part_d[0, b] = uw
        part_j[0, b] = uj
        part_d[1, b] = rw
        part_j[1, b] = ri


@cuda.jit(cache=NUMBA_CACHE)
def generic_steps(CT, size, extra, active, nn, nnd, stale, state, sp_d, sp_j, part_d, part_j,
                  log_a, log_b, log_h, limit, spread, code, metric):
    """Generic-loop merges until ``state[NLOG] == limit``, one cluster is left, or
    no finite candidate is (``state[STATUS]``). See the module docstring.

    Cooperative launch of at most ``max_cooperative_grid_blocks`` blocks, the
    same grid at every launch of a run. part_d/part_j (2, gridDim.x): per
    relax block, row 0 the new cluster's nearest, row 1 the minimum key of
    the other rows; sp_d/sp_j hold the rescan items (at least
    max(n, spread) entries).
    """
    grid = cuda.cg.this_grid()
    sd = cuda.shared.array(MAX_TPB, np.float64)
    sj = cuda.shared.array(MAX_TPB, np.int64)
    mc = launch.coordinate_metric(code, metric)
    while state[STATUS] == 0 and state[NLOG] < limit and state[ACTIVE] > 1:
        _rescan(CT, size, extra, active, stale, state, sp_d, sp_j, spread, code, metric, mc,
                sd, sj)
        grid.sync()
        if cuda.blockIdx.x == 0:
            _pick(CT, size, extra, active, nn, nnd, stale, state, sp_d, sp_j, part_d, part_j,
                  log_a, log_b, log_h, spread, code, metric, sd, sj)
        grid.sync()
        _relax(CT, size, extra, active, nn, nnd, stale, state, part_d, part_j, code, metric,
               mc, sd, sj)
        grid.sync()


_FLOATS = ("float32", "float64")
_A32 = "int32[::1]"
_A64 = "int64[::1]"
_AF = "float64[::1]"
_A8 = "int8[::1]"
PTX_SIGNATURES = {
    "generic_steps": [
        f"void({dt}[:, ::1], {_AF}, {_AF}, {_A8}, {_A32}, {_AF}, {_A32}, {_A64}, {_AF}, "
        f"{_A64}, float64[:, ::1], int64[:, ::1], {_A64}, {_A64}, {_AF}, int64, int64, int64, "
        "int64)"
        for dt in _FLOATS
    ],
}


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def chunk_merges(m, d):
    """Merges one ``generic_steps`` launch may do with m active clusters of d coordinates."""
    return int(max(1, min(CHUNK_MERGES, CHUNK_WORK // max(1, 3 * m * d))))


def run(CT, code, metric, xp=np, tpb=None, counter=None, *, chunk=None, spread=None):
    """Merge log of a centroid or median memory-saving linkage on the device.

    Parameters
    ----------
    CT : device array, shape (d, n), float32 or float64, C-contiguous
        Prepared observations, transposed (``gpu_hclust._lowmem.prepare``).
        Overwritten (slots become centroids).
    code : int
        ``formulas.CENTROID`` or ``formulas.MEDIAN``.
    metric : int
        ``metrics`` code of the summaries (``SQEUCLIDEAN`` coordinate sums;
        passed through to ``formulas``).
    xp : module
        Namespace of ``CT`` (CuPy, or NumPy in the simulator).
    tpb : int, optional
        Threads per block (power of two, 32..MAX_TPB; default
        ``launch.default_tpb()``).
    counter : ndarray of int64, shape (1,), optional
        Host array receiving the number of merges done, after each chunk.
    chunk : int, optional, keyword-only
        Merges per launch (default ``chunk_merges``; tests use small values to
        check that the loop resumes across launches).
    spread : int, optional, keyword-only
        About how many (row, column share) items a rescan phase is split into
        (default: the grid's blocks, at most n // tpb so that no share is
        narrower than a block; tests raise it to split rows in the simulator's
        one-block grid).

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
    h : ndarray of float64, shape (n-1,)
        The merge log in merge order (host arrays; never sorted: centroid and
        median have inversions), heights squared.

    Raises
    ------
    ValueError
        ``code`` is not centroid or median; no finite candidate left (NaN keys).
    """
    if code not in _NAMES:
        raise ValueError(f"cuda_vector_generic runs centroid and median only; got method "
                         f"code {code}")
    tpb = launch.check_tpb(tpb, MAX_TPB)
    stream = launch.stream_for(xp)
    counter = np.zeros(1, dtype=np.int64) if counter is None else counter
    d, n = CT.shape
    if n < 2:
        return launch.empty_log()
    host = dict(
        size=xp.ones(n, _F64), extra=xp.zeros(n, _F64), active=xp.ones(n, np.int8),
        nn=xp.full(n, -1, dtype=_I32), nnd=xp.full(n, np.inf, dtype=_F64),
        stale=xp.arange(n, dtype=_I32),  # every row is rescanned first: the initial pass
        state=xp.asarray(np.array([0, n, 0, n, -1, -1, 0], dtype=_I64)),
        log_a=xp.empty(n - 1, _I64), log_b=xp.empty(n - 1, _I64), log_h=xp.empty(n - 1, _F64))
    dv = {k: launch.as_device(v) for k, v in host.items()}
    dv["CT"] = launch.as_device(CT)
    C, M = _I64(code), _I64(metric)

    def args(limit, spread_, sp_d, sp_j, part_d, part_j):
        return (dv["CT"], dv["size"], dv["extra"], dv["active"], dv["nn"], dv["nnd"],
                dv["stale"], dv["state"], sp_d, sp_j, part_d, part_j, dv["log_a"], dv["log_b"],
                dv["log_h"], _I64(limit), _I64(spread_), C, M)

    probe = [launch.as_device(xp.empty(s, t)) for s, t in
             ((1, _F64), (1, _I64), ((2, 1), _F64), ((2, 1), _I64))]
    blocks = launch.cooperative_blocks(generic_steps, args(0, 1, *probe), n, tpb)
    # Default: a share per block, but none narrower than a block (idle threads).
    spread = max(1, min(blocks, n // tpb)) if spread is None else max(1, int(spread))
    # No relax has run yet: its per-block partials say "no candidate".
    part_d = xp.full((2, blocks), np.inf, dtype=_F64)
    part_j = xp.full((2, blocks), -1, dtype=_I64)
    scratch = [launch.as_device(a) for a in (
        xp.empty(n + spread, _F64), xp.empty(n + spread, _I64), part_d, part_j)]
    launch.run_chunks(
        lambda limit: generic_steps[blocks, tpb, stream](*args(limit, spread, *scratch)),
        host["state"], NLOG, STATUS, 0, n - 1,
        lambda done: chunk_merges(n - done, d) if chunk is None else chunk, counter,
        lambda left: f"cuda_vector_generic.generic_steps made no progress at {left} clusters",
        lambda left: (f"{NO_FINITE_CANDIDATE} (memory-saving {_NAMES[code]} linkage on the GPU, "
                      f"{left} clusters left: NaN distances)"))
    return (launch.to_host(host["log_a"]), launch.to_host(host["log_b"]),
            launch.to_host(host["log_h"]))
