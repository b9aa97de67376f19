"""CUDA engine for the reducible methods: complete, average, weighted, ward.

Nearest-neighbour cache plus reciprocal-nearest-neighbour (RNN) rounds
(DESIGN.md section 2). Every active row ``i`` keeps ``nn[i]``, ``nnd[i]``: its
minimum over the active columns under the key ``(distance, column)``. Before
round 0 every row gets it from ``first_pass``: ``first_rows`` (each row's
contiguous half, one block per row), ``first_columns`` (the column halves,
read along the rows of D: column i runs along the threads, row k along each
thread's loop, so a warp reads consecutive entries of row k instead of one
memory sector per value; one partial per chunk of rows) and
``first_combine``: the same minima a rescan of every row gives, as the
(distance, column) order is total. A round:

1. ``rescan_rows``  -- stale rows get their minimum again (one block per row,
   shared-memory reduction), over the compacted list of active slots.
2. ``find_pairs``   -- every reciprocal pair ``nn[nn[i]] == i`` (``i < nn[i]``)
   is appended to the pair list and to the merge log (atomic counter).
3. ``update_pairs`` -- one launch writes the Lance-Williams distances of every
   merged cluster (kept in slot ``i``, slot ``j`` dies) to every active column.
   A column that merges in the same round gets the nested update, computed
   once, by the pair with the smaller slot.
4. ``finalize``     -- sizes; rows whose neighbour merged, rows where a new
   cluster ties or beats the cached key, and the merged rows become stale.
5. ``compact``      -- the active-slot list loses the dead slots (order kept,
   so the contiguous half of each condensed row is read in order); its
   thread 0 writes the next round's state (``_advance``).

A round that merged few pairs (``cuda_chain.hands_over``: chain-like data,
one or two pairs per round) hands the rest to the nearest-neighbour chain in
one persistent kernel (``cuda_dense_chain.finish``) after its update.

Invariant: ``nn[k]`` is k's exact minimum under ``(distance, column)`` of the
stored (rounded) matrix. Then the nn graph has only 2-cycles, so every round
finds at least one pair; a round without one (NaN distances) ends the loop
and the short merge log raises ``ValueError``. For reducible methods merging
every RNN pair at once yields exactly the sequential hierarchy (after
``_tree``'s height sort).

Round loop (``run``): no host read per round
--------------------------------------------
The round state lives on the device, in the int64 array ``ctl``: the active
count m, the merges logged, the round's pair count, the stale-list length, the
stop reason and the rounds done (``S_*`` slots). It has two sets: round ``r``
reads set ``r & 1`` and its last kernel writes the next round's state into the
other set, so no launch reads a value it also writes. Kernels take the round
number from the host (for ``mround``) and everything else from ``ctl``; grids
are sized from the last m the host read (an upper bound: threads past the
device's m return, ``update_pairs`` loops over the pairs with a fixed
``PAIR_GRID`` rows).

The host queues rounds in batches of 1, 2, 4, ... ``MAX_BATCH`` (never more
than m - 1, the most rounds that can be left) and reads ``ctl`` once per
batch: about log2(rounds) + rounds / MAX_BATCH reads instead of one per round.
Once a round has stopped the rounds, the later rounds of the batch do nothing
(``compact`` copies the active list and the state forward). Stop reasons:
``DONE`` (one cluster left), ``NO_PAIR`` (a round found no reciprocal pair: NaN
distances; the short log raises ``ValueError``) and ``HAND_OVER``: a round that
merged fewer pairs than ``cuda_chain.hands_over`` allows (chain-like data)
ends the batch after its update, finalize and compact, and the host reaches
``_chain_hand_over``, where the device-side chain (``cuda_dense_chain.finish``)
merges the rest, in D's current (maybe compacted) numbering. Ctrl-C is checked between
batches (``cancel.check``). A batch that merged nothing ends the run. Each
round's first log row (``rstart``, on the device) is read once at the end for
``_slot_order_within_rounds``. Host reads in all: one per batch, then the log
(three arrays) and ``rstart``.

Compaction
----------
Once m is at most ``COMPACT_FRACTION`` (one half) of the slots, D is rebuilt
over the active slots only (m(m-1)/2 entries, slots renumbered in order), so
rescans and updates stop striding over dead rows (``_Rounds.compact_matrix``).
It works in place, in increasing new condensed index: as the active slots keep
their order, every entry's new position is at most its old one, so a chunk of
new rows gathered into a scratch buffer (``gather_rows``) and copied back
overwrites only entries earlier chunks have already moved. The per-slot state
follows (``slot_inverse``, ``remap_slots``); ``slot_map`` maps a slot to its
original slot, and ``find_pairs`` logs original slots: the merge log's
contract does not change. Peak device memory: D, plus a scratch of
``COMPACT_SCRATCH_PER_SLOT`` = 32 entries per slot (256 B per observation in
float64), plus the O(n) arrays (about 110 B per observation, and up to 45 more
while the new ones are made): inside the 600 B per observation that
``gpu_hclust._memory`` budgets beyond the matrix, so its prediction stands.

Kernels take caller-allocated arrays (CuPy on a GPU, NumPy in the simulator);
index arithmetic is int64 throughout, stored index arrays are int64.
"""

import math

import numpy as np
from numba import cuda, float64, int64

from . import cancel, cuda_chain, cuda_dense_chain, launch
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE
from .launch import (block_min, condensed_index, empty_log, lw_update, precedes, row_base,
                     row_entry)

# Shared arrays are sized by this constant; the launch's threads per block
# (a power of two, at most MAX_TPB) loop over cuda.blockDim.x.
MAX_TPB = 1024

# Round state: two sets of CTL_SET int64 slots in the device array ``ctl``.
# Round ``rnd`` reads set ``rnd & 1`` and writes the next round's state into
# the other one, so no kernel ever reads a slot another thread of the same
# launch writes (the only exceptions are the atomic counters S_PAIRS, appended
# by find_pairs and read from update_pairs on, and the next set's S_STALE).
S_M = 0       # active clusters at the round's start
S_MERGES = 1  # merges logged before the round (its first log row)
S_PAIRS = 2   # reciprocal pairs the round found (find_pairs' atomic counter)
S_STALE = 3   # rows on the stale list the round rescans
S_STOP = 4    # RUNNING, or why the rounds stopped (DONE, NO_PAIR, HAND_OVER)
S_ROUNDS = 5  # rounds that merged so far (entries of ``rstart``)
CTL_SET = 8

RUNNING = 0
DONE = 1       # one cluster left
NO_PAIR = 2    # a round found no reciprocal pair (NaN distances): the log is short
HAND_OVER = 3  # a round merged too few pairs (cuda_chain.hands_over): back to the host

# The chain guard per round (``compact``'s ``guard``): the rule of
# ``cuda_chain.hands_over``, or (tests) a hand-over forced after one round.
GUARD_OFF, GUARD_RULE, GUARD_FORCE = 0, 1, 2
# Tests set a round count r: the rounds before the r-th do not hand over, the
# r-th does whatever it merged (the rule's outcome on a GPU is fixed at compile
# time, so tests cannot reach it by patching ``cuda_chain``).
FORCE_HAND_OVER_AFTER = None


def _guard(rnd):
    """The chain guard of round ``rnd`` (0-based)."""
    forced = FORCE_HAND_OVER_AFTER
    if forced is None:
        return GUARD_RULE
    return GUARD_FORCE if rnd == forced - 1 else GUARD_OFF


# Rounds queued per host read: 1, 2, 4, ... up to MAX_BATCH (and never more
# than the clusters left minus one, an upper bound on the rounds left).
MAX_BATCH = 64

# Rows of the update grid (pairs per launch row are looped): the pair count is
# on the device, so the grid cannot follow it; 32 rows x the column blocks
# fill a GPU at every m that matters.
PAIR_GRID = 32

# Compaction: once the active clusters are at most COMPACT_FRACTION of the
# slots, the matrix is rebuilt over the active slots. The scratch buffer holds
# COMPACT_SCRATCH_PER_SLOT entries per slot (a whole row at least).
COMPACT_FRACTION = 0.5
COMPACT_SCRATCH_PER_SLOT = 32

# Round 0's column halves: rows split into this many chunks, one partial
# minimum per (chunk, column); 16 chunks x 16 B = 256 B per observation, freed
# before compaction's scratch exists.
FIRST_PASS_CHUNKS = 16

_hands_over = cuda.jit(device=True, cache=NUMBA_CACHE)(cuda_chain.hands_over)


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _set(rnd):
    """Offset in ``ctl`` of the state set round ``rnd`` reads."""
    return (rnd & 1) * CTL_SET


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _live(ctl, cur):
    """The round (state set ``cur``) merged and another round follows: the
    update, finalize and compaction of the active list have work to do."""
    p = ctl[cur + S_PAIRS]
    return ctl[cur + S_STOP] == RUNNING and p > 0 and ctl[cur + S_M] - p > 1


@cuda.jit(cache=NUMBA_CACHE)
def rescan_rows(D, n, alist, stale, ctl, rnd, nn, nnd):
    """Exact (distance, column) minimum of each stale row over the active slots.

    Blocks loop over the stale list (its length is on the device); threads of
    a block split the active-slot list ``alist[:m]``. Columns k > i are
    contiguous in the condensed row, columns k < i are strided.
    """
    sd = cuda.shared.array(MAX_TPB, float64)
    sk = cuda.shared.array(MAX_TPB, int64)
    cur = _set(rnd)
    if ctl[cur + S_STOP] != RUNNING:
        return  # a previous round of the batch ended the rounds
    m = ctl[cur + S_M]
    nstale = ctl[cur + S_STALE]
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    s = cuda.blockIdx.x
    while s < nstale:
        i = stale[s]
        # D[row + k] is the pair (i, k) for k > i (int64 arithmetic).
        row = row_base(n, i)
        bd = math.inf
        bk = n
        t = tid
        while t < m:
            k = alist[t]
            if k != i:
                # (hot-loop variant of cuda_generic's upper-row scans: whole rows here)
                d = row_entry(D, n, row, i, k)
                if precedes(d, k, bd, bk):
                    bd = d
                    bk = k
            t += nt
        bd, bk = block_min(sd, sk, bd, bk)
        if tid == 0:
            nn[i] = bk  # bk == n only if no column compares (NaN): find_pairs skips it
            nnd[i] = bd
        s += cuda.gridDim.x


@cuda.jit(cache=NUMBA_CACHE)
def first_rows(D, n, nn, nnd):
    """Round 0, row halves: each row's minimum over its columns k > i.

    One block per row (looped); consecutive threads read consecutive entries
    of the condensed row (coalesced). Rows with no column (the last) or only
    NaN get (inf, n): "none yet".
    """
    sd = cuda.shared.array(MAX_TPB, float64)
    sk = cuda.shared.array(MAX_TPB, int64)
    tid = cuda.threadIdx.x
    i = cuda.blockIdx.x
    while i < n:
        row = row_base(n, i)
        bd = math.inf
        bk = n
        k = i + 1 + tid
        while k < n:
            d = D[row + k]
            if precedes(d, k, bd, bk):
                bd = d
                bk = k
            k += cuda.blockDim.x
        bd, bk = block_min(sd, sk, bd, bk)
        if tid == 0:
            nn[i] = bk
            nnd[i] = bd
        i += cuda.gridDim.x


@cuda.jit(cache=NUMBA_CACHE)
def first_columns(D, n, chunk, part_d, part_k):
    """Round 0, column halves: for each column i, the minimum of D[k, i] over
    the rows k < i of chunk ``blockIdx.y`` (rows ``y*chunk .. (y+1)*chunk-1``).

    Column i runs along the threads and the row k along each thread's loop:
    for a fixed k the threads of a warp read ``D[row_base(n, k) + i]`` for
    consecutive i, i.e. consecutive entries of row k (coalesced), where a
    per-row rescan reads the column i at a stride of about n entries (one
    memory sector per value). Partials go to ``part_*[y * n + i]``.
    """
    y = cuda.blockIdx.y
    k0 = y * chunk
    i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    while i < n:
        bd = math.inf
        bk = n
        k = k0
        while k < k0 + chunk and k < i:
            d = D[row_base(n, k) + i]
            if precedes(d, k, bd, bk):
                bd = d
                bk = k
            k += 1
        part_d[y * n + i] = bd
        part_k[y * n + i] = bk
        i += cuda.gridDim.x * cuda.blockDim.x


@cuda.jit(cache=NUMBA_CACHE)
def first_combine(n, chunks, part_d, part_k, nn, nnd):
    """Round 0: each row's minimum from its row half and the column partials.

    The (distance, column) order is total on the candidates kept (NaN never
    is one), so the result is the one a rescan of the whole row gives.
    """
    i = cuda.grid(1)
    if i < n:
        bd = nnd[i]
        bk = nn[i]
        for y in range(chunks):
            d = part_d[y * n + i]
            k = part_k[y * n + i]
            if precedes(d, k, bd, bk):
                bd = d
                bk = k
        nn[i] = bk
        nnd[i] = bd


@cuda.jit(cache=NUMBA_CACHE)
def find_pairs(alist, n, nn, nnd, ctl, rnd, mround, partner, pairs, slot_map,
               log_a, log_b, log_h):
    """Append every reciprocal pair to the pair list and the merge log.

    The log gets original slots (``slot_map``: compaction renumbers slots).
    """
    cur = _set(rnd)
    if ctl[cur + S_STOP] != RUNNING:
        return
    m = ctl[cur + S_M]
    merges = ctl[cur + S_MERGES]
    t = cuda.grid(1)
    if t == 0:
        ctl[CTL_SET - cur + S_STALE] = 0  # this round's finalize fills the next stale list
    if t < m:
        i = alist[t]
        j = nn[i]
        if i < j and j < n and nn[j] == i:
            p = cuda.atomic.add(ctl, cur + S_PAIRS, 1)
            pairs[p] = i
            partner[i] = j
            partner[j] = i
            mround[i] = rnd
            mround[j] = rnd
            q = merges + p
            log_a[q] = slot_map[i]
            log_b[q] = slot_map[j]
            log_h[q] = nnd[i]


@cuda.jit(cache=NUMBA_CACHE)
def update_pairs(D, n, code, alist, ctl, rnd, pairs, partner, mround, size, nn, nnd, flag):
    """Lance-Williams distances of every merged cluster to every active column.

    Grid x covers the active columns, grid y (looped) the pairs. Pair (i, j)
    keeps slot i. Each written entry D[i, k] is read and written by one
    thread only: for a column k of another merging pair (k, l) the entry
    D[i, k] becomes d(i+j, k+l), computed by the pair with the smaller slot
    as the sequential algorithm would (lower pair first). Nothing to do in
    the round that merges the last pairs, or after the rounds stopped.
    """
    cur = _set(rnd)
    if not _live(ctl, cur):
        return
    m = ctl[cur + S_M]
    npairs = ctl[cur + S_PAIRS]
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if t >= m:
        return  # the grid is sized from the host's last m, an upper bound
    k = alist[t]
    nk = size[k]
    k_merges = mround[k] == rnd
    l = partner[k]
    p = cuda.blockIdx.y
    while p < npairs:
        i = pairs[p]
        j = partner[i]
        if k != i and k != j:
            ni = size[i]
            nj = size[j]
            dij = D[condensed_index(n, i, j)]
            pik = condensed_index(n, i, k)
            if not k_merges:
                D[pik] = lw_update(code, D[pik], D[condensed_index(n, j, k)], dij, ni, nj, nk)
                v = D[pik]  # the stored (rounded) value is what rescans see
                if precedes(v, i, nnd[k], nn[k]):
                    flag[k] = 1
            elif i < k and k < l:
                nl = size[l]
                dkl = D[condensed_index(n, k, l)]
                dik = D[pik]
                djk = D[condensed_index(n, j, k)]
                dil = D[condensed_index(n, i, l)]
                djl = D[condensed_index(n, j, l)]
                if dij <= dkl:
                    duk = lw_update(code, dik, djk, dij, ni, nj, nk)
                    dul = lw_update(code, dil, djl, dij, ni, nj, nl)
                    D[pik] = lw_update(code, duk, dul, dkl, nk, nl, ni + nj)
                else:
                    dvi = lw_update(code, dik, dil, dkl, nk, nl, ni)
                    dvj = lw_update(code, djk, djl, dkl, nk, nl, nj)
                    D[pik] = lw_update(code, dvi, dvj, dij, ni, nj, nk + nl)
        p += cuda.gridDim.y


@cuda.jit(cache=NUMBA_CACHE)
def finalize(alist, n, ctl, rnd, partner, mround, size, nn, flag, stale, blockcount):
    """Sizes, the next stale list, and survivors per block for ``compact``.

    Outside a live round every listed slot survives (``compact`` copies the list).
    """
    cur = _set(rnd)
    live = _live(ctl, cur)
    m = ctl[cur + S_M]
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    keep = 0
    if t < m:
        keep = 1
        if live:
            k = alist[t]
            mark = False
            if mround[k] == rnd:
                l = partner[k]
                if k < l:
                    size[k] = size[k] + size[l]
                    mark = True
                else:
                    keep = 0
            else:
                j = nn[k]
                # j == n: no column compared (NaN row); rescan it, the round raises.
                mark = j >= n or mround[j] == rnd or flag[k] != 0
                flag[k] = 0
            if mark:
                stale[cuda.atomic.add(ctl, CTL_SET - cur + S_STALE, 1)] = k
    kept = cuda.syncthreads_count(keep)
    if cuda.threadIdx.x == 0:
        blockcount[cuda.blockIdx.x] = kept


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _advance(ctl, cur, rstart, guard):
    """The next round's state set from this round's (one thread, end of the round)."""
    nxt = CTL_SET - cur
    if ctl[cur + S_STOP] != RUNNING:
        for s in range(CTL_SET):
            ctl[nxt + s] = ctl[cur + s]  # stopped: later rounds of the batch see it too
        return
    m = ctl[cur + S_M]
    p = ctl[cur + S_PAIRS]
    merges = ctl[cur + S_MERGES]
    rounds = ctl[cur + S_ROUNDS]
    ctl[nxt + S_PAIRS] = 0
    if p == 0:
        ctl[nxt + S_M] = m
        ctl[nxt + S_MERGES] = merges
        ctl[nxt + S_ROUNDS] = rounds
        ctl[nxt + S_STOP] = NO_PAIR
        return
    rstart[rounds] = merges  # the round's first log row (_slot_order_within_rounds)
    ctl[nxt + S_ROUNDS] = rounds + 1
    ctl[nxt + S_MERGES] = merges + p
    ctl[nxt + S_M] = m - p
    stop = RUNNING
    if m - p <= 1:
        stop = DONE
    elif guard == GUARD_FORCE or (guard == GUARD_RULE and _hands_over(p, m)):
        stop = HAND_OVER
    ctl[nxt + S_STOP] = stop


@cuda.jit(cache=NUMBA_CACHE)
def compact(alist, ctl, rnd, partner, mround, blockcount, out, rstart, guard):
    """Order-preserving compaction of the active-slot list (same grid as finalize),
    and the next round's state (thread 0)."""
    ss = cuda.shared.array(MAX_TPB, int64)
    cur = _set(rnd)
    live = _live(ctl, cur)
    m = ctl[cur + S_M]
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    b = cuda.blockIdx.x
    acc = 0
    q = tid
    while q < b:
        acc += blockcount[q]
        q += nt
    ss[tid] = acc
    cuda.syncthreads()
    half = nt // 2
    while half > 0:
        if tid < half:
            ss[tid] += ss[tid + half]
        cuda.syncthreads()
        half //= 2
    offset = ss[0]
    cuda.syncthreads()
    t = b * nt + tid
    keep = 0
    k = -1
    if t < m:
        k = alist[t]
        keep = 1
        if live and mround[k] == rnd and partner[k] < k:
            keep = 0
    # Inclusive Hillis-Steele scan of keep.
    ss[tid] = keep
    cuda.syncthreads()
    step = 1
    while step < nt:
        v = 0
        if tid >= step:
            v = ss[tid - step]
        cuda.syncthreads()
        ss[tid] += v
        cuda.syncthreads()
        step *= 2
    if keep:
        out[offset + ss[tid] - 1] = k
    if t == 0:
        _advance(ctl, cur, rstart, guard)


@cuda.jit(cache=NUMBA_CACHE)
def gather_rows(D, n, alist, m, r0, r1, q0, scratch):
    """Rows ``r0 .. r1-1`` of the matrix over the active slots ``alist[:m]``,
    condensed, into ``scratch`` (entry ``q`` of the new matrix at ``q - q0``).

    One block per new row (looped); threads take consecutive columns, whose
    old positions ``row_base(n, alist[r]) + alist[c]`` increase with ``c``.
    """
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    r = r0 + cuda.blockIdx.x
    while r < r1:
        src = row_base(n, alist[r])
        dst = row_base(m, r) - q0
        c = r + 1 + tid
        while c < m:
            scratch[dst + c] = D[src + alist[c]]
            c += nt
        r += cuda.gridDim.x


@cuda.jit(cache=NUMBA_CACHE)
def slot_inverse(alist, m, inv):
    """``inv[alist[t]] = t``: an old slot's new number (``inv`` prefilled with m)."""
    t = cuda.grid(1)
    if t < m:
        inv[alist[t]] = t


@cuda.jit(cache=NUMBA_CACHE)
def remap_slots(alist, m, inv, stale, nstale, nn, nnd, size, slot_map,
                nn2, nnd2, size2, map2):
    """Per-slot state in the new numbering; slot values (``nn``, the stale list)
    through ``inv`` (a neighbour that died, or "none" = old n, becomes m: the
    row is stale and rescanned before it is read)."""
    t = cuda.grid(1)
    if t < m:
        k = alist[t]
        nn2[t] = inv[nn[k]]
        nnd2[t] = nnd[k]
        size2[t] = size[k]
        map2[t] = slot_map[k]
    if t < nstale:
        stale[t] = inv[stale[t]]


_KERNELS = ("first_rows", "first_columns", "first_combine", "rescan_rows", "find_pairs",
            "update_pairs", "finalize", "compact", "gather_rows", "slot_inverse", "remap_slots")


def _sig(*args):
    return "void(" + ", ".join(args) + ")"


def _signatures():
    i, a = "int64", "int64[::1]"
    f64 = "float64[::1]"
    sigs = {name: [] for name in _KERNELS}
    for f in ("float32", "float64"):
        fa = f + "[::1]"
        sigs["first_rows"].append(_sig(fa, i, a, fa))
        sigs["first_columns"].append(_sig(fa, i, i, f64, a))
        sigs["first_combine"].append(_sig(i, i, f64, a, a, fa))
        sigs["rescan_rows"].append(_sig(fa, i, a, a, a, i, a, fa))
        sigs["find_pairs"].append(_sig(a, i, a, fa, a, i, a, a, a, a, a, a, f64))
        sigs["update_pairs"].append(_sig(fa, i, i, a, a, i, a, a, a, f64, a, fa, "int32[::1]"))
        sigs["gather_rows"].append(_sig(fa, i, a, i, i, i, i, fa))
        sigs["remap_slots"].append(_sig(a, i, a, a, i, a, fa, f64, a, a, fa, f64, a))
    sigs["finalize"].append(_sig(a, i, a, i, a, a, f64, a, "int32[::1]", a, a))
    sigs["compact"].append(_sig(a, a, i, a, a, a, a, a, i))
    sigs["slot_inverse"].append(_sig(a, i, a))
    return sigs


# Every kernel with explicit signatures, for the PTX compilation test.
PTX_SIGNATURES = _signatures()


class _Rounds:
    """Device state of the rounds and the host's side of it.

    ``x`` holds the arrays in the caller's namespace (for allocation and
    copies), ``v`` the views kernels are launched on (``launch.as_device``).
    Slots are numbered ``0 .. ns - 1``; compaction renumbers them, ``slot_map``
    gives each one's original slot.
    """

    def __init__(self, D, n, code, xp, tpb, stream, max_blocks):
        self.n, self.ns, self.code, self.xp = n, n, code, xp
        self.tpb, self.stream, self.max_blocks = tpb, stream, max_blocks
        i64 = np.int64
        ctl = np.zeros(2 * CTL_SET, dtype=i64)
        ctl[S_M] = n
        ctl[S_STALE] = 0  # round 0's minima come from first_pass, not from rescans
        self.x, self.v = {}, {}
        self._put(
            D=D,
            ctl=xp.asarray(ctl),
            alist=xp.arange(n, dtype=i64),
            spare=xp.empty(n, dtype=i64),
            stale=xp.empty(n, dtype=i64),  # filled by finalize (round 0 needs none)
            nn=xp.full(n, n, dtype=i64),
            nnd=xp.empty(n, dtype=D.dtype),
            mround=xp.full(n, -1, dtype=i64),
            partner=xp.full(n, -1, dtype=i64),
            pairs=xp.empty(max(n // 2, 1), dtype=i64),
            size=xp.ones(n, dtype=np.float64),
            flag=xp.zeros(n, dtype=np.int32),
            slot_map=xp.arange(n, dtype=i64),
            blockcount=xp.empty(-(-n // tpb), dtype=i64),
            rstart=xp.empty(n - 1, dtype=i64),
            log_a=xp.empty(n - 1, dtype=i64),
            log_b=xp.empty(n - 1, dtype=i64),
            log_h=xp.empty(n - 1, dtype=np.float64),
        )

    def _put(self, **arrays):
        for name, arr in arrays.items():
            self.x[name] = arr
            self.v[name] = launch.as_device(arr)

    def first_pass(self):
        """Every row's minimum before round 0, each half of D read in order.

        Same result as rescanning every row (the order is total); the column
        halves are read along rows (``first_columns``) instead of at a stride.
        """
        xp, v, tpb, stream, n = self.xp, self.v, self.tpb, self.stream, self.n
        first_rows[launch.blocks(n, 1, self.max_blocks), tpb, stream](
            v["D"], n, v["nn"], v["nnd"])
        chunks = launch.blocks(FIRST_PASS_CHUNKS, 1, self.max_blocks)
        part_d = xp.empty(chunks * n, dtype=np.float64)
        part_k = xp.empty(chunks * n, dtype=np.int64)
        pd, pk = launch.as_device(part_d), launch.as_device(part_k)
        first_columns[(launch.blocks(n, tpb, self.max_blocks), chunks), tpb, stream](
            v["D"], n, -(-n // chunks), pd, pk)
        first_combine[launch.blocks(n, tpb, cap=1 << 30), tpb, stream](
            n, chunks, pd, pk, v["nn"], v["nnd"])

    def queue_round(self, rnd, m, guard):
        """Launch round ``rnd``'s five kernels; ``m`` bounds the device's active count."""
        v, tpb, stream, n = self.v, self.tpb, self.stream, self.ns
        cols = -(-m // tpb)  # covers alist[:m] for any m on the device
        rescan_rows[launch.blocks(m, 1, self.max_blocks), tpb, stream](
            v["D"], n, v["alist"], v["stale"], v["ctl"], rnd, v["nn"], v["nnd"])
        find_pairs[cols, tpb, stream](
            v["alist"], n, v["nn"], v["nnd"], v["ctl"], rnd, v["mround"], v["partner"],
            v["pairs"], v["slot_map"], v["log_a"], v["log_b"], v["log_h"])
        update_pairs[(cols, launch.blocks(min(max(m // 2, 1), PAIR_GRID), 1, self.max_blocks)),
                     tpb, stream](
            v["D"], n, self.code, v["alist"], v["ctl"], rnd, v["pairs"], v["partner"],
            v["mround"], v["size"], v["nn"], v["nnd"], v["flag"])
        finalize[cols, tpb, stream](
            v["alist"], n, v["ctl"], rnd, v["partner"], v["mround"], v["size"], v["nn"],
            v["flag"], v["stale"], v["blockcount"])
        compact[cols, tpb, stream](
            v["alist"], v["ctl"], rnd, v["partner"], v["mround"], v["blockcount"], v["spare"],
            v["rstart"], guard)
        # compact wrote the next list into spare (or copied it, once the rounds
        # stopped): swap the arrays and their views (no new view per round)
        for d in (self.x, self.v):
            d["alist"], d["spare"] = d["spare"], d["alist"]

    def compact_matrix(self, m, nstale):
        """Rebuild D and the per-slot state over the ``m`` active slots.

        In place, in increasing order of the new condensed index: the new
        position of every entry is at most its old one (the active slots keep
        their order, so fewer pairs precede it), hence a chunk of new rows,
        gathered into the scratch buffer and copied back, overwrites only
        entries that earlier chunks have already moved. Peak memory: D plus a
        scratch of at most ``COMPACT_SCRATCH_PER_SLOT`` entries per slot
        (one row at least) plus the new O(m) per-slot arrays.
        """
        xp, v, tpb, stream = self.xp, self.v, self.tpb, self.stream
        ns = self.ns
        r = np.arange(m, dtype=np.int64)
        q = r * m - r * (r + 1) // 2  # q[r]: new position of (r, r + 1); q[m-1]: the total
        total = int(q[-1])
        cap = max(COMPACT_SCRATCH_PER_SLOT * ns, m)
        scratch_x = xp.empty(min(cap, total), dtype=self.x["D"].dtype)
        scratch = launch.as_device(scratch_x)
        r0 = 0
        while r0 < m - 1:
            r1 = int(np.searchsorted(q, q[r0] + cap, side="right")) - 1
            r1 = min(max(r1, r0 + 1), m - 1)
            q0, q1 = int(q[r0]), int(q[r1])
            gather_rows[launch.blocks(r1 - r0, 1, self.max_blocks), tpb, stream](
                v["D"], ns, v["alist"], m, r0, r1, q0, scratch)
            self.x["D"][q0:q1] = scratch_x[:q1 - q0]
            r0 = r1
        i64 = np.int64
        inv = xp.full(ns + 1, m, dtype=i64)
        grid = launch.blocks(m, tpb, cap=1 << 30)  # one thread per slot, no stride loop
        slot_inverse[grid, tpb, stream](v["alist"], m, launch.as_device(inv))
        new = dict(nn=xp.empty(m, dtype=i64), nnd=xp.empty(m, dtype=self.x["nnd"].dtype),
                   size=xp.empty(m, dtype=np.float64), slot_map=xp.empty(m, dtype=i64))
        nv = {k: launch.as_device(a) for k, a in new.items()}
        remap_slots[grid, tpb, stream](
            v["alist"], m, launch.as_device(inv), v["stale"], nstale, v["nn"], v["nnd"],
            v["size"], v["slot_map"], nv["nn"], nv["nnd"], nv["size"], nv["slot_map"])
        self._put(**new, alist=xp.arange(m, dtype=i64), spare=xp.empty(m, dtype=i64),
                  mround=xp.full(m, -1, dtype=i64), partner=xp.full(m, -1, dtype=i64),
                  flag=xp.zeros(m, dtype=np.int32))
        self.ns = m


def _chain_hand_over(s, m, merges):
    """The last round merged fewer pairs than ``cuda_chain.hands_over`` allows
    (chain-like data): the device-side chain (``cuda_dense_chain.finish``)
    merges the ``m`` clusters left.

    State: ``s.v`` / ``s.x`` (views / arrays): ``D`` over ``s.ns`` slots
    (condensed in that numbering), ``alist[:m]`` the active slots, ``size``,
    ``slot_map`` (slot -> original slot), the log filled up to row ``merges``.
    The chain numbers slots as D does (``slots=s.ns``); after a compaction
    its log rows are mapped back to original slots.

    Returns
    -------
    int
        The merges logged once the chain has finished (``n - 1``).
    """
    x, v = s.x, s.v
    done = cuda_dense_chain.finish(v["D"], s.n, v["alist"], m, v["size"], v["log_a"],
                                   v["log_b"], v["log_h"], merges, s.code, s.xp, s.tpb,
                                   s.stream, cancel.current(), slots=s.ns)
    if s.ns < s.n:
        for k in ("log_a", "log_b"):
            x[k][merges:] = x["slot_map"][x[k][merges:]]
    return merges + done


def run(D, n, code, xp=np, tpb=None, max_blocks=None):
    """Reducible linkage by RNN rounds on the device.

    Parameters
    ----------
    D : device array, shape (n*(n-1)/2,)
        Condensed distances, float32 or float64 (squared for ward). Overwritten
        (and, once compacted, only its first entries mean anything).
    n : int
        Number of observations.
    code : int
        Method code from ``kernels.formulas`` (COMPLETE, AVERAGE, WEIGHTED, WARD).
    xp : module
        Array namespace of ``D`` (CuPy, or NumPy under the simulator).
    tpb : int, optional
        Threads per block, a power of two from 32 to ``MAX_TPB``; default
        ``launch.default_tpb()``.
    max_blocks : int, optional
        Cap on the blocks rescanning rows, on the pair dimension of the
        update grid and on the rows gathered at once by compaction (default
        ``launch.blocks``' cap: 65535 on a GPU, 2 in the simulator). Those
        kernels loop over what the grid does not cover.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Slots of the two merged clusters (each slot holds one of its members).
    h : ndarray of float64, shape (n-1,)
        Merge heights, squared for ward. Rows are in round order, unsorted.

    Raises
    ------
    ValueError
        No finite candidate was left (``cpu_common.NO_FINITE_CANDIDATE``): a
        round found no reciprocal pair (NaN distances), or a merge was at a
        non-finite distance; read once, with the merge log.
    """
    n, code, tpb, stream = launch.start(n, code, xp, tpb, MAX_TPB)
    if n < 2:
        return empty_log()
    s = _Rounds(D, n, code, xp, tpb, stream, max_blocks)
    s.first_pass()
    rnd, batch = 0, 1
    m, merges, rounds, chain_merges = n, 0, 0, 0
    while True:
        cancel.check()  # Ctrl-C between batches
        for _ in range(batch):
            s.queue_round(rnd, m, _guard(rnd))
            rnd += 1
        ctl = launch.to_host(s.x["ctl"])  # the batch's one host read
        cur = (rnd & 1) * CTL_SET  # the set the next round would read
        progress = int(ctl[cur + S_MERGES]) > merges
        m, merges = int(ctl[cur + S_M]), int(ctl[cur + S_MERGES])
        rounds, stop = int(ctl[cur + S_ROUNDS]), int(ctl[cur + S_STOP])
        if stop in (DONE, NO_PAIR) or not progress:
            break  # done, or no pair (NaN): a short log is reported below
        if stop == HAND_OVER:  # chain-like data: the device-side chain merges the rest
            finished = _chain_hand_over(s, m, merges)
            chain_merges = finished - merges
            merges = finished
            break
        if m <= COMPACT_FRACTION * s.ns:
            s.compact_matrix(m, int(ctl[cur + S_STALE]))
        batch = max(1, min(2 * batch, MAX_BATCH, m - 1))
    a, b, h = (launch.to_host(s.x[k]) for k in ("log_a", "log_b", "log_h"))
    # The one check, with the log: a round without a pair (NaN) left it short,
    # a merge at inf or NaN means no finite candidate was left.
    if merges < n - 1 or not np.isfinite(h).all():
        step = merges if merges < n - 1 else int(np.argmax(~np.isfinite(h)))
        raise ValueError(f"{NO_FINITE_CANDIDATE} (RNN rounds on the GPU: no finite "
                         f"reciprocal pair at merge {step} of {n - 1})")
    starts = list(launch.to_host(s.x["rstart"])[:rounds])
    starts += range(n - 1 - chain_merges, n - 1)  # the chain merges one pair at a time
    return _slot_order_within_rounds(a, b, h, starts)


def _slot_order_within_rounds(a, b, h, starts):
    """The log with each round's merges sorted by their smaller slot.

    ``find_pairs`` numbers a round's pairs with an atomic counter, i.e. in the
    order the threads arrived; the pairs of one round are disjoint, so any order
    within the round is a valid log, and a fixed one makes ``Z`` the same on
    every run when heights tie (the canonical sort is stable by height only).
    """
    bounds = list(starts) + [a.shape[0]]
    key = np.minimum(a, b)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        order = lo + np.argsort(key[lo:hi], kind="stable")
        a[lo:hi], b[lo:hi], h[lo:hi] = a[order], b[order], h[order]
    return a, b, h
