#!/usr/bin/env python
"""gpu_hclust (float64 and float32) side by side with cuhc 0.1.0 on the same GPU, every row checked.

cuhc (CUDA C++, float32 only, single/complete/average/ward) publishes times on an
RTX 3080 for n x 32 standard normal data (its README): ward 20 000 / 100 000 /
1 000 000 in 0.038 / 0.53 / 51 s, single 20 000 / 1 000 000 in 0.027 / 34 s,
complete or average 20 000 in 0.41 s. This script runs each of those cases with
three implementations on one machine::

    python benchmarks/bench_cuhc.py --out results.json            # the published sizes
    python benchmarks/bench_cuhc.py --cases ward:20000 --check-n 2000 --impls ours64

* ``cuhc``    ``cuhc.linkage(X32, method)`` (its ``algorithm='auto'``: mst for single,
  rnn for ward, dense for complete/average), float32 input prepared before timing
* ``ours64``  ``gpu_hclust.linkage(X, method, backend='cuda')``, float64
* ``ours32``  the same with ``dtype='float32'``

All three take NumPy in and give NumPy out (cuhc has no device-resident
input), so the times are end to end, the host-device copies included. The
memory path of ours is the default (``low_memory=None``: the dense matrix where
it fits, the memory-saving engine past that); ``--low-memory`` forces one.

Timing: one worker process per (implementation, method) with a timeout; a
first call on 2 000 points (context, compilation) is reported as ``warmup_s``;
then per size up to ``--repeat`` calls, stopping once they add up to
``--sample-budget-s`` (a row with fewer than 3 samples has no median: its
samples are listed).

Checks and accuracy (``--check-n``, default 10 000: every implementation and
method also runs there, compared with scipy on the same data):

* ``ours64``: ids exact and heights rtol 1e-10 against scipy on the float64 data:
  ``ok`` / ``MISMATCH``;
* float32 rows (``cuhc``, ``ours32``): rtol 1e-5 against scipy run on the same
  data rounded to float32 (the input they actually see), ``ok`` / ``MISMATCH``;
  merges of near-equal heights may legitimately swap in float32, so each row
  also reports, against scipy on the float64 data, whether the ids are equal
  and the largest relative error of the sorted heights (tie-order free):
  the accuracy figures the issue asks for, next to ours;
* a published size (no scipy there) is ``checked-smaller-n`` when the same
  implementation and method passed at ``--check-n`` and its own Z passes full-n
  invariants (valid linkage, n - 1 merges, sizes, non-decreasing heights);
  else ``unchecked`` or ``MISMATCH`` (``_common.check_by_smaller_n``).

The JSON (``--out``) holds device, versions, commit and every row; it is
rewritten after every worker.
"""

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (CHECK_RESULTS, CUHC_PUBLISHED, MIN_SAMPLES, MISMATCH, OK, RESULT_TAG,
                     UNCHECKED, check_by_smaller_n, compare_linkage, cpu_model, gpu_name,
                     provenance, sample_stats, spawn_worker, version)

IMPLS = ("cuhc", "ours64", "ours32")
METHODS = ("single", "complete", "average", "ward")
PUBLISHED = CUHC_PUBLISHED  # (method, n) -> seconds on an RTX 3080 (cuhc's README)
DEFAULT_CASES = ",".join(f"{m}:{n}" for m, n in PUBLISHED)
RTOL = {"ours64": 1e-10, "ours32": 1e-5, "cuhc": 1e-5}
WARMUP_N = 2000


def make_data(n, d, seed):
    """Seeded standard normal n x d float64 data (cuhc's published kind of data)."""
    return np.random.default_rng([seed, n, d]).standard_normal((n, d))


# ----------------------------------------------------------------------------
# Worker: one implementation and method, its sizes in ascending order.


def _linkage_fn(impl, method, low_memory, backend="cuda"):
    """A function X(float64 NumPy) -> Z (NumPy), and how it prepares X before timing."""
    if impl == "cuhc":
        import cuhc

        return (lambda X: cuhc.linkage(X, method=method),
                lambda X: np.ascontiguousarray(X, dtype=np.float32))
    import gpu_hclust

    dtype = np.float32 if impl == "ours32" else None
    sync = lambda: None  # noqa: E731 (the CPU backend returns when done)
    if backend == "cuda":
        import cupy

        sync = cupy.cuda.get_current_stream().synchronize

    def run(X):
        Z = gpu_hclust.linkage(X, method, backend=backend, dtype=dtype, low_memory=low_memory)
        sync()
        return Z

    return run, lambda X: X


def run_worker(spec):
    impl, method = spec["impl"], spec["method"]
    fn, prepare = _linkage_fn(impl, method, spec["low_memory"], spec["ours_backend"])
    t = time.perf_counter()
    fn(prepare(make_data(WARMUP_N, spec["d"], spec["seed"] + 1)))
    warmup_s = time.perf_counter() - t
    for n, role in spec["sizes"]:
        row = dict(impl=impl, method=method, n=n, d=spec["d"], role=role, warmup_s=warmup_s,
                   dtype="float64" if impl == "ours64" else "float32")
        try:
            X = prepare(make_data(n, spec["d"], spec["seed"]))
            samples = []
            for _ in range(spec["repeat"]):
                t = time.perf_counter()
                Z = fn(X)
                samples.append(time.perf_counter() - t)
                if sum(samples) >= spec["sample_budget_s"]:
                    break
            row.update(sample_stats(samples))
            row["seconds"] = row["median_s"] if row["median_s"] is not None else min(samples)
            z_path = os.path.join(spec["zdir"], f"{impl}-{method}-{n}.npy")
            np.save(z_path, np.asarray(Z, dtype=np.float64))
            row["z_path"] = z_path
        except Exception as exc:  # recorded, never hidden
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
        print(RESULT_TAG + json.dumps(row), flush=True)


# ----------------------------------------------------------------------------
# Driver.


def _scipy(X, method):
    from scipy.cluster.hierarchy import linkage

    return linkage(X, method)


def _sorted_height_err(Z, Zref):
    h, hr = np.sort(Z[:, 2]), np.sort(Zref[:, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(hr == 0, np.abs(h), np.abs(h - hr) / np.abs(hr))
    return float(rel.max()) if rel.size else 0.0


def check_at_check_n(row, Z, ref64, ref32):
    """Check one row at the check size against scipy; adds the accuracy figures."""
    impl = row["impl"]
    ref, label = (ref64, "scipy") if impl == "ours64" else (ref32, "scipy on float32-rounded data")
    status, info = compare_linkage(Z, ref, RTOL[impl])
    row.update(check=status, reference=label, ids_equal_reference=info["ids_equal"],
               max_rel_err_heights=info["max_rel_err_heights"])
    if "detail" in info:
        row["check_detail"] = info["detail"]
    # accuracy against the float64 truth, tie-order free for the heights
    row["ids_equal_scipy64"] = bool(np.array_equal(Z[:, [0, 1, 3]], ref64[:, [0, 1, 3]]))
    row["sorted_heights_max_rel_err_scipy64"] = _sorted_height_err(Z, ref64)
    return status


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=DEFAULT_CASES,
                   help="comma-separated method:n (default cuhc's published ones: "
                        f"{DEFAULT_CASES})")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, of {list(IMPLS)}")
    p.add_argument("--d", type=int, default=32, help="features (default 32, as published)")
    p.add_argument("--check-n", type=int, default=10000,
                   help="size at which every implementation and method is compared with scipy "
                        "(default 10000)")
    p.add_argument("--repeat", type=int, default=MIN_SAMPLES,
                   help=f"timed calls per row at most (default {MIN_SAMPLES})")
    p.add_argument("--sample-budget-s", type=float, default=10.0,
                   help="stop a row's samples once they add up to this many seconds (default 10; "
                        "at least one is taken)")
    p.add_argument("--low-memory", choices=["auto", "true", "false"], default="auto",
                   help="ours' memory path (default auto: low_memory=None)")
    p.add_argument("--ours-backend", choices=["cuda", "cpu"], default="cuda",
                   help="backend of ours (default cuda; cpu: a smoke test of this script "
                        "without a GPU)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per worker (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench_cuhc.json", help="JSON path")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    cases = []
    for item in args.cases.split(","):
        method, _, n = item.partition(":")
        if method not in METHODS or not n.isdigit():
            p.error(f"--cases wants method:n with a method of {list(METHODS)}; got {item!r}")
        cases.append((method, int(n)))
    args.cases = cases
    args.impls = args.impls.split(",")
    bad = [i for i in args.impls if i not in IMPLS]
    if bad:
        p.error(f"unknown implementation(s) {bad} for --impls; choose from {list(IMPLS)}")
    if args.check_n < 2 or args.check_n >= min(n for _, n in cases):
        p.error(f"--check-n must be at least 2 and below every case's n; got {args.check_n}")
    if args.repeat < 1 or args.sample_budget_s <= 0:
        p.error("--repeat must be at least 1 and --sample-budget-s positive")
    args.low_memory = {"auto": None, "true": True, "false": False}[args.low_memory]
    return args


def _spawn(impl, method, sizes, args, zdir):
    spec = dict(impl=impl, method=method, sizes=sizes, d=args.d, seed=args.seed,
                repeat=args.repeat, sample_budget_s=args.sample_budget_s,
                low_memory=args.low_memory, ours_backend=args.ours_backend, zdir=zdir)
    rows, tail, rc = spawn_worker(__file__, spec, args.timeout)
    done = {r["n"] for r in rows}
    for n, role in sizes:  # a crash or timeout: every unfinished size says so
        if n not in done:
            rows.append(dict(impl=impl, method=method, n=n, d=args.d, role=role,
                             error=f"worker rc={rc}: {tail}"[:500]))
    return rows


def _line(r):
    head = f"{r['impl']:>7} {r['method']:<9} n={r['n']:<8}"
    if "error" in r:
        body = f"ERROR {r['error']}"
    else:
        body = (f"{r['n_samples']} samples {[round(s, 3) for s in r['samples_s']]} "
                f"(seconds {r['seconds']:.3f})")
        pub = PUBLISHED.get((r["method"], r["n"]))
        if r["impl"] == "cuhc" and pub is not None:
            body += f" [cuhc's published RTX 3080 time: {pub} s]"
    acc = ""
    if "sorted_heights_max_rel_err_scipy64" in r:
        acc = (f" | vs scipy float64: ids equal {r['ids_equal_scipy64']}, sorted heights max "
               f"rel err {r['sorted_heights_max_rel_err_scipy64']:.2e}")
    check = r.get("check", UNCHECKED) + (f" vs {r['reference']}" if r.get("reference") else "")
    if r.get("check_detail") and r.get("check") != OK:
        check += f" ({r['check_detail']})"
    return f"{head} {body}{acc} | check {check}"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return 0
    meta = dict(benchmark="bench_cuhc", started=_dt.datetime.now().isoformat(timespec="seconds"),
                **provenance(), cpu=cpu_model(), python=platform.python_version(),
                versions={k: version(k) for k in ("numpy", "scipy", "numba", "numba-cuda",
                                                   "cupy-cuda12x", "cupy-cuda13x", "cuhc")},
                gpu=gpu_name(), args={k: v for k, v in vars(args).items() if k != "worker"},
                published=("cuhc README, RTX 3080: " + ", ".join(
                    f"{m} {n}: {s} s" for (m, n), s in PUBLISHED.items())),
                timing="NumPy in, NumPy out for all (end to end); first call on 2000 points "
                       "apart (warmup_s); samples until --sample-budget-s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    methods = [m for m in METHODS if any(m == c for c, _ in args.cases)]
    rows, failures = [], 0
    with tempfile.TemporaryDirectory(prefix="bench_cuhc_") as zdir:
        refs = {}
        for method in methods:
            X = make_data(args.check_n, args.d, args.seed)
            refs[method] = (_scipy(X, method),
                            _scipy(X.astype(np.float32).astype(np.float64), method))
            sizes = [(args.check_n, "check")] + [(n, "timed") for m, n in sorted(args.cases)
                                                 if m == method]
            for impl in args.impls:
                got = _spawn(impl, method, sizes, args, zdir)
                for r in got:
                    if "error" in r:
                        r.update(check=UNCHECKED, reference=None, check_detail="no result")
                    elif r["role"] == "check":
                        failures += check_at_check_n(r, np.load(r["z_path"]),
                                                     *refs[method]) == MISMATCH
                    else:
                        r.update(check=UNCHECKED, reference=None,
                                 check_detail="no reference fits at this n")
                rows += got
                failures += check_by_smaller_n(
                    rows, lambda r: np.load(r["z_path"]) if "z_path" in r else None,
                    lambda r: (r["impl"], r["method"], r["d"]), lambda r: RTOL[r["impl"]])
                for r in got:
                    print(_line(r), flush=True)
                _write(out, meta, rows)
    counts = {s: sum(r.get("check") == s for r in rows) for s in CHECK_RESULTS}
    print("\n" + markdown(rows))
    print("checks: " + ", ".join(f"{counts[s]} {s}" for s in CHECK_RESULTS))
    print(f"results: {out}")
    return 1 if failures else 0


def markdown(rows):
    """One line per (method, n): each implementation's time, ratio to cuhc, check."""
    by = {(r["method"], r["n"], r["impl"]): r for r in rows}
    head = ["method", "n", "cuhc published (RTX 3080) s"]
    for impl in IMPLS:
        head += [f"{impl} s", f"{impl} check"]
    head += ["ours64 / cuhc", "ours32 / cuhc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, n in sorted({(r["method"], r["n"]) for r in rows},
                            key=lambda k: (METHODS.index(k[0]), k[1])):
        pub = PUBLISHED.get((method, n))
        vals = [method, str(n), "-" if pub is None else f"{pub:g}"]
        secs = {}
        for impl in IMPLS:
            r = by.get((method, n, impl))
            if r is None:
                vals += ["-", "-"]
                continue
            secs[impl] = r.get("seconds")
            s = "ERROR" if "error" in r else f"{r['seconds']:.3g}" + (
                "" if r.get("median_s") is not None else f" ({r['n_samples']} sample(s))")
            vals += [s, r.get("check", UNCHECKED)]
        for impl in ("ours64", "ours32"):
            a, b = secs.get(impl), secs.get("cuhc")
            vals.append(f"{a / b:.2f}" if a and b else "-")
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def _write(path, meta, rows):
    clean = [{k: v for k, v in r.items() if k != "z_path"} for r in rows]
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(dict(meta=meta, results=clean), indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
