"""Functions the Dask workers run: one row block each, or one pair of blocks.

Every function takes and returns plain NumPy arrays (or small tuples of them)
and never mutates its inputs: a task may run twice (a lost worker, a retried
task) and its inputs may be shared by other tasks on the same worker, so each
task that updates a block's state copies it first.

Tiles. A block prepared with ``tiles="cuda"`` (``_gpu.resolve_tiles``: asked
for, or CuPy chunks on a dask-cuda worker under "auto") keeps its coordinates
on the worker's device (CuPy; NumPy under the simulator) and its block-pair
scans and new-cluster offers run as CUDA kernels (``_gpu``,
``kernels.cuda_dask_tiles``); the candidate lists and every other per-row
array stay NumPy on the host, and a scan returns O(rows * K) candidates. A
"cpu" block runs the Numba CPU tiles (``_kernels``) on host arrays. Either
way the lists hold the same candidates in the same (distance, index) order.
"""

from dataclasses import dataclass

import numpy as np

from . import _gpu, _kernels

FINITE_MESSAGE = (
    "The condensed distance matrix must contain only finite values: `y` holds "
    "NaN or inf; remove or impute them first."
)


@dataclass(frozen=True)
class Block:
    """Prepared observations of one row block, persisted on a worker.

    CT (d, b) in the working dtype, transposed like the memory-saving engine's
    copy (correlation rows centred; average/cosine rows normalised); norms
    (b,) float64 (ones where unused); off: global index of the first row;
    tiles: "cpu" (host arrays) or "cuda" (CT and norms on the device).
    """

    CT: np.ndarray
    norms: np.ndarray
    off: int
    mcode: int
    tiles: str = "cpu"

    @property
    def size(self):
        return self.CT.shape[1]


def prepare_block(X, off, method, metric, dtype, scaling, tiles="cpu"):
    """Block of observations -> ``Block`` with ``_lowmem.prepare``'s arithmetic.

    Every step of ``prepare`` works row by row (per column of the transposed
    copy), so preparing block by block with the whole matrix's ``scaling``
    (column means and power of two, ``dask._global_scaling``) gives the floats
    of preparing the whole matrix at once, up to the rounding of the means.
    ``tiles``: the user's choice, resolved here for this worker and chunk.
    """
    from .._backend import to_host
    from .._lowmem import prepare_scaled

    tiles = _gpu.resolve_tiles(tiles, X)
    # Prepared on the host with the single-machine arithmetic (O(b d) once),
    # then, for CUDA tiles, kept on the device for every round's scans.
    X = np.asarray(to_host(X))
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"`y` must hold real numbers; got a dask array of dtype {X.dtype}. "
            "Convert it with X.astype(float) first."
        )
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(FINITE_MESSAGE)
    try:
        CT, norms, _code, mcode, _e = prepare_scaled(X, method, metric, dtype, scaling=scaling)
    except ValueError as exc:  # its row numbers count from this block's first row
        raise ValueError(f"{exc} (rows numbered within the chunk starting at row {off})") from None
    norms = np.ascontiguousarray(norms, dtype=np.float64)
    if tiles == "cuda":
        CT, norms = _gpu.to_device(CT), _gpu.to_device(norms)
    return Block(CT, norms, int(off), int(mcode), tiles)


def block_mcode(block):
    """The metric code ``prepare`` chose (average/correlation runs as cosine)."""
    return block.mcode


def block_tiles(block):
    """The tiles the worker resolved for this block ("cpu" or "cuda")."""
    return block.tiles


# --------------------------------------------------------------------------
# Single linkage (Borůvka with per-row candidate lists)
# --------------------------------------------------------------------------

def empty_lists(b, k):
    return np.full((b, k), np.inf), np.full((b, k), -1, dtype=np.int64)


def _needy_part(D, I, need):
    """(rows, their lists): what a pair task sends back (only the scanned rows'
    lists, not the whole block's: most rounds scan a few percent of the rows)."""
    idx = np.flatnonzero(need)
    return idx, D[idx], I[idx]


def scan_points_pair(A, B, comp, needa, needb, k, p):
    """Partial top-K lists of A's needy rows against B and of B's needy rows against A."""
    if A.tiles == "cuda":
        part_a = _gpu.point_lists(A, np.flatnonzero(needa), B, comp, k, p)
        if A.off == B.off:  # one block: its needy rows against all of it
            return part_a, part_a
        return part_a, _gpu.point_lists(B, np.flatnonzero(needb), A, comp, k, p)
    Da, Ia = empty_lists(A.size, k)
    diag = A.off == B.off
    if diag:
        Db, Ib = Da, Ia
    else:
        Db, Ib = empty_lists(B.size, k)
    _kernels.scan_points(A.mcode, p, A.CT, A.norms, A.off, needa, B.CT, B.norms, B.off, needb,
                         comp, diag, Da, Ia, Db, Ib)
    return _needy_part(Da, Ia, needa), _needy_part(Db, Ib, needb)


def merge_lists(old, need, k, b, sides, *pairs):
    """Block's lists: ``old`` for rows that did not need a scan, fresh ones for the others."""
    if old is None:
        D, I = empty_lists(b, k)
    else:
        D, I = old[0].copy(), old[1].copy()
        D[need] = np.inf
        I[need] = -1
    for side, res in zip(sides, pairs):
        _kernels.fold_rows(D, I, *res[side])
    return D, I


def best_points(lists, off, comp):
    """Per row: (w, v, stale) of its nearest point in another component."""
    D, I = lists
    b = D.shape[0]
    w = np.empty(b)
    v = np.empty(b, dtype=np.int64)
    stale = np.empty(b, dtype=np.bool_)
    _kernels.best_outside(D, I, off, comp, w, v, stale)
    return w, v, stale


# --------------------------------------------------------------------------
# Reducible linkages: block state of cluster summaries
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Summaries:
    """Cluster summaries living in one block's slots (slot = global row index).

    A merged cluster lives in the smaller slot of its two children; the other
    slot goes inactive. Per active slot a candidate list ``(D, I)`` (b, K) of
    active slots in (distance, slot) order and a bound ``(bd, bi)``: every
    active slot not listed comes after the bound (``_kernels.drop_and_offer``
    keeps this through merges). ``need``: slots to rescan before the next
    round (new clusters, emptied lists). ``scanned``/``live``: slots scanned
    and active slots in the last scan (work counters for the cost model).
    """

    CT: np.ndarray
    size: np.ndarray
    extra: np.ndarray
    active: np.ndarray
    D: np.ndarray
    I: np.ndarray
    bd: np.ndarray
    bi: np.ndarray
    need: np.ndarray
    off: int
    scanned: int = 0
    live: int = 0
    tiles: str = "cpu"

    def replace(self, **kw):
        f = dict(self.__dict__)
        f.update(kw)
        return Summaries(**f)


def init_summaries(block, k):
    b = block.size
    D, I = empty_lists(b, k)
    return Summaries(block.CT, np.ones(b), np.zeros(b), np.ones(b, dtype=np.bool_), D, I,
                     np.full(b, np.inf), np.full(b, -1, dtype=np.int64),
                     np.ones(b, dtype=np.bool_), block.off, tiles=block.tiles)


def scan_clusters_pair(code, metric, A, B):
    """Partial top-K lists of A's needy active slots against B and of B's against A."""
    k = A.D.shape[1]
    if A.tiles == "cuda":
        part_a = _gpu.block_cluster_lists(code, metric, A, np.flatnonzero(A.need & A.active),
                                          B, k)
        if A.off == B.off:
            return part_a, part_a
        return part_a, _gpu.block_cluster_lists(code, metric, B,
                                                np.flatnonzero(B.need & B.active), A, k)
    Da, Ia = empty_lists(A.CT.shape[1], k)
    diag = A.off == B.off
    if diag:
        Db, Ib = Da, Ia
    else:
        Db, Ib = empty_lists(B.CT.shape[1], k)
    if A.need.any() or B.need.any():
        _kernels.scan_clusters(code, metric, A.CT, A.size, A.extra, A.active, A.need, A.off,
                               B.CT, B.size, B.extra, B.active, B.need, B.off, diag,
                               Da, Ia, Db, Ib)
    return _needy_part(Da, Ia, A.need), _needy_part(Db, Ib, B.need)


def finish_scan(S, sides, *pairs):
    """Fresh lists and bounds for the block's needy slots: the best K over all partials."""
    need = S.need
    D, I = S.D.copy(), S.I.copy()
    D[need] = np.inf
    I[need] = -1
    for side, res in zip(sides, pairs):
        _kernels.fold_rows(D, I, *res[side])
    bd, bi = S.bd.copy(), S.bi.copy()
    _kernels.set_bounds(D, I, need, bd, bi)
    return S.replace(D=D, I=I, bd=bd, bi=bi, need=np.zeros_like(need),
                     scanned=int(need.sum()), live=int(S.active.sum()))


def neighbours(S):
    """(nn, nnd) of the block's slots (inactive: -1, inf) and the last scan's counts."""
    nn = np.where(S.active, S.I[:, 0], -1)
    nnd = np.where(S.active, S.D[:, 0], np.inf)
    return nn, nnd, S.scanned, S.live


def take_summaries(S, slots):
    """Summaries of the given global slots (all in this block)."""
    from .._backend import to_host

    loc = np.asarray(slots, dtype=np.int64) - S.off
    return np.asarray(to_host(S.CT[:, _index(S, loc)])), S.size[loc], S.extra[loc]


def merge_children(code, metric, nslots, where, *got):
    """The round's merged summaries (CTn, sn, en) from the children's.

    ``got[t]``: ``take_summaries`` of one block, landing at positions
    ``where[t]`` of the pair layout (2p: lo of pair p, 2p + 1: its hi); pair p
    merges into column p (``_kernels.merge_summaries``, as the chain engine merges).
    """
    d = got[0][0].shape[0]
    CT2 = np.empty((d, nslots), dtype=got[0][0].dtype)
    size2 = np.empty(nslots)
    extra2 = np.empty(nslots)
    for pos, (C, s, e) in zip(where, got):
        CT2[:, pos] = C
        size2[pos] = s
        extra2[pos] = e
    _kernels.merge_summaries(code, metric, CT2, size2, extra2)
    return np.ascontiguousarray(CT2[:, 0::2]), size2[0::2].copy(), extra2[0::2].copy()


def active_summaries(S):
    """Packed summaries of the block's active slots, for the client's chain."""
    from .._backend import to_host

    idx = np.flatnonzero(S.active)
    return (np.asarray(to_host(S.CT[:, _index(S, idx)])), S.size[idx], S.extra[idx],
            idx + S.off)


def _index(S, idx):
    """Index array for S.CT: on the device where CT is (CuPy indexes with CuPy)."""
    return _gpu.to_device(idx) if S.tiles == "cuda" else idx


def apply_merges(code, metric, S, n, lo, hi, merged):
    """The round's merges applied to one block.

    ``lo``/``hi``: global slots of each merged pair (the new cluster takes
    lo); ``merged``: their summaries (CTn, sn, en), ``merge_children``'s.
    The absorbed slots go inactive; new clusters are marked for a rescan;
    every other active slot drops the merged slots from its list and is
    offered every new cluster (``_kernels.drop_and_offer``; CUDA tiles:
    ``drop_dead`` + ``offer_lists`` of its K + 1 first), and is marked
    for a rescan only if its list ran empty.
    """
    CTnew, snew, enew = merged
    b = S.CT.shape[1]
    CT = S.CT.copy()
    size = S.size.copy()
    extra = S.extra.copy()
    active = S.active.copy()
    D, I = S.D.copy(), S.I.copy()
    bd, bi = S.bd.copy(), S.bi.copy()
    mine_hi = (hi >= S.off) & (hi < S.off + b)
    active[hi[mine_hi] - S.off] = False
    mine_lo = (lo >= S.off) & (lo < S.off + b)
    loc = lo[mine_lo] - S.off
    CT[:, _index(S, loc)] = _gpu.to_device(CTnew[:, mine_lo]) if S.tiles == "cuda" else \
        CTnew[:, mine_lo]
    size[loc] = snew[mine_lo]
    extra[loc] = enew[mine_lo]
    new = np.zeros(b, dtype=np.bool_)
    new[loc] = True
    dead = np.zeros(n, dtype=np.bool_)
    dead[lo] = True
    dead[hi] = True
    rows = np.flatnonzero(active & ~new)
    if S.tiles == "cuda":
        # the K + 1 first new clusters of each row decide its list and bound
        # (_kernels.offer): found on the device, offered on the host
        _kernels.drop_dead(rows, dead, D, I)
        W, J = _gpu.cluster_lists(code, metric, CT[:, _index(S, rows)], size[rows], extra[rows],
                                  rows + S.off, _gpu.to_device(CTnew), snew, enew, lo,
                                  D.shape[1] + 1)
        _kernels.offer_lists(rows, W, J, D, I, bd, bi)
    else:
        _kernels.drop_and_offer(code, metric, CT, size, extra, rows, dead, D, I, bd, bi,
                                np.ascontiguousarray(CTnew), snew, enew, lo)
    need = active & (new | (I[:, 0] < 0))
    return Summaries(CT, size, extra, active, D, I, bd, bi, need, S.off, tiles=S.tiles)
