#!/usr/bin/env python
"""Benchmark ``gpu_hclust.linkage`` against scipy and fastcluster, every row checked.

Runs on the importable package (``pip install -e .``, or ``PYTHONPATH=<repo>``)::

    python benchmarks/bench_linkage.py --quick --out /tmp/bench       # seconds
    python benchmarks/bench_linkage.py --sizes 1000,5000,20000 --methods all

Every implementation gets the same seeded float64 observations (n x d,
standard normal; ``--data`` adds the adversarial sets of ``_adversarial.py``,
e.g. the growing-gap line, beside it) and method (Euclidean metric):

* ``cpu``          gpu_hclust, ``backend='cpu'`` (Numba)
* ``cuda``         gpu_hclust, ``backend='cuda'``, NumPy in, NumPy out (end to end)
* ``cuda-device``  gpu_hclust, ``backend='cuda'``, CuPy in, CuPy out: wall time
  (stream synchronised) and device time (CUDA events around the call)
* ``scipy``        ``scipy.cluster.hierarchy.linkage``
* ``fastcluster``  ``fastcluster.linkage`` (when installed)

(``--backends cuda`` selects both CUDA rows; they run only when a GPU is usable.)

Timing: each measurement runs in a fresh worker process (``--isolate case``;
``--quick`` shares one process per implementation). The first call is
reported on its own (Numba compilation or cache load, CUDA context), then
``--repeat`` (at least 3) warm calls: min, median and max.

Memory: host peak per call = the process's peak resident set during the call
minus its resident set just before (Linux: ``/proc/self/clear_refs`` resets the
high-water mark ``VmHWM`` before each call, so it covers every allocator:
NumPy, Numba's NRT, C++). The worker's lifetime peak (``_common.process_peak_bytes``)
is recorded too. GPU: bytes held by CuPy's default memory pool after the call,
the pool emptied before it.

Checks: every row's Z is compared with a reference Z of the same data
(ids exact, heights ``rtol=1e-10``; 1e-5 with ``--dtype float32``):

1. scipy, where it runs (a timed scipy row, else one untimed scipy call up to
   ``--ref-max-n``);
2. else fastcluster, when it ran on the case;
3. else our CPU engine (float64) at the same n (the timed ``cpu`` row, else one
   untimed call up to ``--cpu-ref-max-n``), trusted only when the CPU engine
   equals scipy for the same method at a smaller n in the same run (a
   validation case at ``--validate-n`` is added when the sizes give none);
4. else, when the same implementation, method, d, data set and dtype equals
   scipy at a smaller n of this run (give both sizes, e.g. ``--sizes
   5000,100000 --ref-max-n 5000``) and the row's own Z passes full-n
   invariants (valid linkage, n - 1 merges, sizes, non-decreasing heights):
   ``checked-smaller-n``, naming that n and the invariants;
5. else nothing: the row says ``unchecked``.

Each row prints ``ok``, ``MISMATCH`` or ``unchecked`` and the reference it was
compared with; the scipy row itself is checked against fastcluster when that
ran, else it is ``unchecked`` (it is the reference). A MISMATCH is printed
loudly and makes the exit status 1.

Results: one JSON in ``--out`` (a folder, default the current one; the file is
``bench_linkage-<device-or-cpu>-<date>.json``), or exactly ``--json PATH``,
rewritten after every worker so an interrupted run keeps what it measured.
Nothing is written elsewhere. A Markdown table closes the run.
"""

import argparse
import datetime as _dt
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _adversarial import NAMES as DATA_SETS
from _adversarial import make as make_adversarial
from _common import (CHECK_RESULTS, MIN_SAMPLES, MISMATCH, OK, RESULT_TAG, UNCHECKED,
                     add_reference_options, check_by_smaller_n, compare_linkage, cpu_model, measure,
                     process_peak_bytes, provenance, sample_stats, spawn_worker, validation_n,
                     version)

ALL_METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]
ALL_IMPLS = ["cpu", "cuda", "cuda-device", "scipy", "fastcluster"]
OURS = ["cpu", "cuda", "cuda-device"]
GPU_IMPLS = ("cuda", "cuda-device")
# worker order: the references (scipy, then fastcluster, then our CPU engine)
# before the rows they check, so every printed row already has its check
RUN_ORDER = ["scipy", "fastcluster", "cpu", "cuda", "cuda-device"]
RTOL = 1e-10  # float64 heights against the reference (DESIGN.md sec. 4)
QUICK = dict(sizes=[300, 1000], methods=["single", "average", "ward"])


# ----------------------------------------------------------------------------
# Worker side: one process, a list of cases for one implementation.


def make_data(n, d, seed, data="gaussian"):
    """The benchmark's observations: float64, C order, of set ``data``.

    ``gaussian``: this script's own seeded standard normal draw (unchanged, so
    results stay comparable); other names: ``_adversarial.make(data, n, d, seed)``.
    """
    if data == "gaussian":
        return np.random.default_rng([seed, n, d]).standard_normal((n, d))
    return make_adversarial(data, n, d, seed)


def _callable(impl, method, X, dtype, low_memory=None):
    """A zero-argument function running one linkage, and a function to fetch Z.

    ``low_memory`` is passed to ours only when not None (the default plan
    otherwise), so the script also runs on versions without the keyword.
    """
    if impl == "scipy":
        from scipy.cluster.hierarchy import linkage

        return (lambda: linkage(X, method)), np.asarray
    if impl == "fastcluster":
        import fastcluster

        return (lambda: fastcluster.linkage(X, method)), np.asarray
    import functools

    import gpu_hclust

    ours = gpu_hclust.linkage
    if low_memory is not None:
        ours = functools.partial(gpu_hclust.linkage, low_memory=low_memory)
    if impl == "cpu":
        return (lambda: ours(X, method, backend="cpu", dtype=dtype)), np.asarray
    import cupy

    def sync():
        cupy.cuda.get_current_stream().synchronize()

    if impl == "cuda":
        def run():
            Z = ours(X, method, backend="cuda", dtype=dtype)
            sync()
            return Z

        return run, np.asarray
    Xd = cupy.asarray(X)  # device-resident input, transferred before timing
    sync()

    def run_device():
        Z = ours(Xd, method, backend="cuda", dtype=dtype)
        sync()
        return Z

    return run_device, lambda Z: Z.get()


def _with_events(fn, event_s):
    """``fn`` wrapped in CUDA events on the current stream; appends device seconds to event_s."""
    import cupy

    def run():
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        Z = fn()
        end.record()
        end.synchronize()
        event_s.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
        return Z

    return run


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
    """Run ``spec['cases']`` for ``spec['impl']``; print one tagged JSON line per case.

    A case with ``role == 'reference'`` is one untimed call whose Z checks
    other rows; a ``'timed'`` case is a first call plus ``repeat`` samples.
    """
    impl = spec["impl"]
    gpu = impl in GPU_IMPLS
    for case in spec["cases"]:
        n, d, method, role = case["n"], case["d"], case["method"], case["role"]
        dtype = np.dtype(case["dtype"]) if case.get("dtype") else None
        data = case.get("data", "gaussian")
        row = {"impl": impl, "n": n, "d": d, "method": method, "role": role,
               "dtype": case.get("dtype") or "float64", "data": data}
        try:
            X = make_data(n, d, spec["seed"], data)
            fn, fetch = _callable(impl, method, X, dtype, spec.get("low_memory"))
            events = []
            if impl == "cuda-device":
                fn = _with_events(fn, events)
            first_s, Z, first_host, first_gpu = measure(fn, gpu)
            row["first_call_s"] = first_s
            if role == "timed":
                # warm calls only: the first one also holds the JIT's memory
                events.clear()
                warm, hosts, gpus = [], [], []
                for _ in range(spec["repeat"]):
                    s, Z, host, gb = measure(fn, gpu)
                    warm.append(s)
                    hosts.append(host)
                    gpus.append(gb)
                row.update(sample_stats(warm))
                if events:
                    dev = sample_stats(events)
                    row.update({f"device_{k}": v for k, v in dev.items() if k != "n_samples"})
                hosts = [h for h in hosts if h is not None]
                gpus = [g for g in gpus if g is not None]
                row.update(host_peak_bytes=max(hosts) if hosts else None,
                           gpu_pool_peak_bytes=max(gpus) if gpus else None,
                           first_call_host_peak_bytes=first_host,
                           first_call_gpu_pool_bytes=first_gpu)
            Z = np.asarray(fetch(Z), dtype=np.float64)
            zpath = os.path.join(spec["zdir"], f"{role}-{impl}-{n}-{d}-{method}-{data}.npy")
            np.save(zpath, Z)
            row["z_path"] = zpath
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
        "benchmark": "bench_linkage",
        "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        **provenance(),
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
        "timing": "first call reported separately (first_call_s); then --repeat warm calls "
                  "(time.perf_counter; GPU rows synchronise before reading the clock): "
                  "min_s/median_s/max_s; cuda-device rows also device_*_s from CUDA events "
                  "around the call",
        "memory": "host: VmHWM - VmRSS around each call (high-water mark reset through "
                  "/proc/self/clear_refs), max over the warm calls (the first call's is "
                  "reported apart: it includes compilation); gpu: CuPy default pool "
                  "total_bytes() after each call, pool emptied before",
        "check": "each row: ok (compared with the named reference and equal: ids exact, "
                 "heights rtol 1e-10, 1e-5 for float32), MISMATCH (compared, different), "
                 "checked-smaller-n (no reference at this n: the same configuration equals "
                 "scipy at a smaller n of this run and this Z passes full-n invariants) or "
                 "unchecked (no reference); references: scipy, else fastcluster, else our "
                 "CPU engine at the same n when it equals scipy at a smaller n in this run",
    }
    if cuda_reason is None:
        meta["gpu"] = _gpu_meta()
        meta["device"] = meta["gpu"]["name"]
    return meta


def _default_out(folder, device):
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "cpu"
    date = _dt.date.today().isoformat()
    return Path(folder) / f"bench_linkage-{slug}-{date}.json"


def plan_references(args, impls):
    """Untimed reference calls needed so that every timed row has a reference.

    Returns a list of (impl, n, d, method) for ``scipy`` / ``cpu`` reference
    calls, validation cases included (our CPU engine and scipy at a smaller n
    for every (d, method) where the CPU engine is the reference at some n).
    """
    timed_cpu = "cpu" in impls and args.dtype == "float64"
    refs, cpu_ref_at = [], {}

    def scipy_z(n):  # scipy's Z exists at n: a timed row or an untimed call
        return ("scipy" in impls and n <= args.cpu_max_n) or n <= args.ref_max_n

    def cpu_z(n):
        return timed_cpu and n <= args.cpu_max_n

    for n in sorted(args.sizes):
        for d in args.d:
            for m in args.methods:
                if not any(runs(i, n, args) for i in impls):
                    continue
                if scipy_z(n):
                    if not ("scipy" in impls and n <= args.cpu_max_n):
                        refs.append(("scipy", n, d, m))
                    continue
                fast = "fastcluster" in impls and n <= args.cpu_max_n
                gpu = any(i in GPU_IMPLS for i in impls)
                # fastcluster's row is checked against our CPU engine, the GPU rows
                # against fastcluster when it ran, else against our CPU engine
                if not (fast or gpu):
                    continue
                if cpu_z(n) or n <= args.cpu_ref_max_n:
                    if not cpu_z(n):
                        refs.append(("cpu", n, d, m))
                    cpu_ref_at.setdefault((d, m), []).append(n)
    for (d, m), ns in cpu_ref_at.items():
        n0 = min(ns)
        if any(n < n0 and scipy_z(n) and cpu_z(n) for n in args.sizes):
            continue  # a smaller size already compares the CPU engine with scipy
        nv = validation_n(args.validate_n, n0)
        refs += [("scipy", nv, d, m), ("cpu", nv, d, m)]
    return refs


def runs(impl, n, args):
    """Whether ``impl`` gets a timed row at ``n``."""
    return impl in GPU_IMPLS or n <= args.cpu_max_n


def _plan(args, impls):
    """Worker jobs: (impl, [cases]) in the order they run.

    ``--isolate case``: a fresh worker per case, small sizes first, references
    before the rows they check. ``--isolate impl``: one worker per
    implementation (references first, see ``RUN_ORDER``).
    """
    cases = []
    for data in args.data:  # references do not depend on the data set: the same plan each
        for impl, n, d, m in plan_references(args, impls):
            cases.append((impl, {"n": n, "d": d, "method": m, "role": "reference",
                                 "dtype": "float64", "data": data}))
    for n in sorted(args.sizes):
        for d in args.d:
            for data in args.data:
                for m in args.methods:
                    for impl in impls:
                        if runs(impl, n, args):
                            cases.append((impl, {"n": n, "d": d, "method": m, "role": "timed",
                                                 "dtype": args.dtype if impl in OURS
                                                 else "float64", "data": data}))
    rank = {i: k for k, i in enumerate(RUN_ORDER)}
    if args.isolate == "impl":
        jobs = []
        for impl in sorted({i for i, _ in cases}, key=rank.get):
            mine = [c for i, c in cases if i == impl]
            mine.sort(key=lambda c: (c["n"], c["role"] != "reference"))
            jobs.append((impl, mine))
        return jobs
    cases.sort(key=lambda ic: (ic[1]["n"], ic[1]["d"], DATA_SETS.index(ic[1]["data"]),
                               ALL_METHODS.index(ic[1]["method"]),
                               ic[1]["role"] != "reference", rank[ic[0]]))
    return [(impl, [c]) for impl, c in cases]


def _run_job(impl, cases, args, zdir):
    spec = {"impl": impl, "cases": cases, "seed": args.seed, "repeat": args.repeat,
            "zdir": zdir, "low_memory": args.low_memory}
    rows, tail, rc = spawn_worker(__file__, spec, args.case_timeout)
    done = {(r["n"], r["d"], r["method"], r.get("data", "gaussian"), r["role"]) for r in rows}
    for c in cases:  # a crash or timeout: every unfinished case says so
        if (c["n"], c["d"], c["method"], c.get("data", "gaussian"), c["role"]) not in done:
            rows.append({"impl": impl, **c, "error": f"worker rc={rc}: {tail}"[:500]})
    return rows


def _key(r):
    return (r["n"], r["d"], r["method"], r.get("data", "gaussian"))


def _config(r):
    """A row's configuration, all but n: what a smaller-n check must share."""
    return (r["impl"], r["d"], r["method"], r.get("data", "gaussian"), r.get("dtype", "float64"))


def check_rows(rows, rtol, load=np.load):
    """Give every row ``check`` (ok / MISMATCH / unchecked) and ``reference``.

    ``load(path)`` reads a Z saved by a worker. See the module docstring for
    the order of references.
    """
    have = {}  # (impl, role, key) -> row with a Z
    for r in rows:
        if "z_path" in r:
            have[(r["impl"], r["role"], _key(r))] = r

    def z_of(impl, key, roles=("timed", "reference"), float64=False):
        for role in roles:
            r = have.get((impl, role, key))
            if r is not None and (not float64 or r.get("dtype", "float64") == "float64"):
                return r
        return None

    cache = {}

    def compare(a, b):
        ident = (a["z_path"], b["z_path"])
        if ident not in cache:
            cache[ident] = compare_linkage(load(a["z_path"]), load(b["z_path"]),
                                           rtol if a.get("dtype") == "float32" else RTOL)
        return cache[ident]

    def cpu_validated(key):
        """(True, n') when the CPU engine equals scipy at some n' < n, same d, method, data."""
        n, d, m, data = key
        seen = []
        for (impl, _, (n2, d2, m2, data2)), r in have.items():
            if (impl != "cpu" or (d2, m2, data2) != (d, m, data) or n2 >= n
                    or r.get("dtype") == "float32"):
                continue
            s = z_of("scipy", (n2, d2, m2, data2))
            if s is not None:
                seen.append((n2, compare(r, s)[0] == OK))
        good = [n2 for n2, ok in seen if ok]
        bad = [n2 for n2, ok in seen if not ok]
        if bad:
            return False, f"our CPU engine differs from scipy at n={min(bad)}"
        if good:
            return True, max(good)
        return False, "our CPU engine was not compared with scipy at a smaller n"

    for r in rows:
        r.pop("check_detail", None)
        if "error" in r or "z_path" not in r:
            r["check"], r["reference"] = UNCHECKED, None
            r["check_detail"] = "no result" if "error" in r else "no Z"
            continue
        key = _key(r)
        ref, label, note = None, None, None
        if r["impl"] == "scipy":
            ref, label = z_of("fastcluster", key, ("timed",)), "fastcluster"
            note = "scipy is the reference; fastcluster did not run on this case"
        elif r["impl"] == "fastcluster":
            ref, label = z_of("scipy", key), "scipy"
            if ref is None:
                ref, label = z_of("cpu", key, float64=True), "cpu"
        else:
            ref, label = z_of("scipy", key), "scipy"
            if ref is None:
                ref, label = z_of("fastcluster", key, ("timed",)), "fastcluster"
            if ref is None and r["impl"] != "cpu":
                ref, label = z_of("cpu", key, float64=True), "cpu"
        if ref is not None and label == "cpu":
            trusted, why = cpu_validated(key)
            if trusted:
                label = f"cpu (equal to scipy at n={why})"
            else:
                ref, note = None, f"CPU reference not trusted: {why}"
        if ref is None:
            r["check"], r["reference"] = UNCHECKED, None
            r["check_detail"] = note or "no reference ran at this n"
            continue
        status, info = compare(r, ref)
        r["check"], r["reference"] = status, label
        r["ids_equal_reference"] = info.get("ids_equal")
        r["max_rel_err_heights"] = info.get("max_rel_err_heights")
        if "detail" in info:
            r["check_detail"] = info["detail"]
    # rows no reference reached: the same configuration at a smaller n of this run
    check_by_smaller_n(rows, lambda r: load(r["z_path"]) if "z_path" in r else None, _config,
                       lambda r: rtol if r.get("dtype") == "float32" else RTOL)
    return rows


def _fmt_s(x):
    return "-" if x is None else (f"{x:.3g}" if x < 100 else f"{x:.0f}")


def _fmt_r(x):
    return "-" if x is None else f"{x:.2f}"


def _check_text(r):
    ref = r.get("reference")
    text = r["check"] + (f" vs {ref}" if ref else "")
    if r.get("check_detail") and r["check"] != OK:
        text += f" ({r['check_detail']})"
    return text


def row_line(r, final=True):
    """One printed line per row: times and the check result.

    While the run goes on (``final=False``) an unchecked row may still meet its
    reference (scipy's row waits for fastcluster's): it reads "pending".
    """
    head = (f"{r['impl']:>12} n={r['n']:<7} d={r['d']:<4} {r.get('data', 'gaussian'):<11} "
            f"{r['method']:<9}")
    if "error" in r:
        body = f"ERROR {r['error']}"
    elif r["role"] == "reference":
        body = f"reference call {r['first_call_s']:.3f} s (untimed: one call)"
    else:
        body = (f"first {r['first_call_s']:.3f} s | {r['n_samples']} samples min "
                f"{_fmt_s(r['min_s'])} median {_fmt_s(r['median_s'])} max {_fmt_s(r['max_s'])} s")
        if r.get("device_median_s") is not None:
            body += f" | device (events) median {_fmt_s(r['device_median_s'])} s"
    check = _check_text(r) if (final or r["check"] != UNCHECKED) else "pending"
    return f"{head} {body} | check {check}"


def markdown(rows):
    """Markdown table: one line per row, with its check and ratios to scipy/fastcluster."""
    timed = [r for r in rows if r["role"] == "timed"]
    med = {(r["impl"],) + _key(r): r.get("median_s") for r in timed if "error" not in r}
    head = ["n", "d", "data", "method", "impl", "first s", "samples", "min s", "median s", "max s",
            "device median s", "/ scipy", "/ fastcluster", "check"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rank = {i: k for k, i in enumerate(ALL_IMPLS)}
    for r in sorted(rows, key=lambda r: (r["role"] != "timed", r["n"], r["d"],
                                         DATA_SETS.index(r.get("data", "gaussian")),
                                         ALL_METHODS.index(r["method"]), rank[r["impl"]])):
        impl = r["impl"] + (" (reference call)" if r["role"] == "reference" else "")
        if "error" in r:
            vals = [impl, "ERROR"] + ["-"] * 7
        elif r["role"] == "reference":
            vals = [impl, _fmt_s(r["first_call_s"]), "1 (untimed)"] + ["-"] * 6
        else:
            m = r.get("median_s")

            def ratio(ref):
                b = med.get((ref,) + _key(r))
                return None if (m is None or b is None or b <= 0 or ref == r["impl"]) else m / b

            vals = [impl, _fmt_s(r["first_call_s"]), str(r["n_samples"]), _fmt_s(r["min_s"]),
                    _fmt_s(m), _fmt_s(r["max_s"]), _fmt_s(r.get("device_median_s")),
                    _fmt_r(ratio("scipy")), _fmt_r(ratio("fastcluster"))]
        lines.append("| " + " | ".join([str(r["n"]), str(r["d"]), r.get("data", "gaussian"),
                                        r["method"]] + vals
                                       + [_check_text(r)]) + " |")
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_csv(int), default=None,
                   help="comma-separated numbers of observations (default 1000,5000,20000; "
                        f"--quick {','.join(map(str, QUICK['sizes']))})")
    p.add_argument("--d", "--dims", dest="d", type=_csv(int), default=[32],
                   help="comma-separated feature counts (default 32)")
    p.add_argument("--methods", type=_csv(str), default=None,
                   help="comma-separated methods or 'all' (default all; --quick "
                        f"{','.join(QUICK['methods'])})")
    p.add_argument("--backends", type=_csv(str), default=["cpu", "cuda", "scipy", "fastcluster"],
                   help="comma-separated: cpu, cuda (= cuda + cuda-device), cuda-device, scipy, "
                        "fastcluster (default all; cuda only when a GPU is usable)")
    p.add_argument("--repeat", type=int, default=MIN_SAMPLES,
                   help=f"timed warm calls per row, at least {MIN_SAMPLES} (default "
                        f"{MIN_SAMPLES}): min, median and max are reported")
    p.add_argument("--data", type=_csv(str), default=["gaussian"],
                   help=f"comma-separated data sets, of {list(DATA_SETS)} (default gaussian; "
                        "benchmarks/_adversarial.py)")
    p.add_argument("--low-memory", choices=["auto", "true", "false"], default="auto",
                   help="ours' low_memory: auto (the default plan), true (memory-saving "
                        "engine) or false (dense matrix)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="gpu_hclust's working dtype (scipy/fastcluster are float64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run of a few seconds: sizes and methods as above, one worker per "
                        "implementation")
    p.add_argument("--isolate", choices=["case", "impl"], default=None,
                   help="fresh worker per case (default) or per implementation (--quick)")
    p.add_argument("--cpu-max-n", type=int, default=20000,
                   help="timed cpu/scipy/fastcluster rows only up to this n (default 20000)")
    p.add_argument("--ref-max-n", type=int, default=20000,
                   help="untimed scipy reference call up to this n where no scipy row runs "
                        "(default 20000; 0: none)")
    # The dense CPU engine holds the n x n condensed matrix: 40 GB at 100 000.
    add_reference_options(p, 100000, "the dense matrix takes 40 GB there")
    p.add_argument("--case-timeout", type=float, default=None,
                   help="seconds allowed per worker process (default: no limit)")
    p.add_argument("--out", default=None,
                   help="folder for the JSON (default: the current folder)")
    p.add_argument("--json", default=None, help="exact JSON path (instead of --out)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return args
    if args.quick:
        args.sizes = args.sizes or QUICK["sizes"]
        args.methods = args.methods or QUICK["methods"]
        args.isolate = args.isolate or "impl"
    args.sizes = args.sizes or [1000, 5000, 20000]
    args.methods = args.methods or list(ALL_METHODS)
    args.isolate = args.isolate or "case"
    if args.methods == ["all"]:
        args.methods = list(ALL_METHODS)
    unknown = sorted(set(args.methods) - set(ALL_METHODS))
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {ALL_METHODS} or 'all'")
    bad = sorted(set(args.backends) - set(ALL_IMPLS))
    if bad:
        p.error(f"unknown backend(s) {bad}; choose from {ALL_IMPLS}")
    args.low_memory = {"auto": None, "true": True, "false": False}[args.low_memory]
    bad = sorted(set(args.data) - set(DATA_SETS))
    if bad:
        p.error(f"unknown data set(s) {bad} for --data; choose from {list(DATA_SETS)}")
    if args.repeat < MIN_SAMPLES:
        p.error(f"--repeat must be at least {MIN_SAMPLES} (min/median/max of fewer samples "
                f"mean nothing); got {args.repeat}")
    if args.out is not None and args.json is not None:
        p.error("give --out FOLDER or --json PATH, not both")
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
    cuda_reason = _cuda_reason() if any(i in GPU_IMPLS for i in wanted) else "not requested"
    impls = []
    for i in ALL_IMPLS:
        if i not in wanted:
            continue
        if i in GPU_IMPLS and cuda_reason is not None:
            print(f"skipping {i}: {cuda_reason}", file=sys.stderr)
            continue
        if i == "fastcluster" and version("fastcluster") is None:
            print("skipping fastcluster: not installed", file=sys.stderr)
            continue
        impls.append(i)
    meta = _meta(args, impls, cuda_reason)
    out = Path(args.json) if args.json else _default_out(args.out or ".", meta["device"])
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    rtol = 1e-5 if args.dtype == "float32" else RTOL
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_linkage_") as zdir:
        for impl, cases in _plan(args, impls):
            got = _run_job(impl, cases, args, zdir)
            rows += got
            check_rows(rows, rtol)
            for r in got:
                print(row_line(r, final=False), flush=True)
            _write(out, meta, rows, t_start)
    failures = [r for r in rows if r.get("check") == MISMATCH]
    errors = [r for r in rows if "error" in r]
    counts = {s: sum(r.get("check") == s for r in rows) for s in CHECK_RESULTS}
    print()
    print(markdown(rows))
    print("\nchecks: " + ", ".join(f"{counts[s]} {s}" for s in CHECK_RESULTS))
    print(f"results: {out}")
    if errors:
        print(f"{len(errors)} case(s) raised or timed out (ERROR rows above)", file=sys.stderr)
    if failures:
        print("!" * 72, file=sys.stderr)
        for r in failures:
            print(f"!! WRONG RESULT: {r['impl']} n={r['n']} d={r['d']} {r['method']} vs "
                  f"{r['reference']}: {r.get('check_detail', '')}", file=sys.stderr)
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
