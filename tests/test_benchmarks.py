"""The benchmark scripts report a check result per row and honest provenance.

``bench_linkage.py --quick`` runs as the CLI runs it (a subprocess writing into a
folder given by ``--out``); its check logic and ``_common``'s helpers are also
tested directly on hand-made rows (benchmarks/ is on pytest's pythonpath).
Nothing here asserts a timing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _common import (MISMATCH, OK, SMALLER_N, UNCHECKED, check_by_smaller_n, compare_linkage,
                     linkage_invariants, provenance, sample_stats, target_table)
from bench_linkage import check_rows, plan_references
from scipy.cluster.hierarchy import linkage as scipy_linkage

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_linkage.py"


def _run_quick(out, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_ENABLE_CUDASIM", None)  # the script never runs the simulator
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300, env=env, cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list(Path(out).glob("bench_linkage-*.json"))
    assert len(files) == 1, (files, proc.stdout[-2000:])
    return proc.stdout, json.loads(files[0].read_text())


def test_quick_run_checks_every_row_and_never_says_ok_without_reference(tmp_path):
    # scipy's reference stops at n = 300, so the cpu rows at n = 1000 have none:
    # they are labelled from the same configuration at 300 (checked-smaller-n),
    # never ok; scipy's own reference rows stay unchecked.
    results = ROOT / "benchmarks" / "results"
    before = sorted(results.iterdir()) if results.is_dir() else []
    stdout, doc = _run_quick(tmp_path, "--backends", "cpu", "--ref-max-n", "300")
    rows = doc["results"]
    assert rows
    assert all(r["check"] in (OK, MISMATCH, SMALLER_N, UNCHECKED) for r in rows)
    timed = [r for r in rows if r["role"] == "timed"]
    assert {r["n"] for r in timed} == {300, 1000}
    for r in timed:
        assert r["n_samples"] >= 3 and r["min_s"] <= r["median_s"] <= r["max_s"]
        if r["n"] == 300:
            assert (r["check"], r["reference"]) == (OK, "scipy")
        else:
            assert (r["check"], r["reference"]) == (SMALLER_N, "scipy at n=300, same configuration")
            assert "at n=1000: 999 merges, valid linkage" in r["check_detail"]
    # the printed table carries the same result on every row
    table = [ln for ln in stdout.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(table) == len(rows)
    assert all(ln.rstrip(" |").split("| ")[-1].split()[0] in (OK, MISMATCH, SMALLER_N, UNCHECKED)
               for ln in table)
    assert sum("| checked-smaller-n vs scipy at n=300" in ln for ln in table) == 3
    assert sum(ln.endswith("unchecked (scipy is the reference; fastcluster did not run on this "
                           "case) |") for ln in table) == 3
    assert doc["meta"]["git_commit"] and doc["meta"]["git_dirty"] in (True, False, "unknown")
    # written where --out says, nowhere in the checkout
    assert (sorted(results.iterdir()) if results.is_dir() else []) == before


def _row(impl, n, Z, zs, role="timed", dtype="float64", method="ward"):
    path = f"{impl}-{n}-{role}"
    zs[path] = Z
    return {"impl": impl, "n": n, "d": 4, "method": method, "role": role, "dtype": dtype,
            "z_path": path}


@pytest.fixture
def trees():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 4))
    Y = rng.standard_normal((80, 4))
    return scipy_linkage(X, "ward"), scipy_linkage(Y, "ward")


def test_cpu_reference_is_trusted_only_after_a_smaller_scipy_check(trees):
    Z40, Z80 = trees
    zs = {}
    rows = [_row("scipy", 40, Z40, zs, "reference"), _row("cpu", 40, Z40, zs, "reference"),
            _row("cpu", 80, Z80, zs, "reference"), _row("cuda", 80, Z80, zs)]
    check_rows(rows, 1e-9, load=zs.__getitem__)
    assert (rows[3]["check"], rows[3]["reference"]) == (OK, "cpu (equal to scipy at n=40)")
    # the same rows, but our CPU engine differs from scipy at the smaller n
    bad = Z40.copy()
    bad[-1, 2] *= 1 + 1e-6
    zs2 = {}
    rows = [_row("scipy", 40, Z40, zs2, "reference"), _row("cpu", 40, bad, zs2, "reference"),
            _row("cpu", 80, Z80, zs2, "reference"), _row("cuda", 80, Z80, zs2)]
    check_rows(rows, 1e-9, load=zs2.__getitem__)
    assert rows[1]["check"] == MISMATCH
    assert rows[3]["check"] == UNCHECKED
    assert "differs from scipy at n=40" in rows[3]["check_detail"]
    # no smaller-n comparison at all: unchecked, never ok
    zs3 = {}
    rows = [_row("cpu", 80, Z80, zs3, "reference"), _row("cuda", 80, Z80, zs3)]
    check_rows(rows, 1e-9, load=zs3.__getitem__)
    assert rows[1]["check"] == UNCHECKED


def test_mismatch_on_ids_or_heights(trees):
    Z40, _ = trees
    swapped = Z40.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    far = Z40.copy()
    far[5, 2] *= 1 + 1e-6
    for other in (swapped, far):
        zs = {}
        rows = [_row("scipy", 40, Z40, zs), _row("cpu", 40, other, zs)]
        check_rows(rows, 1e-9, load=zs.__getitem__)
        assert rows[1]["check"] == MISMATCH and rows[1]["reference"] == "scipy"
        # scipy's own row has no fastcluster to meet: unchecked, not ok
        assert rows[0]["check"] == UNCHECKED
    close = Z40.copy()
    close[:, 2] *= 1 + 1e-12
    assert compare_linkage(close, Z40, 1e-9)[0] == OK


def test_plan_adds_validation_when_cpu_is_the_reference():
    class Args:
        sizes, d, methods, dtype = [50000, 100000], [32], ["ward"], "float64"
        cpu_max_n, ref_max_n, cpu_ref_max_n, validate_n = 20000, 20000, 100000, 2000

    refs = plan_references(Args, ["cuda-device"])
    assert ("cpu", 50000, 32, "ward") in refs and ("cpu", 100000, 32, "ward") in refs
    assert ("scipy", 2000, 32, "ward") in refs and ("cpu", 2000, 32, "ward") in refs
    Args.cpu_ref_max_n = 50000  # nothing checks the GPU at 100 000: no reference planned
    assert ("cpu", 100000, 32, "ward") not in plan_references(Args, ["cuda-device"])


def test_sample_stats_needs_three_samples():
    assert sample_stats([1.0])["median_s"] is None
    s = sample_stats([3.0, 1.0, 2.0])
    assert (s["min_s"], s["median_s"], s["max_s"], s["n_samples"]) == (1.0, 2.0, 3.0, 3)


def test_provenance_unknown_outside_a_checkout(tmp_path, monkeypatch):
    assert provenance(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert provenance() == {"git_commit": "unknown", "git_dirty": "unknown"}


def test_repeat_below_three_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--repeat", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2
    assert "--repeat must be at least 3" in proc.stderr



# ---------------------------------------------------------------------------
# Rows no reference reaches: the same configuration at a smaller n + invariants


def test_linkage_invariants_catch_broken_trees(trees):
    _, Z80 = trees
    assert linkage_invariants(Z80, 80, "ward") == (
        True, "79 merges, valid linkage, sizes add up, heights non-decreasing")
    assert not linkage_invariants(Z80[:-1], 80, "ward")[0]  # a merge missing
    inverted = Z80.copy()
    inverted[[10, 11], 2] = inverted[[11, 10], 2] + [1.0, 0.0]  # a height goes down
    ok, why = linkage_invariants(inverted, 80, "ward")
    assert not ok and "heights decrease" in why
    # centroid/median may invert: no monotonicity claimed, nor checked
    assert linkage_invariants(inverted, 80, "centroid") == (
        True, "79 merges, valid linkage, sizes add up")
    sizes = Z80.copy()
    sizes[5, 3] += 1
    assert not linkage_invariants(sizes, 80, "ward")[0]
    reused = Z80.copy()
    reused[1, :2] = reused[0, :2]  # a cluster merged twice
    assert not linkage_invariants(reused, 80, "ward")[0]


def _cfg(r):
    return (r["impl"], r["method"], r.get("data", "gaussian"))


def test_check_by_smaller_n_labels_only_what_was_checked(trees):
    Z40, Z80 = trees
    zs = {("cuda", 80): Z80}

    def rows(small_check, big_z=Z80):
        zs[("cuda", 80)] = big_z
        return [{"impl": "cuda", "method": "ward", "n": 40, "check": small_check,
                 "reference": "scipy"},
                {"impl": "cuda", "method": "ward", "n": 80, "check": UNCHECKED}]

    def load(r):
        return zs.get((r["impl"], r["n"]))

    got = rows(OK)
    assert check_by_smaller_n(got, load, _cfg, 1e-10) == 0
    assert got[1]["check"] == SMALLER_N
    assert got[1]["reference"] == "scipy at n=40, same configuration"
    assert "rtol 1e-10" in got[1]["check_detail"] and "79 merges" in got[1]["check_detail"]
    # the same configuration differs from scipy at the smaller n: never promoted
    got = rows(MISMATCH)
    check_by_smaller_n(got, load, _cfg, 1e-10)
    assert got[1]["check"] == UNCHECKED and "differs from scipy at n=40" in got[1]["check_detail"]
    # another configuration at the smaller n does not count
    got = rows(OK)
    got[0]["data"] = "growing_gap"
    check_by_smaller_n(got, load, _cfg, 1e-10)
    assert got[1]["check"] == UNCHECKED
    # checked small, but the big Z breaks an invariant: MISMATCH
    broken = Z80.copy()
    broken[-1, 3] = 79
    got = rows(OK, broken)
    assert check_by_smaller_n(got, load, _cfg, 1e-10) == 1
    assert got[1]["check"] == MISMATCH and "invariant failed" in got[1]["check_detail"]


def test_check_rows_labels_big_dense_rows_per_data_set(trees):
    Z40, Z80 = trees
    zs = {}

    def row(impl, n, Z, role="timed", data="gaussian"):
        r = _row(impl, n, Z, zs, role)
        r["z_path"] += "-" + data
        zs[r["z_path"]] = Z
        r["data"] = data
        return r

    rows = [row("scipy", 40, Z40, "reference"), row("cuda-device", 40, Z40),
            row("cuda-device", 80, Z80),
            row("scipy", 40, Z40, "reference", "growing_gap"),
            row("cuda-device", 80, Z80, data="growing_gap")]
    check_rows(rows, 1e-9, load=zs.__getitem__)
    assert rows[1]["check"] == OK
    assert rows[2]["check"] == SMALLER_N
    # growing_gap has scipy at 40 but no cuda-device row there: not checked
    assert rows[4]["check"] == UNCHECKED


def test_bench_linkage_refuses_unknown_data_set(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data", "gaussian,spirall",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2
    assert "unknown data set(s) ['spirall'] for --data" in proc.stderr


def test_bench_lowmem_data_and_sample_budget_on_cpu(tmp_path):
    # growing-gap line, our CPU memory-saving engine: n=150 against scipy, n=400
    # only through the same configuration at 150 (as phase T runs 1e6 rows)
    out = tmp_path / "lm.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_lowmem.py"), "--impls", "cpu",
         "--sizes", "150,400", "--dims", "3", "--pairs", "ward:euclidean",
         "--data", "growing_gap", "--scipy-max-n", "150", "--cpu-ref-max-n", "0",
         "--sample-budget-s", "1e-9", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["n"]: r for r in json.loads(out.read_text())["results"]}
    assert {r["data"] for r in rows.values()} == {"growing_gap"}
    assert (rows[150]["check"], rows[150]["reference"]) == (OK, "scipy")
    big = rows[400]
    assert big["check"] == SMALLER_N and "at n=400: 399 merges" in big["check_detail"]
    # one sample spent the budget: no median, the sample itself is reported
    assert big["n_samples"] == 1 and big["median_s"] is None
    assert big["seconds"] == big["samples_s"][0]
    assert "checks: 1 ok, 0 MISMATCH, 1 checked-smaller-n, 0 unchecked" in proc.stdout


# ---------------------------------------------------------------------------
# bench_cuhc (our side on the CPU: the script's plumbing without a GPU or cuhc)


def test_bench_cuhc_smoke_on_cpu(tmp_path):
    out = tmp_path / "cuhc.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_cuhc.py"), "--impls", "ours64,ours32",
         "--ours-backend", "cpu", "--cases", "single:500", "--check-n", "200", "--d", "4",
         "--out", str(out)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {(r["impl"], r["n"]): r for r in json.loads(out.read_text())["results"]}
    assert rows[("ours64", 200)]["reference"] == "scipy"
    assert rows[("ours32", 200)]["reference"] == "scipy on float32-rounded data"
    for impl in ("ours64", "ours32"):
        assert rows[(impl, 200)]["check"] == OK
        assert rows[(impl, 200)]["sorted_heights_max_rel_err_scipy64"] < 1e-5
        assert rows[(impl, 500)]["check"] == SMALLER_N
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("| single | 500 |")]
    assert len(table) == 1 and "checked-smaller-n" in table[0]


def test_bench_cuhc_float32_check_and_accuracy(trees):
    from bench_cuhc import check_at_check_n

    Z40, _ = trees
    swapped = Z40.copy()
    swapped[-1, 2] *= 1 + 1e-7  # within float32's tolerance, beyond float64's
    r32 = {"impl": "cuhc"}
    assert check_at_check_n(r32, swapped, Z40, Z40) == OK
    assert r32["sorted_heights_max_rel_err_scipy64"] == pytest.approx(1e-7, rel=1e-3)
    r64 = {"impl": "ours64"}
    assert check_at_check_n(r64, swapped, Z40, Z40) == MISMATCH


def test_bench_cuhc_refuses_bad_cases(tmp_path):
    script = str(ROOT / "benchmarks" / "bench_cuhc.py")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for args, msg in ((["--cases", "centroid:1000"], "--cases wants method:n"),
                      (["--cases", "ward:1000", "--check-n", "1000"], "--check-n must be"),
                      (["--impls", "cuhc,fastcluster"], "unknown implementation(s)")):
        proc = subprocess.run([sys.executable, script, *args, "--out", str(tmp_path / "x")],
                              capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 2 and msg in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------
# Issue 12's target table and gpu_check.sh's plan


def _t_rows(ward_s=0.25, ward_check=OK, gap_s=0.4, gap_check=SMALLER_N, ours_s=0.04):
    return {"bench_T.dense.json": [
        {"impl": "cuda-device", "n": 100000, "d": 32, "method": "ward", "data": "gaussian",
         "role": "timed", "median_s": ward_s, "n_samples": 3, "check": ward_check},
        {"impl": "cuda-device", "n": 100000, "d": 32, "method": "ward", "data": "growing_gap",
         "role": "timed", "median_s": gap_s, "n_samples": 3, "check": gap_check}],
        "bench_T.ms32.json": [
        {"impl": "cuda", "n": 1000000, "d": 32, "method": "ward", "metric": "euclidean",
         "role": "timed", "median_s": None, "seconds": 12.0, "n_samples": 1,
         "check": SMALLER_N},
        {"impl": "cuda", "n": 1000000, "d": 32, "method": "single", "metric": "euclidean",
         "role": "timed", "error": "TimeoutExpired: ... timed out after 114.0 seconds",
         "check": UNCHECKED}],
        "bench_T.cuhc.json": [
        {"impl": "ours64", "n": 20000, "d": 32, "method": "ward", "role": "timed",
         "median_s": ours_s, "seconds": ours_s, "n_samples": 3, "check": SMALLER_N},
        {"impl": "cuhc", "n": 20000, "d": 32, "method": "ward", "role": "timed",
         "median_s": 0.05, "seconds": 0.05, "n_samples": 3, "check": SMALLER_N}],
        "bench_T.cuhc1M.json": [
        {"impl": "cuhc", "n": 1000000, "d": 32, "method": "ward", "role": "timed",
         "median_s": None, "seconds": 20.0, "n_samples": 1, "check": SMALLER_N}]}


def test_target_table_meets_only_checked_rows():
    def lines(**kw):
        docs = _t_rows(**kw)
        return {ln.split(" | ")[0][2:]: ln for ln in target_table(docs.get)[2:]}

    got = lines()
    assert "| met |" in got["ward 100 000 x 32, dense, device-resident"]
    assert "| 12 | 1 | <= 15 s | checked-smaller-n | met |" in got[
        "ward 1 000 000 x 32, memory-saving"]
    assert "<= 2 x Gaussian (0.25 s): <= 0.5 s" in got["growing-gap line 100 000 x 32, ward, dense"]
    assert "NOT met (timed out after 114 s > target)" in got[
        "single 1 000 000 x 32, memory-saving"]
    assert "not run (phase missing)" in got["average-cosine 1 000 000 x 384, memory-saving"]
    assert "projection, not a measurement" in got["average-cosine 1 000 000 x 384, memory-saving"]
    # fast but unchecked: never met; slow and checked: NOT met
    assert "not met (row is unchecked)" in lines(ward_check=UNCHECKED)[
        "ward 100 000 x 32, dense, device-resident"]
    assert "| NOT met |" in lines(ward_s=0.31)["ward 100 000 x 32, dense, device-resident"]
    assert "| NOT met |" in lines(gap_s=0.51)["growing-gap line 100 000 x 32, ward, dense"]
    # beside cuhc: strictly faster; the 1e6 rows compare two phases' files
    cuhc20k = "ward 20 000 x 32 vs cuhc (ours float64, cuhc float32)"
    assert "< cuhc (0.05 s): < 0.05 s | checked-smaller-n | met |" in got[cuhc20k]
    assert "| NOT met |" in lines(ours_s=0.05)[cuhc20k]
    assert "| 12 | 1 | < cuhc (20 s): < 20 s | checked-smaller-n | met |" in got[
        "ward 1 000 000 x 32 vs cuhc (ours float64, cuhc float32)"]
    assert "published RTX 3080 time: 34.0 s" in got[
        "single 1 000 000 x 32 vs cuhc (ours float64, cuhc float32)"]


def test_gpu_check_dry_run_plans_the_whole_table_within_budget(tmp_path):
    env = dict(os.environ, GPU_CHECK_DRY_RUN="1", GPU_CHECK_PHASES="T",
               PYTHON=sys.executable, OUT=str(tmp_path))
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = [ln for ln in proc.stdout.splitlines() if ln.startswith("DRY-RUN (limit ")]
    limits = [int(ln.split("limit ")[1].split("s)")[0]) for ln in plan]
    # one call, no tests: the five sub-phases of T, inside 8 minutes
    assert len(plan) == 5 and sum(limits) + 15 <= 480, plan
    text = "\n".join(plan)
    assert "--data gaussian,growing_gap" in text and "--sizes 5000,100000" in text
    assert "--sizes 10000,1000000 --dims 32" in text and "--dims 384" in text
    assert "--cases ward:1000000,single:1000000" in text
    for name in ("T.dense", "T.ms32", "T.ms384", "T.cuhc", "T.cuhc1M"):
        assert f"bench_{name}.json" in text
    from _common import TARGETS

    assert proc.stdout.count("| not run (phase missing) |") == len(TARGETS) == 13
    assert "projections, not measurements" in proc.stdout
