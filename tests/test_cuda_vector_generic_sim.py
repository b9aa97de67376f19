"""Centroid/median on the GPU's memory-saving path (kernels/cuda_vector_generic) in the simulator.

Simulated threads are Python threads and the simulator runs a cooperative grid
of one block: n <= 24, 32 or 64 threads per block, a few seconds per run.
``spread`` splits each rescanned row into column shares inside that one block,
and ``chunk`` stops the kernel after a few merges, so both the share fold and
the resumption across launches run here too. On a GPU machine (simulator off)
the same tests run on the real kernel with CuPy.
"""

import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster.hierarchy import is_valid_linkage
from scipy.spatial.distance import pdist

from gpu_hclust import _backend, _lowmem
from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage
from gpu_hclust.kernels import cuda_vector_generic, formulas, metrics
from gpu_hclust.kernels.cpu_common import NO_FINITE_CANDIDATE
from lowmem_common import assert_same_linkage, lowmem_linkage, scipy_reference
from reference import replay_check

SIMULATED = _backend.simulator_enabled()
GENERIC = ["centroid", "median"]


def _device_log(X, method, dtype=np.float64, **kw):
    """The kernel's merge log (heights in the data's units, squared) on the device arrays."""
    spec = METHODS[method]
    xp = _backend.device_namespace()
    CT, _, code, mcode, e = _lowmem.prepare_scaled(xp.asarray(X), spec, "euclidean", dtype, xp)
    a, b, h = cuda_vector_generic.run(CT, code, mcode, xp, **kw)
    return a, b, _lowmem._unscale(h, e, spec, "euclidean")


def _linkage(X, method, dtype=np.float64, **kw):
    a, b, h = _device_log(X, method, dtype, **kw)
    return merge_log_to_linkage(a, b, h, X.shape[0], METHODS[method])


@pytest.mark.skipif(not SIMULATED, reason="a real GPU is in use: the simulator is off")
def test_simulator_runs_the_kernel():
    from numba import cuda
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    assert cuda.implementation == "NVIDIA"
    assert isinstance(cuda_vector_generic.generic_steps, FakeCUDAKernel)


@pytest.mark.parametrize("method", GENERIC)
@pytest.mark.parametrize("tpb", [32, 64])
def test_equals_scipy_and_the_cpu_engine(rng, method, tpb):
    X = rng.standard_normal((14, 3))
    Z = _linkage(X, method, tpb=tpb)
    assert_same_linkage(Z, scipy_reference(X, method, "euclidean"))
    assert_same_linkage(Z, lowmem_linkage(X, method, "euclidean", "cpu"), rtol=1e-12)


@pytest.mark.parametrize("method", GENERIC)
def test_through_cuda_vector_run(rng, method):
    # cuda_vector.run (the memory-saving entry point) hands these methods over.
    X = rng.standard_normal((12, 4))
    assert_same_linkage(lowmem_linkage(X, method, "euclidean", "cuda", None, 32),
                        scipy_reference(X, method, "euclidean"))


@pytest.mark.parametrize("method", GENERIC)
def test_float32_storage(rng, method):
    # float32 coordinates (merged centroids rounded to float32 as they are
    # stored), float64 arithmetic: as the CPU engine with float32 storage.
    X = rng.standard_normal((12, 3))
    Z = _linkage(X, method, np.float32, tpb=32)
    assert is_valid_linkage(Z, throw=True)
    assert_allclose(Z[:, 2], scipy_reference(X, method, "euclidean")[:, 2], rtol=1e-5)
    assert_same_linkage(Z, lowmem_linkage(X, method, "euclidean", "cpu", np.float32),
                        rtol=1e-12)


@pytest.mark.parametrize("method", GENERIC)
def test_rows_split_into_column_shares(rng, method):
    # 10 rescanned rows at the start and spread 20: 2 shares per row (column
    # ranges of 5), later 1-3 stale rows with 6-20 shares, the last ones empty.
    X = rng.standard_normal((10, 3))
    Z = _linkage(X, method, tpb=32, spread=20)
    assert_array_equal(Z, _linkage(X, method, tpb=32))
    assert_same_linkage(Z, scipy_reference(X, method, "euclidean"))


@pytest.mark.parametrize("method", GENERIC)
def test_ties_are_deterministic_and_replay_valid(rng, method):
    X = np.round(rng.uniform(0, 3, size=(14, 2)))  # a 4x4 grid with duplicates
    Z = _linkage(X, method, tpb=32)
    assert_array_equal(_linkage(X, method, tpb=32, spread=7), Z)
    assert is_valid_linkage(Z, throw=True)
    replay_check(Z, pdist(X), method)


@pytest.mark.parametrize("chunk", [1, 4])
def test_resumes_across_launches(rng, chunk):
    # The stale list, the relax partials and the state persist between launches.
    X = rng.standard_normal((10, 3))
    whole = _device_log(X, "centroid", tpb=32)
    counter = np.zeros(1, dtype=np.int64)
    chunked = _device_log(X, "centroid", tpb=32, chunk=chunk, counter=counter)
    for x, y in zip(chunked, whole):
        assert_array_equal(x, y)
    assert counter[0] == 9


def test_chunk_size_is_bounded(monkeypatch):
    assert cuda_vector_generic.chunk_merges(10, 3) == cuda_vector_generic.CHUNK_MERGES
    assert cuda_vector_generic.chunk_merges(10**6, 1024) >= 1
    monkeypatch.setattr(cuda_vector_generic, "CHUNK_MERGES", 2)
    counter = np.zeros(1, dtype=np.int64)
    _device_log(np.arange(12.0).reshape(6, 2) ** 1.5, "median", tpb=32, counter=counter)
    assert counter[0] == 5


@pytest.mark.parametrize("method", GENERIC)
def test_progress_counter_reaches_n_minus_1(rng, method):
    X = rng.standard_normal((8, 2))
    counter = np.zeros(1, dtype=np.int64)
    _lowmem.run_vector(X, METHODS[method], "euclidean", "cuda", None, tpb=32, counter=counter)
    assert counter[0] == 7


def test_nan_raises_value_error(rng):
    xp = _backend.device_namespace()
    CT = rng.standard_normal((2, 7))
    CT[1, 3] = np.nan
    with pytest.raises(ValueError, match=re.escape(NO_FINITE_CANDIDATE)):
        cuda_vector_generic.run(xp.asarray(CT), formulas.CENTROID, metrics.SQEUCLIDEAN, xp,
                                tpb=32)


def test_two_points_and_one():
    X = np.array([[0.0, 1.0], [3.0, 5.0]])
    for method in GENERIC:
        assert_same_linkage(_linkage(X, method, tpb=32), scipy_reference(X, method, "euclidean"))
    a, b, h = cuda_vector_generic.run(np.zeros((2, 1)), formulas.MEDIAN, metrics.SQEUCLIDEAN,
                                      np, tpb=32)
    assert a.shape == b.shape == h.shape == (0,)


def test_rejects_other_methods():
    with pytest.raises(ValueError, match="centroid and median only"):
        cuda_vector_generic.run(np.zeros((2, 4)), formulas.WARD, metrics.SQEUCLIDEAN, np, tpb=32)


def test_tpb_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="tpb .* power of two"):
        cuda_vector_generic.run(np.zeros((2, 4)), formulas.CENTROID, metrics.SQEUCLIDEAN, np,
                                tpb=48)


@pytest.mark.skipif(not SIMULATED, reason="inspects simulator kernel objects")
def test_ptx_signatures_cover_every_kernel_for_both_precisions():
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    mod = cuda_vector_generic
    kernels = {name for name, obj in vars(mod).items()
               if isinstance(obj, FakeCUDAKernel) and not obj._device
               and obj.fn.__module__ == mod.__name__}
    assert kernels == set(mod.PTX_SIGNATURES) == {"generic_steps"}
    for sigs in mod.PTX_SIGNATURES.values():  # the data array in either precision
        f32 = [s for s in sigs if s.startswith("void(float32")]
        f64 = [s for s in sigs if s.startswith("void(float64")]
        assert f32 and [s.replace("float32", "float64", 1) for s in f32] == f64
