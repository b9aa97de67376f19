"""Real-GPU tests (``pytest -m gpu``; skipped by conftest without a usable GPU).

Run on an NVIDIA machine with CuPy and numba-cuda: every method against scipy up
to n = 5000, CuPy in -> CuPy out, float32, device distances, condensed indices
past 2**31, non-default CuPy streams, and the error paths that only exist with
a device (memory refusal before allocating).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust._methods import METHODS

pytestmark = pytest.mark.gpu

METHOD_NAMES = list(METHODS)


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


def _assert_like_scipy(Z, Zs, rtol=1e-10):
    Z = np.asarray(Z)
    assert Z.dtype == np.float64 and Z.shape == Zs.shape
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=rtol, atol=0)


def test_engine_runs_on_the_gpu():
    from numba import config, cuda

    from gpu_hclust._methods import METHODS
    from gpu_hclust._plan import make_plan
    from gpu_hclust._validation import validate_linkage_input
    from gpu_hclust.kernels import cuda_mst

    assert not config.ENABLE_CUDASIM
    inp = validate_linkage_input(np.arange(8.0).reshape(4, 2), METHODS["single"], "euclidean")
    assert make_plan(inp, METHODS["single"], "cuda", None, None).where == "GPU"
    assert cuda.is_available()
    assert type(cuda_mst.row_best).__module__.startswith("numba.cuda.dispatcher")


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("n", [2, 3, 100, 2000])
def test_observations_match_scipy(rng, method, n):
    X = rng.standard_normal((n, 8))
    Z = gpu_hclust.linkage(X, method, backend="cuda")
    assert isinstance(Z, np.ndarray)
    _assert_like_scipy(Z, sch.linkage(X, method))


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_condensed_n5000_matches_scipy(rng, method):
    y = pdist(rng.standard_normal((5000, 16)))
    keep = y.copy()
    Z = gpu_hclust.linkage(y, method, backend="cuda")
    _assert_like_scipy(Z, sch.linkage(y, method))
    assert_array_equal(y, keep)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_cupy_in_cupy_out(cp, rng, method):
    X = rng.standard_normal((700, 5))
    Xd = cp.asarray(X)
    keep = Xd.copy()
    Z = gpu_hclust.linkage(Xd, method)  # backend auto: CuPy input runs on the GPU
    assert isinstance(Z, cp.ndarray)
    assert Z.device == Xd.device
    _assert_like_scipy(Z.get(), sch.linkage(X, method))
    assert bool((Xd == keep).all())
    yd = cp.asarray(pdist(X))
    Zy = gpu_hclust.linkage(yd, method, backend="cuda")
    assert isinstance(Zy, cp.ndarray)
    _assert_like_scipy(Zy.get(), sch.linkage(pdist(X), method))


def test_single_float32_matches_scipy_on_float32_distances(rng):
    y = pdist(rng.standard_normal((3000, 6)))
    Z = gpu_hclust.linkage(y, "single", backend="cuda", dtype=np.float32)
    _assert_like_scipy(Z, sch.linkage(y.astype(np.float32).astype(np.float64), "single"), rtol=0)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_float32_all_methods(rng, method):
    X = rng.standard_normal((400, 6))
    Z = gpu_hclust.linkage(X, method, backend="cuda", dtype=np.float32)
    Zs = sch.linkage(X, method)
    assert sch.is_valid_linkage(Z, throw=True)
    if method not in ("centroid", "median"):
        assert sch.is_monotonic(Z)
    assert_allclose(np.sort(Z[:, 2]), np.sort(Zs[:, 2]), rtol=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cityblock", "chebyshev",
                                    "minkowski", "cosine", "correlation"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_device_pdist_matches_scipy(cp, rng, metric, dtype):
    from gpu_hclust import _engine_cuda
    from gpu_hclust._validation import validate_linkage_input

    X = rng.standard_normal((1000, 37))
    inp = validate_linkage_input(cp.asarray(X), METHODS["single"], metric)
    D = _engine_cuda.condensed_working_matrix(inp, np.dtype(dtype), squared=False).D
    assert isinstance(D, cp.ndarray) and D.dtype == dtype
    expected = pdist(X, metric)
    if dtype == np.float64:
        assert_allclose(D.get(), expected, rtol=1e-12)
    else:
        assert_array_equal(D.get(), expected.astype(np.float32))


def test_host_metric_with_cupy_input(cp, rng):
    X = rng.random((300, 4)) + 0.1
    Z = gpu_hclust.linkage(cp.asarray(X), "average", metric="canberra", backend="cuda")
    _assert_like_scipy(Z.get(), sch.linkage(X, "average", metric="canberra"))


def test_condensed_positions_past_2_to_31(cp, rng):
    # 70 000 points: 2.45e9 pairs, so every condensed position past 2**31 must
    # be computed in int64 (pdist and Borůvka). On a line with cityblock, single
    # linkage merges exactly the gaps between sorted neighbours.
    n = 70_000
    x = np.sort(rng.permutation(n) + rng.random(n) * 0.5)
    rng.shuffle(x)
    Z = gpu_hclust.linkage(cp.asarray(x[:, None]), "single", metric="cityblock",
                           backend="cuda", dtype=np.float32)
    Z = Z.get()
    assert sch.is_valid_linkage(Z, throw=True)
    gaps = np.diff(np.sort(x)).astype(np.float32).astype(np.float64)
    assert_array_equal(Z[:, 2], np.sort(gaps))
    assert Z[-1, 3] == n
    del Z
    cp.get_default_memory_pool().free_all_blocks()


def test_runs_on_a_non_default_stream(cp, rng):
    X = rng.standard_normal((1500, 3))
    with cp.cuda.Stream(non_blocking=True):
        Z = gpu_hclust.linkage(cp.asarray(X), "single", backend="cuda")
        Zc = gpu_hclust.linkage(cp.asarray(X), "complete", backend="cuda")
    _assert_like_scipy(Z.get(), sch.linkage(X, "single"))
    _assert_like_scipy(Zc.get(), sch.linkage(X, "complete"))


def test_memory_error_before_allocating(cp):
    pool = cp.get_default_memory_pool()
    free, _total = cp.cuda.runtime.memGetInfo()
    # Enough observations that the float32 condensed matrix alone exceeds free memory.
    n = int(np.sqrt(2.0 * (free + pool.free_bytes()) / 4)) + 10_000
    X = cp.zeros((n, 1))
    X[:, 0] = cp.arange(n, dtype=cp.float64)
    used = pool.used_bytes()
    # complete has no memory-saving path; single does, so it is forced dense here
    # (low_memory=None would take the memory-saving path: tests/test_gpu_lowmem.py).
    with pytest.raises(MemoryError, match=r"needs .* of GPU memory .* only .* is free.*backend=\"cpu\""):
        gpu_hclust.linkage(X, "complete", backend="cuda", dtype=np.float32)
    assert pool.used_bytes() <= used + 16 * n  # O(n) validation scratch at most, never the matrix
    with pytest.raises(MemoryError, match=r"low_memory=True.*dtype=np\.float32"):
        gpu_hclust.linkage(X, "single", backend="cuda", low_memory=False)


def test_errors(cp, rng):
    X = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="requires the distance metric to be Euclidean"):
        gpu_hclust.linkage(cp.asarray(X), "ward", metric="cityblock", backend="cuda")
    bad = cp.asarray(X)
    bad[3, 1] = cp.nan
    with pytest.raises(ValueError, match="finite"):
        gpu_hclust.linkage(bad, "single", backend="cuda")
    X[4] = 0.0
    with pytest.raises(ValueError, match=r"only finite values.*rows \[4\]"):
        gpu_hclust.linkage(cp.asarray(X), "single", metric="cosine", backend="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        gpu_hclust.linkage(X, "single", backend="gpu")
