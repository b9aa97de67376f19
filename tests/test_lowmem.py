"""Memory-saving linkage from observations on the CPU (gpu_hclust._lowmem, kernels/cpu_vector).

Every supported (method, metric) pair against scipy on generic-position data:
ids exact, heights to rtol 1e-10 (average with sqeuclidean/cosine/correlation
against scipy's average linkage of ``pdist(X, metric)``). Under ties: a valid
linkage whose every merge is at the current global minimum
(``reference.replay_check``). Sizes large enough to cross the engines' tiles,
parallel blocks and the one-thread/parallel switch run too.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster.hierarchy import is_monotonic, is_valid_linkage
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust import _lowmem
from gpu_hclust._memory import memory_saving_bytes
from gpu_hclust._methods import METHODS, memory_saving_pairs
from gpu_hclust._tree import merge_log_to_linkage
from gpu_hclust.kernels import cpu_vector, metrics
from lowmem_common import assert_same_linkage, lowmem_linkage, scipy_reference
from reference import replay_check

PAIRS = memory_saving_pairs()


# --- the support table -------------------------------------------------------------


def test_support_table_is_exactly_the_exact_pairs():
    table = {name: m.memory_saving_metrics for name, m in METHODS.items()}
    assert table["single"] == frozenset(metrics.METRIC_CODES)
    for method in ("ward", "centroid", "median"):
        assert table[method] == {"euclidean"}
    assert table["average"] == {"sqeuclidean", "cosine", "correlation"}
    assert table["complete"] == frozenset()
    assert table["weighted"] == frozenset()


@pytest.mark.parametrize(
    "method, metric, expected",
    [
        ("single", "chebyshev", True),
        ("average", "cosine", True),
        ("average", "euclidean", False),
        ("complete", "euclidean", False),
        ("weighted", "sqeuclidean", False),
        ("ward", "cityblock", False),
        ("single", "hamming", False),  # no compiled kernel: dense path via scipy's pdist
        ("single", lambda u, v: 0.0, False),
        ("nonsense", "euclidean", False),
    ],
)
def test_supports(method, metric, expected):
    assert _lowmem.supports(method, metric) is expected


def test_supports_takes_a_method_object():
    assert _lowmem.supports(METHODS["ward"], "euclidean")


def test_predict_bytes_is_linear_in_n_and_d():
    base = memory_saving_bytes(1000, 32)
    assert memory_saving_bytes(2000, 32) == 2 * base
    assert memory_saving_bytes(1000, 32, np.float32) < base
    assert base >= 1000 * 32 * 8  # at least the working copy of the data
    # a million 32-d points: well under a GB, where the dense matrix needs 4 TB
    assert memory_saving_bytes(10**6, 32) < 10**9


# --- equal to scipy ----------------------------------------------------------------


@pytest.mark.parametrize("method, metric", PAIRS)
def test_equals_scipy(rng, method, metric):
    X = rng.standard_normal((90, 4))
    assert_same_linkage(lowmem_linkage(X, method, metric), scipy_reference(X, method, metric))


@pytest.mark.parametrize("method, metric", [("single", "euclidean"), ("single", "cosine"),
                                            ("ward", "euclidean"), ("centroid", "euclidean"),
                                            ("average", "cosine")])
def test_equals_scipy_across_blocks_and_threads(rng, method, metric):
    # More slots than one parallel block and enough work per sweep for the
    # parallel path; the tail of every run takes the one-thread path.
    n = cpu_vector.BLOCK + 300
    d = -(-cpu_vector.PAR_MIN_WORK // n) + 1
    X = rng.standard_normal((n, d))
    assert_same_linkage(lowmem_linkage(X, method, metric), scipy_reference(X, method, metric))


@pytest.mark.parametrize("method", ["single", "ward", "median", "average"])
def test_one_feature_and_two_points(rng, method):
    metric = "sqeuclidean" if method == "average" else "euclidean"
    X = rng.standard_normal((30, 1))
    assert_same_linkage(lowmem_linkage(X, method, metric), scipy_reference(X, method, metric))
    X2 = np.array([[0.0, 1.0], [3.0, 5.0]])
    assert_same_linkage(lowmem_linkage(X2, method, metric), scipy_reference(X2, method, metric))


def test_float32_working_copy_is_valid_and_close(rng):
    X = rng.standard_normal((60, 5))
    for method, metric in [("single", "euclidean"), ("ward", "euclidean"),
                           ("centroid", "euclidean"), ("average", "cosine")]:
        Z = lowmem_linkage(X, method, metric, dtype=np.float32)
        Zs = scipy_reference(X, method, metric)
        assert Z.dtype == np.float64
        assert is_valid_linkage(Z, throw=True)
        assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cityblock", "chebyshev"])
def test_float32_storage_rounds_the_data_once(rng, metric):
    # Single linkage never updates the stored points, so with float64 arithmetic
    # on float32 storage its heights are the float64 heights of the rounded data.
    # What is rounded is the centred data (these metrics are translation-
    # invariant; the power-of-two scaling commutes with rounding).
    X = 1000.0 + rng.standard_normal((200, 7))  # large offset: float32 terms would round
    rounded = (X - X.mean(axis=0)).astype(np.float32).astype(np.float64)
    Z = lowmem_linkage(X, "single", metric, dtype=np.float32)
    assert_same_linkage(Z, lowmem_linkage(rounded, "single", metric), rtol=1e-13)


def test_correlation_is_cosine_of_centred_rows(rng):
    X = rng.standard_normal((50, 6))
    Xc = X - X.mean(axis=1, keepdims=True)
    Zcorr = lowmem_linkage(X, "average", "correlation")
    Zcos = lowmem_linkage(Xc, "average", "cosine")
    assert_array_equal(Zcorr[:, [0, 1, 3]], Zcos[:, [0, 1, 3]])
    assert_allclose(Zcorr[:, 2], Zcos[:, 2], rtol=1e-12)


# --- ties --------------------------------------------------------------------------


@pytest.mark.parametrize("method, metric", PAIRS)
def test_ties_give_a_valid_replayable_tree(rng, method, metric):
    # Small integer grid with duplicates: equal distances everywhere, zeros too.
    # Entries from 1 keep cosine defined (no zero rows); for correlation a last
    # coordinate outside 1..3 keeps every row non-constant.
    X = rng.integers(1, 4, size=(26, 3)).astype(np.float64)
    if metric == "correlation":
        X = np.column_stack([X, 10 + np.arange(26) % 5])
    Z = lowmem_linkage(X, method, metric)
    assert is_valid_linkage(Z, throw=True)
    if method not in ("centroid", "median"):
        assert is_monotonic(Z)
    replay_check(Z, pdist(X, metric), method)
    if method == "single":  # heights are input distances: the multiset is scipy's
        Zs = scipy_reference(X, method, metric)
        assert_allclose(np.sort(Z[:, 2]), np.sort(Zs[:, 2]), rtol=1e-12)


def test_all_points_equal():
    X = np.ones((7, 3))
    for method, metric in [("single", "euclidean"), ("ward", "euclidean"),
                           ("centroid", "euclidean"), ("average", "sqeuclidean"),
                           ("average", "cosine")]:
        Z = lowmem_linkage(X, method, metric)
        assert is_valid_linkage(Z, throw=True)
        assert_allclose(Z[:, 2], 0.0, atol=1e-15)


# --- input handling and errors -----------------------------------------------------


def test_input_is_not_modified(rng):
    X = rng.standard_normal((40, 3))
    keep = X.copy()
    for method, metric in [("single", "correlation"), ("ward", "euclidean"),
                           ("median", "euclidean"), ("average", "cosine")]:
        lowmem_linkage(X, method, metric)
        assert_array_equal(X, keep)


# (ward with cityblock is refused earlier, by scipy's euclidean-only rule)
@pytest.mark.parametrize("method, metric", [("complete", "euclidean"), ("weighted", "cosine"),
                                            ("average", "euclidean"), ("single", "hamming")])
def test_unsupported_pairs_raise(rng, method, metric):
    X = rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match=f"low_memory=True cannot compute method='{method}'"):
        gpu_hclust.linkage(X, method, metric, backend="cpu", low_memory=True)


@pytest.mark.parametrize("method", ["single", "average"])
def test_zero_row_with_cosine_raises(rng, method):
    X = rng.standard_normal((6, 3))
    X[4] = 0.0
    with pytest.raises(ValueError, match=r"metric='cosine' is undefined for all-zero .*rows \[4\]"):
        _lowmem.run_vector(X, METHODS[method], "cosine", "cpu", None)


def test_constant_row_with_correlation_raises(rng):
    X = rng.standard_normal((6, 3))
    X[2] = 7.0
    with pytest.raises(ValueError, match=r"metric='correlation' is undefined for constant .*rows \[2\]"):
        _lowmem.run_vector(X, METHODS["average"], "correlation", "cpu", None)


def test_bad_dtype_and_backend_raise(rng):
    X = rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match="dtype must be None, np.float32 or np.float64"):
        gpu_hclust.linkage(X, "ward", backend="cpu", low_memory=True, dtype=np.int32)
    with pytest.raises(ValueError, match="backend must be one of None, 'auto', 'cpu', 'cuda'"):
        gpu_hclust.linkage(X, "ward", backend="tpu", low_memory=True)


def test_progress_counter_reaches_n_minus_1(rng):
    X = rng.standard_normal((25, 3))
    for method, metric in [("single", "euclidean"), ("ward", "euclidean"),
                           ("centroid", "euclidean"), ("average", "cosine")]:
        counter = np.full(1, 7, dtype=np.int64)
        _lowmem.run_vector(X, METHODS[method], metric, "cpu", None, counter=counter)
        assert counter[0] == 24


class _FixedPacer(cpu_vector.Pacer):
    """Forces one mode and small chunks: many resumptions of the step functions."""

    def __init__(self, d, parallel):
        super().__init__(d, threads=2)
        self.forced = parallel

    def mode(self, m):
        return self.forced

    def chunk(self, m, parallel):
        return 3


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("method", ["single", "ward", "median"])
def test_engines_resume_across_chunks_in_either_mode(rng, method, parallel):
    # Enough slots x features for the parallel sweeps while chunks of 3 merges
    # make the engines stop and resume hundreds of times.
    n = cpu_vector.BLOCK + 100
    d = -(-cpu_vector.PAR_MIN_WORK // n) + 1
    X = rng.standard_normal((n, d))
    spec = METHODS[method]
    CT = np.ascontiguousarray(X.T)
    a, b, h = np.empty(n - 1, np.int64), np.empty(n - 1, np.int64), np.empty(n - 1)
    counter = np.zeros(1, dtype=np.int64)
    pacer = _FixedPacer(d, parallel)
    if method == "single":
        cpu_vector.single(metrics.EUCLIDEAN, CT, np.ones(n), 2.0, a, b, h, counter, pacer)
        order = np.argsort(h, kind="stable")
        a, b, h = a[order], b[order], h[order]
    else:
        engine = cpu_vector.generic if spec.family == "generic" else cpu_vector.reducible
        engine(spec.code, metrics.SQEUCLIDEAN, CT, np.ones(n), np.zeros(n), a, b, h, counter, pacer)
    Z = merge_log_to_linkage(a, b, h, n, spec)
    assert_same_linkage(Z, scipy_linkage(X, method))


def test_pacer_prefers_the_faster_mode_and_probes_the_other():
    pacer = cpu_vector.Pacer(d=64, threads=2)
    m = cpu_vector.PAR_MIN_WORK  # m * d above the parallel threshold
    assert pacer.chunk(m, True) == pacer.MIN_CHUNK  # an unmeasured mode gets a short chunk
    assert pacer.mode(m) is False  # serial is measured first
    pacer.record(False, 1.0, 10.0)  # the first chunk warms up: not recorded
    assert pacer.mode(m) is False
    pacer.record(False, 1e9, 1.0)
    assert pacer.mode(m) is True  # then parallel
    pacer.record(True, 1e9, 10.0)  # parallel 10x slower (an oversubscribed machine)
    modes = [pacer.mode(m) for _ in range(40)]
    assert modes.count(False) > 30 and True in modes  # mostly serial, parallel re-probed
    assert pacer.mode(1) is False  # small sweeps never go parallel
    assert cpu_vector.Pacer(d=64, threads=1).mode(m) is False
    # a chunk lasts about TARGET_S at its mode's rate
    assert pacer.chunk(1000, False) == int(pacer.TARGET_S * 1e9 / (1000 * 64))
