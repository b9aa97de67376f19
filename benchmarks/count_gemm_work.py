#!/usr/bin/env python
"""Count the work of the GEMM scans of average/cosine (``kernels/cuda_gemm_scan.py``) on the CPU.

A NumPy emulation of ``cuda_vector._rnn_rounds`` with the GEMM path switched
on (``cuda_gemm_scan.ENABLED = True``): the same rounds, lists and bounds as
``count_gpu_work.emulate_rnn``, with every scan and new-cluster pass done as
the GEMM path does it, through the module's own functions
(``approx_keys``, ``margin_coefficients``, ``candidates``; column shares of
``SLAB_COLS``), so that the candidates counted are the ones the driver would
recheck::

    PYTHONPATH=$PWD python benchmarks/count_gemm_work.py --n 2000,5000 --d 384 \\
        --data gaussian,spiral,duplicates --json benchmarks/results/gemm-work-count.json

What is counted, per run:

``gemm_macs_per_n2d``
    Multiply-adds of the float64 products (rows x columns x d summed over every
    slab of every scan and new-cluster pass) per n^2 d. The first pass alone
    is n^2 d (every row against every column).
``rechecks_per_n2`` / ``rechecks_per_row_scan``
    Exact keys computed for the candidates (``pair_keys``: d in-order
    multiply-adds each) per n^2, and per row of a scan or pass: about K + 1
    plus the near-ties within the margin, plus (new-cluster passes) the offers
    that could precede a kept row's bound.
``rounds``, ``handover_left``, ``chain_pairs_per_n2``
    As in ``count_gpu_work``: when a round merges few pairs the rest goes to
    the device-side chain (``cuda_chain``, tile arithmetic, not GEMM);
    ``_chain_emulation.emulate_chain`` counts its pair distances.

The heights are checked against the CPU memory-saving engine (sorted, rtol
1e-9) up to ``--check-max-n``.

PROJECTION (not a measurement) for average-cosine at n = 1 000 000, d = 384
on an H100/H200, from the counts at the emulated n (per n^2 ratios assumed
to hold at 1M; the recheck count per n^2 falls with n, so scaling it by n^2
overstates it). Assumptions, stated in the JSON:

* DGEMM at ``DGEMM_FLOPS`` = 6e13 FP64 FLOP/s (tensor-core FP64 of an H100
  SXM is 67 TFLOP/s peak; 60 assumed sustained), 2 FLOP per multiply-add;
* the selection on each slab element moves ``SELECT_BYTES_PER_ELEM`` = 32
  bytes of device memory at ``HBM_BYTES_PER_S`` (H100 SXM 3.35e12 B/s; an
  H200 has 4.8e12): the product written by the DGEMM (8 B) and read three
  times in place (``slab_count``'s two passes, ``slab_emit``), memory-bound,
  no reuse from L2 assumed;
* each exact recheck costs 3 d FP64 operations at ``FP64_OPS_PER_S`` =
  1.67e13 (the non-tensor FP64 peak of ``count_gpu_work``), and the chain's
  pairs the same;
* launches, host reads and the rounds' other kernels are not counted.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

try:
    import gpu_hclust  # noqa: F401
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _instruction_model  # noqa: E402
import count_gpu_work as cgw  # noqa: E402
from _chain_emulation import emulate_chain  # noqa: E402
from _common import MISMATCH, OK, UNCHECKED, provenance  # noqa: E402, F401 (OK: for callers)

from gpu_hclust import _lowmem  # noqa: E402
from gpu_hclust._methods import METHODS  # noqa: E402
from gpu_hclust.kernels import cuda_chain, cuda_gemm_scan, cuda_vector  # noqa: E402

DGEMM_FLOPS = 6.0e13
HBM_BYTES_PER_S = 3.35e12
SELECT_BYTES_PER_ELEM = 32  # G written by the DGEMM, read by slab_count (twice) and slab_emit
# non-tensor FP64 lane operations per second (the instruction model's device)
FP64_OPS_PER_S = (_instruction_model.SMS * _instruction_model.CLOCK_HZ
                  * _instruction_model.FP64_LANES_PER_CLK)
TARGET_S = 60.0
PROJECT_N, PROJECT_D = 1_000_000, 384
ROW_BLOCK = 512  # emulation's row slab: the candidates do not depend on it (per-row rule)
NO_SLOT = -1


class GemmCounter:
    """Work of the GEMM path: multiply-adds, slab elements, exact rechecks."""

    def __init__(self):
        self.macs = 0
        self.elems = 0
        self.rechecks = 0
        self.rows = 0  # rows given to scans and passes (each needs its K + 1 first)


def gemm_candidates(S, rows, cols, kk, counter, bw=None, bj=None):
    """The GEMM path's candidate pairs of rows x cols with their exact keys.

    Column shares of ``cuda_gemm_scan.SLAB_COLS`` as the driver cuts them;
    ``bw``/``bj`` (per column, -inf / 0 for columns that take no offers) add the
    offer candidates of a new-cluster pass. Returns (row positions, column
    positions, exact keys), pairs in no particular order.
    """
    d = S.d
    A, B = cuda_gemm_scan.margin_coefficients(d)
    cs = max(1, min(len(cols), cuda_gemm_scan.SLAB_COLS))
    out_r, out_c, out_w = [], [], []
    for c0 in range(0, len(cols), cs):
        C = cols[c0:c0 + cs]
        VC = S.CT[:, C]
        ncmax = float(cuda_gemm_scan.row_norms(VC, np).max())
        for r0 in range(0, len(rows), ROW_BLOCK):
            R = rows[r0:r0 + ROW_BLOCK]
            VR = S.CT[:, R]
            g = cuda_gemm_scan.approx_keys(VR, VC, np)
            delta = A * cuda_gemm_scan.row_norms(VR, np) * ncmax + B
            sr, sc = np.nonzero(R[:, None] == C[None, :])
            mask = cuda_gemm_scan.candidates(
                g, delta, kk, sr, sc, None if bw is None else bw[c0:c0 + cs],
                None if bj is None else bj[c0:c0 + cs], np)
            ri, ci = np.nonzero(mask)
            counter.macs += len(R) * len(C) * d
            counter.elems += len(R) * len(C)
            counter.rechecks += len(ri)
            out_r.append(r0 + ri)
            out_c.append(c0 + ci)
            out_w.append(S.exact(R[ri], C[ci]))
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_w)


def _first(ri, cj, w, nrows, m):
    """Each row's m first (key, slot) among the pairs (ri, slot cj, key w)."""
    W = np.full((nrows, m), np.inf)
    J = np.full((nrows, m), NO_SLOT, dtype=np.int64)
    order = np.lexsort((cj, w, ri))
    ri, cj, w = ri[order], cj[order], w[order]
    rank = np.arange(len(ri)) - np.searchsorted(ri, ri, side="left")
    take = rank < m
    W[ri[take], rank[take]] = w[take]
    J[ri[take], rank[take]] = cj[take]
    return W, J


def emulate(X, kk=None, guard=True):
    """Average-cosine rounds on X with the GEMM scans; returns (heights, rounds, counter, chain)."""
    spec = METHODS["average"]
    CT, _, code, mcode, exponent = _lowmem.prepare_scaled(X, spec, "cosine", np.float64, np)
    S = cgw.Summaries(CT, code, mcode)
    K = cuda_vector.RNN_TOP_K if kk is None else kk
    n = S.n
    counter = GemmCounter()
    active = np.ones(n, dtype=bool)
    LW = np.full((n, K), np.inf)
    LJ = np.full((n, K), NO_SLOT, dtype=np.int64)
    BW = np.full(n, np.inf)
    BJ = np.full(n, NO_SLOT, dtype=np.int64)
    flag = np.zeros(n, dtype=np.int8)

    def lists(rows, ri, cj, w):  # gemm_select + rnn_combine
        W, J = _first(ri, cj, w, len(rows), K + 1)
        LW[rows], LJ[rows] = W[:, :K], J[:, :K]
        BW[rows], BJ[rows] = W[:, K], J[:, K]

    def scan(rows, cols):
        if len(rows) and len(cols):
            counter.rows += len(rows)
            ri, ci, w = gemm_candidates(S, rows, cols, K, counter)
            lists(rows, ri, cols[ci], w)

    def fresh(new, cols):
        counter.rows += len(new)
        kept = flag[cols] == 0
        bw = np.where(kept, BW[cols], -np.inf)
        bj = np.where(kept, BJ[cols], 0)
        ri, ci, w = gemm_candidates(S, new, cols, K, counter, bw, bj)
        lists(new, ri, cols[ci], w)
        # gemm_offer: each kept row takes the offers that precede its bound (any order)
        k, u = cols[ci], new[ri]
        ok = kept[ci] & cgw._precedes(w, u, BW[k], BJ[k])
        k, u, w = k[ok], u[ok], w[ok]
        rows = np.unique(k)
        if len(rows):
            pos = np.searchsorted(rows, k)
            OW, OJ = _first(pos, u, w, len(rows), K + 1)
            UW, UJ = cgw._sort_lists(np.hstack([LW[rows], OW]), np.hstack([LJ[rows], OJ]))
            LW[rows], LJ[rows] = UW[:, :K], UJ[:, :K]
            pushed = UJ[:, K] >= 0
            BW[rows] = np.where(pushed, UW[:, K], BW[rows])
            BJ[rows] = np.where(pushed, UJ[:, K], BJ[rows])

    heights, rounds, chain = [], [], None
    act = np.arange(n)
    m = n
    while m > 1:
        need = act[~cgw._precedes(LW[act, 0], LJ[act, 0], BW[act], BJ[act])]
        macs0, rec0 = counter.macs, counter.rechecks
        scan(need, act)
        nn, nnd = LJ[:, 0], LW[:, 0]
        j = nn[act]
        pr = act[(j >= 0) & (act < j) & (nn[np.maximum(j, 0)] == act)]
        p = len(pr)
        if p == 0:
            raise RuntimeError(f"no reciprocal pair with {m} clusters left")
        pj = nn[pr]
        heights.append(nnd[pr].copy())
        S.merge(pr, pj)
        active[pj] = False
        m -= p
        rounds.append({"active": len(act), "rescanned": len(need), "merged": p})
        if m <= 1:
            break
        if guard and cuda_chain.hands_over(p, m + p):
            chain = emulate_chain(S.CT, S.size, np.zeros(n), active, S.code, S.mcode)
            chain["left"] = m
            heights.append(chain["h"])
            break
        dead = np.zeros(n, dtype=bool)
        dead[pr] = dead[pj] = True
        gone = (LJ >= 0) & dead[np.maximum(LJ, 0)]  # rnn_drop
        LJ[gone], LW[gone] = NO_SLOT, np.inf
        LW[:], LJ[:] = cgw._sort_lists(LW, LJ)
        act = np.flatnonzero(active)
        flag[pr], flag[pj] = 1, 2
        fresh(pr, act)
        flag[:] = 0
        rounds[-1].update(gemm_macs=counter.macs - macs0, rechecks=counter.rechecks - rec0)
    h = _lowmem._unscale(np.concatenate(heights), exponent, spec, "cosine")
    return h, rounds, counter, chain


def projection(macs_per_n2d, elems_per_n2, rechecks_per_n2, chain_pairs_per_n2):
    """PROJECTED seconds for average-cosine 1M x 384 from per-n^2 counts (see module docstring)."""
    n2 = float(PROJECT_N) ** 2
    gemm = 2.0 * macs_per_n2d * n2 * PROJECT_D / DGEMM_FLOPS
    select = elems_per_n2 * n2 * SELECT_BYTES_PER_ELEM / HBM_BYTES_PER_S
    recheck = rechecks_per_n2 * n2 * 3 * PROJECT_D / FP64_OPS_PER_S
    chain = chain_pairs_per_n2 * n2 * 3 * PROJECT_D / FP64_OPS_PER_S
    total = gemm + select + recheck + chain
    return {"label": "PROJECTION from emulated counts, not a measurement",
            "case": f"average-cosine {PROJECT_N} x {PROJECT_D}",
            "gemm_s": gemm, "selection_s": select, "recheck_s": recheck, "chain_s": chain,
            "total_s": total, "target_s": TARGET_S, "within_target": total <= TARGET_S,
            "assumptions": {
                "dgemm_flop_per_s": DGEMM_FLOPS,
                "dgemm_note": "FP64 tensor-core DGEMM, H100/H200 SXM (67 TFLOP/s peak, 60 "
                              "assumed sustained), 2 FLOP per multiply-add",
                "hbm_bytes_per_s": HBM_BYTES_PER_S,
                "selection_bytes_per_slab_element": SELECT_BYTES_PER_ELEM,
                "selection_note": "the product written once and read three times in place "
                                  "(slab_count twice, slab_emit), memory-bound at H100 SXM "
                                  "bandwidth (H200: 4.8e12), no L2 reuse",
                "recheck_ops_per_pair": f"3 d FP64 operations at {FP64_OPS_PER_S:.3g}/s "
                                        "(non-tensor FP64 peak)",
                "scaling": "per-n^2 ratios at the emulated n assumed at 1M (rechecks per "
                           "row do not grow with n, so their share is overstated)",
                "not_counted": "launches, host reads, rounds' other kernels",
            }}


def count_run(n, d, data, seed, kk=None, check_max_n=0):
    """One row of counts (or ``skipped`` with the reason)."""
    X = cgw.make_data(data, n, d, seed)
    why = cgw.skip_reason("average-cosine", X)
    if why:
        return {"n": n, "d": d, "data": data, "seed": seed, "skipped": why}
    t0 = time.perf_counter()
    h, rounds, counter, chain = emulate(X, kk)
    wall = time.perf_counter() - t0
    if n <= check_max_n:
        check, detail = cgw.check_heights("average-cosine", X, h, check_max_n)
    else:
        check, detail = UNCHECKED, f"n > --check-max-n {check_max_n}: not compared"
    n2 = float(n) * n
    chain_pairs = chain["pairs"] if chain else 0
    out = {
        "engine": "average-cosine (GEMM scans)", "n": n, "d": d, "data": data, "seed": seed,
        "topk": cuda_vector.RNN_TOP_K if kk is None else kk,
        "slab_cols": cuda_gemm_scan.SLAB_COLS,
        "rounds": len(rounds),
        "gemm_macs_per_n2d": counter.macs / (n2 * d),
        "slab_elems_per_n2": counter.elems / n2,
        "rechecks_per_n2": counter.rechecks / n2,
        "rechecks_per_row_scan": counter.rechecks / max(1, counter.rows),
        "rows_scanned_per_n": counter.rows / n,
        "handover_left": chain["left"] if chain else None,
        "chain_pairs_per_n2": chain_pairs / n2,
        "emulation_wall_s": round(wall, 2),
        "check": check, "check_detail": detail,
    }
    out["projection_1m_x_384"] = projection(out["gemm_macs_per_n2d"], out["slab_elems_per_n2"],
                                            out["rechecks_per_n2"], out["chain_pairs_per_n2"])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="5000", help="comma-separated sizes")
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--data", default="gaussian,spiral,duplicates",
                    help="comma-separated: gaussian, spiral, duplicates, blobs, ...")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--topk", type=int, default=None)
    ap.add_argument("--check-max-n", type=int, default=2000,
                    help="compare heights with the CPU engine up to this n")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    rows = []
    cases = [(int(n), data) for n in args.n.split(",") for data in args.data.split(",")]
    for n, data in cases:
        row = count_run(n, args.d, data, args.seed, args.topk, args.check_max_n)
        rows.append(row)
        if "skipped" in row:
            print(f"{data:12s} skipped: {row['skipped']}")
            continue
        pj = row["projection_1m_x_384"]
        print(f"{data:12s} n={row['n']} d={row['d']} rounds={row['rounds']} "
              f"gemm MACs/(n^2 d)={row['gemm_macs_per_n2d']:.3f} "
              f"rechecks/n^2={row['rechecks_per_n2']:.4f} "
              f"({row['rechecks_per_row_scan']:.1f} per row scanned) "
              f"chain pairs/n^2={row['chain_pairs_per_n2']:.3f} check={row['check']} | "
              f"PROJECTED 1M x 384: {pj['total_s']:.1f} s (gemm {pj['gemm_s']:.1f}, "
              f"selection {pj['selection_s']:.1f}, recheck {pj['recheck_s']:.2f}, "
              f"chain {pj['chain_s']:.1f}) vs target {TARGET_S:.0f} s")
    bad = [r for r in rows if r.get("check") == MISMATCH]
    if args.json:
        doc = {"script": "benchmarks/count_gemm_work.py", "argv": sys.argv[1:] if argv is None
               else list(argv), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "numpy": np.__version__, **provenance(Path(__file__).resolve().parents[1]),
               "results": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1, default=float) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
