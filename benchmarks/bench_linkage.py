#!/usr/bin/env python
"""Benchmark ``gpu_hclust.linkage`` against scipy and fastcluster.

Runs on the importable package (``pip install -e .``, or ``PYTHONPATH=<repo>``)::

    python benchmarks/bench_linkage.py --quick
    python benchmarks/bench_linkage.py --sizes 1000,5000,20000 --methods all --repeat 3

Every implementation gets the same seeded float64 observations (n x d,
standard normal) and method (Euclidean metric):

* ``cpu``          gpu_hclust, ``backend='cpu'`` (Numba)
* ``cuda``         gpu_hclust, ``backend='cuda'``, NumPy in, NumPy out (end to end)
* ``cuda-device``  gpu_hclust, ``backend='cuda'``, CuPy in, CuPy out, synchronised
* ``scipy``        ``scipy.cluster.hierarchy.linkage``
* ``fastcluster``  ``fastcluster.linkage`` (when installed)

(``--backends cuda`` selects both CUDA rows; they run only when a GPU is usable.)

Timing: each measurement runs in a fresh worker process (``--isolate case``;
``--quick`` shares one process per implementation). The first call is
reported on its own (Numba compilation or cache load, CUDA context), then the
median of ``--repeat`` warm calls.

Memory: host peak per call = the process's peak resident set during the call
minus its resident set just before (Linux: ``/proc/self/clear_refs`` resets the
high-water mark ``VmHWM`` before each call, so it covers every allocator:
NumPy, Numba's NRT, C++). The worker's lifetime peak (``_common.process_peak_bytes``) is recorded
too. GPU: bytes held by CuPy's default memory pool after the call, the pool
emptied before it.

Correctness: every Z is compared with scipy's from the same data (heights
``rtol=1e-9``, 1e-5 with ``--dtype float32``; ids reported); failures are
printed loudly and make the exit status 1.

Results go to ``--out`` (default ``benchmarks/results/<device-or-cpu>-<date>.json``),
rewritten after every worker so an interrupted run keeps what it measured. A
Markdown table of ratios (ours / scipy, ours / fastcluster) closes the run.
"""

import argparse
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_model, git, measure, process_peak_bytes, version

ALL_METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]
ALL_IMPLS = ["cpu", "cuda", "cuda-device", "scipy", "fastcluster"]
OURS = ["cpu", "cuda", "cuda-device"]
RESULT_TAG = "@@RESULT "
QUICK = dict(sizes=[300, 1500], repeat=2)


# ----------------------------------------------------------------------------
# Worker side: one process, a list of cases for one implementation.


def make_data(n, d, seed):
    """The benchmark's observations: seeded standard normal, float64, C order."""
    return np.random.default_rng([seed, n, d]).standard_normal((n, d))


def _callable(impl, method, X, dtype):
    """A zero-argument function running one linkage, and a function to fetch Z."""
    if impl == "scipy":
        from scipy.cluster.hierarchy import linkage

        return (lambda: linkage(X, method)), np.asarray
    if impl == "fastcluster":
        import fastcluster

        return (lambda: fastcluster.linkage(X, method)), np.asarray
    import gpu_hclust

    if impl == "cpu":
        return (lambda: gpu_hclust.linkage(X, method, backend="cpu", dtype=dtype)), np.asarray
    import cupy

    def sync():
        cupy.cuda.get_current_stream().synchronize()

    if impl == "cuda":
        def run():
            Z = gpu_hclust.linkage(X, method, backend="cuda", dtype=dtype)
            sync()
            return Z

        return run, np.asarray
    Xd = cupy.asarray(X)  # device-resident input, transferred before timing
    sync()

    def run_device():
        Z = gpu_hclust.linkage(Xd, method, backend="cuda", dtype=dtype)
        sync()
        return Z

    return run_device, lambda Z: Z.get()


def _worker_info(impl):
    info = {"pid": os.getpid()}
    if impl in OURS:
        import numba

        info["numba_threads"] = numba.get_num_threads()
        try:
            info["threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel region has run yet
            info["threading_layer"] = None
    return info


def run_worker(spec):
    """Run ``spec['cases']`` for ``spec['impl']``; print one tagged JSON line per case."""
    impl = spec["impl"]
    dtype = np.dtype(spec["dtype"]) if spec["dtype"] else None
    gpu = impl in ("cuda", "cuda-device")
    for case in spec["cases"]:
        n, d, method = case["n"], case["d"], case["method"]
        row = {"impl": impl, "n": n, "d": d, "method": method}
        try:
            X = make_data(n, d, spec["seed"])
            fn, fetch = _callable(impl, method, X, dtype)
            first_s, Z, first_host, first_gpu = measure(fn, gpu)
            # warm calls only: the first one also holds the JIT's memory
            warm, hosts, gpus = [], [], []
            for _ in range(spec["repeat"]):
                s, Z, host, gb = measure(fn, gpu)
                warm.append(s)
                hosts.append(host)
                gpus.append(gb)
            Z = np.asarray(fetch(Z), dtype=np.float64)
            zpath = os.path.join(spec["zdir"], f"{impl}-{n}-{d}-{method}.npy")
            np.save(zpath, Z)
            hosts = [h for h in hosts if h is not None]
            gpus = [g for g in gpus if g is not None]
            row.update(
                first_call_s=first_s,
                warm_s=warm,
                median_s=float(np.median(warm)) if warm else first_s,
                min_s=float(min(warm)) if warm else first_s,
                host_peak_bytes=max(hosts) if hosts else first_host,
                gpu_pool_peak_bytes=max(gpus) if gpus else first_gpu,
                first_call_host_peak_bytes=first_host,
                first_call_gpu_pool_bytes=first_gpu,
                z_path=zpath,
            )
        except Exception as exc:  # recorded, never hidden: the table shows ERROR
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
        row["process_maxrss_bytes"] = process_peak_bytes()
        row.update(_worker_info(impl))
        print(RESULT_TAG + json.dumps(row), flush=True)


# ----------------------------------------------------------------------------
# Parent side: plan, spawn, check, report.


def _csv(kind):
    def parse(text):
        items = [s.strip() for s in text.split(",") if s.strip()]
        return [kind(s) for s in items]

    return parse


def _cuda_reason():
    """None when the CUDA backend can run here, else why not."""
    from gpu_hclust._backend import cuda_unavailable_reason

    return cuda_unavailable_reason()


def _gpu_meta():
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "total_memory_bytes": int(props["totalGlobalMem"]),
        "driver_version": cupy.cuda.runtime.driverGetVersion(),
        "runtime_version": cupy.cuda.runtime.runtimeGetVersion(),
        "cupy": cupy.__version__,
    }


def _meta(args, impls, cuda_reason):
    import gpu_hclust

    meta = {
        "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "env": {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                               "NUMBA_THREADING_LAYER", "GPU_HCLUST_NUMBA_CACHE")},
        "versions": {
            "gpu_hclust": gpu_hclust.__version__,
            "numpy": np.__version__,
            "scipy": version("scipy"),
            "numba": version("numba"),
            "numba-cuda": version("numba-cuda"),
            "cupy": version("cupy-cuda13x") or version("cupy-cuda12x") or version("cupy"),
            "fastcluster": version("fastcluster"),
        },
        "device": "cpu",
        "cuda_unavailable_reason": cuda_reason,
        "args": {k: v for k, v in vars(args).items() if k != "worker"},
        "impls": impls,
        "data": "numpy.random.default_rng([seed, n, d]).standard_normal((n, d)), float64",
        "timing": "first call reported separately; then median of --repeat warm calls "
                  "(time.perf_counter; CUDA rows synchronise before reading the clock)",
        "memory": "host: VmHWM - VmRSS around each call (high-water mark reset through "
                  "/proc/self/clear_refs), max over the warm calls (the first call's is "
                  "reported apart: it includes compilation); gpu: CuPy default pool "
                  "total_bytes() after each call, pool emptied before",
        "check": "heights vs scipy's Z on the same data, rtol 1e-9 (1e-5 for float32); ids "
                 "compared and reported",
    }
    if cuda_reason is None:
        meta["gpu"] = _gpu_meta()
        meta["device"] = meta["gpu"]["name"]
    return meta


def _default_out(device):
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "cpu"
    date = _dt.date.today().isoformat()
    return Path(__file__).resolve().parent / "results" / f"{slug}-{date}.json"


def _plan(args, impls):
    """Worker jobs: (impl, [cases]) in the order they run.

    Fresh worker per case: small sizes first, every implementation of a case
    back to back, so an interrupted run still has complete, checked rows.
    """
    cases = [{"n": n, "d": d, "method": m}
             for n in sorted(args.sizes) for d in args.d for m in args.methods]

    def runs(impl, case):
        return impl.startswith("cuda") or case["n"] <= args.cpu_max_n

    if args.isolate == "impl":
        jobs = [(impl, [c for c in cases if runs(impl, c)]) for impl in impls]
        return [(impl, mine) for impl, mine in jobs if mine]
    # scipy first: the reference every other row is checked against
    order = sorted(impls, key=lambda i: i != "scipy")
    return [(impl, [c]) for c in cases for impl in order if runs(impl, c)]


def _run_job(impl, cases, args, zdir):
    spec = {"impl": impl, "cases": cases, "seed": args.seed, "repeat": args.repeat,
            "dtype": args.dtype if impl in OURS else None, "zdir": zdir}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    rows = []
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = f"timed out after {args.case_timeout} s", None
    for line in out.splitlines():
        if line.startswith(RESULT_TAG):
            rows.append(json.loads(line[len(RESULT_TAG):]))
    done = {(r["n"], r["d"], r["method"]) for r in rows}
    for c in cases:  # a crash or timeout: every unfinished case says so
        if (c["n"], c["d"], c["method"]) not in done:
            tail = (err or "").strip().splitlines()[-3:]
            rows.append({"impl": impl, **c, "error": f"worker rc={rc}: {' | '.join(tail)}"[:500]})
    return rows


def _check(rows, dtype):
    """Compare every Z with scipy's for the same case; annotate the rows."""
    rtol = 1e-5 if dtype == "float32" else 1e-9
    ref = {(r["n"], r["d"], r["method"]): r for r in rows if r["impl"] == "scipy" and "z_path" in r}
    for r in rows:
        if r["impl"] == "scipy" or "z_path" not in r:
            continue
        s = ref.get((r["n"], r["d"], r["method"]))
        if s is None:
            r["check"] = "no scipy reference"
            continue
        Z, Zs = np.load(r["z_path"]), np.load(s["z_path"])
        if Z.shape != Zs.shape:
            r.update(check="FAIL", check_detail=f"shape {Z.shape} != scipy's {Zs.shape}")
            continue
        rel = np.abs(Z[:, 2] - Zs[:, 2]) / np.maximum(np.abs(Zs[:, 2]), np.finfo(float).tiny)
        ok = bool(np.allclose(Z[:, 2], Zs[:, 2], rtol=rtol, atol=0))
        r["max_rel_err_heights"] = float(rel.max()) if rel.size else 0.0
        r["ids_equal_scipy"] = bool(np.array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]]))
        r["check"] = "ok" if ok else "FAIL"


def _fmt_s(x):
    return "-" if x is None else (f"{x:.3g}" if x < 100 else f"{x:.0f}")


def _ratio(a, b):
    return None if (a is None or b is None or b <= 0) else a / b


def _fmt_r(x):
    return "-" if x is None else f"{x:.2f}"


def _targets(cpu, scipy, fast, mem_cpu, mem_scipy):
    """The issue's targets for the CPU backend: <= 0.5x scipy, < fastcluster, memory <= scipy."""
    marks = []
    for label, ok in (("0.5x scipy", None if cpu is None or scipy is None else cpu <= 0.5 * scipy),
                      ("< fastcluster", None if cpu is None or fast is None else cpu < fast),
                      ("mem", None if mem_cpu is None or mem_scipy is None else mem_cpu <= mem_scipy)):
        if ok is not None:
            marks.append(("" if ok else "NOT ") + label)
    return "; ".join(marks) or "-"


def markdown(rows, impls):
    """Markdown table: median seconds per implementation and our ratios."""
    by = {}
    for r in rows:
        by.setdefault((r["n"], r["d"], r["method"]), {})[r["impl"]] = r
    ours = [i for i in impls if i in OURS]
    refs = [i for i in ("scipy", "fastcluster") if i in impls]
    head = ["n", "d", "method"] + [f"{i} s" for i in impls]
    for o in ours:
        head += [f"{o}/{ref}" for ref in refs]
    if "cpu" in ours and "scipy" in refs:
        head += ["mem cpu/scipy", "cpu targets"]
    head += ["check"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in sorted(by, key=lambda k: (k[0], k[1], ALL_METHODS.index(k[2]))):
        cell = by[key]

        def med(i):
            r = cell.get(i)
            return None if r is None or "error" in r else r.get("median_s")

        vals = [str(key[0]), str(key[1]), key[2]]
        for i in impls:
            r = cell.get(i)
            vals.append("ERROR" if r is not None and "error" in r else _fmt_s(med(i)))
        for o in ours:
            vals += [_fmt_r(_ratio(med(o), med(ref))) for ref in refs]
        if "cpu" in ours and "scipy" in refs:
            mc = (cell.get("cpu") or {}).get("host_peak_bytes")
            ms = (cell.get("scipy") or {}).get("host_peak_bytes")
            vals.append(_fmt_r(_ratio(mc, ms)))
            vals.append(_targets(med("cpu"), med("scipy"), med("fastcluster"), mc, ms))
        checks = {o: cell[o].get("check") for o in ours if o in cell and "check" in cell[o]}
        bad = [o for o, c in checks.items() if c == "FAIL"]
        vals.append(("FAIL: " + ",".join(bad)) if bad else ("ok" if checks else "-"))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_csv(int), default=[1000, 5000, 20000],
                   help="comma-separated numbers of observations (default 1000,5000,20000)")
    p.add_argument("--d", "--dims", dest="d", type=_csv(int), default=[32],
                   help="comma-separated feature counts (default 32)")
    p.add_argument("--methods", type=_csv(str), default=list(ALL_METHODS),
                   help="comma-separated methods or 'all' (default all)")
    p.add_argument("--backends", type=_csv(str), default=["cpu", "cuda", "scipy", "fastcluster"],
                   help="comma-separated: cpu, cuda (= cuda + cuda-device), cuda-device, scipy, "
                        "fastcluster (default all; cuda only when a GPU is usable)")
    p.add_argument("--repeat", type=int, default=3, help="warm runs per case (median reported)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="gpu_hclust's working dtype (scipy/fastcluster are float64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: sizes {QUICK['sizes']}, repeat {QUICK['repeat']}, one worker "
                        "per implementation")
    p.add_argument("--isolate", choices=["case", "impl"], default=None,
                   help="fresh worker per case (default) or per implementation (--quick)")
    p.add_argument("--cpu-max-n", type=int, default=20000,
                   help="skip cpu/scipy/fastcluster above this n (default 20000)")
    p.add_argument("--case-timeout", type=float, default=None,
                   help="seconds allowed per worker process (default: no limit)")
    p.add_argument("--out", "--json", dest="out", default=None,
                   help="JSON path (default benchmarks/results/<device-or-cpu>-<date>.json)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.methods == ["all"]:
        args.methods = list(ALL_METHODS)
    unknown = sorted(set(args.methods) - set(ALL_METHODS))
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {ALL_METHODS} or 'all'")
    bad = sorted(set(args.backends) - set(ALL_IMPLS))
    if bad:
        p.error(f"unknown backend(s) {bad}; choose from {ALL_IMPLS}")
    if args.quick:
        if "--sizes" not in " ".join(argv or []):
            args.sizes = QUICK["sizes"]
        if "--repeat" not in " ".join(argv or []):
            args.repeat = QUICK["repeat"]
        args.isolate = args.isolate or "impl"
    args.isolate = args.isolate or "case"
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(json.loads(args.worker))
        return 0
    wanted = []
    for b in args.backends:
        wanted += ["cuda", "cuda-device"] if b == "cuda" else [b]
    cuda_reason = _cuda_reason() if any(i.startswith("cuda") for i in wanted) else "not requested"
    impls = []
    for i in ALL_IMPLS:
        if i not in wanted:
            continue
        if i.startswith("cuda") and cuda_reason is not None:
            print(f"skipping {i}: {cuda_reason}", file=sys.stderr)
            continue
        if i == "fastcluster" and version("fastcluster") is None:
            print("skipping fastcluster: not installed", file=sys.stderr)
            continue
        impls.append(i)
    meta = _meta(args, impls, cuda_reason)
    out = Path(args.out) if args.out else _default_out(meta["device"])
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_linkage_") as zdir:
        for impl, cases in _plan(args, impls):
            got = _run_job(impl, cases, args, zdir)
            rows += got
            for r in got:
                status = r.get("error") or (f"first {r['first_call_s']:.3f} s, "
                                            f"median {r['median_s']:.3f} s")
                print(f"{r['impl']:>12} n={r['n']:<7} d={r['d']:<4} {r['method']:<9} {status}",
                      flush=True)
            _check(rows, args.dtype)
            _write(out, meta, rows, t_start)
    failures = [r for r in rows if r.get("check") == "FAIL"]
    errors = [r for r in rows if "error" in r]
    print()
    print(markdown(rows, impls))
    print(f"\nresults: {out}")
    if errors:
        print(f"{len(errors)} case(s) raised or timed out (ERROR rows above)", file=sys.stderr)
    if failures:
        print("!" * 72, file=sys.stderr)
        for r in failures:
            print(f"!! WRONG RESULT: {r['impl']} n={r['n']} d={r['d']} {r['method']}: "
                  f"{r.get('check_detail', '')} max rel err {r.get('max_rel_err_heights')}",
                  file=sys.stderr)
        print("!" * 72, file=sys.stderr)
        return 1
    return 0


def _write(path, meta, rows, t_start):
    meta = dict(meta, wall_s=time.perf_counter() - t_start)
    clean = [{k: v for k, v in r.items() if k != "z_path"} for r in rows]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": clean}, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
