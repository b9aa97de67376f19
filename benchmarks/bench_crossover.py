#!/usr/bin/env python
"""Measure the two GPU crossovers of gpu_hclust and write them into the package.

``backend='auto'`` sends NumPy input to the GPU from ``AUTO_CUDA_MIN_N``
points, and ``low_memory=None`` on the GPU takes the memory-saving engine
(even where the dense matrix fits) from ``GPU_MEMORY_SAVING_MIN_N[family]``.
Both live in ``gpu_hclust/_crossovers.py`` with their source. This script
measures them on the machine it runs on::

    python benchmarks/bench_crossover.py --out results/crossover.json      # measure (GPU)
    python benchmarks/bench_crossover.py --apply results/crossover.json    # write _crossovers.py

Cases (n x 32 standard normal, seeded; NumPy in, NumPy out, end to end):

* ``backend``: ``linkage(X, method)`` with ``backend='cpu'`` and with
  ``backend='cuda'`` (``--sizes-backend``, single/ward/average), default
  ``low_memory`` on both: what a user of ``backend='auto'`` gets either way;
* ``memory``: ``backend='cuda'`` with ``low_memory=False`` (dense) and
  ``low_memory=True`` (memory-saving) (``--sizes-memory``, single and ward).

Every row is checked: against scipy where n <= ``--scipy-max-n`` (ids exact,
heights rtol 1e-10), else against the other variant of the same case at the
same n (the CPU row, or the dense row), which is itself checked against scipy
at the sizes below; a row with neither says ``unchecked``. One worker process
per (case, method, variant); its first call (2 000 points: context,
compilation) is reported apart as ``warmup_s``; then up to ``--repeat``
samples per size, stopping once they add up to ``--sample-budget-s``.

The recommendation (printed, in the JSON, and what ``--apply`` writes): the
smallest measured n from which the faster variant wins at that n and at every
larger measured n, for every method of the group; none if it never does.
A recommendation is only made from checked rows with at least ``MIN_SAMPLES``
samples. ``--apply`` refuses results that were not measured with a GPU.
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
from _common import (MIN_SAMPLES, MISMATCH, OK, RESULT_TAG, UNCHECKED, compare_linkage, cpu_model,
                     gpu_name, provenance, sample_stats, spawn_worker)

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "gpu_hclust" / "_crossovers.py"
WARMUP_N = 2000
RTOL = 1e-10
# case -> (variants, the one that wins past the crossover, methods by family)
CASES = {
    "backend": (("cpu", "cuda"), "cuda", {"all": ("single", "ward", "average")}),
    "memory": (("dense", "saving"), "saving", {"mst": ("single",), "reducible": ("ward",)}),
}


def make_data(n, d, seed):
    return np.random.default_rng([seed, n, d]).standard_normal((n, d))


def _call(case, variant, accelerated):
    """A function (X, method) -> Z for one variant (``accelerated``: the GPU backend name)."""
    import gpu_hclust

    if case == "backend":
        backend = accelerated if variant == "cuda" else "cpu"
        return lambda X, m: gpu_hclust.linkage(X, m, backend=backend)
    low_memory = variant == "saving"
    return lambda X, m: gpu_hclust.linkage(X, m, backend=accelerated, low_memory=low_memory)


def run_worker(spec):
    fn = _call(spec["case"], spec["variant"], spec["accelerated"])
    method = spec["method"]
    t = time.perf_counter()
    fn(make_data(WARMUP_N, spec["d"], spec["seed"] + 1), method)
    warmup_s = time.perf_counter() - t
    for n in spec["sizes"]:
        row = dict(case=spec["case"], variant=spec["variant"], method=method, n=n, d=spec["d"],
                   warmup_s=warmup_s)
        try:
            X = make_data(n, spec["d"], spec["seed"])
            samples = []
            for _ in range(spec["repeat"]):
                t = time.perf_counter()
                Z = fn(X, method)
                samples.append(time.perf_counter() - t)
                if sum(samples) >= spec["sample_budget_s"]:
                    break
            row.update(sample_stats(samples))
            row["z_path"] = os.path.join(spec["zdir"], f"{spec['case']}-{spec['variant']}-"
                                                       f"{method}-{n}.npy")
            np.save(row["z_path"], np.asarray(Z, dtype=np.float64))
        except Exception as exc:  # recorded, never hidden
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
        print(RESULT_TAG + json.dumps(row), flush=True)


def check_rows(rows, d, seed, scipy_max_n):
    """Every row's check: scipy up to ``scipy_max_n``, else the other variant at the same n."""
    from scipy.cluster.hierarchy import linkage

    refs = {}
    for r in sorted(rows, key=lambda r: r["n"]):
        if "error" in r:
            r.update(check=UNCHECKED, reference=None, check_detail="no result")
            continue
        Z = np.load(r["z_path"])
        if r["n"] <= scipy_max_n:
            key = (r["method"], r["n"])
            if key not in refs:
                refs[key] = linkage(make_data(r["n"], d, seed), r["method"])
            status, info = compare_linkage(Z, refs[key], RTOL)
            r.update(check=status, reference="scipy", check_detail=info.get("detail", ""))
    for r in rows:
        if "check" in r:
            continue
        others = [o for o in rows if o is not r and o["case"] == r["case"] and
                  o["method"] == r["method"] and o["n"] == r["n"] and "z_path" in o]
        if not others:
            r.update(check=UNCHECKED, reference=None, check_detail="no reference at this n")
            continue
        o = others[0]
        status, info = compare_linkage(np.load(r["z_path"]), np.load(o["z_path"]), RTOL)
        # the other variant is a reference only if it passed against scipy below
        checked_below = any(x.get("check") == OK and x["reference"] == "scipy" for x in rows
                            if x["case"] == o["case"] and x["variant"] == o["variant"] and
                            x["method"] == o["method"])
        if status == OK and not checked_below:
            status = UNCHECKED
        r.update(check=status, reference=f"{o['variant']} at the same n",
                 check_detail=info.get("detail", ""))
    return sum(r.get("check") == MISMATCH for r in rows)


def recommend(rows, case):
    """{group: smallest n from which the winning variant is faster from there on, or None}."""
    variants, winner, groups = CASES[case]
    loser = variants[0] if winner == variants[1] else variants[1]
    out = {}
    for group, methods in groups.items():
        sizes = sorted({r["n"] for r in rows if r["case"] == case})
        wins = []
        for n in sizes:
            ok = True
            for m in methods:
                t = {v: _timed(rows, case, v, m, n) for v in variants}
                if t[winner] is None or t[loser] is None or not t[winner] < t[loser]:
                    ok = False
            wins.append(ok)
        start = None
        for i in range(len(sizes) - 1, -1, -1):
            if not wins[i]:
                break
            start = sizes[i]
        out[group] = start
    return out


def _timed(rows, case, variant, method, n):
    for r in rows:
        if (r["case"], r["variant"], r["method"], r["n"]) == (case, variant, method, n):
            if "error" in r or r.get("check") not in (OK,) or r.get("median_s") is None:
                return None
            return r["median_s"]
    return None


def apply(results_path, target=TARGET):
    """Rewrite ``target`` (``gpu_hclust/_crossovers.py``) from a results file."""
    doc = json.loads(Path(results_path).read_text())
    if not doc.get("gpu") or doc.get("accelerated") != "cuda":
        raise SystemExit(f"{results_path} was not measured with a GPU (gpu={doc.get('gpu')!r}, "
                         f"accelerated backend {doc.get('accelerated')!r}): nothing applied")
    rec = doc["recommendation"]
    src = target.read_text()
    where = (f"measured by benchmarks/bench_crossover.py on {doc['gpu']} "
             f"({doc['started'][:10]}, commit {doc.get('git_commit', '?')[:10]})")
    auto = rec["backend"]["all"]
    if auto is not None:
        src = _set(src, "AUTO_CUDA_MIN_N", str(int(auto)))
        src = _set(src, "AUTO_CUDA_SOURCE", repr(where))
    else:
        src = _set(src, "AUTO_CUDA_SOURCE", repr(
            f"the GPU was not faster at every measured n ({where}); value unchanged"))
    memory = {k: int(v) for k, v in rec["memory"].items() if v is not None}
    src = _set(src, "GPU_MEMORY_SAVING_MIN_N", repr(memory))
    src = _set(src, "GPU_MEMORY_SAVING_SOURCE", repr(where))
    target.write_text(src)
    return src


def _set(src, name, value):
    new, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", src, flags=re.M)
    if count != 1:
        raise SystemExit(f"{name} is not assigned exactly once in {TARGET}")
    return new


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes-backend", default="500,1000,2000,4000,8000,16000")
    p.add_argument("--sizes-memory", default="20000,50000,100000")
    p.add_argument("--cases", default="backend,memory")
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--repeat", type=int, default=MIN_SAMPLES)
    p.add_argument("--sample-budget-s", type=float, default=5.0)
    p.add_argument("--scipy-max-n", type=int, default=8000,
                   help="rows up to this n are checked against scipy (default 8000)")
    p.add_argument("--accelerated", default="cuda", choices=["cuda", "cpu"],
                   help="the GPU backend ('cpu' only to test this script without a GPU)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per worker")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench_crossover.json")
    p.add_argument("--apply", default=None, metavar="RESULTS_JSON",
                   help="write gpu_hclust/_crossovers.py from a results file and exit")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    bad = [c for c in args.cases if c not in CASES]
    if bad:
        p.error(f"unknown case(s) {bad} for --cases; choose from {list(CASES)}")
    args.sizes = {"backend": [int(x) for x in args.sizes_backend.split(",")],
                  "memory": [int(x) for x in args.sizes_memory.split(",")]}
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return 0
    if args.apply:
        print(apply(args.apply))
        return 0
    gpu = gpu_name() if args.accelerated == "cuda" else None
    meta = dict(benchmark="bench_crossover", **provenance(), cpu=cpu_model(), gpu=gpu,
                started=_dt.datetime.now().isoformat(timespec="seconds"),
                python=platform.python_version(), accelerated=args.accelerated,
                args={k: v for k, v in vars(args).items() if k not in ("worker", "apply")},
                timing="NumPy in, NumPy out; first call on 2000 points apart (warmup_s)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_crossover_") as zdir:
        for case in args.cases:
            variants, _, groups = CASES[case]
            for method in sorted({m for ms in groups.values() for m in ms}):
                for variant in variants:
                    spec = dict(case=case, variant=variant, method=method, d=args.d,
                                sizes=args.sizes[case], repeat=args.repeat, seed=args.seed,
                                sample_budget_s=args.sample_budget_s, zdir=zdir,
                                accelerated=args.accelerated)
                    got, tail, rc = spawn_worker(__file__, spec, args.timeout)
                    done = {r["n"] for r in got}
                    got += [dict(case=case, variant=variant, method=method, n=n, d=args.d,
                                 error=f"worker rc={rc}: {tail}"[:500])
                            for n in args.sizes[case] if n not in done]
                    rows += got
        failures = check_rows(rows, args.d, args.seed, args.scipy_max_n)
    for r in rows:
        r.pop("z_path", None)
    rec = {case: recommend(rows, case) for case in args.cases}
    doc = dict(meta, recommendation=rec, results=rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))
    for r in sorted(rows, key=lambda r: (r["case"], r["method"], r["n"], r["variant"])):
        t = "ERROR " + r["error"][:80] if "error" in r else f"{r['median_s'] or min(r['samples_s']):.4f} s"
        print(f"{r['case']:8s} {r['method']:8s} n={r['n']:<7d} {r['variant']:7s} {t}  "
              f"[{r['check']} vs {r['reference']}]")
    print(f"recommendation: {rec} (apply with --apply {args.out})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
