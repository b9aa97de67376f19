#!/usr/bin/env python
"""Count the work of the GPU memory-saving engine (``kernels/cuda_vector.py``) on the CPU.

A NumPy emulation of the host drivers of ``cuda_vector``, run round by round
with the same rules, so that the number of pair distances the device would
compute can be counted without a GPU::

    PYTHONPATH=$PWD python benchmarks/count_gpu_work.py --sizes 5000,20000 --dims 32 \\
        --engines ward,average-cosine,single \\
        --data gaussian,growing_gap,sorted_gaps,spiral,duplicates --out counts.json
    PYTHONPATH=$PWD python benchmarks/count_gpu_work.py --verify     # fidelity checks only

Engines emulated (what ``gpu_hclust.linkage(X, method, metric, low_memory=True)``
runs on a GPU):

``ward`` / ``average-cosine``: ``_rnn_rounds`` (per-row candidate lists)
    Each row keeps its ``RNN_TOP_K`` first (key, slot), key (distance, slot),
    and a bound (every active slot not listed has key >= bound). First the
    symmetric first pass (``_Lists.first``): per segment of
    ``cuda_vector.first_segments`` (rows [lo, lo + r)), ``fresh_pass`` against
    slots [lo, n) (each pair between segments computed once, the segment's rows
    offered to the later ones) and ``rnn_combine``; the lists and bounds are
    then the full scan's K + 1 first. Each round:
    ``rnn_select`` lists the rows whose first entry does not precede their
    bound (none in round 0); ``rnn_scan`` + ``rnn_combine``
    rescan them against the active slots (K + 1 first); ``find_pairs`` takes
    every reciprocal pair i < nn[i]; ``merge_pairs`` merges each into slot i
    (``formulas.merged_coordinate``); ``rnn_drop`` drops both merged slots
    from every list; ``fresh_pass`` computes each (new cluster, active slot)
    pair once, giving the new clusters their lists and offering each new
    cluster to every other row (inserted where it precedes the row's bound;
    an entry pushed out becomes the bound), in launches of at most
    ``cuda_vector.fresh_grid`` new clusters. Chain guard: a round whose
    merges give ``cuda_chain.hands_over(p, m + p)`` (p pairs merged, m
    clusters left) hands the rest to ``cuda_chain.finish``, the device-side
    nearest-neighbour chain, emulated by ``_chain_emulation.emulate_chain``
    (m - 1 pair distances per chain step; one launch and one host read per
    chunk of ``cuda_chain.chunk_merges`` merges).
``single``: ``_single`` (Borůvka rounds on points, euclidean)
    ``point_carry`` (first candidate still outside the component, else the
    list's bound), ``point_select`` (no bid and a bound not above the
    component's minimum bid: rescan), ``point_best`` + ``point_combine`` (the
    ``TOP_K`` nearest other-component points of each selected row, against all
    n points), then ``cuda_mst``'s ``vertex_code`` / ``hook`` / ``jump`` /
    ``relabel`` (edge order (w, min(u, v), max(u, v)); a mutual pick leaves the
    smaller root in place).
What is counted: one pair = one (row, column) distance given to ``rnn_scan``,
``fresh_pass`` or ``point_best`` (the column list includes the row itself, which the kernel
computes and then skips; the RNN rounds' first pass counts about n^2 / 2 +
n FIRST_ROWS / 2, single's first pass n^2). ``padded_pairs`` also counts the
lanes the kernels run on padding:
rows up to a multiple of threads per block, each column share up to a multiple
of ``TILE_C`` (shares as ``cuda_vector._splits`` / ``fresh_grid`` choose them).
Chain pairs (``chain_pairs_per_n2``) are included in ``pairs``. Rounds are the
driver's loop iterations; host syncs are its blocking reads (RNN: per round
``nrows``, ``npairs`` and, unless the run ends or hands over, the active
list's length, a CuPy ``flatnonzero``; the chain: one per chunk; single: per
round ``nrows`` and ``count``), not counting the three reads of the merge log
at the end; launches are the driver's Numba kernel launches (CuPy's own small
kernels, e.g. ``flatnonzero`` or zeroing a counter, not counted).
Data (``--data``): ``gaussian`` and the adversarial sets of ``_adversarial``
(growing_gap, sorted_gaps, spiral, duplicates), and ``blobs``; average-cosine
is skipped, with the reason, where an observation is all-zero (the lines
start at the origin).

Distances: every candidate set is found with the Gram form (BLAS) and a
rigorous rounding-error bound, then the candidates within the bound are
recomputed exactly as the engines do (direct differences summed in coordinate
order, ``kernels.metrics.metric_accumulate``, ``formulas.cluster_distance``,
``metrics.metric_finalize``) and ordered by (distance, index). The emulated keys
are those of the CPU engine bitwise (the GPU's fused multiply-adds differ by
ulps, which changes no merge on generic data), so which rows are scanned against
which columns is the engine's.

``--verify`` checks that: (1) the emulated merge heights equal those of
``gpu_hclust.linkage(X, method, metric, low_memory=True, backend="cpu")`` to
rtol 1e-9 (sorted), for every engine, at n = 300-2000, Gaussian, blobs and
adversarial data; (2) the real ``cuda_vector`` driver, run in numba-cuda's
simulator on small data (n <= 40, tpb 32; one case a growing-gap line that
hands over to the chain after round 0), makes the same kernel launches
(with the same (rows, columns) for the tile kernels) and host reads, in the
same order, and writes the same merge log (pairs, order, heights bitwise).

Projected H100/H200 time: ``_instruction_model.project`` on the counted pairs
(split by kernel: scans, i.e. ``rnn_scan``/``point_best``/chain steps, and
``fresh_pass``, which the first pass and the new clusters use), launches, host
syncs and chain steps: instructions per pair by hardware pipe, read from the
kernels' inner loops, at compute capability 9.0's issue rates, plus launch,
sync and grid-sync overheads. It is a PROJECTION from counted work, not a
measurement (``projected_h100_s`` at 100 % of the binding pipe,
``projected_h100_realistic_s_n1e6`` at the model's assumed efficiency);
``*_n1e6`` scales the pairs to n = 1e6 assuming the same pairs / n^2 (which
grows slowly with n), the chain steps with n, and keeps the counted launches
and syncs. ``--reproject FILE`` recomputes these fields from the counts a
results file already holds (the model changed, not the engine).
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:
    import gpu_hclust  # noqa: F401
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _adversarial  # noqa: E402
import _instruction_model  # noqa: E402
from _chain_emulation import emulate_chain  # noqa: E402
from _common import MISMATCH, OK, UNCHECKED, provenance  # noqa: E402

from gpu_hclust import _lowmem  # noqa: E402
from gpu_hclust._methods import METHODS  # noqa: E402
from gpu_hclust.kernels import cuda_chain, cuda_vector, formulas, metrics  # noqa: E402

EPS = np.finfo(np.float64).eps
GPU_TPB = 256  # the driver's default threads per block (launch.default_tpb on a GPU)
NO_SLOT = -1

# engine name -> (method, metric) of gpu_hclust.linkage
ENGINES = {
    "ward": ("ward", "euclidean"),
    "average-cosine": ("average", "cosine"),
    "single": ("single", "euclidean"),
}
DATA = _adversarial.NAMES + ("blobs",)

# One source for each formula: the engines' scalar functions, applied elementwise.
_cluster_distance = np.vectorize(formulas.cluster_distance, otypes=[np.float64])
_finalize = np.vectorize(metrics.metric_finalize, otypes=[np.float64])


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def make_data(kind, n, d, seed):
    """The benchmark data: ``gaussian`` (as ``bench_lowmem.make_data``) and the
    adversarial sets of ``_adversarial.make`` (growing_gap, sorted_gaps, spiral,
    duplicates); ``blobs``: groups of 10 points (spread 0.01) around centres
    uniform in [-1000, 1000]^d."""
    if kind == "blobs":
        rng = np.random.default_rng(seed)
        centres = rng.uniform(-1000.0, 1000.0, size=(-(-n // 10), d))
        return np.repeat(centres, 10, axis=0)[:n] + 0.01 * rng.standard_normal((n, d))
    if kind in _adversarial.NAMES:
        return _adversarial.make(kind, n, d, seed)
    raise ValueError(f"--data must be one of {', '.join(DATA)}; got {kind!r}")


# --------------------------------------------------------------------------
# Exact nearest candidates: Gram-form filter, exact recheck
# --------------------------------------------------------------------------

def _precedes(wa, ja, wb, jb):
    """Vectorised ``launch.precedes``: (wa, ja) before (wb, jb); index < 0 comes last."""
    return (ja >= 0) & ((jb < 0) | (wa < wb) | ((wa == wb) & (ja < jb)))


class Summaries:
    """What the engine keeps per slot, with both a BLAS layout and the engine's.

    ``CT`` (d, n) is the engine's working array (``_lowmem.prepare``): points
    for single, centroids (ward) or mean unit vectors (average-cosine) per slot,
    updated by merges. ``X`` is its row-major copy for the Gram filter.

    key kinds: ``ward`` / ``average-cosine`` give ``formulas.cluster_distance``
    (squared for ward); ``single`` gives the euclidean point distance.
    """

    def __init__(self, CT, code, mcode):
        self.CT = np.array(CT, dtype=np.float64, order="C")
        self.X = np.ascontiguousarray(self.CT.T)
        self.d, self.n = self.CT.shape
        self.code, self.mcode = code, mcode
        # coordinate term summed by the kernels
        self.cmetric = (formulas.coordinate_metric(code, mcode) if code != formulas.SINGLE
                        else mcode)
        self.size = np.ones(self.n)
        self.sq = np.einsum("ij,ij->i", self.X, self.X)

    def approx(self, rows, cols):
        """Gram-form keys (len(rows), len(cols)) and a per-row bound on their error.

        The bound covers BLAS's dot products (|error| <= d eps |a||b| in any
        summation order), the norms, and the engine's own sequential sum, with a
        factor 2 to spare; keys are increasing functions of these terms.
        """
        R, C = self.X[rows], self.X[cols]
        G = R @ C.T
        gam = (4 * self.d + 16) * EPS
        if self.cmetric == metrics.COSINE:  # average-cosine: 1 - ua.ub, clamped at 0
            np.subtract(1.0, G, out=G)
            np.maximum(G, 0.0, out=G)
            cmax = math.sqrt(self.sq[cols].max())
            return G, 2.0 * gam * (np.sqrt(self.sq[rows]) * cmax + 1.0)
        G *= -2.0
        G += self.sq[rows][:, None]
        G += self.sq[cols][None, :]
        np.maximum(G, 0.0, out=G)
        tol = 2.0 * gam * (self.sq[rows] + self.sq[cols].max())
        if self.code == formulas.WARD:
            sa, sb = self.size[rows], self.size[cols]
            if sa.max() > 1.0 or sb.max() > 1.0:
                G *= 2.0 / (1.0 / sa[:, None] + 1.0 / sb[None, :])
            smax = sb.max()
            tol = tol * (2.0 * sa * smax / (sa + smax))
        return G, tol  # single: squared distance (sqrt is monotone)

    def exact(self, ri, cj):
        """The engine's key of each pair (ri[k], cj[k]), computed as the kernels do."""
        acc = np.zeros(len(ri))
        for k in range(self.d):
            row = self.CT[k]
            acc = metrics.metric_accumulate(self.cmetric, acc, row[ri], row[cj], 0.0)
        if self.code == formulas.SINGLE:
            return _finalize(self.mcode, acc, 2.0, 1.0, 1.0)
        zero = np.zeros(len(ri))
        return _cluster_distance(self.code, self.mcode, acc, self.size[ri], self.size[cj],
                                 zero, zero)

    def merge(self, lo, hi):
        """``merge_pairs``: slot lo becomes the union of lo and hi (extra stays 0 here)."""
        sa, sb = self.size[lo], self.size[hi]
        self.CT[:, lo] = formulas.merged_coordinate(self.code, self.CT[:, lo], self.CT[:, hi],
                                                      sa, sb)
        self.size[lo] = sa + sb
        self.X[lo] = self.CT[:, lo].T
        self.sq[lo] = np.einsum("ij,ij->i", self.X[lo], self.X[lo])


def smallest(S, rows, cols, k, excluded, block_elems=1 << 22):
    """The k first (key, column) of each row among ``cols``, exactly, in (key, index) order.

    ``excluded(r, cols)`` is a boolean mask of the pairs the kernel skips.
    Returns W (len(rows), k) and J (len(rows), k); J = -1, W = inf where fewer
    than k columns qualify.
    """
    nr = len(rows)
    W = np.full((nr, k), np.inf)
    J = np.full((nr, k), NO_SLOT, dtype=np.int64)
    step = max(1, block_elems // max(1, len(cols)))
    for s in range(0, nr, step):
        r = rows[s:s + step]
        A, tol = S.approx(r, cols)
        A[excluded(r, cols)] = np.inf
        if k == 1 or A.shape[1] <= k:
            kth = A.min(axis=1) if k == 1 else A.max(axis=1)
        else:
            kth = np.partition(A, k - 1, axis=1)[:, k - 1]
        # every pair that can be among the exact k first lies within the bound
        thr = kth + 2.0 * tol + 8.0 * EPS * np.abs(kth)
        ri, ci = np.nonzero((A <= thr[:, None]) & np.isfinite(A))
        w = S.exact(r[ri], cols[ci])
        j = cols[ci]
        order = np.lexsort((j, w, ri))
        ri, w, j = ri[order], w[order], j[order]
        start = np.searchsorted(ri, ri, side="left")
        rank = np.arange(len(ri)) - start
        take = rank < k
        W[s + ri[take], rank[take]] = w[take]
        J[s + ri[take], rank[take]] = j[take]
    return W, J


def _not_self(r, cols):
    return r[:, None] == cols[None, :]


def _padded(nrows, ncols, tpb, nsplit=None):
    """Lanes a tile kernel runs for nrows x ncols: rows to whole blocks, each share to TILE_C
    (``nsplit`` column shares; default as ``cuda_vector._splits`` chooses them)."""
    ns = cuda_vector._splits(nrows, ncols, tpb) if nsplit is None else nsplit
    tile = cuda_vector.TILE_C
    share = -(-ncols // ns)
    share = -(-share // tile) * tile
    cols = 0
    for y in range(ns):
        lo, hi = y * share, min(ncols, (y + 1) * share)
        if hi > lo:
            cols += -(-(hi - lo) // tile) * tile
    return -(-nrows // tpb) * tpb * cols


class Tally:
    """What the driver does, launch by launch: the pairs given to the tile
    kernels, every Numba kernel launch and every blocking host read, in order.

    ``events`` is the sequence ``--verify`` compares with the real driver's:
    ``(name, rows, cols)`` for a tile kernel, ``(name,)`` for another kernel,
    ``("read",)`` for a host read. ``log`` is the raw merge log (a, b, h) in
    the driver's order (engine units; single: heights only, sorted).
    """

    TILE = ("rnn_scan", "fresh_pass", "point_best")

    def __init__(self, tpb):
        self.tpb = tpb
        self.launches = []  # (rows, cols) of the tile kernels, in launch order
        self.events = []
        self.pairs = 0  # given to the tile kernels
        self.padded = 0
        self.chain_pairs = 0  # computed by cuda_chain.chain_steps (m - 1 per step)
        self.first_pairs = 0  # the RNN rounds' symmetric first pass (in pairs too)
        self.log = None

    def add(self, nrows, ncols, nsplit=None, name="rnn_scan"):
        """A tile-kernel launch (skipped, as the drivers skip it, when empty)."""
        if nrows == 0 or ncols == 0:
            return 0
        self.launches.append((int(nrows), int(ncols)))
        self.events.append((name, int(nrows), int(ncols)))
        self.pairs += nrows * ncols
        self.padded += _padded(nrows, ncols, self.tpb, nsplit)
        return nrows * ncols

    def kernel(self, name, times=1):
        self.events.extend([(name,)] * times)

    def read(self, times=1):
        self.events.extend([("read",)] * times)

    @property
    def n_launches(self):
        return sum(1 for e in self.events if e[0] != "read")

    @property
    def n_reads(self):
        return sum(1 for e in self.events if e[0] == "read")


# --------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------

def _sort_lists(W, J):
    """Rows of (W, J) in (distance, index) order, empty entries (J < 0) last."""
    jj = np.where(J < 0, np.iinfo(np.int64).max, J)
    order = np.lexsort((jj, W), axis=-1)
    return np.take_along_axis(W, order, -1), np.take_along_axis(J, order, -1)


def emulate_rnn(S, tally, K, guard=True, simulated=None):
    """``cuda_vector._rnn_rounds`` (ward, average-cosine): RNN rounds over per-row
    top-K candidate lists, then (``guard``) the chain guard's hand-over.

    Each row keeps its K first (key, slot) and a bound (every active slot not
    listed has key >= bound). Round 0's lists come from the symmetric first
    pass (``_Lists.first``: ``fresh_pass`` + ``rnn_combine`` per segment of
    ``cuda_vector.first_segments``, each pair between segments computed once;
    the lists and bounds are the full scan's). A round: ``rnn_select`` lists
    the rows whose first entry does not precede their bound, ``rnn_scan`` + ``rnn_combine``
    rescan them (top K + 1 over the active slots), ``find_pairs`` /
    ``merge_pairs`` merge every reciprocal pair. If that round merged few
    pairs (``cuda_chain.hands_over(p, m + p)``, m the clusters left), the
    device-side chain finishes (``cuda_chain.finish``, emulated by
    ``_chain_emulation.emulate_chain``). Otherwise ``rnn_drop`` drops the
    merged slots from every list, and ``fresh_pass`` (new clusters x active
    slots, each pair once) gives the new clusters their lists and offers
    each new cluster to every other row (inserted where it precedes the
    row's bound, the pushed-out entry becoming the bound).

    Returns
    -------
    heights : ndarray
        Merge heights in the engine's units (ward: squared), rounds then chain.
    rounds : list of dict
        Per round: active, rescanned, merged, scan_pairs, new_pairs, syncs.
    chain : dict or None
        ``emulate_chain``'s result plus ``left`` (clusters at the hand-over),
        or None when no round handed over.
    """
    n = S.n
    active = np.ones(n, dtype=bool)
    LW = np.full((n, K), np.inf)
    LJ = np.full((n, K), NO_SLOT, dtype=np.int64)
    BW = np.full(n, np.inf)
    BJ = np.full(n, NO_SLOT, dtype=np.int64)
    heights, rounds, chain = [], [], None
    log_a, log_b, log_r = [], [], []

    def scan(rows, cols):  # rnn_scan + rnn_combine: a row's K + 1 first over cols
        pairs = tally.add(len(rows), len(cols), name="rnn_scan")
        if pairs:
            tally.kernel("rnn_combine")
            W, J = smallest(S, rows, cols, K + 1, _not_self)
            LW[rows], LJ[rows] = W[:, :K], J[:, :K]
            BW[rows], BJ[rows] = W[:, K], J[:, K]
        return pairs

    def fresh(new, cols, kept):  # fresh_pass (+ rnn_combine for the new rows)
        pairs = 0
        chunk, ns = cuda_vector.fresh_grid(len(new), len(cols), tally.tpb, K)
        for lo in range(0, len(new), chunk):  # launches of at most chunk new clusters
            pairs += tally.add(min(chunk, len(new) - lo), len(cols), nsplit=ns,
                               name="fresh_pass")
            tally.kernel("rnn_combine")
        W, J = smallest(S, new, cols, K + 1, _not_self)
        LW[new], LJ[new] = W[:, :K], J[:, :K]
        BW[new], BJ[new] = W[:, K], J[:, K]
        if len(kept):
            # offers: the K + 1 first new clusters of each kept row (more cannot stay listed)
            OW, OJ = smallest(S, kept, new, K + 1, _not_self)
            ok = _precedes(OW, OJ, BW[kept][:, None], BJ[kept][:, None])
            OW, OJ = np.where(ok, OW, np.inf), np.where(ok, OJ, NO_SLOT)
            UW, UJ = _sort_lists(np.hstack([LW[kept], OW]), np.hstack([LJ[kept], OJ]))
            LW[kept], LJ[kept] = UW[:, :K], UJ[:, :K]
            pushed = UJ[:, K] >= 0  # the entry after the K first is the new bound
            BW[kept] = np.where(pushed, UW[:, K], BW[kept])
            BJ[kept] = np.where(pushed, UJ[:, K], BJ[kept])
        return pairs

    act = np.arange(n)
    # the symmetric first pass (_Lists.first): segment [lo, lo + nr) against [lo, n), then
    # rnn_combine; lists and bounds are the full scan's K + 1 first
    for lo, nr, ns in cuda_vector.first_segments(n, tally.tpb, K, simulated):
        tally.first_pairs += tally.add(nr, n - lo, nsplit=ns, name="fresh_pass")
        tally.kernel("rnn_combine")
    W, J = smallest(S, act, act, K + 1, _not_self)
    LW[:], LJ[:] = W[:, :K], J[:, :K]
    BW[:], BJ[:] = W[:, K], J[:, K]
    m = n
    while m > 1:
        need = act[~_precedes(LW[act, 0], LJ[act, 0], BW[act], BJ[act])]  # rnn_select
        tally.kernel("rnn_select")
        tally.read()  # nrows
        scan_pairs = scan(need, act)
        nn, nnd = LJ[:, 0], LW[:, 0]
        j = nn[act]
        pr = act[(j >= 0) & (act < j) & (nn[np.maximum(j, 0)] == act)]  # find_pairs
        tally.kernel("find_pairs")
        tally.read()  # npairs
        p = len(pr)
        if p == 0:
            raise RuntimeError(f"no reciprocal pair with {m} clusters left")
        pj = nn[pr]
        heights.append(nnd[pr].copy())
        log_a.append(pr)
        log_b.append(pj)
        log_r.append(np.full(p, len(rounds)))
        S.merge(pr, pj)  # merge_pairs
        tally.kernel("merge_pairs")
        active[pj] = False
        m -= p
        rnd = {"active": len(act), "rescanned": len(need), "merged": p, "scan_pairs": scan_pairs,
               "new_pairs": 0, "syncs": 2}
        rounds.append(rnd)
        if m <= 1:
            break
        if guard and cuda_chain.hands_over(p, m + p):  # chain-like data: finish on the device
            chain = emulate_chain(S.CT, S.size, np.zeros(n), active, S.code, S.mcode)
            chain["left"] = m
            for _ in range(chain["launches"]):  # one launch and one state read per chunk
                tally.kernel("chain_steps")
                tally.read()
            tally.chain_pairs += chain["pairs"]
            heights.append(chain["h"])
            log_a.append(chain["a"])
            log_b.append(chain["b"])
            log_r.append(len(rounds) + np.arange(chain["merges"]))  # each merge its own round
            break
        dead = np.zeros(n, dtype=bool)
        dead[pr] = dead[pj] = True
        gone = (LJ >= 0) & dead[np.maximum(LJ, 0)]  # rnn_drop
        tally.kernel("rnn_drop")
        LJ[gone], LW[gone] = NO_SLOT, np.inf
        LW[:], LJ[:] = _sort_lists(LW, LJ)
        act = np.flatnonzero(active)
        tally.read()  # the active list (CuPy flatnonzero: a host read of its length)
        rnd.update(new_pairs=fresh(pr, act, act[~dead[act]]), syncs=3)
    tally.read(3)  # the merge log (not counted as the rounds' host syncs)
    a, b = np.concatenate(log_a), np.concatenate(log_b)
    h, r = np.concatenate(heights), np.concatenate(log_r)
    order = np.lexsort((b, a, r))  # the driver's order: by round, then (a, b)
    tally.log = (a[order], b[order], h[order])
    return h, rounds, chain


def emulate_single(S, tally, K):
    """``cuda_vector._single`` (Borůvka rounds with TOP_K candidate lists)."""
    n = S.n
    no_edge = np.iinfo(np.int64).max
    comp = np.arange(n)
    cand_w = np.full((K, n), np.inf)
    cand_j = np.full((K, n), NO_SLOT, dtype=np.int64)
    cand_j[0] = -2  # never scanned
    heights, rounds = [], []
    components, logged = n, 0
    everyone = np.arange(n)
    tally.kernel("init_state")
    while components > 1:
        tally.kernel("point_carry")
        # point_carry: first candidate still outside the component, else the bound
        scanned = cand_j[0] != -2
        cur_w = np.where(scanned, np.where(cand_j[K - 1] >= 0, cand_w[K - 1], np.inf), -np.inf)
        cur_j = np.full(n, NO_SLOT, dtype=np.int64)
        for k in range(K):
            jk = cand_j[k]
            hit = scanned & (cur_j < 0) & (jk >= 0) & (comp[np.maximum(jk, 0)] != comp)
            cur_w[hit], cur_j[hit] = cand_w[k, hit], jk[hit]
        comp_w = np.full(n, np.inf)
        bid = cur_j >= 0
        np.minimum.at(comp_w, comp[bid], cur_w[bid])
        # point_select
        rows = np.flatnonzero((cur_j < 0) & ~(cur_w > comp_w[comp]))
        tally.kernel("point_select")
        tally.read()  # nrows
        pairs = tally.add(len(rows), n, name="point_best")
        if len(rows):  # point_best + point_combine
            tally.kernel("point_combine")
            W, J = smallest(S, rows, everyone, K,
                            lambda r, cols: comp[r][:, None] == comp[cols][None, :])
            cand_w[:, rows], cand_j[:, rows] = W.T, J.T
            cur_w[rows], cur_j[rows] = W[:, 0], J[:, 0]
            ok = J[:, 0] >= 0
            np.minimum.at(comp_w, comp[rows[ok]], W[ok, 0])
        # vertex_code: lightest bid's edge code (u * n + v, u < v) per component
        holds = (cur_j >= 0) & (cur_w == comp_w[comp])
        idx = np.flatnonzero(holds)
        comp_code = np.full(n, no_edge, dtype=np.int64)
        u, v = np.minimum(idx, cur_j[idx]), np.maximum(idx, cur_j[idx])
        np.minimum.at(comp_code, comp[idx], u * n + v)
        # hook: every root onto the component across its edge (mutual: smaller root stays)
        roots = np.flatnonzero(comp == everyone)
        code = comp_code[roots]
        has = code != no_edge
        r, code = roots[has], code[has]
        u = code // n
        cu = comp[u]
        s = np.where(cu == r, comp[code - u * n], cu)
        hooks = ~((comp_code[s] == code) & (r < s))
        hook_to = everyone.copy()
        hook_to[r[hooks]] = s[hooks]
        heights.append(comp_w[r[hooks]])
        logged += int(hooks.sum())
        # the driver launches ceil(log2(components)) jumps (enough to reach the fixed point)
        tally.kernel("vertex_code")
        tally.kernel("hook")
        tally.kernel("jump", max(1, math.ceil(math.log2(components))))
        tally.kernel("relabel")
        tally.read()  # count
        while True:  # jump (to its fixed point), relabel
            nxt = hook_to[hook_to]
            if np.array_equal(nxt, hook_to):
                break
            hook_to = nxt
        comp = hook_to[comp]
        if n - logged >= components:
            raise RuntimeError(f"single linkage made no progress with {components} components")
        rounds.append({"components": components, "rescanned": len(rows), "scan_pairs": pairs,
                       "syncs": 2})
        components = n - logged
    tally.read(3)  # the MST edges (not counted as the rounds' host syncs)
    h = np.concatenate(heights)
    tally.log = (None, None, np.sort(h))
    return h, rounds


def emulate(engine, X, topk=None, tpb=GPU_TPB, guard=True, simulated=None):
    """Run one engine's emulation on observations X (n, d); ``topk``: the RNN
    list length (default ``cuda_vector.RNN_TOP_K``, the engine's); ``guard``:
    the RNN rounds hand over to the chain as the driver does (False: rounds
    to the end, to count what the guard saves); ``simulated``: the simulator's
    launch rules (``cuda_vector.first_segments``; default: this process's).

    Returns (heights as ``linkage`` reports them, rounds, Tally, chain): chain
    as ``emulate_rnn`` returns it (None for single and when no round handed over).
    """
    method, metric = ENGINES[engine]
    spec = METHODS[method]
    # the engine's inputs: data centred and scaled by a power of two, undone on the heights
    CT, _, code, mcode, exponent = _lowmem.prepare_scaled(X, spec, metric, np.float64, np)
    S = Summaries(CT, code, mcode)
    tally = Tally(tpb)
    chain = None
    if engine == "single":
        h, rounds = emulate_single(S, tally, cuda_vector.TOP_K)
    else:
        h, rounds, chain = emulate_rnn(S, tally, cuda_vector.RNN_TOP_K if topk is None else topk,
                                       guard, simulated)
    h = _lowmem._unscale(h, exponent, spec, metric)
    if spec.squared:
        h = np.sqrt(h)
    return h, rounds, tally, chain


# --------------------------------------------------------------------------
# One run: counts, summary, projection
# --------------------------------------------------------------------------

def projection(row):
    """PROJECTION fields of one counted row (``_instruction_model``), not a measurement."""
    n, d, engine = row["n"], row["d"], row["engine"]
    n2 = float(n) * n
    if engine == "single":
        scan, fresh = row["pairs"], 0.0
    else:
        scan = (row["rescan_pairs_per_n2"] + row["chain_pairs_per_n2"]) * n2
        fresh = (row["first_pass_pairs_per_n2"] + row["new_cluster_pairs_per_n2"]) * n2
    steps = row.get("chain_steps", 0)
    here = _instruction_model.project(engine, d, scan, fresh, row["launches"],
                                      row["host_syncs"], steps)
    scale = 1e12 / n2
    big = _instruction_model.project(engine, d, scan * scale, fresh * scale, row["launches"],
                                     row["host_syncs"], steps * 1e6 / n)
    return {"projected_h100_s": here["peak_s"], "projected_h100_s_n1e6": big["peak_s"],
            "projected_h100_realistic_s_n1e6": big["realistic_s"],
            "projected_overhead_s_n1e6": big["overhead_s"], "binding_pipe": big["binding_pipe"]}


def check_heights(engine, X, h, check_max_n):
    """(check, detail): the emulated heights against the CPU memory-saving engine's.

    ``ok``: sorted heights equal ``linkage(X, low_memory=True, backend='cpu')``'s
    to rtol 1e-9 and an absolute 1e-12 of the largest height (equal points
    give heights of 0 or of a rounding error, a merged centroid of equal
    points moving by an ulp, on either engine); ``MISMATCH`` when they differ;
    ``unchecked`` above ``check_max_n`` (nothing compared).
    """
    import gpu_hclust

    n = X.shape[0]
    if n > check_max_n:
        return UNCHECKED, f"n > --check-max-n {check_max_n}: not compared"
    method, metric = ENGINES[engine]
    Z = gpu_hclust.linkage(X, method, metric=metric, low_memory=True, backend="cpu")
    ref, got = np.sort(Z[:, 2]), np.sort(h)
    atol = 1e-12 * float(np.max(np.abs(ref), initial=0.0))
    if got.shape == ref.shape and np.allclose(got, ref, rtol=1e-9, atol=atol):
        return OK, "sorted heights equal the CPU memory-saving engine's (rtol 1e-9)"
    return MISMATCH, "sorted heights differ from the CPU memory-saving engine's"


def skip_reason(engine, X):
    """Why ``engine`` has no linkage of X (None when it has one)."""
    if ENGINES[engine][1] == "cosine":
        zero = np.flatnonzero(~np.any(X != 0, axis=1))
        if len(zero):
            # growing_gap and sorted_gaps start their line at the origin
            return (f"cosine is undefined for all-zero observations (rows {zero[:3].tolist()}); "
                    "linkage raises ValueError")
    return None


def count_run(engine, n, d, data, seed, topk, check_max_n=0, guard=True):
    """One row: rounds, host syncs, launches, pairs per n^2 (or ``skipped`` and why)."""
    X = make_data(data, n, d, seed)
    why = skip_reason(engine, X)
    if why:
        return {"engine": engine, "n": n, "d": d, "data": data, "seed": seed, "skipped": why}
    t0 = time.perf_counter()
    h, rounds, tally, chain = emulate(engine, X, topk, guard=guard, simulated=False)
    wall = time.perf_counter() - t0
    check, check_detail = check_heights(engine, X, h, check_max_n)
    n2 = float(n) * n
    # the first pass: the RNN rounds' symmetric one (about n^2 / 2); single's point_best, n^2
    first = tally.first_pairs if engine != "single" else n2
    pairs = tally.pairs + tally.chain_pairs
    # rows given a full rescan after the first pass (round 0's scan)
    later = [r["rescanned"] for r in rounds[1:]] or [0]
    rnn = engine in ("ward", "average-cosine")
    out = {
        "engine": engine,
        "n": n, "d": d, "data": data, "seed": seed,
        "topk": (topk or cuda_vector.RNN_TOP_K) if rnn else cuda_vector.TOP_K,
        "chain_guard": guard if rnn else None,
        "rounds": len(rounds),
        # blocking reads: the rounds' (and the chain's one per chunk), not the final log
        "host_syncs": tally.n_reads - 3,
        "launches": tally.n_launches,
        "pairs": pairs,
        "pairs_per_n2": pairs / n2,
        "first_pass_share": first / pairs,
        "later_pairs_per_n2": (pairs - first) / n2,
        "max_rows_rescanned": int(max(later)),
        "max_rows_rescanned_per_n": max(later) / n,
        "padded_pairs_per_n2": (tally.padded + tally.chain_pairs) / n2,
        "emulation_wall_s": round(wall, 2),
        "check": check, "check_detail": check_detail,
        "per_round": {key: [r.get(key, 0) for r in rounds] for key in rounds[0]},
    }
    if rnn:
        out["first_pass_pairs_per_n2"] = first / n2
        out["rescan_pairs_per_n2"] = sum(r["scan_pairs"] for r in rounds) / n2
        out["new_cluster_pairs_per_n2"] = sum(r["new_pairs"] for r in rounds) / n2
        out["chain_pairs_per_n2"] = tally.chain_pairs / n2
        out["handover_left"] = chain["left"] if chain else None
        out["chain_steps"] = chain["steps"] if chain else 0
        out["chain_launches"] = chain["launches"] if chain else 0
    out.update(projection(out))
    return out


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------

VERIFY_CASES = [  # (data, n, d): ward and average-cosine also hand over on the adversarial sets
    ("gaussian", 300, 32), ("gaussian", 1000, 8), ("gaussian", 2000, 32), ("blobs", 1000, 5),
    ("growing_gap", 500, 32), ("spiral", 500, 32), ("duplicates", 500, 32),
]


def verify_heights(engines, seed, topk):
    """Emulated merge heights == the CPU memory-saving engine's, sorted, rtol 1e-9."""
    failures = 0
    for engine in engines:
        for data, n, d in VERIFY_CASES:
            X = make_data(data, n, d, seed)
            if skip_reason(engine, X):
                continue
            try:
                h, rounds, _, chain = emulate(engine, X, topk)
                check, _ = check_heights(engine, X, h, n)
            except RuntimeError as exc:  # a broken emulation may stall: a failure, not a crash
                rounds, chain, check = [], None, MISMATCH
                print(f"   {engine} {data} n={n}: {exc}")
            failures += check != OK
            left = f"chain from {chain['left']}" if chain else "no hand-over"
            print(f"verify heights  {engine:15s} {data:11s} n={n:5d} d={d:3d} "
                  f"rounds={len(rounds):3d} {left:16s} {check}", flush=True)
    return failures


DRIVER_CASES = [  # (engine, data, n, d): small enough for the simulator (tpb 32)
    ("ward", "gaussian", 40, 9), ("average-cosine", "gaussian", 32, 9),
    ("single", "gaussian", 40, 9), ("single", "blobs", 40, 3),
    ("ward", "growing_gap", 36, 5),  # round 0 merges one pair: the chain finishes
]
SPIED = {  # module -> kernels whose launches the driver check records
    "cuda_vector": ("rnn_select", "rnn_scan", "rnn_combine", "find_pairs", "merge_pairs",
                    "rnn_drop", "fresh_pass", "point_carry", "point_select", "point_best",
                    "point_combine"),
    "cuda_mst": ("init_state", "vertex_code", "hook", "jump", "relabel"),
    "cuda_chain": ("chain_steps",),
}
TILE_ARGS = {"rnn_scan": (4, 6), "fresh_pass": (4, 6), "point_best": (4, 5)}  # (rows, cols)


class _CountingNumpy:
    """NumPy as the drivers' ``xp``, recording ``flatnonzero`` (on CuPy, a host read)."""

    def __init__(self, events):
        self._events = events

    def __getattr__(self, name):
        return getattr(np, name)

    def flatnonzero(self, a):
        self._events.append(("read",))
        return np.flatnonzero(a)


def driver_run(engine, data, n, d, patch=setattr):
    """The real driver (``cuda_vector.run``, tpb 32) on ``make_data(data, n, d, 0)``, spied.

    Runs where numba-cuda's simulator is on (or on a GPU with NumPy in/out
    arrays: not supported). ``patch(obj, name, value)`` installs the spies
    (``setattr``, or a test's ``monkeypatch.setattr`` to undo them).

    Returns
    -------
    dict
        ``events``: the kernel launches (``(name, rows, cols)`` for the tile
        kernels, ``(name,)`` otherwise) and host reads (``("read",)``: a
        ``launch.to_host`` or the driver's ``xp.flatnonzero``) in order, as
        ``Tally.events`` lists them; ``a``, ``b``, ``h``: the raw merge log
        (single: None, None and the sorted heights).
    """
    from gpu_hclust.kernels import cuda_mst, launch

    events = []

    class Spy:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, config):
            launch_ = self.kernel[config]

            def call(*args):
                if self.name in TILE_ARGS:
                    r, c = TILE_ARGS[self.name]
                    events.append((self.name, int(args[r]), int(args[c])))
                else:
                    events.append((self.name,))
                return launch_(*args)
            return call

    modules = {"cuda_vector": cuda_vector, "cuda_mst": cuda_mst, "cuda_chain": cuda_chain}
    for mod, names in SPIED.items():
        for name in names:
            kernel = getattr(modules[mod], name)
            if not isinstance(kernel, Spy):
                patch(modules[mod], name, Spy(name, kernel))
    to_host = launch.to_host

    def read(x):
        events.append(("read",))
        return to_host(x)
    patch(launch, "to_host", read)
    method, metric = ENGINES[engine]
    spec = METHODS[method]
    CT, norms, code, mcode, _ = _lowmem.prepare_scaled(make_data(data, n, d, 0), spec, metric,
                                                        np.float64, np)
    try:
        a, b, h = cuda_vector.run(CT, norms, code, mcode, xp=_CountingNumpy(events), tpb=32)
    finally:
        patch(launch, "to_host", to_host)
        for mod, names in SPIED.items():
            for name in names:
                kernel = getattr(modules[mod], name)
                if isinstance(kernel, Spy):
                    patch(modules[mod], name, kernel.kernel)
    if code == formulas.SINGLE:  # the MST's edges; the emulation keeps its heights only
        return {"events": events, "a": None, "b": None, "h": np.sort(h)}
    return {"events": events, "a": a, "b": b, "h": h}


def same_as_driver(run, tally):
    """(same events, same merge log) of a ``driver_run`` result and an emulation's Tally."""
    a, b, h = tally.log
    same_log = (np.array_equal(np.asarray(run["h"]), h)
                and (a is None or (np.array_equal(run["a"], a) and np.array_equal(run["b"], b))))
    return [tuple(e) for e in run["events"]] == tally.events, bool(same_log)


def _driver_runs():
    """In the simulator: each DRIVER_CASES run of the real driver (JSON on stdout)."""
    sys.setswitchinterval(1e-3)
    out = []
    for engine, data, n, d in DRIVER_CASES:
        run = driver_run(engine, data, n, d)
        out.append({"events": [list(e) for e in run["events"]],
                    "a": None if run["a"] is None else run["a"].tolist(),
                    "b": None if run["b"] is None else run["b"].tolist(),
                    "h": run["h"].tolist()})
    print(json.dumps(out))


def verify_driver():
    """The emulation does what the real driver does (numba-cuda simulator, n <= 40): the
    same kernel launches ((rows, columns) of the tile kernels) and host reads in the same
    order, and the same merge log (pairs in order and heights, bitwise)."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, __file__, "--driver-runs"], env=env,
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        print(res.stderr)
        print("verify driver: the simulator run FAILED")
        return 1
    real = json.loads(res.stdout.strip().splitlines()[-1])
    failures = 0
    for (engine, data, n, d), run in zip(DRIVER_CASES, real):
        _, _, tally, chain = emulate(engine, make_data(data, n, d, 0), tpb=32, simulated=True)
        events = [tuple(e) for e in run["events"]]
        same_events, same_log = same_as_driver(run, tally)
        ok = same_events and same_log
        failures += not ok
        reads = sum(e[0] == "read" for e in events)
        tiles = [e for e in events if len(e) == 3]
        print(f"verify driver   {engine:15s} {data:11s} n={n:3d} d={d:2d} "
              f"launches={len(events) - reads:3d} reads={reads:3d} "
              f"tile pairs={sum(e[1] * e[2] for e in tiles):6d} "
              f"chain={'from ' + str(chain['left']) if chain else 'no':8s} "
              f"events {OK if same_events else MISMATCH}, log {OK if same_log else MISMATCH}")
        if not same_events:
            print(f"   driver:   {events}\n   emulated: {tally.events}")
    print(f"(simulator run {time.perf_counter() - t0:.0f} s)")
    return failures


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _table(results):
    lines = [
        "| engine | data | n | d | rounds | chain from | host syncs | launches | pairs / n² | "
        "chain pairs / n² | max rows rescanned / n | padded / n² | projected H100 s (peak) | "
        "at n = 1e6 (peak / realistic) | check |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['engine']} | {r['data']} | {r['n']} | {r['d']} | "
                         f"skipped: {r['skipped']} |" + " |" * 10)
            continue
        name = f"{r['engine']} (K={r['topk']})"
        left = "-" if r.get("handover_left") is None else str(r["handover_left"])
        lines.append(
            f"| {name} | {r['data']} | {r['n']} | {r['d']} | {r['rounds']} | {left} | "
            f"{r['host_syncs']} | {r['launches']} | {r['pairs_per_n2']:.2f} | "
            f"{r.get('chain_pairs_per_n2', 0.0):.2f} | "
            f"{r['max_rows_rescanned_per_n']:.3f} | {r['padded_pairs_per_n2']:.2f} | "
            f"{r['projected_h100_s']:.3g} | {r['projected_h100_s_n1e6']:.3g} / "
            f"{r['projected_h100_realistic_s_n1e6']:.3g} | "
            f"{r.get('check', UNCHECKED)} |")
    return "\n".join(lines)


def _csv(text, cast=str):
    return [cast(x) for x in text.split(",") if x]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5000", help="comma-separated n (default 5000)")
    ap.add_argument("--dims", default="32", help="comma-separated d (default 32)")
    ap.add_argument("--engines", default="ward,average-cosine,single",
                    help=f"comma-separated, from {','.join(ENGINES)}")
    ap.add_argument("--topk", type=int, default=None,
                    help="list length of the RNN rounds to emulate (default the engine's "
                         f"cuda_vector.RNN_TOP_K = {cuda_vector.RNN_TOP_K}; --verify's driver "
                         "check always runs the engine's)")
    ap.add_argument("--data", default="gaussian",
                    help=f"comma-separated data sets, from {','.join(DATA)} (default gaussian; "
                         "the adversarial sets are _adversarial.make's)")
    ap.add_argument("--no-chain-guard", action="store_true",
                    help="emulate the RNN rounds to the end, without the hand-over to the chain "
                         "(to count what the guard saves; not what the driver does)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-max-n", type=int, default=20000,
                    help="compare each run's emulated heights with the CPU memory-saving engine "
                         "up to this n (default 20000); larger runs say unchecked")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--append", action="store_true",
                    help="add to the results already in --out instead of replacing them")
    ap.add_argument("--verify", action="store_true",
                    help="check the emulation (merge heights vs the CPU engine at n = 300-2000, "
                         "launches vs the real driver in the simulator) and exit")
    ap.add_argument("--reproject", metavar="RESULTS_JSON",
                    help="recompute the projection fields of a results file from its counts "
                         "(benchmarks/_instruction_model.py) and exit")
    ap.add_argument("--driver-runs", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.driver_runs:
        _driver_runs()
        return 0
    engines = _csv(args.engines)
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        ap.error(f"--engines: unknown {bad}; choose from {sorted(ENGINES)}")
    datasets = _csv(args.data)
    bad = [x for x in datasets if x not in DATA]
    if bad:
        ap.error(f"--data: unknown {bad}; choose from {','.join(DATA)}")
    if args.topk is not None and not 1 <= args.topk <= cuda_vector.RNN_TOP_K_MAX:
        ap.error(f"--topk must be between 1 and {cuda_vector.RNN_TOP_K_MAX}")
    if args.verify:
        failures = verify_heights(engines, args.seed, args.topk) + verify_driver()
        print("verify:", "all ok" if failures == 0 else f"{failures} FAILED")
        return 1 if failures else 0

    if args.reproject:
        reproject(args.reproject)
        return 0
    print("Counted work of the GPU memory-saving engine (NumPy emulation). Projected H100 times "
          f"are PROJECTIONS ({WHAT_PROJECTED}), not measurements.", flush=True)
    results = []
    for n in _csv(args.sizes, int):
        for d in _csv(args.dims, int):
            for data in datasets:
                for engine in engines:
                    r = count_run(engine, n, d, data, args.seed, args.topk, args.check_max_n,
                                  guard=not args.no_chain_guard)
                    results.append(r)
                    if "skipped" in r:
                        print(f"{engine:15s} {data:11s} n={n:6d} d={d:4d} skipped: "
                              f"{r['skipped']}", flush=True)
                        continue
                    print(f"{engine:15s} {data:11s} n={n:6d} d={d:4d} rounds={r['rounds']:4d} "
                          f"syncs={r['host_syncs']:4d} launches={r['launches']:5d} "
                          f"pairs/n²={r['pairs_per_n2']:.3f} (chain "
                          f"{r.get('chain_pairs_per_n2', 0.0):.3f}) "
                          f"projected H100 {r['projected_h100_s']:.3g} s "
                          f"({r['emulation_wall_s']:.1f} s to emulate) check {r['check']}",
                          flush=True)
    print()
    print(_table(results))
    if args.out:
        command = " ".join(["benchmarks/count_gpu_work.py"]
                           + (argv if argv is not None else sys.argv[1:]))
        commands, old = [command], []
        if args.append and Path(args.out).exists():
            prev = json.loads(Path(args.out).read_text())
            commands, old = prev["commands"] + commands, prev["results"]
        results = old + results
        doc = {
            "what": "pair distances, rounds, host syncs and kernel launches of the GPU "
                    "memory-saving engine (kernels/cuda_vector.py, with the chain guard of "
                    "kernels/cuda_chain.py), counted by a NumPy emulation of its host drivers; "
                    f"projected_* are projections ({WHAT_PROJECTED}), not measurements",
            "projection_model": _instruction_model.assumptions(),
            "commands": commands,
            "git": _git_head(),
            **provenance(paths=("kernels",)),
            "python": platform.python_version(), "numpy": np.__version__,
            "engine_constants": {"TOP_K": cuda_vector.TOP_K,
                                 "RNN_TOP_K": cuda_vector.RNN_TOP_K,
                                 "FIRST_ROWS": cuda_vector.FIRST_ROWS,
                                 "FRESH_SCRATCH": cuda_vector.FRESH_SCRATCH,
                                 "TILE_C": cuda_vector.TILE_C, "tpb": GPU_TPB,
                                 "CHAIN_FRACTION": cuda_chain.CHAIN_FRACTION,
                                 "CHAIN_MIN_PAIRS": cuda_chain.CHAIN_MIN_PAIRS,
                                 "CHUNK_WORK": cuda_chain.CHUNK_WORK,
                                 "CHUNK_MERGES": cuda_chain.CHUNK_MERGES},
            "results": results,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"\nwrote {args.out}")
    return 0


WHAT_PROJECTED = ("benchmarks/_instruction_model.py: instructions per pair by pipe at compute "
                  "capability 9.0's rates, plus launch and sync overheads")


def reproject(path):
    """Rewrite the projection fields of a results file from the counts it holds."""
    doc = json.loads(Path(path).read_text())
    for row in doc["results"]:
        if "skipped" not in row:
            row.pop("projected_h100_s", None)
            row.pop("projected_h100_s_n1e6", None)
            row.update(projection(row))
    doc["what"] = doc["what"].split("; projected")[0] + (
        f"; projected_* are projections ({WHAT_PROJECTED}), not measurements")
    doc["projection_model"] = _instruction_model.assumptions()
    doc["commands"] = doc["commands"] + [f"benchmarks/count_gpu_work.py --reproject {path}"]
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
    print(_table(doc["results"]))
    print(f"\nrewrote the projections in {path}")


def _git_head():
    try:
        root = Path(__file__).resolve().parents[1]
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "kernels"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty kernels" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
