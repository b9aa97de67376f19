"""GPU crossovers: where they live (gpu_hclust/_crossovers.py), how the plan uses them,
and how benchmarks/bench_crossover.py turns measurements into them."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_crossover as bx  # noqa: E402
from gpu_hclust import _crossovers, _plan  # noqa: E402


def _row(case, variant, method, n, median_s, check="ok"):
    return dict(case=case, variant=variant, method=method, n=n, d=32, median_s=median_s,
                samples_s=[median_s] * 3, check=check, reference="scipy")


def test_recommend_takes_the_first_size_from_which_the_gpu_always_wins():
    rows = []
    for m in ("single", "ward", "average"):
        for n, cpu, gpu in ((500, 0.01, 0.02), (1000, 0.04, 0.03), (2000, 0.1, 0.12),
                            (4000, 0.4, 0.1), (8000, 1.6, 0.2)):
            rows += [_row("backend", "cpu", m, n, cpu), _row("backend", "cuda", m, n, gpu)]
    # 1000 wins but 2000 does not: the crossover is 4000
    assert bx.recommend(rows, "backend") == {"all": 4000}
    # an unchecked row cannot vote
    rows[-1]["check"] = "unchecked"
    assert bx.recommend(rows, "backend") == {"all": None}


def test_recommend_is_per_family_for_the_memory_path():
    rows = [_row("memory", "dense", "single", 20000, 0.5), _row("memory", "saving", "single", 20000, 0.3),
            _row("memory", "dense", "ward", 20000, 0.5), _row("memory", "saving", "ward", 20000, 0.9),
            _row("memory", "dense", "single", 50000, 2.0), _row("memory", "saving", "single", 50000, 1.0),
            _row("memory", "dense", "ward", 50000, 2.0), _row("memory", "saving", "ward", 50000, 1.9)]
    assert bx.recommend(rows, "memory") == {"mst": 20000, "reducible": 50000}


def test_apply_writes_the_crossovers_module_and_refuses_cpu_results(tmp_path):
    target = tmp_path / "_crossovers.py"
    shutil.copy(ROOT / "gpu_hclust" / "_crossovers.py", target)
    doc = dict(gpu="NVIDIA H200", accelerated="cuda", started="2026-12-04T10:00:00",
               git_commit="abcdef1234567", recommendation={
                   "backend": {"all": 4000}, "memory": {"mst": 20000, "reducible": None}})
    res = tmp_path / "r.json"
    res.write_text(json.dumps(doc))
    bx.apply(res, target)
    ns = {}
    exec(target.read_text(), ns)
    assert ns["AUTO_CUDA_MIN_N"] == 4000
    assert ns["GPU_MEMORY_SAVING_MIN_N"] == {"mst": 20000}
    assert "NVIDIA H200" in ns["AUTO_CUDA_SOURCE"] and "abcdef1234" in ns["GPU_MEMORY_SAVING_SOURCE"]
    res.write_text(json.dumps(dict(doc, gpu=None, accelerated="cpu")))
    with pytest.raises(SystemExit, match="not measured with a GPU"):
        bx.apply(res, target)


def test_check_rows_uses_scipy_then_the_other_variant(tmp_path):
    from scipy.cluster.hierarchy import linkage

    rows = []
    for n in (40, 90):
        Z = linkage(bx.make_data(n, 4, 0), "ward")
        for v in ("dense", "saving"):
            path = tmp_path / f"{v}-{n}.npy"
            Zv = Z.copy()
            if v == "saving" and n == 90:
                Zv[5, 2] *= 1.001  # a wrong height past the scipy size
            np.save(path, Zv)
            rows.append(dict(case="memory", variant=v, method="ward", n=n, d=4, z_path=str(path)))
    assert bx.check_rows(rows, 4, 0, scipy_max_n=50) == 2  # both n = 90 rows disagree
    got = {(r["variant"], r["n"]): (r["check"], r["reference"]) for r in rows}
    assert got[("dense", 40)] == ("ok", "scipy")
    assert got[("saving", 90)][0] == "MISMATCH"


def test_plan_takes_the_memory_saving_engine_on_the_gpu_only_where_measured(monkeypatch):
    from gpu_hclust._methods import get_method

    class Inp:
        n, kind, metric = 30000, "observations", "euclidean"
        data = np.zeros((1, 32))

    spec = get_method("ward")
    monkeypatch.setattr(_plan, "GPU_MEMORY_SAVING_MIN_N", {})
    assert not _plan._memory_saving_is_faster(Inp, spec, "cuda")
    monkeypatch.setattr(_plan, "GPU_MEMORY_SAVING_MIN_N", {"reducible": 20000})
    assert _plan._memory_saving_is_faster(Inp, spec, "cuda")
    Inp.n = 10000
    assert not _plan._memory_saving_is_faster(Inp, spec, "cuda")


def test_sources_say_whether_a_gpu_measured_them():
    assert "not measured" in _crossovers.AUTO_CUDA_SOURCE or "measured by" in _crossovers.AUTO_CUDA_SOURCE
