"""linkage(..., backend='cpu') against scipy 1.17 and the reference oracles.

Generic-position data: Z equals scipy's (ids exact, heights rtol 1e-12).
Ties (rounded distances, duplicates, all-equal points, grids): Z is valid,
monotone where the method is, replays as a sequence of global-minimum merges,
and for single linkage its sorted heights equal scipy's exactly.
"""

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust import _engine_cpu
from gpu_hclust._methods import METHODS
from gpu_hclust._validation import validate_linkage_input
from gpu_hclust.kernels import cpu_generic, cpu_mst, cpu_nnchain, formulas

from reference import naive_linkage, replay_check

ALL_METHODS = list(METHODS)
MONOTONE = ["single", "complete", "average", "weighted", "ward"]
EUCLIDEAN_ONLY = ["ward", "centroid", "median"]
ANY_METRIC = ["single", "complete", "average", "weighted"]
SIZES = [2, 3, 57, 150]

# scipy metrics on real-valued data (each gets data it is defined on).
REAL_METRICS = [
    "euclidean", "sqeuclidean", "cityblock", "chebyshev", "minkowski", "cosine",
    "correlation", "canberra", "braycurtis", "seuclidean", "mahalanobis",
    "jensenshannon",
]
# Boolean metrics on boolean data: few distinct values, so always ties.
BOOL_METRICS = ["dice", "hamming", "jaccard", "rogerstanimoto", "russellrao",
                "sokalsneath", "yule"]


def cpu(y, method, **kw):
    return gpu_hclust.linkage(y, method, backend="cpu", **kw)


def assert_same_as_scipy(Z, Zs):
    assert Z.dtype == np.float64 and Z.shape == Zs.shape
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12, atol=0)


def assert_valid_tied(Z, y, method):
    """What must hold under ties, whatever order equal merges take."""
    sch.is_valid_linkage(Z, throw=True)
    if method in MONOTONE:
        assert sch.is_monotonic(Z)
    replay_check(Z, y, method)
    if method == "single":
        assert_array_equal(np.sort(Z[:, 2]), np.sort(sch.linkage(y, "single")[:, 2]))


def points(rng, n, d=4):
    return rng.standard_normal((n, d))


# --------------------------------------------------------------------------
# Generic position: equal to scipy.


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_condensed_matches_scipy(rng, method, n):
    y = pdist(points(rng, n))
    assert_same_as_scipy(cpu(y, method), sch.linkage(y, method))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_observations_match_scipy(rng, method, n):
    X = points(rng, n)
    assert_same_as_scipy(cpu(X, method), sch.linkage(X, method))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_matches_naive_oracle(rng, method):
    y = pdist(points(rng, 40))
    assert_allclose(cpu(y, method), naive_linkage(y, method), rtol=1e-12, atol=0)


def _data_for(metric, rng, n, d=5):
    X = rng.standard_normal((n, d))
    if metric == "jensenshannon":
        return np.abs(X) + 0.1  # probability-like rows
    return X


@pytest.mark.parametrize("metric", REAL_METRICS)
@pytest.mark.parametrize("method", ANY_METRIC)
def test_every_real_metric(rng, method, metric):
    X = _data_for(metric, rng, 60)
    assert_same_as_scipy(cpu(X, method, metric=metric), sch.linkage(X, method, metric=metric))


@pytest.mark.parametrize("metric", BOOL_METRICS)
@pytest.mark.parametrize("method", ANY_METRIC)
def test_boolean_metrics_on_bool_data(rng, method, metric):
    X = rng.random((50, 24)) < 0.4
    X[:, 0] = True  # no all-False rows (yule/dice/jaccard divide by counts)
    y = pdist(X, metric)
    Z = cpu(X, method, metric=metric)
    if np.unique(y).size == y.size:
        assert_same_as_scipy(Z, sch.linkage(X, method, metric=metric))
    assert_valid_tied(Z, y, method)


@pytest.mark.parametrize("method", ANY_METRIC)
def test_callable_metric(rng, method):
    def l1(u, v):
        return float(np.abs(u - v).sum())

    X = points(rng, 40)
    assert_same_as_scipy(cpu(X, method, metric=l1), sch.linkage(X, method, metric=l1))


@pytest.mark.parametrize("alias", ["cityblock", "cblock", "cheb", "pnorm", "sqe", "cos"])
def test_metric_aliases(rng, alias):
    X = points(rng, 30)
    assert_same_as_scipy(cpu(X, "average", metric=alias), sch.linkage(X, "average", metric=alias))


# --------------------------------------------------------------------------
# Input forms: never mutated, any layout, lists, integers.


@pytest.mark.parametrize("method", ALL_METHODS)
def test_fortran_order_lists_ints_and_views(rng, method):
    X = np.asfortranarray(points(rng, 70))
    Zs = sch.linkage(X, method)
    assert_same_as_scipy(cpu(X, method), Zs)
    assert_same_as_scipy(cpu(X.tolist(), method), Zs)
    wide = np.repeat(X, 2, axis=1)[:, ::2]  # non-contiguous view equal to X
    assert_same_as_scipy(cpu(wide, method), Zs)
    Xi = rng.integers(-1000, 1000, size=(60, 3))
    assert_same_as_scipy(cpu(Xi, method), sch.linkage(Xi, method))
    y = pdist(points(rng, 30))
    assert_same_as_scipy(cpu(list(y), method), sch.linkage(y, method))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_input_not_mutated(rng, method):
    X = points(rng, 50)
    y = pdist(X)
    X0, y0 = X.copy(), y.copy()
    cpu(X, method)
    cpu(y, method)
    cpu(y, method, dtype=np.float32)
    assert_array_equal(X, X0)
    assert_array_equal(y, y0)


def test_float32_input_is_widened_like_scipy(rng):
    X = points(rng, 40).astype(np.float32)
    assert_same_as_scipy(cpu(X, "average"), sch.linkage(X, "average"))


# --------------------------------------------------------------------------
# float32 working matrix: heights to float32 precision, always valid.


@pytest.mark.parametrize("n", [2, 3, 120])
@pytest.mark.parametrize("kind", ["condensed", "observations"])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_float32_working_dtype(rng, method, kind, n):
    X = points(rng, n)
    y = pdist(X)
    Z = cpu(y if kind == "condensed" else X, method, dtype=np.float32)
    Zs = sch.linkage(y, method)
    assert Z.dtype == np.float64
    sch.is_valid_linkage(Z, throw=True)
    if method in MONOTONE:
        assert sch.is_monotonic(Z)
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=0, atol=1e-5 * Zs[:, 2].max())


@pytest.mark.parametrize("metric", REAL_METRICS + ["hamming"])
def test_float32_every_metric(rng, metric):
    X = _data_for(metric, rng, 80)
    Z = cpu(X, "average", metric=metric, dtype=np.float32)
    Zs = sch.linkage(X, "average", metric=metric)
    sch.is_valid_linkage(Z, throw=True)
    assert sch.is_monotonic(Z)
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=0, atol=1e-5 * Zs[:, 2].max())


# --------------------------------------------------------------------------
# Ties: valid, monotone, replayable; single's heights exactly scipy's.


def _tied_inputs(rng):
    n = 48
    y = pdist(points(rng, n))
    yield "rounded", np.round(y * n / 4)
    X = points(rng, 12)
    yield "duplicates", pdist(np.repeat(X, 4, axis=0))
    yield "all-equal", np.zeros(n * (n - 1) // 2)
    g = np.arange(7.0)
    yield "grid", pdist(np.array([(a, b) for a in g for b in g]))


@pytest.mark.parametrize("method", ALL_METHODS)
def test_ties_valid_and_replayable(rng, method):
    for name, y in _tied_inputs(rng):
        Z = cpu(y, method)
        try:
            assert_valid_tied(Z, y, method)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


@pytest.mark.parametrize("method", ALL_METHODS)
def test_ties_on_observations(method):
    g = np.arange(6.0)
    X = np.array([(a, b) for a in g for b in g])
    assert_valid_tied(cpu(X, method), pdist(X), method)


def test_complete_tie_dependent_heights_still_valid():
    # scipy's own example: heights depend on which tie merges first.
    for X in ([[0.0], [1.0], [2.0], [3.5]], [[3.5], [2.0], [1.0], [0.0]]):
        y = pdist(np.array(X))
        assert_valid_tied(cpu(y, "complete"), y, "complete")


# --------------------------------------------------------------------------
# Single linkage: Prim breaks ties like scipy, so Z is scipy's bit for bit.


@pytest.mark.parametrize("n", [2, 3, 300, 2500])
def test_single_bitwise_on_condensed_input(rng, n):
    y = pdist(points(rng, n, d=3))
    assert_array_equal(cpu(y, "single"), sch.linkage(y, "single"))


@pytest.mark.parametrize("name_y", list(_tied_inputs(np.random.default_rng(7))),
                         ids=lambda item: item[0])
def test_single_bitwise_under_ties(name_y):
    _, y = name_y
    assert_array_equal(cpu(y, "single"), sch.linkage(y, "single"))


def _is_spanning_tree(a, b, n):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for u, v in zip(a.tolist(), b.tolist()):
        ru, rv = find(u), find(v)
        if ru == rv:
            return False
        parent[ru] = rv
    return len(a) == n - 1


@pytest.mark.parametrize("n", [2, 3, 9, 300])
def test_prim_log(rng, n):
    y = np.round(pdist(points(rng, n)) * 3)  # heavy ties
    counter = np.zeros(1, dtype=np.int64)
    a, b, h = cpu_mst.prim(y, n, counter)
    assert counter[0] == n - 1  # progress: every merge counted
    assert _is_spanning_tree(a, b, n)  # (last vertex added, vertex joining)
    assert_array_equal(np.sort(h), np.sort(sch.linkage(y, "single")[:, 2]))
    a2, b2, h2 = cpu_mst.run(y, n, formulas.SINGLE)
    assert (np.diff(h2) >= 0).all()  # the engine's log comes back sorted...
    order = np.argsort(h, kind="stable")
    assert_array_equal(a2, a[order])  # ...stably
    assert_array_equal(b2, b[order])


def test_prim_float32_matrix(rng):
    y = pdist(points(rng, 200)).astype(np.float32)
    _, _, h = cpu_mst.prim(y, 200, np.zeros(1, dtype=np.int64))
    assert_array_equal(np.sort(h), np.sort(sch.linkage(y.astype(np.float64), "single")[:, 2]))


def test_negative_distances_single(rng):
    # scipy accepts negative condensed distances; so does the MST.
    y = pdist(points(rng, 30)) - 2.0
    assert_array_equal(cpu(y, "single"), sch.linkage(y, "single"))


# --------------------------------------------------------------------------
# Engine module contract.


def _input(y, method="single", metric="euclidean"):
    return validate_linkage_input(y, METHODS[method], metric)


def test_working_matrix_is_new_memory_and_squared(rng):
    X = points(rng, 20)
    y = pdist(X)
    for data in (y, X):
        inp = _input(data, "ward")
        for dt in (np.float64, np.float32):
            D = _engine_cpu.condensed_working_matrix(inp, np.dtype(dt), True)
            assert D.dtype == dt and not np.shares_memory(D, data)
            assert_allclose(D, (y * y).astype(dt), rtol=2e-7 if dt == np.float32 else 1e-13)
    D = _engine_cpu.condensed_working_matrix(_input(y), np.dtype(np.float64), False)
    assert_array_equal(D, y)
    assert not np.shares_memory(D, y)


def test_cpu_plan_checks_host_memory():
    from gpu_hclust._plan import make_plan
    from gpu_hclust._validation import validate_linkage_input

    inp = validate_linkage_input(np.arange(8.0).reshape(4, 2), METHODS["single"], "euclidean")
    plan = make_plan(inp, METHODS["single"], "cpu", None, None)
    assert (plan.backend, plan.where, plan.memory_saving) == ("cpu", "host", False)


@pytest.mark.parametrize("metric", ["cosine", "correlation"])
def test_zero_norm_rows_raise_like_scipy(rng, metric):
    X = points(rng, 10)
    X[3] = 0.0 if metric == "cosine" else 2.5  # zero norm after centring too
    with pytest.raises(ValueError, match="must contain only finite values"):
        sch.linkage(X, "average", metric=metric)
    with pytest.raises(ValueError, match="must contain only finite values"):
        cpu(X, "average", metric=metric)


@pytest.mark.parametrize("metric", ["euclidean", "braycurtis"])
def test_non_finite_distances_raise(rng, metric):
    X = points(rng, 10)
    if metric == "euclidean":
        X[0] = 1.5e308  # the exact distance to X[1] exceeds float64's range
        X[1] = -1.5e308
    else:
        X[:2] = 0.0  # 0/0 in scipy's pdist
    with pytest.raises(ValueError, match="must contain only finite values"):
        cpu(X, "single", metric=metric)


def test_representable_distances_do_not_overflow(rng):
    """scipy's squared differences overflow at 1e200; the exact distances fit in
    float64, and we return them (power-of-two scaling is exact)."""
    X = points(rng, 10)
    X[0] = 1e200
    Z = cpu(X, "single")
    scale = 2.0 ** 200  # scipy on X / scale neither overflows nor underflows
    Zs = sch.linkage(X / scale, "single")
    assert np.isfinite(Z).all()
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2] * scale, rtol=1e-15)


@pytest.mark.parametrize("module, code", [
    (cpu_mst, formulas.AVERAGE),
    (cpu_nnchain, formulas.CENTROID),
    (cpu_nnchain, formulas.SINGLE),
    (cpu_generic, formulas.WARD),
])
def test_kernels_reject_other_methods(module, code):
    with pytest.raises(ValueError, match=r"runs .*\(method code"):
        module.run(np.ones(3), 3, code)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_merge_log_contract(rng, method):
    spec = METHODS[method]
    n = 25
    y = pdist(points(rng, n))
    D = (y * y) if spec.squared else y.copy()
    a, b, h = _engine_cpu.run_family(spec, D, n)
    assert a.dtype == np.int64 and b.dtype == np.int64 and h.dtype == np.float64
    assert a.shape == b.shape == h.shape == (n - 1,)
    assert ((a >= 0) & (a < n) & (b >= 0) & (b < n) & (a != b)).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ALL_METHODS)
def test_larger_n_matches_scipy(rng, method):
    # parallel pdist, long prefetched column runs
    X = points(rng, 5000, d=8)
    Zs = sch.linkage(X, method)
    assert_same_as_scipy(cpu(X, method), Zs)
    Z32 = cpu(X, method, dtype=np.float32)
    sch.is_valid_linkage(Z32, throw=True)
    assert_allclose(Z32[:, 2], Zs[:, 2], rtol=0, atol=1e-5 * Zs[:, 2].max())


@pytest.mark.slow
@pytest.mark.parametrize("method", ALL_METHODS)
def test_larger_n_ties(rng, method):
    n = 3000
    y = np.round(pdist(points(rng, n, d=2)) * 8)
    Z = cpu(y, method)
    sch.is_valid_linkage(Z, throw=True)
    if method in MONOTONE:
        assert sch.is_monotonic(Z)
    if method == "single":
        assert_array_equal(Z, sch.linkage(y, "single"))
