"""Average linkage with cosine/correlation: the reducible rounds' scans as GEMM slabs.

For average linkage on mean unit vectors (``formulas.cluster_distance``:
key = 1 - ua.ub, clamped at 0) a slab of keys is 1 - CT[:, R].T @ CT[:, C]:
a matrix product, which cuBLAS runs near the FP64 peak while the tile kernels
of ``cuda_vector`` (``rnn_scan``, ``fresh_pass``) reach about half of it. The
product only filters; the exact key decides, so the lists, bounds and the
tree are bitwise those of the tile kernels.

Per slab (rows R x columns C, sizes from ``SLAB_BYTES`` and ``SLAB_COLS``):

1. ``G = xp.matmul(CT[:, R].T, CT[:, C])`` in float64 (CuPy -> cuBLAS DGEMM;
   NumPy in the simulator). float32 storage is widened first, so the product
   never runs in FP32 or TF32. G is the slab's only large temporary.
2. Approximate keys ``g = max(1 - G, 0)`` (``formulas.cluster_distance``
   applied to G's dot products) and a margin ``delta_i`` per row with
   ``|g_ij - e_ij| <= delta_i``, e the engine's exact key (below).
3. ``tau_i``: the (K + 1)-th smallest ``g_ij``, j != i (+inf when the row
   has fewer than K + 1 other columns). A column with ``g_ij > tau_i + 2
   delta_i`` has ``e_ij > tau_i + delta_i >= e`` of K + 1 other columns, so it
   is not among row i's K + 1 first: only columns with ``g_ij <= tau_i + 2
   delta_i`` are candidates. For ``fresh`` also every pair (new u, kept row
   k) whose offer could precede k's bound: ``g_uk - delta_u <= BW[k]`` (or k
   has no bound yet). ``slab_count`` (a block per row: tau from each
   thread's K + 1 smallest keys, then the count) and ``slab_emit`` (the
   candidates, at offsets from the counts' prefix sum) read G in place, three
   passes in all; ``approx_keys`` + ``candidates`` are the same rule in array
   form (the reference the tests and ``count_gemm_work`` use).
4. ``pair_keys``: the exact key of every candidate pair, the in-order sum of
   ``metrics.metric_accumulate`` that the tile kernels compute
   (``launch.summary_distance``: the same products, the same order, float64).
5. ``gemm_select``: each row's K + 1 first (key, slot) among its candidates
   (``candidate_lists._klist_insert``), one partial list per column share, which
   ``cuda_vector.rnn_combine`` folds into the row's list, bound, nn and nnd
   exactly as after ``rnn_scan``. ``gemm_offer`` (fresh only): each kept row
   is offered its candidate new clusters (``candidate_lists._offer``, whose
   result does not depend on the order of the offers), as ``fresh_pass`` does.

The rounding bound (u = 2^-53, gamma_d = d u / (1 - d u), N = ||ua|| ||ub||
of the stored, widened vectors). Let P be the exact dot product. Any
floating-point sum of the d rounded products, in any order and with or
without fused multiply-adds, is within gamma_d sum_k |ua_k ub_k| <= gamma_d N
of P (Higham, Accuracy and Stability, 3.1; Cauchy-Schwarz), plus at most
d 2^-1074 if products underflow. That holds for the GEMM's G and for the
engine's in-order D alike, so |G - D| <= 2 gamma_d N + 2 d 2^-1074. The keys
round 1 - x once each (error <= u |1 - x| <= u (1 + (1 + gamma_d) N)); the
clamp at 0 is 1-Lipschitz and does not widen the gap; the comparisons above
round tau + 2 delta and g - delta once each (error <= u |value|). Summed:
2 gamma_d N + 4 u N + 6 u + d 2^-1073 plus terms of order u^2. The margin used
is ``delta_i = A ||ua_i|| max_j ||ub_j|| + B`` with A = 4 gamma_d + 8 u,
B = 8 u + 4 d 2^-1074: twice the bound, so that the rounding of the norms
(relative gamma_{d+2}), of delta itself and of the u^2 terms, all below
1e-13 relative, are covered with room to spare. The norms are computed once
per slab (rows, and the column share's largest). The bound assumes IEEE
float64 operations in the product (cuBLAS's default DGEMM, FP64 units or
FP64 tensor cores); an opt-in FP64 emulation (``CUBLAS_EMULATION_STRATEGY``,
fixed-point splitting) must stay off. Unit rows and mean unit vectors
have N <= 1, so delta is about 4 gamma_d: 1.7e-13 at d = 384; only columns
within 3.4e-13 of the K + 1-th key are rechecked beyond the K + 1 first.

Switch: ``ENABLED`` (None: on for a GPU, off in the simulator, where the tile
kernels remain the tested default; True or False forces it, as the tests do).
``cuda_vector._Lists`` calls ``scan`` / ``fresh`` here for average linkage
with the cosine summary (cosine and correlation input) when ``enabled``.
Host reads: one per slab and share (the candidate count).
``benchmarks/count_gemm_work.py`` counts the GEMM multiply-adds and the
exact rechecks of this path.
"""

import math

import numpy as np
from numba import cuda

from . import candidate_lists, formulas, launch, metrics
from ._config import NUMBA_CACHE

# None: on for a GPU (CuPy + cuBLAS), off in the simulator; True / False force it.
ENABLED = None
# Memory for one slab's product (SLAB_ELEM_BYTES per (row, column)) and the
# columns per share (a row's candidates are chosen per share). A
# GPU wants slabs of hundreds of rows so that each column share read from
# memory feeds many multiply-adds (DGEMM is compute-bound from ~100 rows).
SLAB_BYTES = 2 << 30
SLAB_COLS = 1 << 16
SLAB_ELEM_BYTES = 8  # the product G; the selection kernels read it in place

U = 2.0 ** -53  # unit roundoff of float64
_TINY = 2.0 ** -1074  # smallest subnormal: the underflow term of the bound

# A scan keeps K + 1 entries (the list and its bound). A plain module constant:
# local array sizes must be compile-time globals of this module.
_KLIST = candidate_lists._KLIST
# Threads per block of the slab kernels at most: slab_count keeps every
# thread's K + 1 smallest keys in shared memory (128 x 33 x 8 B = 33 KB).
SLAB_TPB = 128
_SH_HEADS = SLAB_TPB * _KLIST

_I32 = np.int32
_I64 = np.int64
_F64 = np.float64


def enabled(code, metric):
    """True when ``cuda_vector._Lists`` takes the GEMM path for (code, metric).

    Average linkage with the cosine summary (``metric`` is the engine's
    metric code: correlation input arrives centred and normalised as COSINE).
    """
    if code != formulas.AVERAGE or metric != metrics.COSINE:
        return False
    if ENABLED is None:
        return not launch.simulating()
    return bool(ENABLED)


def margin_coefficients(d):
    """(A, B) of the margin ``delta = A * ||ua|| * ||ub|| + B`` (module docstring).

    Raises ValueError where d u >= 1/2 (the bound needs d u < 1; no float64
    problem of interest comes near).
    """
    du = d * U
    if not du < 0.5:
        raise ValueError(f"GEMM margin undefined for d = {d} coordinates (d * 2**-53 >= 1/2)")
    gamma = du / (1.0 - du)
    return 4.0 * gamma + 8.0 * U, 8.0 * U + 4.0 * d * _TINY


def row_norms(V, xp):
    """Euclidean norms of the columns of V (d, m), float64."""
    return xp.sqrt(xp.einsum("ij,ij->j", V, V))


def approx_keys(CTR, CTC, xp):
    """``max(1 - CTR.T @ CTC, 0)``: the slab's GEMM keys, float64 (inputs widened).

    Array form of what ``slab_count`` / ``slab_emit`` compute per element.
    """
    G = xp.matmul(CTR.T, CTC)
    xp.subtract(1.0, G, out=G)
    xp.maximum(G, 0.0, out=G)
    return G


def candidates(g, delta, kk, self_r, self_c, bw=None, bj=None, xp=np):
    """Mask of the (row, column) pairs of a slab to recheck exactly.

    The candidate rule of the module docstring in array form: the set
    ``slab_count`` + ``slab_emit`` give (tests hold them equal), and the one
    ``benchmarks/count_gemm_work.py`` counts.

    Parameters
    ----------
    g : array (r, c), float64
        GEMM keys (``approx_keys``); overwritten at the self pairs (+inf).
    delta : array (r,), float64
        Each row's margin.
    kk : int
        List length K: each row needs its K + 1 first.
    self_r, self_c : arrays of int
        Positions (row, column) of the pairs of a slot with itself (excluded).
    bw, bj : arrays (c,), optional
        The columns' bounds (``fresh``: offers of the rows to the columns),
        where bj < 0 means no bound (every offer is taken).

    Returns
    -------
    mask : array (r, c) of bool
    """
    r, c = g.shape
    g[self_r, self_c] = np.inf
    if c >= kk + 2:
        tau = xp.partition(g, kk, axis=1)[:, kk]
        mask = g <= (tau + 2.0 * delta)[:, None]
    else:  # fewer than K + 1 other columns: every one is in the list
        mask = xp.ones((r, c), dtype=bool)
    if bw is not None:
        offer = (g - delta[:, None]) <= bw[None, :]
        offer |= (bj < 0)[None, :]
        mask |= offer
    mask[self_r, self_c] = False
    return mask


@cuda.jit(cache=NUMBA_CACHE)
def pair_keys(CT, size, extra, pr, pc, npairs, code, metric, out):
    """out[e] = the exact key of slots (pr[e], pc[e]), as the tile kernels compute it."""
    mc = launch.coordinate_metric(code, metric)
    for e in range(cuda.grid(1), npairs, cuda.gridsize(1)):
        out[e] = launch.summary_distance(CT, size, extra, code, metric, mc, pr[e], pc[e])


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _candidate(g, thr, dr, bw, bj, c, offers):
    """``candidates``' test for one pair (same operations, so the same set);
    column c's bound (bw, bj) is read only for offers (scans pass 1-element arrays)."""
    if g <= thr:
        return True
    if offers == 0:
        return False
    return bj[c] < 0 or g - dr <= bw[c]


@cuda.jit(cache=NUMBA_CACHE)
def slab_count(G, R, C, nrows, ncols, delta, kk, bw, bj, offers, thr, count):
    """Per row of the slab G (block per row): thr[r] = tau_r + 2 delta_r and the
    number of candidates (``candidates``), from the products G read directly.

    Pass 1: each thread keeps the kk + 1 smallest GEMM keys of its columns,
    in shared memory; a tree of pairwise merges (log2(blockDim) steps) leaves
    the row's kk + 1 smallest in thread 0's list, whose last is tau (+inf
    when the row has fewer other columns). Pass 2: count. At most SLAB_TPB
    threads per block (the lists' shared memory).
    """
    sh = cuda.shared.array(_SH_HEADS, np.float64)
    kw = cuda.local.array(_KLIST, np.float64)
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    m = kk + 1
    for r in range(cuda.blockIdx.x, nrows, cuda.gridDim.x):
        i = R[r]
        for q in range(m):
            kw[q] = math.inf
        for c in range(t, ncols, bd):
            if C[c] != i:
                g = launch.cluster_distance(formulas.AVERAGE, metrics.COSINE, G[r, c], 1.0,
                                            1.0, 0.0, 0.0)
                if g < kw[m - 1]:
                    pos = m - 1
                    while pos > 0 and g < kw[pos - 1]:
                        kw[pos] = kw[pos - 1]
                        pos -= 1
                    kw[pos] = g
        for q in range(m):
            sh[t * m + q] = kw[q]
        cuda.syncthreads()
        half = bd // 2
        while half > 0:
            if t < half:  # merge lists t and t + half: their m smallest
                a = 0
                b = 0
                for q in range(m):
                    va = sh[t * m + a]
                    vb = sh[(t + half) * m + b]
                    if va <= vb:
                        kw[q] = va
                        a += 1
                    else:
                        kw[q] = vb
                        b += 1
                for q in range(m):
                    sh[t * m + q] = kw[q]
            cuda.syncthreads()
            half //= 2
        tau = sh[m - 1]
        cuda.syncthreads()  # every thread has tau before the next row reuses sh
        dr = delta[r]
        lim = tau + 2.0 * dr
        cnt = 0
        for c in range(t, ncols, bd):
            if C[c] != i:
                g = launch.cluster_distance(formulas.AVERAGE, metrics.COSINE, G[r, c], 1.0,
                                            1.0, 0.0, 0.0)
                if _candidate(g, lim, dr, bw, bj, c, offers):
                    cnt += 1
        if t == 0:
            thr[r] = lim
        cuda.atomic.add(count, r, cnt)  # count[] starts at 0 (host)


@cuda.jit(cache=NUMBA_CACHE)
def slab_emit(G, R, C, nrows, ncols, delta, bw, bj, offers, thr, starts, fill, pr, pc, pcol):
    """Write each row's candidates (``slab_count``'s) to starts[r]..starts[r + 1]:
    slots pr (row), pc (column) and the column's position pcol. Order within
    a row is arrival order: ``gemm_select`` and ``gemm_offer`` do not depend on it."""
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    for r in range(cuda.blockIdx.x, nrows, cuda.gridDim.x):
        i = R[r]
        lim = thr[r]
        dr = delta[r]
        for c in range(t, ncols, bd):
            if C[c] != i:
                g = launch.cluster_distance(formulas.AVERAGE, metrics.COSINE, G[r, c], 1.0,
                                            1.0, 0.0, 0.0)
                if _candidate(g, lim, dr, bw, bj, c, offers):
                    e = starts[r] + cuda.atomic.add(fill, r, 1)
                    pr[e] = i
                    pc[e] = C[c]
                    pcol[e] = c


@cuda.jit(cache=NUMBA_CACHE)
def gemm_select(starts, slot, key, nrows, kk, share, part_w, part_j):
    """Row r's kk + 1 first (key, slot) among its candidates starts[r]..starts[r + 1]
    into part_w[share * (kk + 1) + q, r], part_j[...] (slot -1: empty)."""
    kw = cuda.local.array(_KLIST, np.float64)
    kj = cuda.local.array(_KLIST, np.int64)
    m = kk + 1
    for r in range(cuda.grid(1), nrows, cuda.gridsize(1)):
        for q in range(m):
            kw[q] = math.inf
            kj[q] = -1
        for e in range(starts[r], starts[r + 1]):
            candidate_lists._klist_insert(kw, kj, m, key[e], np.int64(slot[e]))
        for q in range(m):
            part_w[share * m + q, r] = kw[q]
            part_j[share * m + q, r] = kj[q]


@cuda.jit(cache=NUMBA_CACHE)
def gemm_offer(starts, cols, ncols, slot, key, flag, kk, LW, LJ, BW, BJ):
    """Offer column position c's candidate new clusters starts[c]..starts[c + 1]
    (slot, key) to its row cols[c] (one thread per row; kept rows only)."""
    for c in range(cuda.grid(1), ncols, cuda.gridsize(1)):
        k = np.int64(cols[c])
        if flag[k] != 0:
            continue
        for e in range(starts[c], starts[c + 1]):
            candidate_lists._offer(LW, LJ, BW, BJ, k, kk, key[e], np.int64(slot[e]))


_FLOATS = ("float32", "float64")
_A32 = "int32[::1]"
_A64 = "int64[::1]"
_AF = "float64[::1]"
PTX_SIGNATURES = {
    "pair_keys": [
        f"void({dt}[:, ::1], {_AF}, {_AF}, {_A32}, {_A32}, int64, int64, int64, {_AF})"
        for dt in _FLOATS
    ],
    "slab_count": [
        f"void(float64[:, ::1], {_A32}, {_A32}, int64, int64, {_AF}, int64, {_AF}, {_A32}, "
        f"int64, {_AF}, {_A64})"
    ],
    "slab_emit": [
        f"void(float64[:, ::1], {_A32}, {_A32}, int64, int64, {_AF}, {_AF}, {_A32}, int64, "
        f"{_AF}, {_A64}, {_A64}, {_A32}, {_A32}, {_A32})"
    ],
    "gemm_select": [
        f"void({_A64}, {_A32}, {_AF}, int64, int64, int64, float64[:, ::1], int32[:, ::1])"
    ],
    "gemm_offer": [
        f"void({_A64}, {_A32}, int64, {_A32}, {_AF}, int8[::1], int64, float64[:, ::1], "
        f"int32[:, ::1], {_AF}, {_A32})"
    ],
}


# --------------------------------------------------------------------------
# Driver (called by cuda_vector._Lists)
# --------------------------------------------------------------------------

def slab_shape(nrows, ncols):
    """(rows per slab, columns per share) within ``SLAB_BYTES`` and ``SLAB_COLS``."""
    cs = int(max(1, min(ncols, SLAB_COLS)))
    rs = int(max(1, min(nrows, SLAB_BYTES // (SLAB_ELEM_BYTES * cs))))
    return rs, cs


def _csr(keys_sorted, count, xp):
    """starts (count + 1,) of the runs of equal ``keys_sorted`` values 0..count-1."""
    return xp.searchsorted(keys_sorted, xp.arange(count + 1)).astype(_I64)


class GemmLists:
    """The GEMM path of ``cuda_vector._Lists`` (same state ``dv``, same results)."""

    def __init__(self, lists, xp):
        self.lists, self.xp = lists, xp
        dv = lists.dv
        self.CT = xp.asarray(dv["CT"])
        d = self.CT.shape[0]
        self.A, self.B = margin_coefficients(d)
        self.tpb, self.stream = lists.tpb, lists.stream

    def _slabs(self, R, C, offers):
        """Per (row slab, column share): exact candidate keys, listed and offered."""
        xp, lists = self.xp, self.lists
        dv, kk, m = lists.dv, lists.kk, lists.kk + 1
        CT, tpb, stream = self.CT, self.tpb, self.stream
        dev = launch.as_device
        nr, nc = int(R.shape[0]), int(C.shape[0])
        rs, cs = slab_shape(nr, nc)
        ns = -(-nc // cs)
        # no offers (scans): the kernels never read the columns' bounds
        bw, bj = dev(xp.empty(1, _F64)), dev(xp.empty(1, _I32))
        for r0 in range(0, nr, rs):
            Rb = R[r0:r0 + rs]
            nrb = int(Rb.shape[0])
            CTR = CT[:, Rb].astype(_F64)  # widened: the product runs in float64
            nu = row_norms(CTR, xp)
            pw, pj = lists.part.get(ns * m, nrb)
            stpb = min(tpb, SLAB_TPB)
            per_row = (launch.blocks(nrb * stpb, stpb), stpb, stream)  # a block per row
            for y in range(ns):
                Cb = C[y * cs:(y + 1) * cs]
                ncb = int(Cb.shape[0])
                CTC = CT[:, Cb].astype(_F64)
                G = xp.matmul(CTR.T, CTC)  # (nrb, ncb) dot products: cuBLAS DGEMM on a GPU
                delta = self.A * nu * row_norms(CTC, xp).max() + self.B  # max stays on device
                if offers:  # kept rows only (flag 0): new clusters take no offers
                    kept = xp.asarray(dv["flag"])[Cb] == 0
                    bw = dev(xp.where(kept, xp.asarray(dv["BW"])[Cb], -np.inf))
                    bj = dev(xp.where(kept, xp.asarray(dv["BJ"])[Cb], 0).astype(_I32))
                thr = xp.empty(nrb, _F64)
                count = xp.zeros(nrb, _I64)
                slab_count[per_row](dev(G), dev(Rb), dev(Cb), _I64(nrb), _I64(ncb), dev(delta),
                                    _I64(kk), bw, bj, _I64(offers), dev(thr), dev(count))
                starts = xp.zeros(nrb + 1, _I64)
                xp.cumsum(count, out=starts[1:])
                npairs = int(starts[-1])  # host read: the candidate count
                pr = xp.empty(npairs, _I32)
                pc = xp.empty(npairs, _I32)
                pcol = xp.empty(npairs, _I32)
                key = xp.empty(npairs, _F64)
                if npairs:
                    slab_emit[per_row](dev(G), dev(Rb), dev(Cb), _I64(nrb), _I64(ncb),
                                       dev(delta), bw, bj, _I64(offers), dev(thr), dev(starts),
                                       dev(xp.zeros(nrb, _I64)), dev(pr), dev(pc), dev(pcol))
                    pair_keys[launch.blocks(npairs, tpb), tpb, stream](
                        dv["CT"], dv["size"], dv["extra"], dev(pr), dev(pc), _I64(npairs),
                        lists.code, lists.metric, dev(key))
                del G
                gemm_select[launch.blocks(nrb, tpb), tpb, stream](
                    dev(starts), dev(pc), dev(key), _I64(nrb), _I64(kk), _I64(y), pw, pj)
                if offers and npairs:
                    by_col = xp.argsort(pcol)  # any order within a column: offers commute
                    cstarts = _csr(pcol[by_col], ncb, xp)
                    gemm_offer[launch.blocks(ncb, tpb), tpb, stream](
                        dev(cstarts), dev(Cb), _I64(ncb), dev(xp.ascontiguousarray(pr[by_col])),
                        dev(xp.ascontiguousarray(key[by_col])), dv["flag"], _I64(kk), dv["LW"],
                        dv["LJ"], dv["BW"], dv["BJ"])
            lists._combine(dev(Rb), nrb, pw, pj, ns)

    def scan(self, rows_d, nr, cols):
        """``_Lists.scan``: lists and bounds of rows_d[:nr] over ``cols``."""
        if nr == 0 or int(cols.shape[0]) == 0:
            return
        R = self.xp.asarray(rows_d)[:nr].astype(_I32)
        self._slabs(R, self.xp.asarray(cols).astype(_I32), offers=False)

    def fresh(self, new, cols):
        """``_Lists.fresh``: the new clusters' lists, and each offered to every kept row."""
        if int(new.shape[0]) == 0 or int(cols.shape[0]) == 0:
            return
        self._slabs(self.xp.asarray(new).astype(_I32), self.xp.asarray(cols).astype(_I32),
                    offers=True)
