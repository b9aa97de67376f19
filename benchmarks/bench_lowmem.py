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
Numba compilation or cache load (reported as ``warmup_s``), then ``--repeat``
(at least 3) timed calls on the full data: ``min_s``/``median_s``/``max_s``
(``seconds`` is the median). Memory: ``peak_rss_bytes`` is the worker's lifetime
peak resident set (interpreter, imports, data and runs together, the figure a
user sees; ``_common.process_peak_bytes``); ``call_peak_bytes`` is the largest
increase of the resident-set high-water mark during a timed call (Linux
``/proc/self/clear_refs`` resets it first). GPU: bytes held by CuPy's default
memory pool after the call.

Checks (ids exact, heights rtol 1e-10), one per row: ``ok``, ``MISMATCH`` or
``unchecked`` with the reference named. The reference is scipy up to
``--scipy-max-n``, else fastcluster when it ran on the case, else our CPU
memory-saving engine at the same n (its timed row, else one untimed call up to
``--cpu-ref-max-n``), trusted only when it equals scipy for the same pair and d
at a smaller n in this run (a validation case at ``--validate-n`` runs when the
sizes give none). A mismatch is printed loudly and makes the exit status 1.

Results go to ``--out`` (a JSON path; default
``lowmem-<device-or-cpu>-<date>.json`` in the current folder), rewritten after
each worker. Timings on a shared machine are noisy: the load average before and
after each case is recorded next to it.
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
from _common import (MIN_SAMPLES, MISMATCH, OK, UNCHECKED, add_reference_options,
                     compare_linkage, cpu_model, measure, process_peak_bytes, provenance,
                     sample_stats, validation_n, version)

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
    samples, hosts, gpus = [], [], []
    for _ in range(spec["repeat"]):  # 0 for an untimed reference call
        s, Z, host, gpu_bytes = measure(call, gpu)
        samples.append(s)
        hosts.append(host)
        gpus.append(gpu_bytes)
    if spec["repeat"] == 0:
        t = time.perf_counter()
        Z = call()
        row["reference_call_s"] = time.perf_counter() - t
    else:
        row.update(sample_stats(samples))
        row["seconds"] = row["median_s"]
        hosts = [h for h in hosts if h is not None]
        if hosts:
            row["call_peak_bytes"] = max(0, max(hosts))
        if gpu:
            row["gpu_pool_bytes"] = max(g for g in gpus if g is not None)
    row["peak_rss_bytes"] = process_peak_bytes()  # imports, data, warm-up and runs
    if gpu:
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
        **provenance(),
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
    try:
        from gpu_hclust._lowmem import supports
    except ImportError:  # the table moved: try the case, an error is recorded per row
        return True
    return supports(method, metric)


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
    p.add_argument("--repeat", type=int, default=MIN_SAMPLES,
                   help=f"timed calls per row, at least {MIN_SAMPLES} (default {MIN_SAMPLES})")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    p.add_argument("--scipy-max-n", type=int, default=5000,
                   help="check against scipy up to this n (default 5000)")
    # The memory-saving CPU engine needs O(n d) memory: only its time bounds it.
    add_reference_options(p, 200000, "O(n d) memory, minutes of CPU time")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (n=2000, d=16)")
    p.add_argument("--out", default=None, help="JSON path (default: in the current folder)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if args.quick:
        args.sizes, args.dims = "2000", "16"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.dims = [int(s) for s in args.dims.split(",")]
    args.pairs = [tuple(s.split(":")) for s in args.pairs.split(",")]
    args.impls = args.impls.split(",")
    bad = [i for i in args.impls if i not in ALL_IMPLS]
    if bad:
        p.error(f"unknown implementation(s) {bad}; choose from {ALL_IMPLS}")
    if args.repeat < MIN_SAMPLES:
        p.error(f"--repeat must be at least {MIN_SAMPLES}; got {args.repeat}")
    return args


def _spawn(impl, method, metric, n, d, args, zdir, repeat, role):
    """One worker: its row (``error`` on failure) and Z (None on failure)."""
    z_path = os.path.join(zdir, f"{role}-{impl}-{method}-{metric}-{n}-{d}.npy")
    spec = dict(impl=impl, method=method, metric=metric, n=n, d=d, seed=args.seed,
                z_path=z_path, repeat=repeat)
    load0 = os.getloadavg()[0]
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    Z = None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(proc.stderr.strip()[-2000:] or "no result")
        row = json.loads(lines[-1][len(RESULT_TAG):])
        Z = np.load(z_path)
    except (subprocess.TimeoutExpired, RuntimeError) as exc:
        row = dict(impl=impl, method=method, metric=metric, n=n, d=d,
                   error=f"{type(exc).__name__}: {exc}")
        print(f"!! {impl} {method}/{metric} n={n} d={d}: raised or timed out\n{exc}")
    row["role"] = role
    row["loadavg_before"] = round(load0, 2)
    row["loadavg_after"] = round(os.getloadavg()[0], 2)
    return row, Z


def _check_case(rows, zs, ref_scipy, cpu_trust):
    """Annotate this case's rows with check / reference (see the module docstring).

    ``zs``: impl -> Z of the rows that ran (and ``cpu`` from an untimed
    reference call); ``ref_scipy``: scipy's Z or None; ``cpu_trust``: (True,
    n') when our CPU engine equals scipy at n' < n for this pair, else (False, why).
    """
    failures = 0
    for row in rows:
        impl = row["impl"]
        if "error" in row or impl not in zs:
            row.update(check=UNCHECKED, reference=None, check_detail="no result")
            continue
        order = [("scipy", ref_scipy), ("fastcluster", zs.get("fastcluster"))]
        if impl != "cpu":
            order.append(("cpu", zs.get("cpu")))
        label, ref, note = None, None, "no reference ran at this n"
        for name, Zr in order:
            if Zr is None or name == impl:
                continue
            if name == "cpu":
                trusted, why = cpu_trust
                if not trusted:
                    note = f"CPU reference not trusted: {why}"
                    continue
                name = f"cpu (equal to scipy at n={why})"
            label, ref = name, Zr
            break
        if ref is None:
            row.update(check=UNCHECKED, reference=None, check_detail=note)
            continue
        status, info = compare_linkage(zs[impl], ref, 1e-10)
        row.update(check=status, reference=label, ids_equal_reference=info["ids_equal"],
                   max_rel_err_heights=info["max_rel_err_heights"])
        if status == MISMATCH:
            failures += 1
            row["check_detail"] = info["detail"]
            print(f"!! WRONG RESULT {impl} {row['method']}/{row['metric']} n={row['n']} "
                  f"d={row['d']} vs {label}: {info['detail']}")
    return failures


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return 0
    meta = _meta(args)
    device = "gpu" if "cuda" in args.impls else "cpu"
    out = Path(args.out) if args.out else Path(
        f"lowmem-{device}-{_dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, failures = [], 0
    trust = {}  # (method, metric, d) -> (True, n') / (False, why): CPU engine vs scipy
    needs_cpu_ref = any(i in args.impls for i in ("cuda", "fastcluster", "dense"))
    big = [n for n in args.sizes if n > args.scipy_max_n]
    small_cpu = "cpu" in args.impls and any(n <= args.scipy_max_n for n in args.sizes)
    validate = needs_cpu_ref and big and not small_cpu and args.cpu_ref_max_n > 0
    nv = validation_n(args.validate_n, min(big), args.scipy_max_n) if validate else None
    plan = ([(nv, ["cpu"], "validation")] if validate else []) + [
        (n, args.impls, "timed") for n in sorted(args.sizes)]
    with tempfile.TemporaryDirectory() as zdir:
        for n, impls, role in plan:
            for d in args.dims:
                for method, metric in args.pairs:
                    zs, case_rows = {}, []
                    for impl in impls:
                        if not _supported(impl, method, metric):
                            continue
                        repeat = 0 if role == "validation" else args.repeat
                        row, Z = _spawn(impl, method, metric, n, d, args, zdir, repeat, role)
                        rows.append(row)
                        case_rows.append(row)
                        if Z is not None:
                            zs[impl] = Z
                        if "seconds" in row:
                            mb = row["peak_rss_bytes"] / 2**20
                            print(f"  {impl:12s} n={n:<8d} d={d:<4d} {method:8s} {metric:11s} "
                                  f"{row['n_samples']} samples min {row['min_s']:.3f} median "
                                  f"{row['median_s']:.3f} max {row['max_s']:.3f} s  peak RSS "
                                  f"{mb:7.1f} MiB  (load {row['loadavg_before']}->"
                                  f"{row['loadavg_after']})", flush=True)
                        _write(out, meta, rows)
                    if not case_rows:
                        continue
                    ref_scipy = None
                    if n <= args.scipy_max_n:
                        ref_scipy = _scipy_reference(make_data(n, d, args.seed), method, metric)
                    elif ("cpu" not in zs and "fastcluster" not in zs and needs_cpu_ref
                          and n <= args.cpu_ref_max_n and _supported("cpu", method, metric)):
                        row, Z = _spawn("cpu", method, metric, n, d, args, zdir, 0, "reference")
                        rows.append(row)
                        case_rows.append(row)
                        if Z is not None:
                            zs["cpu"] = Z
                    key = (method, metric, d)
                    failures += _check_case(case_rows, zs, ref_scipy,
                                            trust.get(key, (False, "our CPU engine was not "
                                                                   "compared with scipy at a "
                                                                   "smaller n")))
                    cpu_row = next((r for r in case_rows if r["impl"] == "cpu"
                                    and r.get("reference") == "scipy"), None)
                    if cpu_row is not None and (key not in trust or trust[key][0]):
                        trust[key] = ((True, n) if cpu_row["check"] == OK else
                                      (False, f"our CPU engine differs from scipy at n={n}"))
                    for r in case_rows:
                        print(f"  {r['impl']:12s} n={n:<8d} d={d:<4d} {method:8s} {metric:11s} "
                              f"[{r['role']}] check {r['check']}"
                              + (f" vs {r['reference']}" if r.get("reference") else "")
                              + (f" ({r['check_detail']})" if r.get("check_detail") else ""))
                    _write(out, meta, rows)
    _summary(rows)
    counts = {s: sum(r.get("check") == s for r in rows) for s in (OK, MISMATCH, UNCHECKED)}
    print(f"checks: {counts[OK]} ok, {counts[MISMATCH]} MISMATCH, {counts[UNCHECKED]} unchecked")
    print(f"results: {out}")
    return 1 if failures else 0


def _summary(rows):
    """Markdown: one line per row (median of the timed calls), with its check."""
    print("\n| n | d | method | metric | impl | samples | min s | median s | max s | "
          "/ fastcluster | peak RSS MiB | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    med = {(r["impl"], r["n"], r["d"], r["method"], r["metric"]): r.get("median_s")
           for r in rows if r.get("role") == "timed"}

    def f(v, scale=1.0):
        return "-" if v is None else f"{v / scale:.3g}"
    for r in sorted(rows, key=lambda r: (r["n"], r["d"], r["method"], r["metric"],
                                         r.get("role") != "timed", r["impl"])):
        key = (r["n"], r["d"], r["method"], r["metric"])
        fc = med.get(("fastcluster",) + key)
        m = r.get("median_s")
        ratio = f(m / fc) if (m and fc and r["impl"] != "fastcluster") else "-"
        impl = r["impl"] + ("" if r.get("role") == "timed" else f" ({r.get('role')} call)")
        samples = "ERROR" if "error" in r else str(r.get("n_samples", "1 (untimed)"))
        check = r.get("check", UNCHECKED) + (f" vs {r['reference']}" if r.get("reference") else "")
        if r.get("check_detail") and r.get("check") != OK:
            check += f" ({r['check_detail']})"
        print(f"| {r['n']} | {r['d']} | {r['method']} | {r['metric']} | {impl} | {samples} | "
              f"{f(r.get('min_s'))} | {f(m)} | {f(r.get('max_s'))} | {ratio} | "
              f"{f(r.get('peak_rss_bytes'), 2**20)} | {check} |")


def _write(path, meta, rows):
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(dict(meta=meta, finished=_dt.datetime.now().isoformat(timespec="seconds"),
                       results=rows), f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
