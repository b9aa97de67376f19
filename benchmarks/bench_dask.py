#!/usr/bin/env python
"""Benchmark gpu_hclust.dask on LocalClusters of 1, 2 and 4 workers, and its cost model.

    python benchmarks/bench_dask.py --quick
    python benchmarks/bench_dask.py --n 20000 --d 32 --methods single,ward --workers 1,2,4

Cost model (per run; every term is counted by the engine, ``gpu_hclust.dask.last_run_stats``)::

    T = tasks * L + rounds * lam                     per-task and per-round overhead
      + sum_rounds span_P(scan tasks' pairs) * d / R_s|R_o   block-pair scans
      + sum_rounds span_P(blocks' offers) * d / R_o          offers of new clusters (ward/average)
      + chain(m) / R_o                               the client's sequential tail (ward/average)
      + bytes / B                                    client <-> workers and block reads

A round's scan tasks run side by side: span_P(w) is the makespan of the
round's tasks (each task's distance count, ``round_pairs``; each block's
offers, ``round_offers``) on P = min(W, cores) cores, scheduled longest
first (LPT). The previous model divided the total by P, i.e. assumed the
work splits evenly; with one block per worker it does not: two blocks give
the tasks (0,0), (0,1), (1,1) of 1/4, 1/2 and 1/4 of the work, so two
cores take 1/2 of the serial time at best (a 1.0x floor the even split
missed only by luck) and four blocks on two cores 10 tasks of uneven size;
rounds that rescan a few slots have one or two non-empty tasks and do not
parallelise at all. lam (seconds per round) is the client's own work
between rounds (reciprocal pairs, merging the summaries, the Borůvka
reduction, concatenations) and the round trips that wait on it (gather
neighbours -> fetch children -> broadcast); L (seconds per task) is the
scheduler's and the worker's per-task cost and the (de)serialisation of
its arguments and results. The previous model had L only, calibrated on
one run in which tasks per round was fixed, so per-round costs were
folded into L at that run's tasks-per-round and under-counted when it
changed.

Calibration (on this machine, at the start, on the first cluster size):
R_s, R_o: pair-feature throughput of one core in the workers' own
kernels, on one block pair (``_tasks.scan_points_pair`` for single,
``_tasks.scan_clusters_pair`` for ward/average; every row scanned).
L and lam: least squares on small ward runs (n = 400, rounds to the end,
little work) with 1, 2 and 4 blocks per worker (tasks per round differ, so
the two separate); the model's work terms are subtracted first. chain(m) =
3 m^2 d (about 3 sweeps per merge). B: assumed 1 GB/s (loopback). P uses
``--cores`` (default ``os.cpu_count()``): on a machine other jobs keep
busy, fewer cores are free than it has; the JSON records the load average
at the start and the end so a reader can tell. The model uses the run's own
counts (deterministic for given data), so it checks the per-unit costs and
the parallel structure, not a prediction of how many rescans a data set
needs.

Every timed run is checked against the single-machine memory-saving Z (ids
exact, heights rtol 1e-12); a mismatch makes the exit status 1.

The projection for 10^7-10^9 points on N GPUs is computed from the same
model with an assumed GPU throughput (stated in the JSON) and the measured
work ratios; it is a projection, not a measurement.
"""

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ASSUMED_BANDWIDTH = 1e9  # bytes/s between client and workers on one machine
# H100/H200 FP64 vector peak ~34 TFLOP/s; a pair-feature is 3 flops (sub, mul, add);
# 50 % of peak is what the dense CUDA kernels reach (benchmarks/results/h100-*).
GPU_PAIR_FEATURES_PER_S = 0.5 * 34e12 / 3
NET_BANDWIDTH = 10e9  # bytes/s between nodes (100 Gb/s class network)
SCHEDULER_TASK_S = 1e-3  # per task on an unloaded dedicated scheduler (Dask docs: ~1 ms or less)


def calibrate_rates(d, rng, b=4000):
    """Pair-feature rates (per second, one core) of the point and cluster scans: (R_s, R_o)."""
    from gpu_hclust._dask import _tasks
    from gpu_hclust._methods import get_method

    X = rng.normal(size=(b, d))
    comp = np.arange(b)
    need = np.ones(b, dtype=np.bool_)
    blk = _tasks.prepare_block(X, 0, get_method("single"), "euclidean", np.float64, (None, 0))
    _tasks.scan_points_pair(blk, blk, comp, need, need, 8, 2.0)  # compile / load the cache
    t0 = time.perf_counter()
    _tasks.scan_points_pair(blk, blk, comp, need, need, 8, 2.0)
    r_s = b * (b - 1) / 2 * d / (time.perf_counter() - t0)
    ward = get_method("ward")
    blk = _tasks.prepare_block(X, 0, ward, "euclidean", np.float64, (None, 0))
    S = _tasks.init_summaries(blk, 8)
    _tasks.scan_clusters_pair(ward.code, blk.mcode, S, S)
    t0 = time.perf_counter()
    _tasks.scan_clusters_pair(ward.code, blk.mcode, S, S)
    r_o = b * (b - 1) / 2 * d / (time.perf_counter() - t0)
    return r_s, r_o


def span(work, par):
    """Makespan of independent tasks of the given sizes on ``par`` cores, longest first."""
    loads = [0] * max(1, int(par))
    for w in sorted(work, reverse=True):
        loads[loads.index(min(loads))] += w
    return max(loads)


def model(stats, rates, L, lam, workers, cores, method):
    """Predicted seconds of one run from its counts (see the module docstring)."""
    d = stats["d"]
    r_s, r_o = rates
    r = r_s if method == "single" else r_o
    par = min(workers, cores)
    scan = sum(span(t, par) for t in stats["round_pairs"]) * d / r
    offers = sum(span(o, par) for o in stats["round_offers"]) * d / r_o
    chain = 3.0 * stats["client_chain"] ** 2 * d / r_o
    traffic = (stats["to_client"] + stats["from_client"] + stats["block_reads"]) / ASSUMED_BANDWIDTH
    overhead = stats["tasks"] * L + stats["rounds"] * lam
    even = (stats["pairs"] * d / r + stats["offers"] * d / r_o) / par  # the old even split
    return dict(total=overhead + scan + offers + chain + traffic, overhead=overhead,
                per_task=stats["tasks"] * L, per_round=stats["rounds"] * lam, scan=scan,
                offers=offers, chain=chain, traffic=traffic, even_split_work=even)


def calibrate_overheads(client, X, rates, workers, cores):
    """(L, lam): seconds per task and per round, least squares over small ward runs
    with 1, 2 and 4 blocks per worker (different tasks per round)."""
    from gpu_hclust._dask import _engines

    keep = _engines.CLIENT_FINISH_CLUSTERS
    _engines.CLIENT_FINISH_CLUSTERS = 2
    rows, rhs, runs = [], [], []
    try:
        for per in (1, 2, 4):
            chunks = -(-X.shape[0] // (workers * per))
            run_case(client, X, "ward", chunks)  # warm: this block layout's first run
            t, _, st = run_case(client, X, "ward", chunks)
            rest = t - model(st, rates, 0.0, 0.0, workers, cores, "ward")["total"]
            rows.append([st["tasks"], st["rounds"]])
            rhs.append(rest)
            runs.append(dict(blocks=st["blocks"], tasks=st["tasks"], rounds=st["rounds"], s=t))
    finally:
        _engines.CLIENT_FINISH_CLUSTERS = keep
    A, y = np.array(rows, dtype=float), np.array(rhs)
    (L, lam), *_ = np.linalg.lstsq(A, y, rcond=None)
    if L < 0 or lam < 0:  # collinear or noisy: one cost per task only
        L, lam = max(0.0, float(A[:, 0] @ y / (A[:, 0] @ A[:, 0]))), 0.0
    return float(L), float(lam), runs


def run_case(client, X, method, chunks):
    import dask.array as da

    from gpu_hclust import dask as gdask

    Xd = da.from_array(X, chunks=(chunks, X.shape[1]))
    t0 = time.perf_counter()
    Z = gdask.linkage(Xd, method, client=client)
    return time.perf_counter() - t0, Z, dict(gdask.last_run_stats)


def projection(ratios):
    rows = []
    for method, ratio in ratios.items():
        for n, d in ((10**7, 32), (10**8, 32), (10**9, 32), (10**7, 384)):
            for gpus in (8, 64):
                pairs = ratio["pairs_per_n2"] * float(n) ** 2
                work = pairs * d / (GPU_PAIR_FEATURES_PER_S * gpus)
                # one full pass reads every other block once per worker (upper bound)
                traffic = ratio["passes"] * n * d * 4 * (gpus - 1) / gpus / NET_BANDWIDTH
                rounds = ratio["rounds_per_log2n"] * np.log2(n)
                # one block per GPU: a round has gpus(gpus+1)/2 pair tasks and ~3 per block
                overhead = rounds * (gpus * (gpus + 1) / 2 + 3 * gpus) * SCHEDULER_TASK_S
                rows.append(dict(method=method, n=n, d=d, gpus=gpus,
                                 projected_s=work + traffic + overhead, work_s=work,
                                 traffic_s=traffic, overhead_s=overhead, rounds=rounds))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--methods", default="single,ward")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--blocks-per-worker", type=int, default=1,
                    help="row blocks per worker (each extra block adds pair tasks every round)")
    ap.add_argument("--samples", type=int, default=3, help="timed runs per case (median reported)")
    ap.add_argument("--quick", action="store_true", help="n=3000: a seconds-long smoke run")
    ap.add_argument("--cores", type=int, default=None,
                    help="cores free for the workers (default os.cpu_count())")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.samples = 3000, 1
    from distributed import Client, LocalCluster

    import gpu_hclust

    load0 = os.getloadavg()
    rng = np.random.default_rng(20261203)
    X = rng.normal(size=(args.n, args.d))
    cores = args.cores or os.cpu_count() or 1
    rates = calibrate_rates(args.d, np.random.default_rng(1))
    print(f"calibration: scan rates R_s = {rates[0]:.3g}, R_o = {rates[1]:.3g} "
          "pair-features/s/core", flush=True)
    methods = args.methods.split(",")
    ref = {}
    for m in methods:
        gpu_hclust.linkage(X[:300], m, low_memory=True)  # compile / load the cache
        ts = []
        for _ in range(args.samples):
            t0 = time.perf_counter()
            ref[m] = gpu_hclust.linkage(X, m, low_memory=True)
            ts.append(time.perf_counter() - t0)
        ref[m + "_s"] = float(np.median(ts))
        ref[m + "_samples"] = ts
        print(f"single process (all threads) {m}: median {ref[m + '_s']:.2f} s of "
              f"{[round(t, 2) for t in ts]}", flush=True)
    rows, ok, ratios = [], True, {}
    L = lam = cal_runs = None
    for w in [int(x) for x in args.workers.split(",")]:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            for m in methods:  # warm-up: compile or load the Numba cache on every worker
                run_case(client, X[:400], m, 400 // (w * args.blocks_per_worker) + 1)
            if L is None:
                L, lam, cal_runs = calibrate_overheads(client, X[:400], rates, w, cores)
                print(f"overheads: L = {L * 1e3:.1f} ms per task, lam = {lam * 1e3:.1f} ms per "
                      f"round (ward n=400, {w} workers: {cal_runs})", flush=True)
            for m in methods:
                chunks = -(-args.n // (w * args.blocks_per_worker))
                ts = []
                for _ in range(args.samples):
                    t, Z, st = run_case(client, X, m, chunks)
                    ts.append(t)
                t = float(np.median(ts))
                same = (np.array_equal(Z[:, [0, 1, 3]], ref[m][:, [0, 1, 3]])
                        and np.allclose(Z[:, 2], ref[m][:, 2], rtol=1e-12, atol=0))
                ok &= same
                pred = model(st, rates, L, lam, w, cores, m)
                rows.append(dict(method=m, n=args.n, d=args.d, workers=w, measured_s=t,
                                 measured_samples_s=ts,
                                 single_process_samples_s=ref[m + "_samples"],
                                 ratio_to_single_process=t / ref[m + "_s"],
                                 predicted_s=pred["total"], predicted_parts=pred,
                                 ratio_measured_to_predicted=t / pred["total"],
                                 single_process_s=ref[m + "_s"], z_equal=bool(same), stats=st))
                ratios.setdefault(m, dict(pairs_per_n2=(st["pairs"] + st["offers"]) / args.n ** 2,
                                          passes=max(1.0, st["block_reads"] / max(1, args.n * args.d * 8)),
                                          rounds_per_log2n=st["rounds"] / np.log2(args.n)))
                print(f"{m:7s} workers={w}: {t:6.2f} s measured, {pred['total']:6.2f} s model "
                      f"(x{t / pred['total']:.2f}), rounds={st['rounds']}, tasks={st['tasks']}, "
                      f"pairs/n^2={(st['pairs'] + st['offers']) / args.n ** 2:.2f}, "
                      f"Z {'equal' if same else 'MISMATCH'}", flush=True)
    load = os.getloadavg()
    out = dict(
        what="gpu_hclust.dask on LocalCluster(W workers, 1 thread each) vs the single-process "
             "memory-saving path; cost model with per-unit costs calibrated on this machine",
        machine=dict(cores=cores, loadavg_at_start=load0, loadavg_at_end=load,
                     note="shared 2-core machine (~6 engineers' jobs): timings are noisy; "
                          "the load average says how busy it was"),
        date=_dt.datetime.now().isoformat(timespec="seconds"),
        calibration=dict(R_scan_points_pair_features_per_s_per_core=rates[0],
                         R_scan_clusters_pair_features_per_s_per_core=rates[1], task_overhead_s=L,
                         round_overhead_s=lam, overhead_calibration_runs=cal_runs, cores_used=cores,
                         assumed_bandwidth_Bps=ASSUMED_BANDWIDTH),
        measured=rows,
        projection=dict(
            label="PROJECTION (not measured): work ratios from the runs above, assumed GPU "
                  "throughput and network",
            gpu_pair_features_per_s=GPU_PAIR_FEATURES_PER_S, net_bandwidth_Bps=NET_BANDWIDTH,
            scheduler_task_s=SCHEDULER_TASK_S,
            caveat="dask-cuda workers run the CUDA tiles (kernels/cuda_dask_tiles.py), "
                   "never measured on a GPU; the GPU rate is assumed",
            rows=projection(ratios)),
    )
    path = Path(args.out or Path(__file__).parent / "results" /
                f"dask-cpu-{'quick-' if args.quick else ''}{_dt.date.today().isoformat()}.json")
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
