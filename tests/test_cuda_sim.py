"""CUDA engine in numba-cuda's simulator (no GPU needed; conftest switches it on).

Simulated threads are Python threads, so everything here is tiny: n <= 40,
32 threads per block, a handful of blocks. The same tests run on a real GPU
(conftest then leaves the simulator off), where they exercise the real kernels.
"""

import numpy as np
import pytest
from numba import config as numba_config
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust import _backend
from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage
from gpu_hclust.kernels import cuda_mst, cuda_pdist, formulas, launch, metrics
from reference import replay_check

SIMULATED = _backend.simulator_enabled()
METHOD_NAMES = list(METHODS)
DTYPES = [np.float64, np.float32]


def _tol(dtype):
    return 1e-10 if dtype == np.float64 else 1e-5


def _assert_like_scipy(Z, Zs, dtype):
    assert Z.dtype == np.float64 and Z.shape == Zs.shape
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=_tol(dtype), atol=0)


# --- the simulator really is the one in use ---------------------------------------


@pytest.mark.skipif(not SIMULATED, reason="a real GPU is in use: the simulator is off")
def test_simulator_is_active():
    from numba import cuda
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    # numba-cuda reports "NVIDIA" with and without the simulator; what tells
    # them apart is the config flag and the kernel objects being simulator fakes.
    assert cuda.implementation == "NVIDIA"
    assert numba_config.ENABLE_CUDASIM
    assert launch.simulating()
    assert isinstance(cuda_mst.row_best, FakeCUDAKernel)
    assert isinstance(cuda_pdist.pdist_euclidean, FakeCUDAKernel)
    assert launch.default_tpb() == 32


def test_plan_checks_host_memory_under_the_simulator():
    from gpu_hclust._methods import METHODS
    from gpu_hclust._plan import make_plan
    from gpu_hclust._validation import validate_linkage_input

    inp = validate_linkage_input(np.arange(8.0).reshape(4, 2), METHODS["single"], "euclidean")
    plan = make_plan(inp, METHODS["single"], "cuda", None, None)
    assert plan.backend == "cuda" and plan.where == ("host" if SIMULATED else "GPU")


# --- launch helpers ---------------------------------------------------------------


def test_index_dtype_switches_at_2_to_31_pairs():
    assert launch.index_dtype(65536) == np.int32  # 2_147_450_880 pairs
    assert launch.index_dtype(65537) == np.int64  # 2_147_516_416 pairs
    assert launch.index_dtype(2) == np.int32


@pytest.mark.parametrize("bad", [0, 16, 48, 2048])
def test_check_tpb_rejects(bad):
    with pytest.raises(ValueError, match="tpb .*power of two between 32 and 1024"):
        launch.check_tpb(bad)


def test_check_tpb_default_and_cap():
    assert launch.check_tpb(None, 256) == min(launch.default_tpb(), 256)
    assert launch.check_tpb(64) == 64
    with pytest.raises(ValueError, match="between 32 and 256; got 512"):
        launch.check_tpb(512, cuda_pdist.MAX_TPB)


def test_blocks():
    assert launch.blocks(0, 32) == 1
    assert launch.blocks(33, 32, cap=100) == 2
    assert launch.blocks(10**9, 256, cap=7) == 7


# --- pdist kernel -----------------------------------------------------------------


def _prepare(X, name):
    X = np.ascontiguousarray(X, dtype=np.float64)
    if name == "correlation":
        X = X - X.mean(axis=1, keepdims=True)
    if name in ("cosine", "correlation"):
        return X, np.sqrt((X * X).sum(axis=1))
    return X, np.zeros(1)


@pytest.mark.parametrize("name", list(metrics.METRIC_CODES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d", [(2, 3), (3, 1), (33, 20)])
def test_pdist_kernel_matches_scipy(rng, name, dtype, n, d):
    # n = 33 spans three row tiles (ROWS = 16) and two column tiles of 32
    # threads; d = 20 spans two staged coordinate chunks (KC = 16).
    if name == "correlation" and d == 1:
        pytest.skip("correlation of one coordinate is 0/0 in scipy")
    X = rng.standard_normal((n, d))
    Xp, norms = _prepare(X, name)
    out = np.full(n * (n - 1) // 2, np.nan, dtype=dtype)
    cuda_pdist.pdist(Xp, norms, out, metrics.METRIC_CODES[name], p=2.0, xp=np, tpb=32)
    expected = pdist(X, name)
    if dtype == np.float64:
        assert_allclose(out, expected, rtol=1e-12, atol=0)
    else:
        assert_array_equal(out, expected.astype(np.float32))


def test_pdist_squared_euclidean_directly(rng):
    from gpu_hclust import _engine_cuda
    from gpu_hclust._validation import validate_linkage_input

    X = rng.standard_normal((21, 5))
    inp = validate_linkage_input(X, METHODS["ward"], "euclidean")
    D = _engine_cuda.condensed_working_matrix(inp, np.dtype(np.float64), squared=True).D
    assert_allclose(_backend.to_host(D), pdist(X, "sqeuclidean"), rtol=1e-12)


def test_working_matrix_never_aliases_input(rng):
    from gpu_hclust import _engine_cuda
    from gpu_hclust._validation import validate_linkage_input

    y = pdist(rng.standard_normal((9, 2)))
    keep = y.copy()
    inp = validate_linkage_input(y, METHODS["centroid"], "euclidean")
    D = _engine_cuda.condensed_working_matrix(inp, np.dtype(np.float64), squared=True).D
    assert_allclose(_backend.to_host(D), keep**2, rtol=1e-15)
    assert_array_equal(y, keep)


# --- Borůvka single linkage kernel ------------------------------------------------


def _single_Z(y, n, tpb=32):
    a, b, h = cuda_mst.run(y, n, formulas.SINGLE, xp=np, tpb=tpb)
    assert a.dtype == b.dtype == np.int64 and h.dtype == np.float64
    assert len(a) == len(b) == len(h) == n - 1
    return merge_log_to_linkage(a, b, h, n, METHODS["single"])


@pytest.mark.parametrize("n", [2, 3, 7, 40])
def test_mst_kernel_matches_scipy_bitwise(rng, n):
    # 40 points with 32 threads: two column tiles and two row chunks in col_best.
    y = pdist(rng.standard_normal((n, 3)))
    keep = y.copy()
    assert_array_equal(_single_Z(y, n), sch.linkage(y, "single"))
    assert_array_equal(y, keep)


def test_mst_kernel_float32(rng):
    n = 20
    y = pdist(rng.standard_normal((n, 2)))
    Z = _single_Z(y.astype(np.float32), n)
    y32 = y.astype(np.float32).astype(np.float64)
    assert_array_equal(Z, sch.linkage(y32, "single"))


def test_mst_kernel_negative_distances(rng):
    # Condensed input may hold negative values (scipy accepts them); the edge
    # order must still be (weight, min, max). Checked on the merge log itself.
    n = 16
    y = pdist(rng.standard_normal((n, 2))) - 1.0
    a, b, h = cuda_mst.run(y, n, formulas.SINGLE, xp=np, tpb=32)
    assert_array_equal(h, sch.linkage(y, "single")[:, 2])
    from scipy.spatial.distance import squareform

    assert_array_equal(squareform(y)[a, b], h)
    assert (a < b).all()


def test_mst_kernel_other_block_size(rng):
    n = 24
    y = pdist(rng.standard_normal((n, 3)))
    assert_array_equal(_single_Z(y, n, tpb=64), sch.linkage(y, "single"))


@pytest.mark.parametrize("kind", ["rounded", "all_equal", "duplicates"])
def test_mst_kernel_ties(rng, kind):
    n = 18
    if kind == "rounded":
        y = np.round(pdist(rng.standard_normal((n, 2))) * n / 4)
    elif kind == "all_equal":
        y = np.ones(n * (n - 1) // 2)
    else:
        X = rng.integers(0, 3, size=(n, 2)).astype(np.float64)
        y = pdist(X)
    Z = _single_Z(y, n)
    Zs = sch.linkage(y, "single")
    assert sch.is_valid_linkage(Z, throw=True)
    assert sch.is_monotonic(Z)
    assert_array_equal(Z[:, 2], Zs[:, 2])  # sorted heights: the MST weight multiset
    replay_check(Z, y, "single")
    # deterministic: the same input gives the same tree
    assert_array_equal(_single_Z(y, n), Z)


def test_mst_kernel_rejects_other_methods(rng):
    y = pdist(rng.standard_normal((4, 2)))
    with pytest.raises(ValueError, match="cuda_mst runs single linkage only"):
        cuda_mst.run(y, 4, formulas.COMPLETE, xp=np)


# --- linkage(..., backend="cuda") end to end --------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_linkage_condensed_matches_scipy(rng, method, dtype):
    n = 24
    y = pdist(rng.standard_normal((n, 3)))
    keep = y.copy()
    Z = gpu_hclust.linkage(y, method, backend="cuda", dtype=dtype)
    _assert_like_scipy(Z, sch.linkage(y, method), dtype)
    assert_array_equal(y, keep)


# float64 only: float32 observations are the float32 pdist kernel
# (test_pdist_kernel_matches_scipy) feeding the float32 engines
# (test_linkage_condensed_matches_scipy); simulated threads are slow.
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_linkage_observations_matches_scipy(rng, method):
    n = 22
    X = rng.standard_normal((n, 4))
    keep = X.copy()
    Z = gpu_hclust.linkage(X, method, backend="cuda")
    _assert_like_scipy(Z, sch.linkage(X, method), np.float64)
    assert_array_equal(X, keep)


@pytest.mark.parametrize("metric", ["cityblock", "cosine", "correlation", "chebyshev",
                                    "minkowski", "sqeuclidean"])
def test_linkage_device_metrics(rng, metric):
    X = rng.standard_normal((18, 5))
    Z = gpu_hclust.linkage(X, "single", metric=metric, backend="cuda")
    _assert_like_scipy(Z, sch.linkage(X, "single", metric=metric), np.float64)


@pytest.mark.parametrize("metric", ["canberra", "braycurtis"])
def test_linkage_host_metric_fallback(rng, metric):
    X = rng.random((15, 4)) + 0.1
    Z = gpu_hclust.linkage(X, "single", metric=metric, backend="cuda")
    _assert_like_scipy(Z, sch.linkage(X, "single", metric=metric), np.float64)


def test_linkage_callable_metric(rng):
    X = rng.standard_normal((12, 3))

    def l1(u, v):
        return float(np.abs(u - v).sum())

    Z = gpu_hclust.linkage(X, "single", metric=l1, backend="cuda")
    _assert_like_scipy(Z, sch.linkage(X, "single", metric=l1), np.float64)


@pytest.mark.parametrize("metric", ["cosine", "correlation"])
def test_zero_norm_rows_rejected_like_scipy(rng, metric):
    X = rng.standard_normal((6, 3))
    X[2] = 0.0 if metric == "cosine" else 7.0  # correlation: a constant row centres to zero
    with pytest.raises(ValueError, match=r"only finite values.*rows \[2\]"):
        gpu_hclust.linkage(X, "single", metric=metric, backend="cuda")
    with pytest.raises(ValueError, match="only finite values"):
        sch.linkage(X, "single", metric=metric)


def test_host_metric_nonfinite_rejected(rng):
    X = np.zeros((5, 3))
    X[0] = 1.0
    with pytest.raises(ValueError, match=r"only finite values.*metric='braycurtis'"):
        gpu_hclust.linkage(X, "single", metric="braycurtis", backend="cuda")


def test_two_points_and_list_input():
    Z = gpu_hclust.linkage([[0.0, 0.0], [3.0, 4.0]], "single", backend="cuda")
    assert_array_equal(Z, [[0.0, 1.0, 5.0, 2.0]])
    Z = gpu_hclust.linkage([2.5], "single", backend="cuda")
    assert_array_equal(Z, [[0.0, 1.0, 2.5, 2.0]])
