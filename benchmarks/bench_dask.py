#!/usr/bin/env python
"""Benchmark gpu_hclust.dask on LocalClusters of 1, 2 and 4 workers, and its cost model.

    python benchmarks/bench_dask.py --quick
    python benchmarks/bench_dask.py --n 20000 --d 32 --methods single,ward --workers 1,2,4

Cost model (per run; every term is counted by the engine, ``gpu_hclust.dask.last_run_stats``)::

    T = tasks * L                                   task overhead (scheduling, transfers, gathers)
      + (pairs + offers) * d / (R * min(W, cores))  distance work, spread over W workers
      + chain(m) / R                                the client's sequential tail (ward/average)
      + bytes / B                                   client <-> workers and block reads

R: pair-feature throughput of one core, calibrated on the single-process
memory-saving path (single linkage, one Numba thread: n(n-1)/2 distances);
chain(m) = 3 m^2 d (about 3 sweeps per merge, as the chain engine measures);
L: seconds per task, calibrated on a small ward run (n = 400, many rounds,
little work) on the first cluster; B: assumed
1 GB/s (loopback). The model uses the run's own counts of pairs and rounds
(deterministic for given data), so it checks the per-unit costs, not a
prediction of how many rescans a data set needs.

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


def calibrate_rate(n, d, rng):
    import numba

    import gpu_hclust

    numba.set_num_threads(1)
    X = rng.normal(size=(n, d))
    gpu_hclust.linkage(X[:300], "single", low_memory=True)  # compile / load cache
    t0 = time.perf_counter()
    gpu_hclust.linkage(X, "single", low_memory=True)
    t = time.perf_counter() - t0
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return n * (n - 1) / 2 * d / t, t


def model(stats, R, L, workers, cores):
    d = stats["d"]
    work = (stats["pairs"] + stats["offers"]) * d / (R * min(workers, cores))
    chain = 3.0 * stats["client_chain"] ** 2 * d / R
    traffic = (stats["to_client"] + stats["from_client"] + stats["block_reads"]) / ASSUMED_BANDWIDTH
    return dict(total=stats["tasks"] * L + work + chain + traffic, overhead=stats["tasks"] * L,
                work=work, chain=chain, traffic=traffic)


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
    ap.add_argument("--blocks-per-worker", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="n=3000: a seconds-long smoke run")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.quick:
        args.n = 3000
    from distributed import Client, LocalCluster

    import gpu_hclust

    rng = np.random.default_rng(20261203)
    X = rng.normal(size=(args.n, args.d))
    cores = os.cpu_count() or 1
    R, t_cal = calibrate_rate(args.n, args.d, np.random.default_rng(1))
    print(f"calibration: single-process memory-saving single linkage n={args.n}: {t_cal:.2f} s, "
          f"R = {R:.3g} pair-features/s/core", flush=True)
    methods = args.methods.split(",")
    ref = {}
    for m in methods:
        t0 = time.perf_counter()
        ref[m] = gpu_hclust.linkage(X, m, low_memory=True)
        ref[m + "_s"] = time.perf_counter() - t0
        print(f"single process (all threads) {m}: {ref[m + '_s']:.2f} s", flush=True)
    rows, ok, ratios = [], True, {}
    L = None
    for w in [int(x) for x in args.workers.split(",")]:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            for m in methods:  # warm-up: compile or load the Numba cache on every worker
                run_case(client, X[:400], m, 400 // (w * args.blocks_per_worker) + 1)
            if L is None:
                from gpu_hclust._dask import _engines

                keep = _engines.CLIENT_FINISH_CLUSTERS
                _engines.CLIENT_FINISH_CLUSTERS = 2
                t_small, _, st = run_case(client, X[:400], "ward", 100)
                _engines.CLIENT_FINISH_CLUSTERS = keep
                L = max(0.0, t_small - (st["pairs"] + st["offers"]) * args.d / (R * min(w, cores))) \
                    / st["tasks"]
                print(f"task overhead L = {L * 1e3:.1f} ms ({st['tasks']} tasks, {st['rounds']} "
                      f"rounds, n=400, {w} workers)", flush=True)
            for m in methods:
                chunks = -(-args.n // (w * args.blocks_per_worker))
                t, Z, st = run_case(client, X, m, chunks)
                same = (np.array_equal(Z[:, [0, 1, 3]], ref[m][:, [0, 1, 3]])
                        and np.allclose(Z[:, 2], ref[m][:, 2], rtol=1e-12, atol=0))
                ok &= same
                pred = model(st, R, L, w, cores)
                rows.append(dict(method=m, n=args.n, d=args.d, workers=w, measured_s=t,
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
        machine=dict(cores=cores, loadavg_at_end=load,
                     note="shared 2-core machine (~8 engineers): timings are noisy"),
        date=_dt.datetime.now().isoformat(timespec="seconds"),
        calibration=dict(R_pair_features_per_s_per_core=R, task_overhead_s=L,
                         assumed_bandwidth_Bps=ASSUMED_BANDWIDTH),
        measured=rows,
        projection=dict(
            label="PROJECTION (not measured): work ratios from the runs above, assumed GPU "
                  "throughput and network",
            gpu_pair_features_per_s=GPU_PAIR_FEATURES_PER_S, net_bandwidth_Bps=NET_BANDWIDTH,
            scheduler_task_s=SCHEDULER_TASK_S,
            caveat="the workers run CPU tiles today (no CUDA tile kernels on dask-cuda "
                   "workers yet); this is what the model gives once they do",
            rows=projection(ratios)),
    )
    path = Path(args.out or Path(__file__).parent / "results" /
                f"dask-cpu-{'quick-' if args.quick else ''}{_dt.date.today().isoformat()}.json")
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
