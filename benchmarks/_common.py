"""Helpers shared by the benchmark scripts: per-call time and memory, checks, provenance.

The scripts run as plain files (``python benchmarks/bench_*.py``), so their
folder is on ``sys.path`` and they import this module as ``_common``.

Check results (one per benchmark row, DESIGN.md sec. 5, anti-pattern 8):

* ``ok``: the row's output was compared with a reference and is equal
  (linkage ids exact, heights within ``rtol``);
* ``MISMATCH``: compared and different (the script's exit status becomes 1);
* ``checked-smaller-n``: no reference fits at this n; the same engine and
  configuration (implementation, method, metric, d, data set, dtype) equals
  scipy at a smaller n in the same run, and this row's own Z passes cheap
  full-n invariants (``linkage_invariants``). The row names both
  (``check_by_smaller_n``). Not ``ok``: this Z was not compared;
* ``unchecked``: nothing was compared. Never printed as ``ok``.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OK, MISMATCH, UNCHECKED = "ok", "MISMATCH", "unchecked"
SMALLER_N = "checked-smaller-n"
CHECK_RESULTS = (OK, MISMATCH, SMALLER_N, UNCHECKED)
# Methods whose heights never decrease (reducible ones; centroid/median can invert).
MONOTONE_METHODS = frozenset({"single", "complete", "average", "weighted", "ward"})
MIN_SAMPLES = 3  # fewer timed samples make min/median/max meaningless


def status_kib(field):
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# Largest VmHWM seen before a reset_peak(): with it, process_peak_bytes() is the
# process's lifetime peak although measure() resets the mark before each call.
_hwm_before_resets_kib = 0


def process_peak_bytes():
    """This process's lifetime peak resident set, in bytes.

    Linux: the largest ``VmHWM`` seen, resets included. Not ``ru_maxrss``: on
    Linux it carries the parent's high-water mark across fork/exec, so a worker
    spawned by a large driver would report the driver's memory. Elsewhere
    ``ru_maxrss`` is all there is.
    """
    hwm = status_kib("VmHWM")
    if hwm is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(hwm, _hwm_before_resets_kib) * 1024


def reset_peak():
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    global _hwm_before_resets_kib
    _hwm_before_resets_kib = max(_hwm_before_resets_kib, status_kib("VmHWM") or 0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(fn, gpu):
    """(seconds, result, host peak bytes above the start, GPU pool bytes) of one call.

    The host figure is None where the high-water mark cannot be reset; the GPU
    figure is what CuPy's default pool holds after the call (emptied before it),
    None without ``gpu``. ``fn`` must synchronise the device itself.
    """
    pool = None
    if gpu:
        import cupy

        pool = cupy.get_default_memory_pool()
        pool.free_all_blocks()
    can_reset = reset_peak()
    rss0 = status_kib("VmRSS")
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    hwm = status_kib("VmHWM")
    host = (hwm - rss0) * 1024 if (can_reset and hwm is not None and rss0 is not None) else None
    gpu_bytes = int(pool.total_bytes()) if pool is not None else None
    return seconds, result, host, gpu_bytes


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name():
    """"name, driver" of the first GPU nvidia-smi lists, or None (no GPU, no nvidia-smi)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        lines = out.stdout.strip().splitlines() if out.returncode == 0 else []
        return lines[0] if lines else None
    except (OSError, subprocess.SubprocessError):
        return None


def version(dist):
    """Installed version of distribution ``dist``, None if it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git(*args, root=None):
    """Output of ``git args...`` in the repository (stripped), None if git fails."""
    root = Path(__file__).resolve().parent.parent if root is None else Path(root)
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(root=None, paths=()):
    """``{"git_commit": ..., "git_dirty": ...}`` of the checkout holding these scripts.

    Both are the string ``"unknown"`` when git is missing or ``root`` is not
    inside a git work tree (an unpacked sdist, a copied folder): a missing
    answer is never reported as a clean tree. ``git_dirty`` counts tracked
    files only (``paths`` narrows it, e.g. to the kernels).
    """
    if git("rev-parse", "--is-inside-work-tree", root=root) != "true":
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    commit = git("rev-parse", "HEAD", root=root)
    status = git("status", "--porcelain", "--untracked-files=no", "--", *paths, root=root)
    return {"git_commit": commit or "unknown",
            "git_dirty": "unknown" if status is None else bool(status)}


def sample_stats(samples):
    """``n_samples``, ``min_s``, ``median_s``, ``max_s`` of timed samples (seconds).

    With fewer than ``MIN_SAMPLES`` samples the statistics are None: a
    "median" of one sample is that sample, not a median.
    """
    samples = [float(s) for s in samples]
    out = {"n_samples": len(samples), "samples_s": samples}
    enough = len(samples) >= MIN_SAMPLES
    out["min_s"] = min(samples) if enough else None
    out["median_s"] = float(np.median(samples)) if enough else None
    out["max_s"] = max(samples) if enough else None
    return out


def compare_linkage(Z, Zref, rtol):
    """Compare a linkage matrix with a reference: (``OK`` or ``MISMATCH``, details).

    ``OK`` needs equal shapes, equal ids and sizes (columns 0, 1, 3, exact) and
    heights within ``rtol`` of the reference's (no absolute tolerance).
    """
    Z = np.asarray(Z, dtype=np.float64)
    Zref = np.asarray(Zref, dtype=np.float64)
    if Z.shape != Zref.shape:
        return MISMATCH, {"detail": f"shape {Z.shape} != reference's {Zref.shape}"}
    ids = bool(np.array_equal(Z[:, [0, 1, 3]], Zref[:, [0, 1, 3]]))
    h, hr = Z[:, 2], Zref[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(h - hr) / np.abs(hr)
    rel = np.where(hr == 0, np.abs(h), rel)
    max_rel = float(np.nanmax(rel)) if rel.size else 0.0
    if rel.size and np.isnan(rel).any():
        max_rel = float("nan")
    heights = bool(np.allclose(h, hr, rtol=rtol, atol=0)) if h.size else True
    info = {"ids_equal": ids, "max_rel_err_heights": max_rel, "rtol": rtol}
    if ids and heights:
        return OK, info
    info["detail"] = ("ids differ; " if not ids else "") + (
        f"heights differ (max rel {max_rel:.2e} > rtol {rtol:g})" if not heights else "")
    return MISMATCH, info


# The untimed reference calls of our CPU engine (above the sizes scipy can
# answer) and the size at which that engine is compared with scipy first.
VALIDATE_N = 2000


def add_reference_options(parser, cpu_ref_max_n, what):
    """Add ``--cpu-ref-max-n`` and ``--validate-n`` to a script's parser.

    One wording and one validation size for every script; the largest
    reference n is the script's, because what bounds it is its engine's
    memory: ``cpu_ref_max_n`` with ``what``, the reason, for the help text.
    """
    parser.add_argument(
        "--cpu-ref-max-n", type=int, default=cpu_ref_max_n,
        help=f"largest n at which our CPU engine runs once, untimed, as the reference "
             f"above the sizes scipy answers (default {cpu_ref_max_n}: {what}; "
             "0: never)")
    parser.add_argument(
        "--validate-n", type=int, default=VALIDATE_N,
        help="size at which our CPU engine is compared with scipy when it is a reference "
             f"and the sizes give no smaller scipy case (default {VALIDATE_N})")


def validation_n(validate_n, smallest_reference_n, scipy_max_n=None):
    """Size of the case that checks our CPU engine against scipy.

    At most ``validate_n``, below the smallest n where the engine is a
    reference (half of it), within scipy's sizes, and at least 2.
    """
    n = min(validate_n, smallest_reference_n // 2)
    if scipy_max_n is not None:
        n = min(n, scipy_max_n)
    return max(2, n)


def linkage_invariants(Z, n, method):
    """Cheap checks of a full-size Z without a reference: (passed, what was checked).

    Shape ``(n - 1, 4)`` (one merge per row), finite, scipy's
    ``is_valid_linkage``, every size the sum of its children's, the last
    cluster holding all ``n`` points, and non-decreasing heights for the
    methods in ``MONOTONE_METHODS``. O(n): about a second at n = 10**6.
    """
    from scipy.cluster.hierarchy import is_valid_linkage

    Z = np.asarray(Z, dtype=np.float64)
    checked = f"{n - 1} merges, valid linkage, sizes add up"
    if Z.shape != (n - 1, 4):
        return False, f"shape {Z.shape}, not ({n - 1}, 4)"
    if not np.isfinite(Z).all():
        return False, "non-finite entries"
    if n >= 2:
        if not is_valid_linkage(Z):
            return False, "scipy's is_valid_linkage says no"
        sizes = np.concatenate((np.ones(n), Z[:, 3]))
        ab = Z[:, :2].astype(np.int64)
        if not (np.array_equal(Z[:, 3], sizes[ab[:, 0]] + sizes[ab[:, 1]]) and Z[-1, 3] == n):
            return False, "cluster sizes do not add up to their children's / to n"
    if method in MONOTONE_METHODS:
        if n >= 3 and np.any(np.diff(Z[:, 2]) < 0):
            return False, "heights decrease (the method is reducible: they may not)"
        checked += ", heights non-decreasing"
    return True, checked


def check_by_smaller_n(rows, load_z, config, rtol):
    """Label rows that no reference could check, from the same configuration at a smaller n.

    A row with a result and ``check == UNCHECKED`` becomes ``SMALLER_N`` when a
    row with the same ``config(row)`` (everything but n) at a smaller n was
    compared with scipy and is ``OK``, and ``load_z(row)``'s Z passes
    ``linkage_invariants``; ``MISMATCH`` when the invariants fail. It stays
    ``UNCHECKED``, saying why, when that smaller row is missing or differs from
    scipy. ``rtol``: the tolerance those comparisons used (a number, or a
    function of the row), for the row's text. Returns the number of new
    MISMATCH rows.
    """
    failures = 0
    for r in rows:
        if r.get("check") != UNCHECKED or "error" in r:
            continue
        same = [s for s in rows if s is not r and s["n"] < r["n"] and config(s) == config(r)
                and str(s.get("reference") or "").startswith("scipy")]
        bad = [s["n"] for s in same if s.get("check") == MISMATCH]
        good = [s["n"] for s in same if s.get("check") == OK]
        if bad:
            r["check_detail"] = (f"the same engine and configuration differs from scipy at "
                                 f"n={min(bad)}")
            continue
        if not good:
            continue
        Z = load_z(r)
        if Z is None:
            continue
        n_small = max(good)
        passed, what = linkage_invariants(Z, r["n"], r["method"])
        if passed:
            r["check"] = SMALLER_N
            r["reference"] = f"scipy at n={n_small}, same configuration"
            tol = rtol(r) if callable(rtol) else rtol
            r["check_detail"] = (f"equal to scipy at n={n_small} (ids exact, heights rtol "
                                 f"{tol:g}); at n={r['n']}: {what}")
        else:
            r["check"] = MISMATCH
            r["reference"] = "full-n invariants"
            r["check_detail"] = f"invariant failed at n={r['n']}: {what}"
            failures += 1
    return failures


# Issue 12's target table, as gpu_check.sh phase T measures it: each row names
# the JSON of the phase that measures it and the row in it; ``vs`` makes the
# target relative (at most ``factor`` times that row's time, or strictly less
# with ``strict``; ``vs`` may name its own ``json``). ``projection`` is what was
# known before a GPU measured it, labelled as such.
_PROJ = ("projection, not a measurement: {s} s at 100 % of the binding pipe "
         "(benchmarks/_instruction_model.py on the counts of results/gpu-work-count.json, "
         "{pairs} n^2 pair distances at {at})")
_CUHC = "cuhc 0.1.0's published RTX 3080 time: {s} s (not yet measured beside ours on one GPU)"
# cuhc 0.1.0's published cases (its README, RTX 3080, n x 32 standard normal):
# (method, n) -> seconds. bench_cuhc.py runs them; the target table compares.
CUHC_PUBLISHED = {("ward", 20000): 0.038, ("ward", 100000): 0.53, ("ward", 1000000): 51.0,
                  ("single", 20000): 0.027, ("single", 1000000): 34.0,
                  ("complete", 20000): 0.41, ("average", 20000): 0.41}


def _cuhc_target(method, n, ours_json, ours_impl):
    """Target row: ours (float64) strictly faster than cuhc (float32) at cuhc's published size."""
    size = f"{n:,}".replace(",", " ")
    return dict(case=f"{method} {size} x 32 vs cuhc (ours float64, cuhc float32)",
                json=ours_json, row=dict(impl=ours_impl, n=n, d=32, method=method),
                vs=dict(impl="cuhc", n=n, d=32, method=method,
                        json="bench_T.cuhc1M.json" if n >= 1000000 else "bench_T.cuhc.json"),
                factor=1.0, strict=True, vs_label="cuhc",
                projection=_CUHC.format(s=CUHC_PUBLISHED[(method, n)]))


TARGETS = (
    dict(case="ward 100 000 x 32, dense, device-resident", json="bench_T.dense.json",
         row=dict(impl="cuda-device", n=100000, d=32, method="ward", data="gaussian"),
         target_s=0.3, projection="1.05 s measured on an H100, 2026-11-25 (before issue 12)"),
    dict(case="single 1 000 000 x 32, memory-saving", json="bench_T.ms32.json",
         row=dict(impl="cuda", n=1000000, d=32, method="single", metric="euclidean"),
         target_s=10.0, projection=_PROJ.format(s=6.5, pairs=1.0, at="n = 20 000, d = 32")),
    dict(case="ward 1 000 000 x 32, memory-saving", json="bench_T.ms32.json",
         row=dict(impl="cuda", n=1000000, d=32, method="ward", metric="euclidean"),
         target_s=15.0, projection=_PROJ.format(s=8.3, pairs=1.31, at="n = 20 000, d = 32")),
    dict(case="average-cosine 1 000 000 x 384, memory-saving", json="bench_T.ms384.json",
         row=dict(impl="cuda", n=1000000, d=384, method="average", metric="cosine"),
         target_s=60.0, projection=_PROJ.format(s=53, pairs=1.15, at="n = 5 000, d = 384")
         + "; with the GEMM slabs of cuda_gemm_scan 35 s (results/gemm-work-count.json)"),
    dict(case="growing-gap line 100 000 x 32, ward, dense", json="bench_T.dense.json",
         row=dict(impl="cuda-device", n=100000, d=32, method="ward", data="growing_gap"),
         vs=dict(impl="cuda-device", n=100000, d=32, method="ward", data="gaussian"), factor=2.0,
         projection="none (chain guard; no GPU emulation of the dense rounds)"),
    dict(case="growing-gap line 100 000 x 32, average, dense", json="bench_T.dense.json",
         row=dict(impl="cuda-device", n=100000, d=32, method="average", data="growing_gap"),
         vs=dict(impl="cuda-device", n=100000, d=32, method="average", data="gaussian"),
         factor=2.0, projection="none (chain guard; no GPU emulation of the dense rounds)"),
) + tuple(_cuhc_target(m, n, "bench_T.cuhc.json", "ours64") for m, n in CUHC_PUBLISHED
          if n < 1000000) + tuple(_cuhc_target(m, n, "bench_T.ms32.json", "cuda")
                                  for m, n in CUHC_PUBLISHED if n >= 1000000)


def _find(rows, sel):
    for r in rows:
        if r.get("role", "timed") == "timed" and all(
                r.get(k, "gaussian" if k == "data" else None) == v for k, v in sel.items()):
            return r
    return None


def _seconds(r):
    """A row's time: the median of >= MIN_SAMPLES samples, else its fastest sample."""
    if r is None or "error" in r:
        return None
    if r.get("median_s") is not None:
        return r["median_s"]
    return r.get("seconds")


def target_table(load_rows):
    """Markdown lines of issue 12's targets against measured rows.

    ``load_rows(json_name)`` gives a phase's rows (None when it did not run).
    A target is ``met`` only when the row ran, was checked (``ok`` or
    ``checked-smaller-n``) and is within the target; a row that ran but was not
    checked never meets it.
    """
    lines = ["| case | measured s | samples | target | check | verdict | before (projection) |",
             "|---|---|---|---|---|---|---|"]
    for t in TARGETS:
        rows = load_rows(t["json"])
        r = _find(rows or [], t["row"])
        secs = _seconds(r)
        strict = t.get("strict", False)
        if "vs" in t:
            vs = dict(t["vs"])
            vs_rows = load_rows(vs.pop("json")) if "json" in vs else rows
            base = _seconds(_find(vs_rows or [], vs))
            limit = None if base is None else t["factor"] * base
            op = "<" if strict else "<="
            factor = "" if t["factor"] == 1 else f"{t['factor']:g} x "
            target = f"{op} {factor}{t.get('vs_label', 'Gaussian')}" + (
                "" if base is None else f" ({base:.3g} s): {op} {limit:.3g} s")
        else:
            limit, target = t["target_s"], f"<= {t['target_s']:g} s"
        if rows is None:
            verdict, check, meas, samples = "not run (phase missing)", "-", "-", "-"
        elif r is None:
            verdict, check, meas, samples = "no row", "-", "-", "-"
        elif "error" in r:
            meas, samples = "-", "ERROR"
            check = f"{r.get('check', UNCHECKED)}: {r['error'][:120]}"
            took = re.search(r"timed out after ([0-9.]+)", r["error"])
            verdict = "not measured"
            if took and limit is not None and float(took.group(1)) > limit:
                verdict = f"NOT met (timed out after {float(took.group(1)):g} s > target)"
        else:
            meas = f"{secs:.3g}"
            samples = str(r.get("n_samples", "-"))
            check = r.get("check", UNCHECKED)
            if check not in (OK, SMALLER_N):
                verdict = f"not met (row is {check})"
            elif limit is None:
                verdict = "no baseline"
            else:
                within = secs < limit if strict else secs <= limit
                verdict = "met" if within else "NOT met"
        lines.append(f"| {t['case']} | {meas} | {samples} | {target} | {check} | {verdict} | "
                     f"{t['projection']} |")
    return lines


# A worker process prints each result row on a line of its own after this tag.
RESULT_TAG = "@@RESULT "


def spawn_worker(script, spec, timeout):
    """Run ``script --worker SPEC_JSON`` in a fresh Python process.

    Returns ``(rows, tail, rc)``: the rows it printed after ``RESULT_TAG``
    (also those printed before a crash or a timeout), the last three lines of
    its stderr joined by `` | `` (or the timeout), and its exit status (None
    after a timeout). The caller turns the cases it did not finish into error
    rows.
    """
    cmd = [sys.executable, os.path.abspath(script), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = f"timed out after {timeout} s", None
    rows = [json.loads(ln[len(RESULT_TAG):]) for ln in out.splitlines()
            if ln.startswith(RESULT_TAG)]
    return rows, " | ".join((err or "").strip().splitlines()[-3:]), rc
