"""benchmarks/count_gemm_work.py: its counts are the GEMM path's, its heights the engine's.

The emulation of the average/cosine rounds with GEMM scans must merge as the
CPU engine does, and recheck exactly the pairs the real driver
(``cuda_gemm_scan`` in numba-cuda's simulator) rechecks: same multiply-adds,
same number of exact keys. Small n: seconds each.
"""

import json

import numpy as np
import pytest

import count_gemm_work as cgm
from gpu_hclust import _backend
from gpu_hclust.kernels import cuda_gemm_scan, cuda_vector
from lowmem_common import lowmem_linkage

SIMULATED = _backend.simulator_enabled()


@pytest.mark.parametrize("data", ["gaussian", "duplicates"])
def test_heights_equal_the_cpu_engine(data):
    X = cgm.cgw.make_data(data, 150, 16, 0)
    row = cgm.count_run(150, 16, data, 0, kk=4, check_max_n=150)
    assert row["check"] == cgm.OK, row["check_detail"]
    h, _, counter, _ = cgm.emulate(X, kk=4)
    Z = lowmem_linkage(X, "average", "cosine", "cpu")
    np.testing.assert_allclose(np.sort(h), np.sort(Z[:, 2]), rtol=1e-9, atol=1e-12)
    assert row["gemm_macs_per_n2d"] >= 1.0  # the first pass is n^2 d on its own
    assert row["rechecks_per_row_scan"] >= 5  # each row needs its K + 1 first exactly


def test_a_wrong_merge_is_a_mismatch(monkeypatch):
    # the check can fail: heights from a perturbed emulation are reported as a mismatch
    real = cgm.emulate

    def off(X, kk=None, guard=True):
        h, rounds, counter, chain = real(X, kk, guard)
        return h * (1 + 1e-6), rounds, counter, chain
    monkeypatch.setattr(cgm, "emulate", off)
    assert cgm.count_run(60, 8, "gaussian", 0, kk=4, check_max_n=60)["check"] == cgm.MISMATCH


@pytest.mark.skipif(not SIMULATED, reason="spies on the simulator's kernel calls")
def test_counts_equal_the_drivers_rechecks(monkeypatch):
    X = cgm.cgw.make_data("gaussian", 32, 5, 1)
    _, _, counter, chain = cgm.emulate(X, kk=3)
    pairs = []
    kernel = cuda_gemm_scan.pair_keys

    class Spy:
        def __getitem__(self, config):
            def call(*args):
                pairs.append(int(args[5]))
                return kernel[config](*args)
            return call

    monkeypatch.setattr(cuda_gemm_scan, "pair_keys", Spy())
    monkeypatch.setattr(cuda_gemm_scan, "ENABLED", True)
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", 3)
    lowmem_linkage(X, "average", "cosine", "cuda", None, 32)
    assert sum(pairs) == counter.rechecks > 0


def test_json_output_is_labelled_a_projection(tmp_path):
    out = tmp_path / "gemm.json"
    assert cgm.main(["--n", "80", "--d", "8", "--data", "gaussian,growing_gap",
                     "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    ok, skipped = doc["results"]
    assert "skipped" in skipped  # the line starts at the origin: cosine undefined
    proj = ok["projection_1m_x_384"]
    assert proj["label"].startswith("PROJECTION")
    assert proj["assumptions"]["dgemm_flop_per_s"] == cgm.DGEMM_FLOPS
    assert proj["total_s"] == pytest.approx(proj["gemm_s"] + proj["selection_s"]
                                            + proj["recheck_s"] + proj["chain_s"])
