"""CUDA engine for centroid and median linkage: the generic algorithm on device.

Centroid and median are not reducible (a merged cluster can be closer to a
third one than either part was: inversions), so merges happen one at a time
in global-minimum order, and merge order is the output order.

State per row ``x``: ``nn[x]``, a candidate among the *upper* columns
``k > x`` (contiguous in the condensed row), and ``bound[x]``, a lower bound
on x's minimum over them. A step:

1. argmin of ``(bound[x], x)`` over the active rows;
2. if that row is stale (``bound[r] != D[r, nn[r]]``) rescan its upper part,
   which makes the bound exact, and go back to 1;
3. merge ``i = r`` with ``j = nn[r] > i``: the new cluster lives in slot j,
   slot i dies; write d(i+j, k) for every active k; rows pointing at i now
   point at j; rows k < j whose bound exceeds the new d(k, j) lower it; row
   j's new upper minimum comes out of the same pass.

An exact row with the least bound holds the global minimum pair, since every
pair appears in the upper part of its smaller slot.

The whole loop runs in ONE cooperative kernel (``generic_loop``): no host
synchronisation and no launch per step. Each block owns a contiguous slice of
slots (as rows for the argmin, as columns for scans and updates) and publishes
one partial minimum per phase; ``grid.sync()`` separates the phases, and every
block reduces the partials itself, so all blocks take the same decisions.
Partial buffers alternate between two halves so that a fast block never
overwrites what a slow block is still reading. Writes that other blocks could
race with are replaced by values every block holds locally (the row rescanned
last, the row merged last and its size). Under the simulator the grid is one
block (its grid sync is a block sync).
"""

import math

import numpy as np
from numba import cuda, float64, int64

from . import launch
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE
from .launch import (MAX_TPB, block_min, condensed_index, empty_log, lw_update, precedes,
                     row_base)

# Most blocks of the cooperative grid (one partial each; shared copies of them).
MAX_GRID = 1024
# Default grid: this many blocks per multiprocessor, within the cooperative limit
# (H100, n = 20 000: 1/SM 0.47 s, 2/SM 0.52 s, 4/SM 0.52 s for centroid; fewer
# blocks mean fewer partials to reduce and a cheaper grid barrier per step).
BLOCKS_PER_SM = 1


@cuda.jit(cache=NUMBA_CACHE)
def init_upper(D, n, nn, bound):
    """Each row's minimum over its upper part k > r (contiguous); -1/inf if none."""
    sd = cuda.shared.array(MAX_TPB, float64)
    sk = cuda.shared.array(MAX_TPB, int64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    r = cuda.blockIdx.x
    while r < n:
        row = row_base(n, r)  # D[row + k] is (r, k) for k > r
        bd = math.inf
        bk = n
        k = r + 1 + tid
        while k < n:
            d = D[row + k]
            if precedes(d, k, bd, bk):
                bd = d
                bk = k
            k += nt
        bd, bk = block_min(sd, sk, bd, bk)
        if tid == 0:
            nn[r] = bk if bk < n else -1
            bound[r] = bd
        r += cuda.gridDim.x


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _min_entries(sd, sk, ad, ak, off, count, none):
    """Block-wide minimum of the keys (ad[off+q], ak[off+q]), q < count.

    ``none`` (n) is the index of "no candidate", above every slot.
    """
    bd = math.inf
    bk = none
    q = cuda.threadIdx.x
    while q < count:
        if precedes(ad[off + q], ak[off + q], bd, bk):
            bd = ad[off + q]
            bk = ak[off + q]
        q += cuda.blockDim.x
    return block_min(sd, sk, bd, bk)


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _slice_min(sd, sk, bound, active, lo, hi, n, r, bdr, jp, bdj):
    """Block-wide minimum of (bound[x], x) over active x in [lo, hi).

    Rows r and jp take the given values instead of memory (their owner may be
    writing them right now).
    """
    bd = math.inf
    bk = n
    x = lo + cuda.threadIdx.x
    while x < hi:
        if active[x] != 0:
            if x == r:
                v = bdr
            elif x == jp:
                v = bdj
            else:
                v = bound[x]
            if precedes(v, x, bd, bk):
                bd = v
                bk = x
        x += cuda.blockDim.x
    return block_min(sd, sk, bd, bk)


@cuda.jit(cache=NUMBA_CACHE)
def generic_loop(D, n, code, active, nn, bound, size, pd, pk, rd, rk, log_a, log_b, log_h):
    """All n-1 merges of the generic algorithm (cooperative launch).

    ``pd/pk`` (slice minima of the bounds) and ``rd/rk`` (row minima) hold two
    halves of MAX_GRID partials each. A merge the loop cannot make (no upper
    neighbour: NaN distances) leaves ``log_a`` at -1 from that step on.
    """
    sd = cuda.shared.array(MAX_TPB, float64)
    sk = cuda.shared.array(MAX_TPB, int64)
    gd = cuda.shared.array(MAX_GRID, float64)
    gk = cuda.shared.array(MAX_GRID, int64)
    grid = cuda.cg.this_grid()
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    b = cuda.blockIdx.x
    ng = cuda.gridDim.x
    span = (n + ng - 1) // ng
    lo = b * span
    hi = min(lo + span, n)
    inf = math.inf

    # Prelude: every block publishes its slice minimum.
    par = 0
    sbd, sbk = _slice_min(sd, sk, bound, active, lo, hi, n, -1, inf, -1, inf)
    if tid == 0:
        pd[b] = sbd
        pk[b] = sbk
    grid.sync()
    q = tid
    while q < ng:
        gd[q] = pd[q]
        gk[q] = pk[q]
        q += nt
    cuda.syncthreads()

    jp = -1  # slot merged last step, its exact (bound, nn) and new size
    bdj = inf
    nnj = -1
    nnew = 0.0
    step = 0
    while step < n - 1:
        lr = -1  # row rescanned last, its exact (bound, nn)
        lbd = inf
        lnn = -1
        rescanned = False
        failed = False
        while True:
            br, r = _min_entries(sd, sk, gd, gk, 0, ng, n)
            if r >= n:
                failed = True
                break
            if r == jp:
                nr = nnj
                br = bdj
            elif r == lr:
                nr = lnn
                br = lbd
            else:
                nr = nn[r]
                br = bound[r]
            if nr < 0:
                failed = True
                break
            if D[condensed_index(n, r, nr)] == br:
                break  # the bound is exact: (r, nr) is the global minimum pair
            # Stale: rescan row r's upper part, each block over its columns
            # (hot-loop variant of init_upper's scan: a slice, active columns).
            rescanned = True
            row = row_base(n, r)
            bd = inf
            bk = n
            k = max(lo, r + 1) + tid
            while k < hi:
                if active[k] != 0:
                    d = D[row + k]
                    if precedes(d, k, bd, bk):
                        bd = d
                        bk = k
                k += nt
            bd, bk = block_min(sd, sk, bd, bk)
            par = 1 - par
            if tid == 0:
                rd[par * MAX_GRID + b] = bd
                rk[par * MAX_GRID + b] = bk
            grid.sync()
            lbd, lnn = _min_entries(sd, sk, rd, rk, par * MAX_GRID, ng, n)
            if lnn >= n:
                lnn = -1
            lr = r
            o = r // span
            if b == o and tid == 0:
                nn[r] = lnn
                bound[r] = lbd
            od, ok = _slice_min(sd, sk, bound, active, o * span, min(o * span + span, n),
                                n, r, lbd, jp, bdj)
            if tid == 0:
                gd[o] = od
                gk[o] = ok
            cuda.syncthreads()
        if failed:
            break
        if rescanned:
            # Slice recomputations above read bounds the update below rewrites.
            grid.sync()
        i = r
        j = nr
        dij = br
        ni = nnew if i == jp else size[i]
        nj = nnew if j == jp else size[j]
        if b == 0 and tid == 0:
            log_a[step] = i
            log_b[step] = j
            log_h[step] = dij

        # Update: d(i+j, x) into slot j for every active x of this block's slice.
        sbd = inf
        sbk = n
        rbd = inf
        rbk = n
        x = lo + tid
        while x < hi:
            if x == i:
                active[x] = 0
            elif x != j and active[x] != 0:
                px = condensed_index(n, j, x)
                D[px] = lw_update(code, D[condensed_index(n, i, x)], D[px], dij, ni, nj, size[x])
                v = D[px]  # compare what is stored
                if x < j:
                    bx = bound[x]
                    if nn[x] == i:
                        nn[x] = j
                    if v < bx:
                        bound[x] = v
                        nn[x] = j
                        bx = v
                    if precedes(bx, x, sbd, sbk):
                        sbd = bx
                        sbk = x
                else:
                    bx = bound[x]
                    if precedes(bx, x, sbd, sbk):
                        sbd = bx
                        sbk = x
                    if precedes(v, x, rbd, rbk):
                        rbd = v
                        rbk = x
            x += nt
        sbd, sbk = block_min(sd, sk, sbd, sbk)
        rbd, rbk = block_min(sd, sk, rbd, rbk)
        par = 1 - par
        if tid == 0:
            pd[par * MAX_GRID + b] = sbd
            pk[par * MAX_GRID + b] = sbk
            rd[par * MAX_GRID + b] = rbd
            rk[par * MAX_GRID + b] = rbk
        grid.sync()
        q = tid
        while q < ng:
            gd[q] = pd[par * MAX_GRID + q]
            gk[q] = pk[par * MAX_GRID + q]
            q += nt
        # Row j's new upper minimum (block_min's syncthreads also orders gd).
        bdj, nnj = _min_entries(sd, sk, rd, rk, par * MAX_GRID, ng, n)
        if nnj >= n:
            nnj = -1
        jp = j
        nnew = ni + nj
        oj = j // span
        if tid == 0:
            if b == oj:
                nn[j] = nnj
                bound[j] = bdj
                size[j] = nnew
            if precedes(bdj, j, gd[oj], gk[oj]):
                gd[oj] = bdj
                gk[oj] = j
        cuda.syncthreads()
        step += 1


def _signatures():
    i, a, f64 = "int64", "int64[::1]", "float64[::1]"
    sigs = {"init_upper": [], "generic_loop": []}
    for f in ("float32", "float64"):
        fa = f + "[::1]"
        sigs["init_upper"].append(f"void({fa}, {i}, {a}, {fa})")
        sigs["generic_loop"].append(
            f"void({fa}, {i}, {i}, int8[::1], {a}, {fa}, {f64}, {f64}, {a}, {f64}, {a}, "
            f"{a}, {a}, {f64})"
        )
    return sigs


# Every kernel with explicit signatures, for the PTX compilation test.
PTX_SIGNATURES = _signatures()


def _cooperative_grid(kernel, args, tpb, grid):
    """The kernel specialised for ``args`` and its grid: co-resident, <= MAX_GRID."""
    spec = kernel.specialize(*args)
    overloads = spec.overloads
    # The simulator keeps no overloads and answers any key (with 1 block).
    compiled = next(iter(overloads.values())) if len(overloads) else overloads[None]
    limit = compiled.max_cooperative_grid_blocks(tpb)
    if grid is None:
        grid = 1 if launch.simulating() else (
            BLOCKS_PER_SM * cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return spec, max(1, min(int(grid), limit, MAX_GRID))


def run(D, n, code, xp=np, tpb=None, grid=None):
    """Centroid or median linkage by the generic algorithm, on the device.

    Parameters
    ----------
    D : device array, shape (n*(n-1)/2,)
        Condensed *squared* Euclidean distances, float32 or float64. Overwritten.
    n : int
        Number of observations.
    code : int
        ``formulas.CENTROID`` or ``formulas.MEDIAN`` (any Lance-Williams code works).
    xp : module
        Array namespace of ``D`` (CuPy, or NumPy under the simulator).
    tpb : int, optional
        Threads per block, a power of two from 32 to ``MAX_TPB``; default
        ``launch.default_tpb()``.
    grid : int, optional
        Blocks of the cooperative loop, capped by co-residency and MAX_GRID
        (default one per multiprocessor; the simulator runs one).

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Slots of the merged clusters in merge order (slot j keeps the union).
    h : ndarray of float64, shape (n-1,)
        Squared merge heights in merge order (inversions possible).

    Raises
    ------
    ValueError
        No finite candidate was left (``cpu_common.NO_FINITE_CANDIDATE``): the
        loop stopped without a mergeable pair (NaN distances) or merged at a
        non-finite distance; read once, with the merge log.
    """
    n, code, tpb, stream = launch.start(n, code, xp, tpb, MAX_TPB)
    if n < 2:
        return empty_log()
    i64 = np.int64
    arrays = dict(
        D=D,
        active=xp.ones(n, dtype=np.int8),
        nn=xp.empty(n, dtype=i64),
        bound=xp.empty(n, dtype=D.dtype),
        size=xp.ones(n, dtype=np.float64),
        pd=xp.empty(2 * MAX_GRID, dtype=np.float64),
        pk=xp.empty(2 * MAX_GRID, dtype=i64),
        rd=xp.empty(2 * MAX_GRID, dtype=np.float64),
        rk=xp.empty(2 * MAX_GRID, dtype=i64),
        log_a=xp.full(n - 1, -1, dtype=i64),
        log_b=xp.full(n - 1, -1, dtype=i64),
        log_h=xp.zeros(n - 1, dtype=np.float64),
    )
    v = {name: launch.as_device(arr) for name, arr in arrays.items()}
    init_upper[launch.blocks(n, 1), tpb, stream](v["D"], n, v["nn"], v["bound"])
    args = (v["D"], n, code, v["active"], v["nn"], v["bound"], v["size"], v["pd"], v["pk"],
            v["rd"], v["rk"], v["log_a"], v["log_b"], v["log_h"])
    loop, blocks = _cooperative_grid(generic_loop, args, tpb, grid)
    loop[blocks, tpb, stream](*args)
    a, b, h = (launch.to_host(arrays[k]) for k in ("log_a", "log_b", "log_h"))
    if (a < 0).any() or not np.isfinite(h).all():
        # The loop stops at a step with no mergeable pair (NaN distances); a
        # merge at inf means every candidate left was inf. Read with the log.
        step = int(np.argmax((a < 0) | ~np.isfinite(h)))
        raise ValueError(
            f"{NO_FINITE_CANDIDATE} (generic linkage on the GPU found no mergeable pair at "
            f"a finite distance at step {step} of {n - 1})"
        )
    return a, b, h
