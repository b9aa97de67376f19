#!/usr/bin/env python
"""Benchmark the memory-saving linkage (``low_memory=True``) against fastcluster.linkage_vector.

Runs on the importable package (``pip install -e .``, or ``PYTHONPATH=<repo>``)::

    python benchmarks/bench_lowmem.py --quick
    python benchmarks/bench_lowmem.py --sizes 50000 --dims 32 --pairs single:euclidean,ward:euclidean
    python benchmarks/bench_lowmem.py --impls cuda --sizes 1000000 --pairs single:euclidean

Implementations (same seeded float64 standard-normal n x d data for all):

* ``cpu``          gpu_hclust memory-saving path, ``backend='cpu'`` (Numba threads)
* ``cuda``         the same on the GPU, CuPy in and out, synchronised
* ``fastcluster``  ``fastcluster.linkage_vector`` (pairs it has: single with its
  metrics, ward/centroid/median with euclidean)
* ``dense``        our dense path on the CPU (``low_memory=False``, ``backend='cpu'``),
  for the crossover behind ``linkage(low_memory=None)``'s choice

Every case runs in a fresh worker process: a first call on 500 points pays the
Numba compilation or cache load (reported as ``warmup_s``), then one timed call
on the full data. Memory: ``peak_rss_bytes`` is the worker's lifetime peak
resident set (interpreter, imports, data and run together, the figure a user
sees; ``_common.process_peak_bytes``); ``call_peak_bytes`` is the increase
of the resident-set high-water mark during the timed call (Linux ``/proc/self/clear_refs`` resets
it first). GPU: bytes held by CuPy's default memory pool after the call.

Correctness: when ours and fastcluster both ran a case, their Z are compared
(ids exact, heights rtol 1e-10); up to ``--scipy-max-n`` scipy's linkage is the
reference too. A mismatch is printed loudly and makes the exit status 1.

Results go to ``--out`` (default ``benchmarks/results/lowmem-<device-or-cpu>-<date>.json``),
rewritten after each worker. Timings on a shared machine are noisy: the load
average before and after each case is recorded next to it.
"""

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_model, git, measure, process_peak_bytes, version

RESULT_TAG = "@@RESULT "
ALL_IMPLS = ["cpu", "cuda", "fastcluster", "dense"]
DEFAULT_PAIRS = "single:euclidean,ward:euclidean,centroid:euclidean,median:euclidean,average:cosine"
FASTCLUSTER_SINGLE_METRICS = {"euclidean", "sqeuclidean", "cityblock", "chebyshev", "minkowski",
                              "cosine", "correlation"}
OBSERVATION_METHODS = {"single", "ward", "centroid", "median"}
WARMUP_N = 500


# ----------------------------------------------------------------------------
# Worker: one case in a fresh process.


def make_data(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d))


def _ours(impl, method, metric):
    """A function X -> Z for our memory-saving path, and how it is reached."""
    import inspect

    import gpu_hclust

    backend = "cuda" if impl == "cuda" else "cpu"
    low_memory = impl != "dense"
    if "low_memory" in inspect.signature(gpu_hclust.linkage).parameters:
        def run(X):
            return gpu_hclust.linkage(X, method, metric=metric, backend=backend,
                                      low_memory=low_memory)
        return run, f"gpu_hclust.linkage(low_memory={low_memory})"
    from gpu_hclust import _lowmem
    from gpu_hclust._methods import METHODS
    from gpu_hclust._tree import merge_log_to_linkage

    def run(X):
        a, b, h = _lowmem.run_vector(X, METHODS[method], metric, backend, None)
        return merge_log_to_linkage(a, b, h, X.shape[0], METHODS[method])
    return run, "gpu_hclust._lowmem.run_vector"


def run_worker(spec):
    impl, method, metric = spec["impl"], spec["method"], spec["metric"]
    n, d, seed = spec["n"], spec["d"], spec["seed"]
    row = dict(impl=impl, method=method, metric=metric, n=n, d=d)
    X = make_data(n, d, seed)
    gpu = impl == "cuda"
    if impl == "fastcluster":
        import fastcluster

        def fn(data):
            return fastcluster.linkage_vector(data, method, metric=metric)
        row["api"] = "fastcluster.linkage_vector"
    else:
        fn, row["api"] = _ours(impl, method, metric)
    if gpu:
        import cupy

        def sync():
            cupy.cuda.get_current_stream().synchronize()
        Xin = cupy.asarray(X)
        warm = cupy.asarray(X[:WARMUP_N])
    else:
        def sync():
            return None
        Xin = X
        warm = X[:WARMUP_N]
    t = time.perf_counter()
    fn(warm)
    sync()
    row["warmup_s"] = time.perf_counter() - t
    def call():
        Z = fn(Xin)
        sync()
        return Z
    row["seconds"], Z, host, gpu_bytes = measure(call, gpu)
    if host is not None:
        row["call_peak_bytes"] = max(0, host)
    row["peak_rss_bytes"] = process_peak_bytes()  # imports, data, warm-up and run
    if gpu:
        row["gpu_pool_bytes"] = gpu_bytes
        Z = cupy.asnumpy(Z)
    np.save(spec["z_path"], np.asarray(Z))
    print(RESULT_TAG + json.dumps(row), flush=True)


# ----------------------------------------------------------------------------
# Driver.


def _gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _meta(args):
    return dict(
        benchmark="bench_lowmem",
        started=_dt.datetime.now().isoformat(timespec="seconds"),
        git_commit=git("rev-parse", "HEAD"),
        git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        numba_threads=os.environ.get("NUMBA_NUM_THREADS"),
        gpu=_gpu_name() if "cuda" in args.impls else None,
        python=platform.python_version(),
        versions={k: version(k) for k in ("numpy", "scipy", "numba", "numba-cuda", "fastcluster",
                                           "cupy-cuda12x", "cupy-cuda13x")},
        seed=args.seed,
        note=("Timings are wall-clock on the machine named above; on a shared machine they are "
              "noisy (see loadavg_before/after per case). Ours and fastcluster run in "
              "separate fresh processes, in alternation."),
    )


def _supported(impl, method, metric):
    if impl == "dense":
        return True
    if impl == "fastcluster":
        if method == "single":
            return metric in FASTCLUSTER_SINGLE_METRICS
        return method in ("ward", "centroid", "median") and metric == "euclidean"
    from gpu_hclust import _lowmem

    return _lowmem.supports(method, metric)


def _compare(Z, Zref):
    ids = bool(np.array_equal(Z[:, [0, 1, 3]], Zref[:, [0, 1, 3]]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(Z[:, 2] - Zref[:, 2]) / np.abs(Zref[:, 2])
    rel = float(np.nanmax(np.where(Zref[:, 2] == 0, np.abs(Z[:, 2]), rel))) if len(Z) else 0.0
    return ids, rel


def _scipy_reference(X, method, metric):
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    if method in OBSERVATION_METHODS:
        return linkage(X, method, metric=metric)
    return linkage(pdist(X, metric), method)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000", help="comma-separated n")
    p.add_argument("--dims", default="32", help="comma-separated d")
    p.add_argument("--pairs", default=DEFAULT_PAIRS, help="method:metric,...")
    p.add_argument("--impls", default="cpu,fastcluster", help=f"comma-separated, of {ALL_IMPLS}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    p.add_argument("--scipy-max-n", type=int, default=5000,
                   help="also check against scipy up to this n")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (n=2000, d=16)")
    p.add_argument("--out", default=None, help="JSON path")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.dims = "2000", "16"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.dims = [int(s) for s in args.dims.split(",")]
    args.pairs = [tuple(s.split(":")) for s in args.pairs.split(",")]
    args.impls = args.impls.split(",")
    bad = [i for i in args.impls if i not in ALL_IMPLS]
    if bad:
        p.error(f"unknown implementation(s) {bad}; choose from {ALL_IMPLS}")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return 0
    meta = _meta(args)
    device = "gpu" if "cuda" in args.impls else "cpu"
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parent / "results"
        / f"lowmem-{device}-{_dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as zdir:
        for n in args.sizes:
            for d in args.dims:
                for method, metric in args.pairs:
                    zs = {}
                    for impl in args.impls:
                        if not _supported(impl, method, metric):
                            continue
                        z_path = os.path.join(zdir, f"{impl}-{method}-{metric}-{n}-{d}.npy")
                        spec = dict(impl=impl, method=method, metric=metric, n=n, d=d,
                                    seed=args.seed, z_path=z_path)
                        load0 = os.getloadavg()[0]
                        cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
                        try:
                            proc = subprocess.run(cmd, capture_output=True, text=True,
                                                  timeout=args.timeout)
                            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
                            if proc.returncode != 0 or not lines:
                                raise RuntimeError(proc.stderr.strip()[-2000:] or "no result")
                            row = json.loads(lines[-1][len(RESULT_TAG):])
                            zs[impl] = np.load(z_path)
                        except (subprocess.TimeoutExpired, RuntimeError) as exc:
                            row = dict(impl=impl, method=method, metric=metric, n=n, d=d,
                                       error=f"{type(exc).__name__}: {exc}")
                            print(f"!! {impl} {method}/{metric} n={n} d={d}: raised or timed out\n{exc}")
                        row["loadavg_before"] = round(load0, 2)
                        row["loadavg_after"] = round(os.getloadavg()[0], 2)
                        rows.append(row)
                        if "seconds" in row:
                            mb = row["peak_rss_bytes"] / 2**20
                            print(f"  {impl:12s} n={n:<8d} d={d:<4d} {method:8s} {metric:11s} "
                                  f"{row['seconds']:9.3f} s  peak RSS {mb:7.1f} MiB  "
                                  f"(load {row['loadavg_before']}->{row['loadavg_after']})", flush=True)
                        _write(out, meta, rows)
                    ref_name, ref = None, None
                    if n <= args.scipy_max_n:
                        ref_name, ref = "scipy", _scipy_reference(make_data(n, d, args.seed), method, metric)
                    elif "fastcluster" in zs:
                        ref_name, ref = "fastcluster", zs["fastcluster"]
                    for impl, Z in zs.items():
                        if ref is None or impl == ref_name:
                            continue
                        ids, rel = _compare(Z, ref)
                        for row in rows:
                            if (row["impl"], row["method"], row["metric"], row["n"], row["d"]) == \
                                    (impl, method, metric, n, d):
                                row[f"equal_to_{ref_name}"] = dict(ids=ids, max_rel_height_err=rel)
                        if not ids or rel > 1e-10:
                            failures += 1
                            print(f"!! WRONG RESULT {impl} {method}/{metric} n={n} d={d} vs "
                                  f"{ref_name}: ids equal {ids}, max rel height error {rel:.2e}")
                    _write(out, meta, rows)
    _summary(rows)
    print(f"results: {out}")
    return 1 if failures else 0


def _summary(rows):
    print("\n| n | d | method | metric | ours cpu s | ours cuda s | fastcluster s | ours dense s "
          "| cpu / fastcluster | cpu / dense | peak RSS cpu MiB | peak RSS fastcluster MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["n"], r["d"], r["method"], r["metric"]) for r in rows})
    for key in keys:
        got = {r["impl"]: r for r in rows if (r["n"], r["d"], r["method"], r["metric"]) == key}

        def s(impl, field="seconds", scale=1.0):
            v = got.get(impl, {}).get(field)
            return f"{v / scale:.2f}" if v is not None else "-"
        def ratio(other):
            if "seconds" in got.get("cpu", {}) and "seconds" in got.get(other, {}):
                return f"{got['cpu']['seconds'] / got[other]['seconds']:.2f}"
            return "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {s('cpu')} | {s('cuda')} | "
              f"{s('fastcluster')} | {s('dense')} | {ratio('fastcluster')} | {ratio('dense')} | "
              f"{s('cpu', 'peak_rss_bytes', 2**20)} | {s('fastcluster', 'peak_rss_bytes', 2**20)} |")


def _write(path, meta, rows):
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(dict(meta=meta, finished=_dt.datetime.now().isoformat(timespec="seconds"),
                       results=rows), f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
