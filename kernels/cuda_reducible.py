"""CUDA engine for the reducible methods: complete, average, weighted, ward.

Nearest-neighbour cache plus reciprocal-nearest-neighbour (RNN) rounds
(DESIGN.md section 2). Every active row ``i`` keeps ``nn[i]``, ``nnd[i]``: its
minimum over the active columns under the key ``(distance, column)``. A round:

1. ``rescan_rows``  -- stale rows get their minimum again (one block per row,
   shared-memory reduction), over the compacted list of active slots.
2. ``find_pairs``   -- every reciprocal pair ``nn[nn[i]] == i`` (``i < nn[i]``)
   is appended to the pair list and to the merge log (atomic counter). The
   host reads this one counter: the only synchronisation of the round.
3. ``update_pairs`` -- one launch writes the Lance-Williams distances of every
   merged cluster (kept in slot ``i``, slot ``j`` dies) to every active column.
   A column that merges in the same round gets the nested update, computed
   once, by the pair with the smaller slot.
4. ``finalize``     -- sizes; rows whose neighbour merged, rows where a new
   cluster ties or beats the cached key, and the merged rows become stale.
5. ``compact``      -- the active-slot list loses the dead slots (order kept,
   so the contiguous half of each condensed row is read in order).

A round that merged few pairs (``cuda_chain.hands_over``: chain-like data,
one or two pairs per round) hands the rest to the nearest-neighbour chain in
one persistent kernel (``cuda_dense_chain.finish``) after its update.

Invariant: ``nn[k]`` is k's exact minimum under ``(distance, column)`` of the
stored (rounded) matrix. Then the nn graph has only 2-cycles, so every round
finds at least one pair; a round without one (NaN distances) ends the loop
and the short merge log raises ``ValueError``. For reducible methods merging every RNN pair at once
yields exactly the sequential hierarchy (after ``_tree``'s height sort).

Kernels take caller-allocated arrays (CuPy on a GPU, NumPy in the simulator);
index arithmetic is int64 throughout, stored index arrays are int64.
"""

import math

import numpy as np
from numba import cuda, float64, int64

from . import cancel, cuda_chain, cuda_dense_chain, launch
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE
from .launch import block_min, condensed_index, empty_log, lw_update, precedes, row_base

# Shared arrays are sized by this constant; the launch's threads per block
# (a power of two, at most MAX_TPB) loop over cuda.blockDim.x.
MAX_TPB = 1024

# Slots of the device counter array.
C_PAIRS = 0  # reciprocal pairs found this round
C_STALE = 1  # rows on the stale list


@cuda.jit(cache=NUMBA_CACHE)
def rescan_rows(D, n, alist, m, stale, cnt, nn, nnd):
    """Exact (distance, column) minimum of each stale row over the active slots.

    Blocks loop over the stale list (its length is on the device); threads of
    a block split the active-slot list ``alist[:m]``. Columns k > i are
    contiguous in the condensed row, columns k < i are strided.
    """
    sd = cuda.shared.array(MAX_TPB, float64)
    sk = cuda.shared.array(MAX_TPB, int64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    nstale = cnt[C_STALE]
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
                if k > i:
                    d = D[row + k]
                else:
                    d = D[condensed_index(n, k, i)]
                # (hot-loop variant of cuda_generic's upper-row scans: whole rows here)
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
def find_pairs(alist, m, n, nn, nnd, rnd, mround, partner, pairs, cnt,
               merges, log_a, log_b, log_h):
    """Append every reciprocal pair to the pair list and the merge log."""
    t = cuda.grid(1)
    if t == 0:
        cnt[C_STALE] = 0  # rescan_rows (previous launch) is done with it
    if t < m:
        i = alist[t]
        j = nn[i]
        if i < j and j < n and nn[j] == i:
            p = cuda.atomic.add(cnt, C_PAIRS, 1)
            pairs[p] = i
            partner[i] = j
            partner[j] = i
            mround[i] = rnd
            mround[j] = rnd
            q = merges + p
            log_a[q] = i
            log_b[q] = j
            log_h[q] = nnd[i]


@cuda.jit(cache=NUMBA_CACHE)
def update_pairs(D, n, code, alist, m, pairs, npairs, partner, mround, rnd,
                 size, nn, nnd, flag):
    """Lance-Williams distances of every merged cluster to every active column.

    Grid x covers the active columns, grid y (looped) the pairs. Pair (i, j)
    keeps slot i. Each written entry D[i, k] is read and written by one
    thread only: for a column k of another merging pair (k, l) the entry
    D[i, k] becomes d(i+j, k+l), computed by the pair with the smaller slot
    as the sequential algorithm would (lower pair first).
    """
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if t >= m:
        return
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
def finalize(alist, m, n, partner, mround, rnd, size, nn, flag, stale, cnt, blockcount):
    """Sizes, the next stale list, and survivors per block for ``compact``."""
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    keep = 0
    if t < m:
        k = alist[t]
        keep = 1
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
            stale[cuda.atomic.add(cnt, C_STALE, 1)] = k
    kept = cuda.syncthreads_count(keep)
    if cuda.threadIdx.x == 0:
        blockcount[cuda.blockIdx.x] = kept
    if t == 0:
        cnt[C_PAIRS] = 0  # the host has read it


@cuda.jit(cache=NUMBA_CACHE)
def compact(alist, m, partner, mround, rnd, blockcount, out):
    """Order-preserving compaction of the active-slot list (same grid as finalize)."""
    ss = cuda.shared.array(MAX_TPB, int64)
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
        if mround[k] == rnd and partner[k] < k:
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


def _sig(*args):
    return "void(" + ", ".join(args) + ")"


def _signatures():
    i, a = "int64", "int64[::1]"
    sigs = {name: [] for name in ("rescan_rows", "find_pairs", "update_pairs", "finalize", "compact")}
    for f in ("float32", "float64"):
        fa = f + "[::1]"
        sigs["rescan_rows"].append(_sig(fa, i, a, i, a, a, a, fa))
        sigs["find_pairs"].append(_sig(a, i, i, a, fa, i, a, a, a, a, i, a, a, "float64[::1]"))
        sigs["update_pairs"].append(
            _sig(fa, i, i, a, i, a, i, a, a, i, "float64[::1]", a, fa, "int32[::1]"))
    sigs["finalize"].append(_sig(a, i, i, a, a, i, "float64[::1]", a, "int32[::1]", a, a, a))
    sigs["compact"].append(_sig(a, i, a, a, i, a, a))
    return sigs


# Every kernel with explicit signatures, for the PTX compilation test.
PTX_SIGNATURES = _signatures()


def run(D, n, code, xp=np, tpb=None, max_blocks=None):
    """Reducible linkage by RNN rounds on the device.

    Parameters
    ----------
    D : device array, shape (n*(n-1)/2,)
        Condensed distances, float32 or float64 (squared for ward). Overwritten.
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
        Cap on the blocks rescanning rows and on the pair dimension of the
        update grid (default ``launch.blocks``' cap: 65535 on a GPU, 2 in the
        simulator). Both kernels loop over what the grid does not cover.

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

    i64 = np.int64
    cnt = xp.zeros(2, dtype=i64)
    cnt[C_STALE] = n  # round 0 rescans every row
    arrays = dict(
        D=D,
        alist=xp.arange(n, dtype=i64),
        spare=xp.empty(n, dtype=i64),
        stale=xp.arange(n, dtype=i64),
        cnt=cnt,
        nn=xp.empty(n, dtype=i64),
        nnd=xp.empty(n, dtype=D.dtype),
        mround=xp.full(n, -1, dtype=i64),
        partner=xp.full(n, -1, dtype=i64),
        pairs=xp.empty(max(n // 2, 1), dtype=i64),
        size=xp.ones(n, dtype=np.float64),
        flag=xp.zeros(n, dtype=np.int32),
        blockcount=xp.empty(-(-n // tpb), dtype=i64),
        log_a=xp.empty(n - 1, dtype=i64),
        log_b=xp.empty(n - 1, dtype=i64),
        log_h=xp.empty(n - 1, dtype=np.float64),
    )
    v = {name: launch.as_device(arr) for name, arr in arrays.items()}
    alist, spare = v["alist"], v["spare"]

    merges, m, rnd = 0, n, 0
    starts = []  # first log row of each round
    while merges < n - 1:
        cancel.check()  # Ctrl-C between rounds
        cols = -(-m // tpb)  # exactly covers alist[:m]: find_pairs..compact need it
        rescan_rows[launch.blocks(m, 1, max_blocks), tpb, stream](
            v["D"], n, alist, m, v["stale"], v["cnt"], v["nn"], v["nnd"])
        find_pairs[cols, tpb, stream](
            alist, m, n, v["nn"], v["nnd"], rnd, v["mround"], v["partner"], v["pairs"],
            v["cnt"], merges, v["log_a"], v["log_b"], v["log_h"])
        npairs = int(launch.to_host(cnt)[C_PAIRS])  # the round's one host sync
        if npairs == 0:
            break  # no reciprocal pair (NaN rows): the log below is short, reported there
        starts.append(merges)
        merges += npairs
        if merges == n - 1:
            break
        update_pairs[(cols, launch.blocks(npairs, 1, max_blocks)), tpb, stream](
            v["D"], n, code, alist, m, v["pairs"], npairs, v["partner"], v["mround"], rnd,
            v["size"], v["nn"], v["nnd"], v["flag"])
        finalize[cols, tpb, stream](
            alist, m, n, v["partner"], v["mround"], rnd, v["size"], v["nn"], v["flag"],
            v["stale"], v["cnt"], v["blockcount"])
        compact[cols, tpb, stream](
            alist, m, v["partner"], v["mround"], rnd, v["blockcount"], spare)
        alist, spare = spare, alist
        m -= npairs
        rnd += 1
        if cuda_chain.hands_over(npairs, m + npairs):  # chain-like data: finish on the device
            done = cuda_dense_chain.finish(
                v["D"], n, alist, m, v["size"], v["log_a"], v["log_b"], v["log_h"], merges, code,
                xp, tpb, stream, cancel.current())
            starts += range(merges, merges + done)  # each chain merge is its own round
            merges += done
            break
    a, b, h = (launch.to_host(arrays[k]) for k in ("log_a", "log_b", "log_h"))
    # The one check, with the log: a round without a pair (NaN) left it short,
    # a merge at inf or NaN means no finite candidate was left.
    if merges < n - 1 or not np.isfinite(h).all():
        step = merges if merges < n - 1 else int(np.argmax(~np.isfinite(h)))
        raise ValueError(f"{NO_FINITE_CANDIDATE} (RNN rounds on the GPU: no finite "
                         f"reciprocal pair at merge {step} of {n - 1})")
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
