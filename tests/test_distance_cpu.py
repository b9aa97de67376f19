"""The CPU pdist kernel (kernels/cpu_pdist.py) against scipy's pdist."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import pdist

from gpu_hclust import _engine_cpu
from gpu_hclust._methods import METHODS
from gpu_hclust._validation import validate_linkage_input
from gpu_hclust.kernels import cpu_pdist, metrics

COMPILED = sorted(metrics.METRIC_CODES)


def kernel_pdist(X, metric, dtype=np.float64, p=2.0):
    """Run the kernel the way the engine does (centring and norms included)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    if metric == "correlation":
        X = X - X.mean(axis=1, keepdims=True)
    norms = cpu_pdist.row_norms(X) if metric in ("cosine", "correlation") else np.ones(len(X))
    out = np.empty(len(X) * (len(X) - 1) // 2, dtype=dtype)
    bad = cpu_pdist.pdist_into(X, metrics.METRIC_CODES[metric], p, norms, out)
    return out, bad


@pytest.mark.parametrize("shape", [(2, 1), (3, 2), (5, 3), (9, 7), (64, 32), (131, 5),
                                   (300, 3), (40, 8), (40, 9), (20, 384)])
@pytest.mark.parametrize("metric", COMPILED)
def test_kernel_matches_scipy_bitwise(rng, metric, shape):
    # Sizes cover the column blocks (BLOCK = 256: n = 300 spans two), the row
    # pairing, odd and even d (cosine's two partial sums plus a tail).
    if metric == "correlation" and shape[1] == 1:
        shape = (2, 2)  # one coordinate centres to zero: undefined (engine defers to scipy)
    X = rng.standard_normal(shape) * 3.0
    out, bad = kernel_pdist(X, metric)
    assert bad == 0
    assert_array_equal(out, pdist(X, metric))


@pytest.mark.parametrize("d", [3, 8, 32, 384])
@pytest.mark.parametrize("metric", COMPILED)
def test_kernel_bitwise_on_near_constant_data(metric, d):
    # 1 + 1e-4 N(0, 1): cosine/correlation are ill-conditioned here, every
    # rounding of the dot product shows; the order must be scipy's exactly.
    X = 1.0 + 1e-4 * np.random.default_rng(d).standard_normal((30, d))
    assert_array_equal(kernel_pdist(X, metric)[0], pdist(X, metric))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_tied_tiny_grid_gives_scipys_tree(metric):
    # A one-ulp difference between tied distances (the old reassociated sums)
    # changed the merge order here; scipy's own pdist as input gave its Z.
    from scipy.cluster.hierarchy import linkage as scipy_linkage

    from gpu_hclust import linkage

    X = np.array([[1, 1], [2, 4], [4, 4], [2, 3], [3, 2], [4, 3]]) * 1e-97
    assert_array_equal(kernel_pdist(X, metric)[0], pdist(X, metric))
    Z = linkage(X, "average", metric=metric, backend="cpu", low_memory=False)
    assert_array_equal(Z, scipy_linkage(X, "average", metric=metric))


def test_minkowski_special_exponents_are_scipys_metrics(rng):
    # scipy evaluates p = 1, 2, inf as cityblock, euclidean, chebyshev (no pow)
    X = rng.standard_normal((30, 7))
    for p in (1.0, 2.0, np.inf):
        assert_array_equal(kernel_pdist(X, "minkowski", p=p)[0], pdist(X, "minkowski", p=p))


@pytest.mark.parametrize("metric", COMPILED)
def test_float32_output_is_float64_rounded_once(rng, metric):
    X = rng.standard_normal((40, 6))
    out32, _ = kernel_pdist(X, metric, np.float32)
    out64, _ = kernel_pdist(X, metric, np.float64)
    assert out32.dtype == np.float32
    assert_array_equal(out32, out64.astype(np.float32))


@pytest.mark.parametrize("p", [1.0, 1.5, 3.0])
def test_minkowski_exponent(rng, p):
    X = rng.random((30, 4))
    out, _ = kernel_pdist(X, "minkowski", p=p)
    assert_allclose(out, pdist(X, "minkowski", p=p), rtol=1e-12)


def test_exact_metrics_are_bitwise(rng):
    # max and single sums in coordinate order: same bits as scipy's loops
    X = rng.standard_normal((50, 3))
    assert_array_equal(kernel_pdist(X, "chebyshev")[0], pdist(X, "chebyshev"))


def test_overflow_is_counted(rng):
    X = rng.standard_normal((6, 3))
    X[2] = 1e200
    out, bad = kernel_pdist(X, "euclidean")
    assert bad == int((~np.isfinite(out)).sum()) == 5


def test_cosine_identical_and_opposite_rows_clip(rng):
    x = rng.standard_normal(5)
    X = np.array([x, 2 * x, -x])
    out, _ = kernel_pdist(X, "cosine")
    assert_allclose(out, pdist(X, "cosine"), atol=1e-15)
    assert ((out >= 0) & (out <= 2)).all()


def test_helpers(rng):
    X = rng.standard_normal((7, 4))
    assert_allclose(cpu_pdist.row_norms(X), np.linalg.norm(X, axis=1), rtol=1e-15)
    y = rng.random(21)
    out = np.empty(21, dtype=np.float32)
    cpu_pdist.copy_cast(y, out, True)
    assert_array_equal(out, (y * y).astype(np.float32))
    cpu_pdist.copy_cast(y, out, False)
    assert_array_equal(out, y.astype(np.float32))
    assert cpu_pdist.all_finite(y)
    y[5] = np.nan
    assert not cpu_pdist.all_finite(y)


# The engine's choice of path for each metric.


def _matrix(X, metric, dtype=np.float64, method="single"):
    inp = validate_linkage_input(X, METHODS[method], metric)
    return _engine_cpu.condensed_working_matrix(inp, np.dtype(dtype), METHODS[method].squared)


@pytest.mark.parametrize("metric", COMPILED + ["canberra", "braycurtis", "seuclidean",
                                               "mahalanobis", "hamming"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_engine_matrix_equals_scipy(rng, metric, dtype):
    X = rng.standard_normal((45, 6))
    D = _matrix(X, metric, dtype)
    assert D.dtype == dtype
    assert_allclose(D, pdist(X, metric).astype(dtype), rtol=1e-12 if dtype == np.float64 else 1e-6)


def test_engine_minkowski_is_scipy_default_p2(rng):
    X = rng.standard_normal((20, 3))
    assert_allclose(_matrix(X, "minkowski"), pdist(X, "minkowski"), rtol=1e-12)
    assert_allclose(_matrix(X, "minkowski"), pdist(X, "euclidean"), rtol=1e-12)


def test_engine_squared_methods_use_squared_euclidean(rng):
    X = rng.standard_normal((20, 3))
    assert_allclose(_matrix(X, "euclidean", method="ward"), pdist(X, "sqeuclidean"), rtol=1e-13)


def test_engine_callable(rng):
    X = rng.standard_normal((12, 3))

    def dist(u, v):
        return float(np.abs(u - v).max())

    assert_array_equal(_matrix(X, dist), pdist(X, dist))
    assert_array_equal(_matrix(X, dist, np.float32), pdist(X, dist).astype(np.float32))


@pytest.mark.parametrize("metric", ["cosine", "correlation"])
def test_engine_zero_rows_raise(rng, metric):
    X = rng.standard_normal((8, 3))
    X[1] = 0.0 if metric == "cosine" else 4.0
    with pytest.raises(ValueError, match="must contain only finite values"):
        _matrix(X, metric)


def test_engine_tiny_norms_defer_to_scipy(rng):
    # norms whose product underflows: scipy's nan, not a silent cosine of 1
    X = rng.standard_normal((6, 3))
    X[0] *= 1e-170
    X[1] *= 1e-170
    with pytest.raises(ValueError, match="must contain only finite values"):
        _matrix(X, "cosine")


@pytest.mark.parametrize("nthreads", [1, 3, 8])
@pytest.mark.parametrize("n", [2, 7, 40])
def test_parallel_entry_points_match_serial(rng, n, nthreads):
    # Small inputs take the serial path in pdist_into; drive the parallel ones
    # directly, with more threads than row pairs too.
    X = rng.standard_normal((n, 5))
    m = n * (n - 1) // 2
    ref = pdist(X)
    out = np.full(m, np.nan)
    control = np.zeros(2, dtype=np.int64)  # Ctrl-C slot (kernels/cancel.py), never set here
    XT = np.ascontiguousarray(X.T)
    assert cpu_pdist._pdist_parallel(X, XT, metrics.EUCLIDEAN, 2.0, np.ones(n), out, nthreads,
                                     control) == 0
    assert_array_equal(out, ref)
    sq = np.empty(m, dtype=np.float32)
    cpu_pdist._copy_parallel(ref, sq, True, nthreads)
    assert_array_equal(sq, (ref * ref).astype(np.float32))
    ref[m // 2] = np.inf
    assert cpu_pdist._count_parallel(ref, nthreads) == 1
