"""Block-pair tiles of the Dask engines on a GPU worker (dask-cuda, CuPy chunks).

A Dask task scans one block of query rows against one block of columns; both
live on the worker's device. Each thread takes one query and keeps its ``kk``
first candidates under the key (distance, global index) in registers; the
columns arrive in tiles of ``cuda_vector.TILE_C`` through shared memory,
``cuda_vector.TILE_K`` coordinates at a time, and are summed by
``cuda_vector._chunk`` (the single-GPU engine's accumulation: coordinates in
order, direct differences, float64 whatever the storage dtype). The lists
(O(queries * kk)) are all that goes back to the host.

``point_pairs``
    Single linkage: the ``kk`` nearest columns in another component
    (``comp``, global labels) of each query point, the point itself excluded.
``cluster_pairs``
    Ward / average: the ``kk`` nearest clusters among the given column
    summaries of each query summary, its own slot excluded. The engine uses it
    for the block-pair rescans (columns: a block's active slots) and for the
    offers of a round's new clusters (columns: the new clusters; the ``K + 1``
    first per row decide a row's list and bound, ``_dask._kernels.offer_lists``).

A pair of blocks is scanned in both directions (A's needy rows against B,
B's needy rows against A), so a pair of two needy rows is computed twice: on a
GPU the scan of the needy rows costs O(needy * block) either way, and one
kernel shape keeps the lists' contents those of the CPU tiles (the same
candidates are offered; the key order is strict, so the lists are equal).

Both are hot-loop variants of ``cuda_vector.point_best`` / ``rnn_scan``: the
same tiles and list insert over two arrays (the query block and the column
block) instead of one array and an index list; ``_tile_sums`` is their shared
tile loop.

Simulator rules kept: one ``cuda.shared.array`` per source line, no warp
shuffles, grid-stride loops. ``PTX_SIGNATURES`` lists every kernel.
"""

import math

import numpy as np
from numba import cuda

from . import launch
from ._config import NUMBA_CACHE
from .cuda_vector import _SH_COLS, _SH_ROWS, MAX_TPB, TILE_C, TILE_K, _chunk, _klist_insert

# Longest candidate list a thread keeps (``kk`` at most this): the engines use
# K = 8 and K + 1 = 9 for the offers.
MAX_K = 33

__all__ = ["MAX_K", "MAX_TPB", "point_pairs", "cluster_pairs", "PTX_SIGNATURES"]


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _load_chunk(QT, r, valid, CT, c0, cend, k0, sh_r, sh_c):
    """Coordinates k0 .. k0 + TILE_K of query r (one value per thread) and of the
    columns c0 .. c0 + TILE_C of CT (broadcast) into shared memory, widened to
    float64; zeros past the ends. Every thread of the block calls it."""
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    d = QT.shape[0]
    for kk in range(TILE_K):
        k = k0 + kk
        sh_r[kk * bd + t] = QT[k, r] if (valid and k < d) else 0.0
    for e in range(t, TILE_C * TILE_K, bd):
        k = k0 + e // TILE_C
        jc = c0 + e % TILE_C
        sh_c[e] = CT[k, jc] if (k < d and jc < cend) else 0.0


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _tile_sums(QT, r, valid, CT, c0, nc, mcode, p, sh_r, sh_c, acc):
    """acc[c] = the coordinate sum of query r against column c0 + c, c < TILE_C
    (every thread of the block calls it: it synchronises)."""
    for c in range(TILE_C):
        acc[c] = 0.0
    for k0 in range(0, QT.shape[0], TILE_K):
        _load_chunk(QT, r, valid, CT, c0, nc, k0, sh_r, sh_c)
        cuda.syncthreads()
        _chunk(mcode, sh_r, sh_c, acc, cuda.threadIdx.x, cuda.blockDim.x, p)
        cuda.syncthreads()


@cuda.jit(cache=NUMBA_CACHE)
def point_pairs(QT, qnorm, qid, nq, CT, cnorm, coff, nc, comp, mcode, p, kk, out_w, out_j):
    """For each query point r < nq (global index qid[r], coordinates QT[:, r]):
    its kk nearest columns j < nc of CT (global index coff + j) in another
    component, ascending under (distance, index), to out_w[r, :kk], out_j[r, :kk]
    (index -1: empty)."""
    sh_r = cuda.shared.array(_SH_ROWS, np.float64)
    sh_c = cuda.shared.array(_SH_COLS, np.float64)
    acc = cuda.local.array(TILE_C, np.float64)
    kw = cuda.local.array(MAX_K, np.float64)
    kj = cuda.local.array(MAX_K, np.int64)
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    nblocks = (nq + bd - 1) // bd
    for rb in range(cuda.blockIdx.x, nblocks, cuda.gridDim.x):
        r = np.int64(rb) * bd + t
        valid = r < nq
        gi = np.int64(qid[r]) if valid else np.int64(0)
        ci = comp[gi]
        ni = qnorm[r] if valid else 1.0
        for q in range(kk):
            kw[q] = math.inf
            kj[q] = -1
        for c0 in range(0, nc, TILE_C):
            _tile_sums(QT, r, valid, CT, c0, nc, mcode, p, sh_r, sh_c, acc)
            if valid:
                for c in range(TILE_C):
                    j = c0 + c
                    gj = coff + j
                    if j < nc and gj != gi and comp[gj] != ci:
                        w = launch.metric_finalize(mcode, acc[c], p, ni, cnorm[j])
                        _klist_insert(kw, kj, kk, w, gj)
        if valid:
            for q in range(kk):
                out_w[r, q] = kw[q]
                out_j[r, q] = kj[q]


@cuda.jit(cache=NUMBA_CACHE)
def cluster_pairs(QT, qsize, qextra, qid, nq, CT, csize, cextra, cid, nc, code, metric, kk,
                  out_w, out_j):
    """For each query summary r < nq (slot qid[r]): its kk nearest column
    summaries j < nc (slot cid[j]), its own slot excluded, ascending under
    (distance, slot), to out_w[r, :kk], out_j[r, :kk] (slot -1: empty)."""
    sh_r = cuda.shared.array(_SH_ROWS, np.float64)
    sh_c = cuda.shared.array(_SH_COLS, np.float64)
    acc = cuda.local.array(TILE_C, np.float64)
    kw = cuda.local.array(MAX_K, np.float64)
    kj = cuda.local.array(MAX_K, np.int64)
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    mc = launch.coordinate_metric(code, metric)
    nblocks = (nq + bd - 1) // bd
    for rb in range(cuda.blockIdx.x, nblocks, cuda.gridDim.x):
        r = np.int64(rb) * bd + t
        valid = r < nq
        gi = np.int64(qid[r]) if valid else np.int64(-1)
        for q in range(kk):
            kw[q] = math.inf
            kj[q] = -1
        for c0 in range(0, nc, TILE_C):
            _tile_sums(QT, r, valid, CT, c0, nc, mc, 0.0, sh_r, sh_c, acc)
            if valid:
                for c in range(TILE_C):
                    jc = c0 + c
                    if jc < nc:
                        j = np.int64(cid[jc])
                        if j != gi:
                            w = launch.cluster_distance(code, metric, acc[c], qsize[r],
                                                        csize[jc], qextra[r], cextra[jc])
                            _klist_insert(kw, kj, kk, w, j)
        if valid:
            for q in range(kk):
                out_w[r, q] = kw[q]
                out_j[r, q] = kj[q]


_FLOATS = ("float32", "float64")
_A64 = "int64[::1]"
_AF = "float64[::1]"
PTX_SIGNATURES = {
    "point_pairs": [
        f"void({dt}[:, ::1], {_AF}, {_A64}, int64, {dt}[:, ::1], {_AF}, int64, int64, {_A64}, "
        "int64, float64, int64, float64[:, ::1], int64[:, ::1])"
        for dt in _FLOATS
    ],
    "cluster_pairs": [
        f"void({dt}[:, ::1], {_AF}, {_AF}, {_A64}, int64, {dt}[:, ::1], {_AF}, {_AF}, {_A64}, "
        "int64, int64, int64, int64, float64[:, ::1], int64[:, ::1])"
        for dt in _FLOATS
    ],
}


def grid(nq, tpb):
    """Blocks of a launch over nq queries (grid-stride; few in the simulator)."""
    return launch.blocks(nq, tpb)
