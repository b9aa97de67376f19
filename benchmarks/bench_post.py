#!/usr/bin/env python
"""Benchmark post-processing of a linkage matrix, side by side with scipy.

Runs on the importable package (``pip install -e .``, or ``PYTHONPATH=<repo>``)::

    python benchmarks/bench_post.py --quick        # 1e5 leaves, OLO to n = 5000 (minutes)
    python benchmarks/bench_post.py                # 1e6 leaves, OLO to n = 20000
    python benchmarks/bench_post.py --skip-scale --olo-sizes 500,1000,2000,5000,10000

Part 1, tree walks at scale: a random valid ``Z`` (two random clusters merge at
each step, strictly increasing heights) and a caterpillar (each merge adds one
leaf: depth n - 1), for fcluster ('distance', 'maxclust', 'inconsistent'),
leaves_list, to_tree, cut_tree, inconsistent, maxdists and
dendrogram(no_plot=True). scipy runs the same calls where it can (its
dendrogram recurses and raises RecursionError on deep trees; its cut_tree is
quadratic and is skipped above ``--scipy-cut-max``). Outputs are compared with
scipy's wherever both ran; a mismatch is reported and sets exit status 1.

Part 2, optimal_leaf_ordering on seeded data (``blobs``: five Gaussian blobs in
4-D; ``uniform``: points uniform in the unit square, the hardest case for the
pruning), for linkage methods ``--olo-methods``; scipy up to
``--olo-scipy-max``, ours at every size; results must equal scipy's exactly.

Timing: one warm-up call on small inputs first (Numba compilation or cache
load, reported as ``warmup_s``), then ``--repeat`` (at least 3) calls of ours and
of scipy: min, median and max (``ours_s``/``scipy_s`` are the medians). The
machine is shared: load averages are recorded next to every case.

Checks, one per row (``check``): ``ok`` when the output equals scipy's exactly
(to_tree: the same pre-order of leaves and the same root), ``MISMATCH`` when it
differs, ``unchecked`` when scipy did not run (above ``--scipy-cut-max``,
``--scipy-dendro-max``, ``--olo-scipy-max``, or it raised). JSON goes to
``--out`` (default ``post-cpu-<date>.json`` in the current folder).
"""

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust as hc
from _common import MIN_SAMPLES, MISMATCH, OK, UNCHECKED, provenance, sample_stats
from synthetic import caterpillar, random_tree

FAILURES = []


def timed(fn, repeat, stats=None):
    """(median seconds, last result) or (None, 'ExcType: message').

    ``stats`` (a dict), when given, receives min/median/max of the samples.
    """
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            out = fn()
        except (RecursionError, MemoryError, NotImplementedError) as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:120]}"
        times.append(time.perf_counter() - t0)
    if stats is not None:
        stats.update(sample_stats(times))
    return float(np.median(times)), out


def _check(equal):
    """ok / MISMATCH when compared, unchecked when scipy gave nothing to compare."""
    return UNCHECKED if equal is None else (OK if equal else MISMATCH)


def _same(a, b):
    if isinstance(a, sch.ClusterNode) or hasattr(a, "pre_order"):
        return (a.get_id() == b.get_id() and a.get_count() == b.get_count()
                and a.dist == b.dist and a.pre_order() == b.pre_order())
    if isinstance(a, dict):
        return all(_same(a[k], b[k]) for k in ("leaves", "ivl", "icoord", "dcoord"))
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


def scale_calls(Z, n, scipy_cut_max, scipy_dendro_max):
    """name -> (ours, scipy or None)."""
    t_mid = float(Z[n // 2, 2])
    R = sch.inconsistent(Z)
    ks = [2, 10, 100]
    calls = {
        "fcluster distance": (lambda: hc.fcluster(Z, t_mid, "distance"),
                              lambda: sch.fcluster(Z, t_mid, "distance")),
        "fcluster maxclust 100": (lambda: hc.fcluster(Z, 100, "maxclust"),
                                  lambda: sch.fcluster(Z, 100, "maxclust")),
        "fcluster inconsistent (R given)": (lambda: hc.fcluster(Z, 1.0, R=R),
                                            lambda: sch.fcluster(Z, 1.0, R=R)),
        "leaves_list": (lambda: hc.leaves_list(Z), lambda: sch.leaves_list(Z)),
        "to_tree": (lambda: hc.to_tree(Z), lambda: sch.to_tree(Z)),
        "cut_tree n_clusters=[2,10,100]": (
            lambda: hc.cut_tree(Z, n_clusters=ks),
            (lambda: sch.cut_tree(Z, n_clusters=ks)) if n <= scipy_cut_max else None),
        "inconsistent d=2": (lambda: hc.inconsistent(Z), lambda: sch.inconsistent(Z)),
        "maxdists": (lambda: hc.maxdists(Z), lambda: sch.maxdists(Z)),
        "dendrogram no_plot": (
            lambda: hc.dendrogram(Z, no_plot=True),
            (lambda: sch.dendrogram(Z, no_plot=True)) if n <= scipy_dendro_max else None),
    }
    return calls


def run_scale(args, rng, record):
    # warm-up: compile or load every kernel on a small tree
    t0 = time.perf_counter()
    for shape in (random_tree, caterpillar):
        Zs = shape(rng, 200)
        for ours, _ in scale_calls(Zs, 200, 0, 0).values():
            timed(ours, 1)
    record["scale_warmup_s"] = time.perf_counter() - t0
    rows = []
    for n in args.scale_sizes:
        for shape_name, shape in (("random", random_tree), ("caterpillar", caterpillar)):
            Z = shape(rng, n)
            for name, (ours, ref) in scale_calls(Z, n, args.scipy_cut_max,
                                                 args.scipy_dendro_max).items():
                load = os.getloadavg()
                st_ours, st_ref = {}, {}
                t_ours, out_ours = timed(ours, args.repeat, st_ours)
                row = {"n": n, "tree": shape_name, "call": name, "ours_s": t_ours,
                       "ours_samples": st_ours, "load_before": load}
                if t_ours is None:
                    row["ours_error"] = out_ours
                if ref is not None:
                    t_ref, out_ref = timed(ref, args.repeat, st_ref)
                    row["scipy_s"], row["scipy_samples"] = t_ref, st_ref
                    if t_ref is None:
                        row["scipy_error"] = out_ref
                    elif t_ours is not None:
                        row["equal"] = bool(_same(out_ours, out_ref))
                        if not row["equal"]:
                            FAILURES.append(f"{name} n={n} {shape_name}")
                    if t_ref and t_ours:
                        row["speedup"] = t_ref / t_ours
                row["check"] = _check(row.get("equal"))
                rows.append(row)
                print(_fmt_scale(row), flush=True)
                del out_ours
    record["scale"] = rows


def _fmt_scale(row):
    ours = f"{row['ours_s']:.3f}s" if row["ours_s"] is not None else row.get("ours_error")
    if "scipy_s" in row:
        ref = f"{row['scipy_s']:.3f}s" if row["scipy_s"] is not None else row["scipy_error"][:40]
    else:
        ref = "(not run)"
    extra = f"  x{row['speedup']:.1f}" if "speedup" in row else ""
    return (f"{row['n']:>9} {row['tree']:<12} {row['call']:<32} ours {ours:<9} scipy {ref}"
            f"{extra}  check {row['check']}")


def olo_data(kind, n, seed):
    rng = np.random.default_rng([seed, n])
    if kind == "blobs":
        centres = rng.normal(0, 4, size=(5, 4))
        return centres[rng.integers(0, 5, size=n)] + rng.normal(0, 1, size=(n, 4))
    return rng.random((n, 2))


def run_olo(args, record):
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    Xw = rng.random((300, 2))
    hc.optimal_leaf_ordering(sch.linkage(Xw, "average"), pdist(Xw))
    record["olo_warmup_s"] = time.perf_counter() - t0
    rows = []
    for kind in args.olo_data:
        for method in args.olo_methods:
            for n in args.olo_sizes:
                X = olo_data(kind, n, args.seed)
                y = pdist(X)
                Z = sch.linkage(y, method)
                load = os.getloadavg()
                st_ours, st_ref = {}, {}
                t_ours, ours = timed(lambda: hc.optimal_leaf_ordering(Z, y), args.repeat, st_ours)
                row = {"n": n, "data": kind, "method": method, "ours_s": t_ours,
                       "ours_samples": st_ours, "load_before": load}
                if t_ours is None:
                    row["ours_error"] = ours
                if n <= args.olo_scipy_max:
                    t_ref, ref = timed(lambda: sch.optimal_leaf_ordering(Z, y), args.repeat,
                                       st_ref)
                    row["scipy_s"], row["scipy_samples"] = t_ref, st_ref
                    if t_ref is not None and t_ours is not None:
                        row["equal"] = bool(np.array_equal(ours, ref))
                        row["speedup"] = t_ref / t_ours
                        if not row["equal"]:
                            FAILURES.append(f"optimal_leaf_ordering n={n} {kind} {method}")
                row["check"] = _check(row.get("equal"))
                rows.append(row)
                ref_s = f"{row['scipy_s']:.2f}s" if row.get("scipy_s") else "(not run)"
                sp = f"  x{row['speedup']:.1f}" if "speedup" in row else ""
                eq = f"  check {row['check']}"
                ours_s = f"{t_ours:.2f}s" if t_ours is not None else row["ours_error"]
                print(f"OLO {kind:<8} {method:<8} n={n:<6} ours {ours_s:<8} scipy {ref_s}"
                      f"{sp}{eq}", flush=True)
                del ours, y, Z
    record["optimal_leaf_ordering"] = rows


def machine():
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    info["numba_threads"] = numba.get_num_threads()
    info["versions"] = {"gpu_hclust": hc.__version__, "numpy": np.__version__,
                        "scipy": scipy.__version__, "numba": numba.__version__}
    info.update(provenance(paths=("gpu_hclust", "kernels")))
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1e5 leaves; OLO up to n=5000")
    p.add_argument("--scale-sizes", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--skip-olo", action="store_true")
    p.add_argument("--olo-sizes", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--olo-scipy-max", type=int, default=2000)
    p.add_argument("--olo-data", type=lambda s: s.split(","), default=["blobs", "uniform"])
    p.add_argument("--olo-methods", type=lambda s: s.split(","), default=["average", "ward"])
    p.add_argument("--scipy-cut-max", type=int, default=10_000)
    p.add_argument("--scipy-dendro-max", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=MIN_SAMPLES,
                   help=f"timed calls of ours and scipy's per row, at least {MIN_SAMPLES}")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out")
    args = p.parse_args(argv)
    if args.repeat < MIN_SAMPLES:
        p.error(f"--repeat must be at least {MIN_SAMPLES}; got {args.repeat}")
    if args.scale_sizes is None:
        args.scale_sizes = [100_000] if args.quick else [1_000_000]
    if args.olo_sizes is None:
        args.olo_sizes = ([500, 1000, 2000, 5000] if args.quick
                          else [500, 1000, 2000, 5000, 10000, 20000])
    record = {"time": _dt.datetime.now().isoformat(timespec="seconds"),
              "machine": machine(), "args": vars(args)}
    out = Path(args.out or f"post-cpu-{_dt.date.today().isoformat()}.json")
    rng = np.random.default_rng(args.seed)
    if not args.skip_scale:
        run_scale(args, rng, record)
    if not args.skip_olo:
        run_olo(args, record)
    record["failures"] = FAILURES
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=float))
    print(f"wrote {out}")
    if FAILURES:
        print("!" * 70 + "\nMISMATCHES: " + "; ".join(FAILURES) + "\n" + "!" * 70)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
