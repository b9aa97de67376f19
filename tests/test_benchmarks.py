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
from _common import MISMATCH, OK, UNCHECKED, compare_linkage, provenance, sample_stats
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


def test_quick_run_checks_every_row_and_says_unchecked_without_reference(tmp_path):
    # scipy's reference stops at n = 300, so the cpu rows at n = 1000 have none.
    results = ROOT / "benchmarks" / "results"
    before = sorted(results.iterdir()) if results.is_dir() else []
    stdout, doc = _run_quick(tmp_path, "--backends", "cpu", "--ref-max-n", "300")
    rows = doc["results"]
    assert rows
    assert all(r["check"] in (OK, MISMATCH, UNCHECKED) for r in rows)
    timed = [r for r in rows if r["role"] == "timed"]
    assert {r["n"] for r in timed} == {300, 1000}
    for r in timed:
        assert r["n_samples"] >= 3 and r["min_s"] <= r["median_s"] <= r["max_s"]
        if r["n"] == 300:
            assert (r["check"], r["reference"]) == (OK, "scipy")
        else:
            assert r["check"] == UNCHECKED and r["reference"] is None
    # the printed table carries the same result on every row
    table = [ln for ln in stdout.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(table) == len(rows)
    assert all(ln.rstrip(" |").split("| ")[-1].split()[0] in (OK, MISMATCH, UNCHECKED)
               for ln in table)
    assert sum(ln.endswith("unchecked (no reference ran at this n) |") for ln in table) == 3
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
