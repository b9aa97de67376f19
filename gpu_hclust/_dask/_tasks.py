"""Functions the Dask workers run: one row block each, or one pair of blocks.

Every function takes and returns plain NumPy arrays (or small tuples of them)
and never mutates its inputs: a task may run twice (a lost worker, a retried
task) and its inputs may be shared by other tasks on the same worker, so each
task that updates a block's state copies it first.
"""

from dataclasses import dataclass

import numpy as np

from . import _kernels

FINITE_MESSAGE = (
    "The condensed distance matrix must contain only finite values: `y` holds "
    "NaN or inf; remove or impute them first."
)


@dataclass(frozen=True)
class Block:
    """Prepared observations of one row block, persisted on a worker.

    CT (d, b) in the working dtype, transposed like the memory-saving engine's
    copy (correlation rows centred; average/cosine rows normalised); norms
    (b,) float64 (ones where unused); off: global index of the first row.
    """

    CT: np.ndarray
    norms: np.ndarray
    off: int
    mcode: int

    @property
    def size(self):
        return self.CT.shape[1]


def prepare_block(X, off, method, metric, dtype, scaling):
    """Block of observations -> ``Block`` with ``_lowmem.prepare``'s arithmetic.

    Every step of ``prepare`` works row by row (per column of the transposed
    copy), so preparing block by block with the whole matrix's ``scaling``
    (column means and power of two, ``dask._global_scaling``) gives the floats
    of preparing the whole matrix at once, up to the rounding of the means.
    """
    from .._backend import to_host
    from .._lowmem import prepare_scaled

    # CuPy chunks (dask-cuda workers) come to the host: the tiles run on the CPU.
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
    return Block(CT, np.ascontiguousarray(norms, dtype=np.float64), int(off), int(mcode))


def block_mcode(block):
    """The metric code ``prepare`` chose (average/correlation runs as cosine)."""
    return block.mcode


# --------------------------------------------------------------------------
# Single linkage (Borůvka with per-row candidate lists)
# --------------------------------------------------------------------------

def empty_lists(b, k):
    return np.full((b, k), np.inf), np.full((b, k), -1, dtype=np.int64)


def scan_points_pair(A, B, comp, needa, needb, k, p):
    """Partial top-K lists of A's needy rows against B and of B's needy rows against A."""
    Da, Ia = empty_lists(A.size, k)
    diag = A.off == B.off
    if diag:
        Db, Ib = Da, Ia
    else:
        Db, Ib = empty_lists(B.size, k)
    _kernels.scan_points(A.mcode, p, A.CT, A.norms, A.off, needa, B.CT, B.norms, B.off, needb,
                         comp, diag, Da, Ia, Db, Ib)
    return (Da, Ia), (Db, Ib)


def merge_lists(old, need, k, b, sides, *pairs):
    """Block's lists: ``old`` for rows that did not need a scan, fresh ones for the others."""
    if old is None:
        D, I = empty_lists(b, k)
    else:
        D, I = old[0].copy(), old[1].copy()
        D[need] = np.inf
        I[need] = -1
    for side, res in zip(sides, pairs):
        Dp, Ip = res[side]
        _kernels.fold_lists(D, I, need, Dp, Ip)
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
    slot goes inactive. ``nn``/``nnd``: each active slot's nearest active
    slot under (distance, slot), exact for slots not marked stale.
    """

    CT: np.ndarray
    size: np.ndarray
    extra: np.ndarray
    active: np.ndarray
    nn: np.ndarray
    nnd: np.ndarray
    off: int


def init_summaries(block):
    b = block.size
    return Summaries(block.CT, np.ones(b), np.zeros(b), np.ones(b, dtype=np.bool_),
                     np.full(b, -1, dtype=np.int64), np.full(b, np.inf), block.off)


def scan_clusters_pair(code, metric, A, B, needa, needb):
    """Partial nearest (distance, slot) for needy active slots of A against B and back."""
    bda = np.full(A.CT.shape[1], np.inf)
    bia = np.full(A.CT.shape[1], -1, dtype=np.int64)
    diag = A.off == B.off
    if diag:
        bdb, bib = bda, bia
    else:
        bdb = np.full(B.CT.shape[1], np.inf)
        bib = np.full(B.CT.shape[1], -1, dtype=np.int64)
    _kernels.scan_clusters(code, metric, A.CT, A.size, A.extra, A.active, needa, A.off,
                           B.CT, B.size, B.extra, B.active, needb, B.off, diag,
                           bda, bia, bdb, bib)
    return (bda, bia), (bdb, bib)


def finish_scan(S, need, sides, *pairs):
    """New nearest neighbours of the block's needy slots: the best over all partials."""
    nn = S.nn.copy()
    nnd = S.nnd.copy()
    nn[need] = -1
    nnd[need] = np.inf
    for side, res in zip(sides, pairs):
        bd, bi = res[side]
        take = need & (bi >= 0) & ((nn < 0) | (bd < nnd) | ((bd == nnd) & (bi < nn)))
        nn[take] = bi[take]
        nnd[take] = bd[take]
    return Summaries(S.CT, S.size, S.extra, S.active, nn, nnd, S.off)


def neighbours(S):
    """(nn, nnd) of the block's slots (inactive: -1, inf)."""
    nn = np.where(S.active, S.nn, -1)
    nnd = np.where(S.active, S.nnd, np.inf)
    return nn, nnd


def take_summaries(S, slots):
    """Summaries of the given global slots (all in this block)."""
    loc = np.asarray(slots, dtype=np.int64) - S.off
    return S.CT[:, loc], S.size[loc], S.extra[loc]


def active_summaries(S):
    """Packed summaries of the block's active slots, for the client's chain."""
    idx = np.flatnonzero(S.active)
    return S.CT[:, idx], S.size[idx], S.extra[idx], idx + S.off


def apply_merges(code, metric, S, lo, hi, CTnew, snew, enew, stale):
    """The round's merges applied to one block.

    ``lo``/``hi``: global slots of each merged pair (the new cluster takes lo);
    ``stale``: this block's slots whose nearest neighbour must be rescanned
    (new clusters, and slots whose neighbour was merged), decided by the
    client. Every other active slot keeps its neighbour (still present, and
    the nearest among the old clusters left) unless a new cluster is nearer.
    """
    b = S.CT.shape[1]
    CT = S.CT.copy()
    size = S.size.copy()
    extra = S.extra.copy()
    active = S.active.copy()
    nn = S.nn.copy()
    nnd = S.nnd.copy()
    mine_hi = (hi >= S.off) & (hi < S.off + b)
    active[hi[mine_hi] - S.off] = False
    mine_lo = (lo >= S.off) & (lo < S.off + b)
    loc = lo[mine_lo] - S.off
    CT[:, loc] = CTnew[:, mine_lo]
    size[loc] = snew[mine_lo]
    extra[loc] = enew[mine_lo]
    nn[stale] = -1
    nnd[stale] = np.inf
    rows = np.flatnonzero(active & ~stale)
    if rows.size and lo.size:
        _kernels.offer_new(code, metric, CT, size, extra, rows, nn, nnd,
                           np.ascontiguousarray(CTnew), snew, enew, lo)
    return Summaries(CT, size, extra, active, nn, nnd, S.off)
