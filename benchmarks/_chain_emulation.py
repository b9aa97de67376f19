#!/usr/bin/env python
"""Count the work of the chain guard (``kernels/cuda_chain.py``) on the CPU.

A NumPy emulation of the reducible memory-saving driver with its chain guard:
the reciprocal-nearest-neighbour rounds of ``cuda_vector._rnn_rounds``
(``count_gpu_work.emulate_rnn``'s rules and tallies) until a round merges too
few pairs (``cuda_chain.hands_over``), then ``cuda_chain.finish``'s
nearest-neighbour chain, step by step as ``chain_steps`` does it: the tip's
distances to every other active cluster (``metrics.metric_accumulate`` in
coordinate order, ``formulas.cluster_distance``), the first (distance, slot),
the previous element preferred on a tie, merges into the smaller slot, the
removed slot's place in the compact active list taken by the last entry, and
the chain started at the list's first entry. Launches and host reads follow
``finish``: one launch and one 4-int64 read per chunk of
``cuda_chain.chunk_merges`` merges.

Functions the count script can call::

    from _chain_emulation import emulate_rounds, emulate_chain
    h, rounds, chain = emulate_rounds(S, tally, guard=True)   # S: count_gpu_work.Summaries

Command line (the host-sync table of issue 12, Gaussian beside the adversarial
sets of ``_adversarial``)::

    PYTHONPATH=$PWD python benchmarks/_chain_emulation.py --sizes 2000,5000,20000 --dims 32
    PYTHONPATH=$PWD python benchmarks/_chain_emulation.py --sizes 2000 --baseline  # + rounds only

Host syncs are counted as ``count_gpu_work`` counts them (per round: the
active list, ``npairs`` and, unless the run ends or hands over, the stale and
kept lists) plus the chain's one read per chunk. Pair distances: one per
(row, column) a kernel computes; the chain computes m - 1 per step.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numba
import numpy as np

try:
    import gpu_hclust  # noqa: F401
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _adversarial  # noqa: E402
import count_gpu_work as cgw  # noqa: E402
from _common import MISMATCH, OK, UNCHECKED, provenance  # noqa: E402

from gpu_hclust import _lowmem  # noqa: E402
from gpu_hclust._methods import METHODS  # noqa: E402
from gpu_hclust.kernels import cuda_chain, formulas, metrics  # noqa: E402

ENGINES = {"ward": ("ward", "euclidean"), "average-cosine": ("average", "cosine")}


# formulas.cluster_distance as a ufunc (one source; its clamp is a scalar branch).
_keys = numba.vectorize(["float64(int64, int64, float64, float64, float64, float64, float64)"],
                        cache=False)(formulas.cluster_distance)


def emulate_chain(CT, size, extra, active, code, mcode, rep=None):
    """``cuda_chain.finish`` from the state (CT, size, extra, active), in NumPy.

    Parameters
    ----------
    CT : ndarray, shape (d, n), float64
        Centroids (or mean unit vectors) per slot; not modified.
    size, extra : ndarray of float64, shape (n,)
        Cluster sizes and mean squared deviations (average/sqeuclidean).
    active : ndarray of bool, shape (n,)
        Active slots (at least one).
    code, mcode : int
        ``formulas`` method code and ``metrics`` code of the summaries.
    rep : ndarray of int64, shape (n,), optional
        An observation per slot (default: the slot itself).

    Returns
    -------
    dict
        ``a``, ``b``, ``h`` (the merge log, as the kernel writes it), ``merges``,
        ``steps`` (nearest-neighbour searches), ``pairs`` (distances computed),
        ``launches`` and ``host_syncs`` (one each per chunk).
    """
    d, n = CT.shape
    rep = np.arange(n) if rep is None else rep
    slot = np.flatnonzero(active)  # finish's compact list: ascending
    m = len(slot)
    C = np.array(CT[:, slot], dtype=np.float64, order="C")
    sz = np.array(size[slot], dtype=np.float64)
    ex = np.array(extra[slot], dtype=np.float64)
    pos = np.full(n, -1, dtype=np.int64)
    pos[slot] = np.arange(m)
    cm = formulas.coordinate_metric(code, mcode)
    chain, a, b, h = [], [], [], []
    steps = pairs = launches = done = limit = 0
    while m > 1:
        if done == limit:  # the host launches the next chunk and reads its state
            launches += 1
            limit = done + cuda_chain.chunk_merges(m, d)
        x = chain[-1] if chain else int(slot[0])
        px = pos[x]
        acc = np.zeros(m)
        for k in range(d):
            acc = metrics.metric_accumulate(cm, acc, C[k, px], C[k, :m], 0.0)
        w = _keys(code, mcode, acc, sz[px], sz[:m], ex[px], ex[:m])
        w[px] = np.inf
        steps += 1
        pairs += m - 1
        others = np.arange(m) != px
        best = w[others].min()
        if not best < np.inf:
            raise ValueError("no finite candidate left")
        y = int(slot[:m][others & (w == best)].min())
        prev = chain[-2] if len(chain) >= 2 else -1
        if prev >= 0 and w[pos[prev]] <= best:
            y, best = prev, w[pos[prev]]
        if y != prev:
            if not chain:
                chain.append(x)
            chain.append(y)
            continue
        lo, hi = min(x, y), max(x, y)
        plo, phi = pos[lo], pos[hi]
        sa, sb = sz[plo], sz[phi]
        sq = 0.0
        if code == formulas.AVERAGE and mcode == metrics.SQEUCLIDEAN:
            for k in range(d):
                sq = metrics.metric_accumulate(metrics.SQEUCLIDEAN, sq, C[k, plo], C[k, phi], 0.0)
        ex[plo] = formulas.merged_extra(code, mcode, ex[plo], ex[phi], sa, sb, sq)
        C[:, plo] = formulas.merged_coordinate(code, C[:, plo], C[:, phi], sa, sb)
        sz[plo] = sa + sb
        a.append(rep[lo])
        b.append(rep[hi])
        h.append(best)
        last = m - 1  # the last entry of the list takes hi's place
        C[:, phi], sz[phi], ex[phi], slot[phi] = C[:, last], sz[last], ex[last], slot[last]
        pos[slot[phi]] = phi
        m -= 1
        del chain[-2:]
        done += 1
    return {"a": np.array(a, dtype=np.int64), "b": np.array(b, dtype=np.int64),
            "h": np.array(h, dtype=np.float64), "merges": done, "steps": steps, "pairs": pairs,
            "launches": launches, "host_syncs": launches}


def emulate_rounds(S, tally, guard=True):
    """``cuda_vector._rnn_rounds`` with (``guard=True``) or without the chain guard.

    ``S`` is a ``count_gpu_work.Summaries`` (ward or average-cosine) and
    ``tally`` a ``count_gpu_work.Tally`` (the rounds' tile-kernel launches);
    the rounds follow ``count_gpu_work.emulate_rnn`` line for line.

    Returns
    -------
    heights : ndarray
        Merge heights in the engine's units (ward: squared), rounds then chain.
    rounds : list of dict
        Per round: active, rescanned, merged, scan_pairs, kept, offer_pairs, syncs.
    chain : dict or None
        ``emulate_chain``'s result plus ``left`` (clusters at the hand-over),
        or None when no round handed over.
    """
    n = S.n
    active = np.ones(n, dtype=bool)
    nn = np.zeros(n, dtype=np.int64)
    nnd = np.full(n, np.inf)
    heights, rounds, chain = [], [], None

    def best(rows, cols, mode):  # _Nearest: cluster_best + combine_best
        pairs = tally.add(len(rows), len(cols))
        if pairs == 0:
            return 0
        W, J = cgw.smallest(S, rows, cols, 1, cgw._not_self)
        w, j = W[:, 0], J[:, 0]
        take = j >= 0
        if mode == 1:
            take &= cgw._precedes(w, j, nnd[rows], nn[rows])
        nn[rows[take]] = j[take]
        nnd[rows[take]] = w[take]
        return pairs

    stale = np.arange(n)
    m = n
    while m > 1:
        act = np.flatnonzero(active)
        scan = best(stale, act, 0)
        j = nn[act]
        pr = act[(act < j) & (nn[j] == act)]  # find_pairs
        p = len(pr)
        if p == 0:
            raise RuntimeError(f"no reciprocal pair with {m} clusters left")
        pj = nn[pr]
        heights.append(nnd[pr].copy())
        flag = np.zeros(n, dtype=np.int8)
        flag[pr], flag[pj] = 1, 2
        S.merge(pr, pj)  # merge_pairs
        active[pj] = False
        m -= p
        rnd = {"active": len(act), "rescanned": len(stale), "merged": p, "scan_pairs": scan,
               "kept": 0, "offer_pairs": 0, "syncs": 2}
        rounds.append(rnd)
        if m <= 1:
            break
        if guard and cuda_chain.hands_over(p, m + p):
            chain = emulate_chain(S.CT, S.size, np.zeros(n), active, S.code, S.mcode)
            chain["left"] = m
            heights.append(chain["h"])
            break
        is_stale = active & ((flag[nn] != 0) | (flag == 1))
        stale = np.flatnonzero(is_stale)
        keep = np.flatnonzero(active & ~is_stale)
        rnd.update(kept=len(keep), offer_pairs=best(keep, pr, 1), syncs=4)
    return np.concatenate(heights), rounds, chain


def _check_heights(method, metric, X, h):
    """(check, detail): sorted heights against the CPU memory-saving engine's.

    rtol 1e-9, and an absolute 1e-12 of the largest height: equal points give
    heights of 0 or of a rounding error (a merged centroid of equal points can
    move by an ulp), on either engine.
    """
    import gpu_hclust

    Z = gpu_hclust.linkage(X, method, metric=metric, low_memory=True, backend="cpu")
    ref, got = np.sort(Z[:, 2]), np.sort(h)
    atol = 1e-12 * float(np.max(np.abs(ref), initial=0.0))
    if got.shape == ref.shape and np.allclose(got, ref, rtol=1e-9, atol=atol):
        return OK, "sorted heights equal the CPU memory-saving engine's (rtol 1e-9)"
    return MISMATCH, "sorted heights differ from the CPU memory-saving engine's"


def count(engine, data, n, d, seed, guard=True, check_max_n=0):
    """One row of the table: rounds, hand-over, host syncs, launches, pairs per n^2."""
    method, metric = ENGINES[engine]
    X = _adversarial.make(data, n, d, seed)
    spec = METHODS[method]
    CT, _, code, mcode, exponent = _lowmem.prepare_scaled(X, spec, metric, np.float64, np)
    S = cgw.Summaries(CT, code, mcode)
    tally = cgw.Tally(cgw.GPU_TPB)
    t0 = time.perf_counter()
    h, rounds, chain = emulate_rounds(S, tally, guard)
    wall = time.perf_counter() - t0
    h = _lowmem._unscale(h, exponent, spec, metric)  # the data was scaled by a power of two
    if spec.squared:
        h = np.sqrt(h)
    check, detail = UNCHECKED, f"n > {check_max_n}: not compared"
    if n <= check_max_n:
        check, detail = _check_heights(method, metric, X, h)
    round_syncs = sum(r["syncs"] for r in rounds)
    # launches of the rounds: 2 tile kernels + find_pairs + merge_pairs (+ 2 for the offers)
    round_launches = sum(4 + (2 if r["kept"] else 0) for r in rounds)
    pairs = tally.pairs + (chain["pairs"] if chain else 0)
    return {
        "engine": engine, "data": data, "n": n, "d": d, "seed": seed, "guard": guard,
        "rounds": len(rounds), "handover_left": chain["left"] if chain else None,
        "chain_steps": chain["steps"] if chain else 0,
        "chain_launches": chain["launches"] if chain else 0,
        "host_syncs": round_syncs + (chain["host_syncs"] if chain else 0),
        "launches": round_launches + (chain["launches"] if chain else 0),
        "pairs_per_n2": pairs / float(n) ** 2,
        "chain_pairs_per_n2": (chain["pairs"] if chain else 0) / float(n) ** 2,
        "check": check, "check_detail": detail, "emulation_wall_s": round(wall, 2),
    }


def _table(rows):
    head = (f"{'engine':15s} {'data':12s} {'n':>6s} {'guard':>5s} {'rounds':>6s} "
            f"{'left@hand':>9s} {'chain steps':>11s} {'syncs':>6s} {'launches':>8s} "
            f"{'pairs/n2':>8s} check")
    print(head)
    for r in rows:
        left = "-" if r["handover_left"] is None else str(r["handover_left"])
        print(f"{r['engine']:15s} {r['data']:12s} {r['n']:6d} {str(r['guard']):>5s} "
              f"{r['rounds']:6d} {left:>9s} {r['chain_steps']:11d} {r['host_syncs']:6d} "
              f"{r['launches']:8d} {r['pairs_per_n2']:8.3f} {r['check']}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,5000")
    ap.add_argument("--dims", type=int, default=32)
    ap.add_argument("--engines", default="ward")
    ap.add_argument("--data", default=",".join(_adversarial.NAMES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", action="store_true", help="also count the rounds without guard")
    ap.add_argument("--check-max-n", type=int, default=2000,
                    help="compare heights with the CPU engine up to this n")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    rows = []
    for engine in args.engines.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            for data in args.data.split(","):
                for guard in ((True, False) if args.baseline else (True,)):
                    try:
                        rows.append(count(engine, data, n, args.dims, args.seed, guard,
                                          args.check_max_n))
                    except ValueError as exc:  # e.g. cosine of a line through the origin
                        print(f"{engine} {data} n={n}: skipped ({exc})", flush=True)
                        break
                    _table(rows[-1:])
    print()
    _table(rows)
    if args.out:
        doc = {"what": "host syncs of the memory-saving RNN rounds with the chain guard "
                       "(kernels/cuda_chain.py), emulated on the CPU (counts, not timings)",
               "rule": {"CHAIN_FRACTION": cuda_chain.CHAIN_FRACTION,
                        "CHAIN_MIN_PAIRS": cuda_chain.CHAIN_MIN_PAIRS,
                        "CHUNK_WORK": cuda_chain.CHUNK_WORK,
                        "CHUNK_MERGES": cuda_chain.CHUNK_MERGES},
               "provenance": provenance(), "rows": rows}
        Path(args.out).write_text(json.dumps(doc, indent=1))
    return 1 if any(r["check"] == MISMATCH for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
