#!/usr/bin/env python
"""Benchmark the memory-saving linkage (``low_memory=True``) against fastcluster.linkage_vector.

Runs on the importable package (``pip install -e .``, or ``PYTHONPATH=<repo>``)::

    python benchmarks/bench_lowmem.py --quick
    python benchmarks/bench_lowmem.py --sizes 50000 --dims 32 --pairs single:euclidean,ward:euclidean
    python benchmarks/bench_lowmem.py --impls cuda --sizes 1000000 --pairs single:euclidean

Implementations (same seeded float64 n x d data for all; ``--data`` picks the
set: standard normal by default, or the adversarial sets of ``_adversarial.py``
such as the growing-gap line, where reciprocal-nearest-neighbour rounds merge
one pair at a time):

* ``cpu``          gpu_hclust memory-saving path, ``backend='cpu'`` (Numba threads)
* ``cuda``         the same on the GPU, CuPy in and out, synchronised
* ``fastcluster``  ``fastcluster.linkage_vector`` (pairs it has: single with its
  metrics, ward/centroid/median with euclidean)
* ``dense``        our dense path on the CPU (``low_memory=False``, ``backend='cpu'``),
  for the crossover behind ``linkage(low_memory=None)``'s choice

Every case runs in a fresh worker process: a first call on 500 points pays the
Numba compilation or cache load (reported as ``warmup_s``), then ``--repeat``
(at least 3) timed calls on the full data: ``min_s``/``median_s``/``max_s``
(``seconds`` is the median). ``--sample-budget-s S`` stops taking samples once
the timed calls of a row add up to S seconds (for 10**6-point rows that take
tens of seconds each): such a row has ``n_samples`` < 3 and no
min/median/max, only its ``samples_s`` (``seconds`` is then the fastest sample,
labelled as such in the table). Memory: ``peak_rss_bytes`` is the worker's lifetime
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
sizes give none). A row that none of these reaches (n = 10**6) is
``checked-smaller-n`` when the same implementation, pair, d and data set equals
scipy at a smaller size of the same run (give both sizes, e.g. ``--sizes
10000,1000000 --scipy-max-n 10000``) and its own Z passes full-n invariants
(valid linkage, n - 1 merges, sizes, non-decreasing heights); else it stays
``unchecked``. A mismatch is printed loudly and makes the exit status 1.

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
from _adversarial import NAMES as DATA_SETS
from _adversarial import make as make_adversarial
from _common import (CHECK_RESULTS, MIN_SAMPLES, MISMATCH, OK, RESULT_TAG, UNCHECKED,
                     add_reference_options, check_by_smaller_n, compare_linkage, cpu_model,
                     gpu_name, measure, process_peak_bytes, provenance, sample_stats, validation_n,
                     version)

ALL_IMPLS = ["cpu", "cuda", "fastcluster", "dense"]
DEFAULT_PAIRS = "single:euclidean,ward:euclidean,centroid:euclidean,median:euclidean,average:cosine"
FASTCLUSTER_SINGLE_METRICS = {"euclidean", "sqeuclidean", "cityblock", "chebyshev", "minkowski",
                              "cosine", "correlation"}
OBSERVATION_METHODS = {"single", "ward", "centroid", "median"}
WARMUP_N = 500


# ----------------------------------------------------------------------------
# Worker: one case in a fresh process.


def make_data(n, d, seed, data="gaussian"):
    """The benchmark's n x d float64 observations of set ``data`` (``_adversarial.NAMES``).

    ``gaussian`` keeps this script's own draw (``default_rng(seed)``), so earlier
    results stay comparable; the other sets come from ``_adversarial.make``.
    """
    if data == "gaussian":
        return np.random.default_rng(seed).standard_normal((n, d))
    return make_adversarial(data, n, d, seed)


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
    data = spec.get("data", "gaussian")
    row = dict(impl=impl, method=method, metric=metric, n=n, d=d, data=data)
    X = make_data(n, d, seed, data)
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
    budget = spec.get("sample_budget_s")
    for _ in range(spec["repeat"]):  # 0 for an untimed reference call
        s, Z, host, gpu_bytes = measure(call, gpu)
        samples.append(s)
        hosts.append(host)
        gpus.append(gpu_bytes)
        if budget is not None and sum(samples) >= budget:
            break  # fewer than MIN_SAMPLES: no min/median/max (sample_stats)
    if spec["repeat"] == 0:
        t = time.perf_counter()
        Z = call()
        row["reference_call_s"] = time.perf_counter() - t
    else:
        row.update(sample_stats(samples))
        # with fewer than MIN_SAMPLES samples there is no median: the fastest one
        row["seconds"] = row["median_s"] if row["median_s"] is not None else min(samples)
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


def _meta(args):
    return dict(
        benchmark="bench_lowmem",
        started=_dt.datetime.now().isoformat(timespec="seconds"),
        **provenance(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        numba_threads=os.environ.get("NUMBA_NUM_THREADS"),
        gpu=gpu_name() if "cuda" in args.impls else None,
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
    p.add_argument("--data", default="gaussian",
                   help=f"comma-separated data sets, of {list(DATA_SETS)} (default gaussian; "
                        "benchmarks/_adversarial.py)")
    p.add_argument("--sample-budget-s", type=float, default=None,
                   help="stop taking timed samples of a row once they add up to this many "
                        "seconds (at least one is taken; fewer than 3 give no median)")
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
    args.data = args.data.split(",")
    bad = [s for s in args.data if s not in DATA_SETS]
    if bad:
        p.error(f"unknown data set(s) {bad} for --data; choose from {list(DATA_SETS)}")
    if args.sample_budget_s is not None and args.sample_budget_s <= 0:
        p.error(f"--sample-budget-s must be positive; got {args.sample_budget_s}")
    if args.repeat < MIN_SAMPLES:
        p.error(f"--repeat must be at least {MIN_SAMPLES}; got {args.repeat}")
    return args


def _spawn(impl, method, metric, n, d, args, zdir, repeat, role, data="gaussian"):
    """One worker: its row (``error`` on failure) and Z (None on failure)."""
    z_path = os.path.join(zdir, f"{role}-{impl}-{method}-{metric}-{n}-{d}-{data}.npy")
    spec = dict(impl=impl, method=method, metric=metric, n=n, d=d, seed=args.seed,
                z_path=z_path, repeat=repeat, data=data,
                sample_budget_s=args.sample_budget_s)
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
        row = dict(impl=impl, method=method, metric=metric, n=n, d=d, data=data,
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
                for data in args.data:
                    for method, metric in args.pairs:
                        failures += _run_case(n, d, data, method, metric, impls, role, args,
                                              zdir, rows, trust, needs_cpu_ref, out, meta)
    _summary(rows)
    counts = {s: sum(r.get("check") == s for r in rows) for s in CHECK_RESULTS}
    print("checks: " + ", ".join(f"{counts[s]} {s}" for s in CHECK_RESULTS))
    print(f"results: {out}")
    return 1 if failures else 0


def _fmt(v):
    return "-" if v is None else f"{v:.3f}"


def _config(r):
    """A row's configuration, all but n: what a smaller-n check must share."""
    return (r["impl"], r["method"], r["metric"], r["d"], r.get("data", "gaussian"))


def _run_case(n, d, data, method, metric, impls, role, args, zdir, rows, trust,
              needs_cpu_ref, out, meta):
    """Run, check and print one (n, d, data, pair) case; append its rows; MISMATCH count."""
    zs, case_rows, failures = {}, [], 0
    for impl in impls:
        if not _supported(impl, method, metric):
            continue
        repeat = 0 if role == "validation" else args.repeat
        row, Z = _spawn(impl, method, metric, n, d, args, zdir, repeat, role, data)
        rows.append(row)
        case_rows.append(row)
        if Z is not None:
            zs[impl] = Z
        if "seconds" in row:
            mb = row["peak_rss_bytes"] / 2**20
            print(f"  {impl:12s} n={n:<8d} d={d:<4d} {data:11s} {method:8s} {metric:11s} "
                  f"{row['n_samples']} samples {[round(s, 3) for s in row['samples_s']]} "
                  f"min {_fmt(row['min_s'])} median {_fmt(row['median_s'])} max "
                  f"{_fmt(row['max_s'])} s  peak RSS {mb:7.1f} MiB  (load "
                  f"{row['loadavg_before']}->{row['loadavg_after']})", flush=True)
        _write(out, meta, rows)
    if not case_rows:
        return 0
    ref_scipy = None
    if n <= args.scipy_max_n:
        ref_scipy = _scipy_reference(make_data(n, d, args.seed, data), method, metric)
    elif ("cpu" not in zs and "fastcluster" not in zs and needs_cpu_ref
          and n <= args.cpu_ref_max_n and _supported("cpu", method, metric)):
        row, Z = _spawn("cpu", method, metric, n, d, args, zdir, 0, "reference", data)
        rows.append(row)
        case_rows.append(row)
        if Z is not None:
            zs["cpu"] = Z
    key = (method, metric, d, data)
    failures += _check_case(case_rows, zs, ref_scipy,
                            trust.get(key, (False, "our CPU engine was not compared with "
                                                   "scipy at a smaller n")))
    cpu_row = next((r for r in case_rows if r["impl"] == "cpu"
                    and r.get("reference") == "scipy"), None)
    if cpu_row is not None and (key not in trust or trust[key][0]):
        trust[key] = ((True, n) if cpu_row["check"] == OK else
                      (False, f"our CPU engine differs from scipy at n={n}"))
    # rows no reference reached: the same configuration at a smaller n of this run
    mine = {id(r) for r in case_rows}
    failures += check_by_smaller_n(
        rows, lambda r: zs.get(r["impl"]) if id(r) in mine else None, _config, 1e-10)
    for r in case_rows:
        print(f"  {r['impl']:12s} n={n:<8d} d={d:<4d} {data:11s} {method:8s} {metric:11s} "
              f"[{r['role']}] check {r['check']}"
              + (f" vs {r['reference']}" if r.get("reference") else "")
              + (f" ({r['check_detail']})" if r.get("check_detail") else ""))
    _write(out, meta, rows)
    return failures


def _summary(rows):
    """Markdown: one line per row (median of the timed calls), with its check."""
    print("\n| n | d | data | method | metric | impl | samples | min s | median s | max s | "
          "/ fastcluster | peak RSS MiB | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def key_of(r):
        return (r["n"], r["d"], r.get("data", "gaussian"), r["method"], r["metric"])
    med = {(r["impl"],) + key_of(r): r.get("median_s") for r in rows if r.get("role") == "timed"}

    def f(v, scale=1.0):
        return "-" if v is None else f"{v / scale:.3g}"
    for r in sorted(rows, key=lambda r: key_of(r) + (r.get("role") != "timed", r["impl"])):
        fc = med.get(("fastcluster",) + key_of(r))
        m = r.get("median_s")
        ratio = f(m / fc) if (m and fc and r["impl"] != "fastcluster") else "-"
        impl = r["impl"] + ("" if r.get("role") == "timed" else f" ({r.get('role')} call)")
        samples = "ERROR" if "error" in r else str(r.get("n_samples", "1 (untimed)"))
        if r.get("n_samples") and r["n_samples"] < MIN_SAMPLES:  # no median: show them all
            samples += " (" + ", ".join(f"{x:.3g} s" for x in r["samples_s"]) + ")"
        check = r.get("check", UNCHECKED) + (f" vs {r['reference']}" if r.get("reference") else "")
        if r.get("check_detail") and r.get("check") != OK:
            check += f" ({r['check_detail']})"
        print(f"| {r['n']} | {r['d']} | {r.get('data', 'gaussian')} | {r['method']} | "
              f"{r['metric']} | {impl} | {samples} | "
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
