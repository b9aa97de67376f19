"""Every bad input to ``linkage`` gets scipy's exception type, a message that
names the argument, and leaves the input untouched."""

import warnings

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust import ClusterWarning

METHODS = ["single", "complete", "average", "weighted", "centroid", "median", "ward"]


def _scipy_raises(exc_type, *args, **kwargs):
    """The same call must raise the same type in scipy (keeps us honest)."""
    with pytest.raises(exc_type):
        sch.linkage(*args, **kwargs)


BAD_INPUTS = [
    # (id, y, kwargs, exception, message pattern)
    ("nan-condensed", np.array([1.0, np.nan, 2.0]), {}, ValueError, "finite"),
    ("inf-observations", np.array([[1.0, np.inf], [2, 3], [1, 1]]), {}, ValueError, "finite"),
    # scipy-only metric and a callable: scipy's pdist runs, its NaN distances are refused.
    ("nan-observations-canberra", np.array([[1.0, np.nan], [2, 3], [1, 1]]),
     {"metric": "canberra"}, ValueError, "finite"),
    ("nan-distance-callable", np.array([[1.0], [2.0], [3.0]]),
     {"metric": lambda u, v: np.nan}, ValueError, "finite"),
    ("ndim-3", np.zeros((2, 2, 2)), {}, ValueError, "1 or 2 dimensional"),
    ("ndim-0", np.float64(3.0), {}, ValueError, "1 or 2 dimensional"),
    ("bad-condensed-length", np.ones(4), {}, ValueError, "binomial coefficient"),
    ("one-observation", np.ones((1, 3)), {}, ValueError, "at least 2"),
    ("empty-condensed", np.ones(0), {}, ValueError, "at least 2"),
    ("empty-observations", np.ones((0, 3)), {}, ValueError, "at least 2"),
    ("unknown-method", np.ones((3, 2)), {"method": "foo"}, ValueError, "Invalid method"),
    ("unknown-metric", np.arange(6.0).reshape(3, 2), {"metric": "foo"}, ValueError, "Unknown Distance Metric"),
    ("strings", np.array([["a", "b"], ["c", "d"]]), {}, ValueError, "real numbers|float"),
    ("object-none", np.array([[1, None], [2, 3]], dtype=object), {}, ValueError, "finite"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_matches_scipy_type(case):
    _, y, kwargs, exc, pattern = case
    before = np.array(y, copy=True)
    with pytest.raises(exc, match=pattern):
        gpu_hclust.linkage(y, backend="cpu", **kwargs)
    _scipy_raises(exc, y, **kwargs)
    np.testing.assert_array_equal(np.asarray(y), before)


@pytest.mark.parametrize("method", ["ward", "centroid", "median"])
@pytest.mark.parametrize("metric", ["cityblock", "cosine", "euclid"])
def test_euclidean_only_methods_reject_other_metrics(method, metric, rng):
    X = rng.normal(size=(6, 3))
    with pytest.raises(ValueError, match=f"method={method}.*Euclidean"):
        gpu_hclust.linkage(X, method, metric, backend="cpu")
    _scipy_raises(ValueError, X, method, metric)


def test_metric_of_wrong_type_raises_type_error(rng):
    with pytest.raises(TypeError, match="metric must be a string or a callable"):
        gpu_hclust.linkage(rng.normal(size=(4, 2)), metric=3, backend="cpu")


@pytest.mark.parametrize("backend", ["gpu", "CUDA", 1])
def test_unknown_backend(backend, rng):
    with pytest.raises(ValueError, match="backend must be one of"):
        gpu_hclust.linkage(rng.normal(size=(4, 2)), backend=backend)


@pytest.mark.parametrize("dtype", [np.int32, "float16", np.complex128, "nonsense"])
def test_unsupported_working_dtype(dtype, rng):
    with pytest.raises(ValueError, match="dtype must be None, np.float32 or np.float64"):
        gpu_hclust.linkage(rng.normal(size=(4, 2)), backend="cpu", dtype=dtype)


def test_gpu_options_are_keyword_only(rng):
    X = rng.normal(size=(4, 2))
    with pytest.raises(TypeError):
        gpu_hclust.linkage(X, "single", "euclidean", False, "cpu")


def test_square_distance_matrix_warns_like_scipy(rng):
    D = np.abs(rng.normal(size=(5, 5)))
    D = D + D.T
    np.fill_diagonal(D, 0)
    with pytest.warns(ClusterWarning, match="uncondensed distance matrix"):
        Z = gpu_hclust.linkage(D, backend="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterWarning)
        np.testing.assert_allclose(Z, sch.linkage(D), rtol=1e-12)


def test_memory_error_is_predicted_before_allocating(monkeypatch):
    from gpu_hclust import _plan

    monkeypatch.setattr(_plan, "host_available_bytes", lambda: 1000)
    y = pdist(np.arange(40.0).reshape(20, 2))
    # 190 distances (1520 B) + 20 x 600 B engine scratch = 13 520 B
    with pytest.raises(MemoryError, match=r"needs 13\.2 KiB of host memory.*dtype=np\.float32"):
        gpu_hclust.linkage(y, backend="cpu")


@pytest.mark.parametrize("method", METHODS)
def test_input_is_not_modified(method, rng):
    X = rng.normal(size=(12, 3))
    y = pdist(X)
    X0, y0 = X.copy(), y.copy()
    gpu_hclust.linkage(X, method, backend="cpu")
    gpu_hclust.linkage(y, method, backend="cpu")
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_cuda_backend_without_gpu_raises_clear_runtime_error(monkeypatch, rng):
    from gpu_hclust import _backend

    monkeypatch.setattr(_backend, "simulator_enabled", lambda: False)
    monkeypatch.setattr(_backend, "cuda_unavailable_reason",
                        lambda: "CuPy is not installed; install the CUDA extra")
    with pytest.raises(RuntimeError, match="backend='cuda' cannot run: CuPy is not installed"):
        gpu_hclust.linkage(rng.normal(size=(4, 2)), backend="cuda")


def test_auto_never_picks_the_simulator(monkeypatch):
    from gpu_hclust import _backend

    monkeypatch.setattr(_backend, "simulator_enabled", lambda: True)
    assert _backend.resolve_backend(None, 10**6) == "cpu"
    assert _backend.resolve_backend("auto", 10**6) == "cpu"
    assert _backend.resolve_backend("cuda", 10) == "cuda"


def test_import_does_not_pull_cupy_or_numba_cuda():
    import subprocess
    import sys

    code = ("import sys, gpu_hclust; "
            "print('cupy' in sys.modules, 'numba.cuda' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("y", [{"a": 1.0}, {1.0, 2.0, 3.0}, object()])
def test_non_array_input_is_a_type_error_like_scipy(y):
    with pytest.raises(TypeError):
        sch.linkage(y)
    with pytest.raises(TypeError, match="`y` must be array_like"):
        gpu_hclust.linkage(y)


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_nonfinite_observations_with_finite_distances_cluster(bad, backend):
    """scipy checks only the distances: hamming of NaN/inf rows is finite."""
    X = np.array([[bad, 1.0], [bad, 2.0], [0.0, 2.0], [0.0, 1.0]])
    before = X.copy()
    Z = gpu_hclust.linkage(X, "average", "hamming", backend=backend)
    assert_equal = np.testing.assert_array_equal
    assert_equal(Z, sch.linkage(X, "average", "hamming"))
    assert_equal(X, before)
