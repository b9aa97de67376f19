"""The chain guard (kernels/cuda_chain) in numba-cuda's simulator, and its PTX.

Simulated threads are Python threads: n <= 40, 32 threads per block, and a
cooperative grid of one block (the simulator's limit). Each test runs in a
few seconds. The chain is checked from round 0 (``cuda_chain.run``: the whole
linkage by the chain) and from a mid-run state (``_rnn_rounds`` handing over
after a chosen round), against scipy and the CPU memory-saving engine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import is_monotonic, is_valid_linkage
from scipy.spatial.distance import pdist

from _adversarial import make
from gpu_hclust import _backend, _lowmem
from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage
from gpu_hclust.kernels import cuda_chain, formulas, metrics
from lowmem_common import assert_same_linkage, lowmem_linkage, scipy_reference
from reference import replay_check

SIMULATED = _backend.simulator_enabled()
ROOT = Path(__file__).resolve().parents[1]
REDUCIBLE = [("ward", "euclidean"), ("average", "sqeuclidean"), ("average", "cosine")]


def _chain_only(X, method, metric, **kw):
    """Z of the whole linkage by the device chain (no rounds), heights unscaled."""
    spec = METHODS[method]
    CT, _, code, mcode, e = _lowmem.prepare_scaled(X, spec, metric, np.float64, np)
    a, b, h = cuda_chain.run(CT, code, mcode, np, tpb=32, **kw)
    return merge_log_to_linkage(a, b, _lowmem._unscale(h, e, spec, metric), X.shape[0], spec)


class _HandOver:
    """Stand-in for ``cuda_chain.hands_over``: hand over after round ``after``
    (1-based), and record the clusters left then (``finish``'s m)."""

    def __init__(self, after):
        self.after, self.calls, self.left = after, 0, []

    def __call__(self, merged, active):
        self.calls += 1
        if self.calls == self.after:
            self.left.append(active - merged)
            return True
        return False


def _rounds_then_chain(monkeypatch, X, method, metric, after):
    spy = _HandOver(after)
    monkeypatch.setattr(cuda_chain, "hands_over", spy)
    Z = lowmem_linkage(X, method, metric, "cuda", None, 32)
    return Z, spy.left


@pytest.mark.skipif(not SIMULATED, reason="a real GPU is in use: the simulator is off")
def test_simulator_runs_the_kernel():
    from numba import cuda
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    assert cuda.implementation == "NVIDIA"
    assert isinstance(cuda_chain.chain_steps, FakeCUDAKernel)


def test_trigger_rule():
    assert cuda_chain.CHAIN_FRACTION == 0.02
    assert cuda_chain.hands_over(1, 3)  # one pair per round: always
    assert not cuda_chain.hands_over(2, 75)  # 2 >= max(2, 1.5)
    assert cuda_chain.hands_over(19, 1000)  # 19 < 20
    assert not cuda_chain.hands_over(20, 1000)


@pytest.mark.parametrize("method, metric", REDUCIBLE)
def test_chain_from_round_0_equals_scipy_and_the_cpu_engine(rng, method, metric):
    X = rng.standard_normal((16, 3))
    Z = _chain_only(X, method, metric)
    assert_same_linkage(Z, scipy_reference(X, method, metric))
    assert_same_linkage(Z, lowmem_linkage(X, method, metric, "cpu"), rtol=1e-12)


@pytest.mark.parametrize("method, metric", REDUCIBLE)
def test_chain_from_a_mid_run_state(rng, monkeypatch, method, metric):
    # 36 points: two row blocks of the rounds' kernels, and more active slots
    # than threads in the chain's grid-stride scan. The chain takes over after
    # round 2 with most clusters left, so it runs on merged summaries.
    X = rng.standard_normal((36, 4))
    Z, left = _rounds_then_chain(monkeypatch, X, method, metric, after=2)
    assert len(left) == 1 and 2 < left[0] < 36
    assert_same_linkage(Z, scipy_reference(X, method, metric))
    assert_same_linkage(Z, lowmem_linkage(X, method, metric, "cpu"), rtol=1e-12)


def test_chain_resumes_across_launches(rng, monkeypatch):
    # One merge per launch: the chain, active list and state persist on the device.
    X = rng.standard_normal((10, 3))
    whole = _chain_only(X, "ward", "euclidean")
    monkeypatch.setattr(cuda_chain, "CHUNK_MERGES", 1)
    assert cuda_chain.chunk_merges(10, 3) == 1
    counter = np.zeros(1, dtype=np.int64)
    np.testing.assert_array_equal(_chain_only(X, "ward", "euclidean", counter=counter), whole)
    assert counter[0] == 9


def test_growing_gap_line_hands_over_and_equals_scipy(monkeypatch):
    X = make("growing_gap", 34, 2, 0)
    real = cuda_chain.hands_over
    decisions = []

    def rule(merged, active):  # the real rule, recorded
        decisions.append((merged, active, real(merged, active)))
        return decisions[-1][2]

    monkeypatch.setattr(cuda_chain, "hands_over", rule)
    Z = lowmem_linkage(X, "ward", "euclidean", "cuda", None, 32)
    # Round 1 merges the one reciprocal pair, at the small end: the chain does the rest.
    assert decisions == [(1, 34, True)]
    assert_same_linkage(Z, scipy_reference(X, "ward", "euclidean"))
    assert_same_linkage(Z, lowmem_linkage(X, "ward", "euclidean", "cpu"), rtol=1e-12)


@pytest.mark.parametrize("method, metric", [("ward", "euclidean"), ("average", "sqeuclidean")])
def test_duplicates_are_deterministic_and_replay_valid(monkeypatch, method, metric):
    X = make("duplicates", 20, 3, 1)
    assert len(np.unique(X, axis=0)) <= 5  # many exact ties at 0
    Z1, left = _rounds_then_chain(monkeypatch, X, method, metric, after=1)
    Z2, _ = _rounds_then_chain(monkeypatch, X, method, metric, after=1)
    assert left and left[0] > 2
    np.testing.assert_array_equal(Z1, Z2)
    assert is_valid_linkage(Z1, throw=True)
    assert is_monotonic(Z1)
    y = pdist(X, "euclidean" if method == "ward" else metric)
    replay_check(Z1, y, method)
    # Heights of a reducible linkage do not depend on how ties are broken.
    assert np.allclose(np.sort(Z1[:, 2]), np.sort(scipy_reference(X, method, metric)[:, 2]),
                       rtol=1e-10, atol=1e-12)


def test_chain_only_on_duplicates_is_replay_valid():
    X = make("duplicates", 16, 2, 3)
    Z = _chain_only(X, "ward", "euclidean")
    np.testing.assert_array_equal(Z, _chain_only(X, "ward", "euclidean"))
    assert is_valid_linkage(Z, throw=True)
    replay_check(Z, pdist(X), "ward")


def test_no_finite_candidate_raises():
    CT = np.array([[0.0, 1.0, np.nan, 3.0], [0.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="no finite distance is left.*nearest-neighbour chain"):
        cuda_chain.run(CT, formulas.WARD, metrics.SQEUCLIDEAN, np, tpb=32)


def test_run_refuses_non_reducible_summaries():
    with pytest.raises(ValueError, match="reducible summaries only"):
        cuda_chain.run(np.zeros((2, 3)), formulas.CENTROID, metrics.SQEUCLIDEAN, np, tpb=32)


def test_run_with_fewer_than_two_clusters():
    a, b, h = cuda_chain.run(np.zeros((3, 1)), formulas.WARD, metrics.SQEUCLIDEAN, np, tpb=32)
    assert a.shape == b.shape == h.shape == (0,)


def test_input_of_the_public_path_is_not_modified(monkeypatch):
    X = make("spiral", 12, 3, 2)
    before = X.copy()
    _rounds_then_chain(monkeypatch, X, "average", "cosine", after=1)
    np.testing.assert_array_equal(X, before)


# --------------------------------------------------------------------------
# PTX: the kernel compiles for a real device (test_ptx.py does every module;
# this one checks the chain's cooperative kernel on its own).
# --------------------------------------------------------------------------

_PTX_SCRIPT = r"""
import json, sys
try:
    from numba.cuda.cudadrv import nvvm, nvrtc
    nvvm.NVVM()
    nvrtc.get_supported_ccs()
except Exception as exc:
    print(json.dumps({"skip": f"libNVVM/NVRTC unavailable ({exc}); pip install 'numba-cuda[cu13]'"}))
    sys.exit(0)
import numba.cuda.dispatcher as dispatcher
from numba import cuda

class _Device:
    compute_capability = (9, 0)

dispatcher.get_current_device = lambda: _Device  # device functions: no driver needed
from gpu_hclust.kernels import cuda_chain

out = []
for name, sigs in cuda_chain.PTX_SIGNATURES.items():
    for sig in sigs:
        for cc in [(8, 0), (9, 0)]:
            _Device.compute_capability = cc
            try:
                ptx, _ = cuda.compile_ptx(getattr(cuda_chain, name).py_func, sig, cc=cc)
                err = None if f".target sm_{cc[0]}{cc[1]}" in ptx else "wrong target"
                grid_sync = "cudaCGSynchronize" in ptx or "cudaCG" in ptx
            except Exception as exc:
                err, grid_sync = f"{type(exc).__name__}: {str(exc)[:1500]}", False
            out.append({"kernel": name, "sig": sig, "cc": cc, "error": err, "grid_sync": grid_sync})
print(json.dumps({"results": out}))
"""


@pytest.mark.slow
def test_chain_kernel_compiles_to_ptx():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(report["skip"])
    results = report["results"]
    assert {r["kernel"] for r in results} == {"chain_steps"}
    assert len(results) == 4  # float32 and float64 storage, cc 8.0 and 9.0
    failures = [f"{r['kernel']} {r['sig']} cc={r['cc']}: {r['error']}" for r in results
                if r["error"]]
    assert not failures, "\n".join(failures)
    assert all(r["grid_sync"] for r in results)  # a cooperative kernel indeed


@pytest.mark.parametrize("method, metric", [("ward", "euclidean"), ("average", "cosine")])
def test_emulation_follows_the_kernel(method, metric):
    # benchmarks/_chain_emulation counts the chain's work from a NumPy replay of
    # chain_steps: same log (pairs, order and heights, bitwise) as the kernel.
    import _chain_emulation

    X = make("spiral", 14, 3, 4)
    spec = METHODS[method]
    CT, _, code, mcode = _lowmem.prepare(X, spec, metric, np.float64, np)
    n = X.shape[0]
    em = _chain_emulation.emulate_chain(CT, np.ones(n), np.zeros(n), np.ones(n, bool), code,
                                        mcode)
    a, b, h = cuda_chain.run(CT.copy(), code, mcode, np, tpb=32)
    np.testing.assert_array_equal(em["a"], a)
    np.testing.assert_array_equal(em["b"], b)
    np.testing.assert_array_equal(em["h"], h)
    assert em["merges"] == n - 1 and em["launches"] == em["host_syncs"] == 1
    assert n - 1 <= em["steps"] <= 3 * n
