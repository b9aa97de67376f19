"""Property-based differential test of ``linkage`` against scipy 1.17 (Hypothesis).

Inputs are drawn over shapes (n 1..60, d 1..6), input dtypes (float64,
float32, int64, bool), scales 1e-150..1e150 by powers of ten, data kinds that
tie (integer grids, binary rows, repeated rows, all-equal) beside generic
normal data, metrics (every compiled one plus scipy-only ones), all seven
methods, both input forms (observations and condensed) and ``low_memory``
None/True/False where valid. The oracle is scipy:

* scipy raises -> we raise the same exception type, and the other way round;
* except where scipy only overflowed (squared distances past the float64
  range) and the exact answer is representable: then scipy on the input
  scaled down by a power of two (exact) is the reference, and ours must be
  finite, valid and replay on the scaled-down distances (the dense CPU path:
  scipy's tree of the scaled-down input); heights that overflow even scaled
  back up must give ValueError;
* CPU dense path (``backend='cpu'``, not the memory-saving path, float64
  working precision): ``Z`` is scipy's, ids exact, heights to rtol 1e-12;
* memory-saving path and CUDA (simulator, n <= 8 by default): a valid linkage,
  every merge at the current global minimum (``reference.replay_check``),
  the same ``Z`` on a second run, and for single linkage the sorted heights
  are scipy's.

The post-processing functions get the same treatment on scipy's own Z for
tie-prone data (exact labels/orders, statistics to rtol 1e-12). Counterexamples
found so far are kept as named cases (``test_regressions_match_scipy``).

The default run is bounded and derandomized (reproducible in CI, no example
database written); ``-m slow`` runs the long, randomized search.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust import _lowmem
from gpu_hclust.kernels.metrics import METRIC_CODES
from reference import replay_check

METHODS = ["single", "complete", "average", "weighted", "centroid", "median", "ward"]
COMPILED = sorted(METRIC_CODES)
SCIPY_ONLY = ["canberra", "hamming", "braycurtis"]
KINDS = ["normal", "grid", "binary", "duplicates", "constant"]

# Every automatic switch to the memory-saving path is above this n (single:
# n > 256; ward/average: n >= 20 000), so low_memory=None is the dense path here.
MAX_N = 60
CUDA_MAX_N = 12


def _data(seed, kind, n, d):
    """(n, d) float64 observations of one kind, from a seeded generator."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal((n, d))
    if kind == "grid":
        return rng.integers(1, 5, size=(n, d)).astype(np.float64)
    if kind == "binary":
        return rng.integers(0, 2, size=(n, d)).astype(np.float64)
    if kind == "duplicates":
        distinct = rng.standard_normal((max(1, n // 3), d))
        return distinct[rng.integers(0, len(distinct), size=n)]
    return np.full((n, d), rng.standard_normal())  # "constant": every distance 0


@st.composite
def cases(draw, max_n=MAX_N):
    """One linkage call: its argument ``y``, method, metric and ``low_memory``."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(KINDS))
    seed = draw(st.integers(0, 2**32 - 1))
    X = _data(seed, kind, n, d)
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool"]))
    if dtype in ("int64", "bool"):
        # Integer data is its own tie pattern; scaling it would only make floats.
        X = np.rint(X * 2) if dtype == "int64" else X > 0
        X = X.astype(dtype)
    else:
        with np.errstate(over="ignore"):  # float32 overflow to inf is a case too
            X = (X * 10.0 ** draw(st.integers(-150, 150))).astype(dtype)
    method = draw(st.sampled_from(METHODS))
    metric = draw(st.sampled_from(COMPILED + SCIPY_ONLY))
    form = draw(st.sampled_from(["observations", "condensed"]))
    if form == "condensed":
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = pdist(X, metric)
        low_memory = draw(st.sampled_from([None, False]))
    else:
        y = X
        allowed = [None, False, True] if _lowmem.supports(method, metric) else [None, False]
        low_memory = draw(st.sampled_from(allowed))
    return {"y": y, "method": method, "metric": metric, "low_memory": low_memory,
            "form": form, "X": X, "kind": kind}


def _outcome(fn):
    """The function's result, or the exception it raised."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # ClusterWarning ("looks like a distance matrix") and pdist's
        # runtime warnings are not under test here.
        warnings.simplefilter("ignore")
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 -- the exception is the outcome
            return exc


def _distances(case):
    """The condensed matrix the linkage works on (scipy's pdist for observations)."""
    if case["form"] == "condensed":
        return np.asarray(case["y"], dtype=np.float64)
    with np.errstate(all="ignore"):
        return pdist(np.asarray(case["X"], dtype=np.float64), case["metric"])


def _scaled(y, Z):
    """y and Z's heights divided by the same power of two (exact) so that max|y| ~ 1.

    The replay works in squared units for ward/centroid/median: at 1e150 the
    squares overflow and at 1e-150 they underflow in the checker itself.
    """
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if top == 0.0 or not np.isfinite(top):
        return y, Z
    factor = 2.0 ** -np.frexp(top)[1]
    Z = Z.copy()
    Z[:, 2] *= factor
    return y * factor, Z


def _assert_same_outcome(ours, theirs):
    if isinstance(theirs, Exception):
        assert isinstance(ours, type(theirs)), (
            f"scipy raised {type(theirs).__name__}({theirs}); we returned "
            f"{type(ours).__name__}: {ours!r}"[:600]
        )
        return False
    assert not isinstance(ours, Exception), (
        f"we raised {type(ours).__name__}({ours}); scipy returned a linkage"[:600]
    )
    return True


def _assert_valid_and_replays(Z, case):
    assert sch.is_valid_linkage(Z), Z
    y, Zs = _scaled(_distances(case), Z)
    replay_check(Zs, y, case["method"], rtol=1e-9)


def _assert_single_heights(Z, Zs):
    scale = max(float(np.max(np.abs(Zs[:, 2]), initial=0.0)), np.finfo(float).tiny)
    assert_allclose(np.sort(Z[:, 2]), np.sort(Zs[:, 2]), rtol=1e-12, atol=1e-12 * scale)


# How a metric's distances scale when the observations are multiplied by c > 0:
# by c ** degree (every other metric under test: degree 1).
_DEGREE = {"sqeuclidean": 2, "cosine": 0, "correlation": 0,
           "canberra": 0, "hamming": 0, "braycurtis": 0}


def _scaled_down(case):
    """The case with ``y`` divided by a power of two (exact) so that max|y| ~ 1,
    and the factor its linkage heights are divided by; None for input holding
    NaN/inf or all zeros (no overflow to undo)."""
    y = np.asarray(case["y"], dtype=np.float64)
    if y.size == 0 or not np.isfinite(y).all():
        return None
    top = float(np.max(np.abs(y)))
    if top == 0.0:
        return None
    factor = 2.0 ** -np.frexp(top)[1]
    degree = 1 if case["form"] == "condensed" else _DEGREE.get(case["metric"], 1)
    small = dict(case, y=y * factor)
    if case["form"] == "observations":
        small["X"] = small["y"]
    return small, factor ** degree


def _check_overflow(case, backend, ours, theirs):
    """scipy failed (raised, or gave nan/inf heights): was it only overflow?

    scipy squares the distances for ward/centroid/median (and pdist squares
    coordinates), so it overflows on input whose exact answer is representable.
    The same linkage on the input scaled down by a power of two (exact) tells:
    when scipy answers it with finite heights that stay finite scaled back up,
    the exact answer exists and ours must be a finite, valid Z whose merges
    replay on the scaled-down distances (the dense CPU path: scipy's tree of
    the scaled-down input). When the scaled-back heights overflow, the answer
    is not representable and we must raise ValueError. Returns False when the
    rescaled input fails in scipy as well (not an overflow: the usual rules).
    """
    rescaled = _scaled_down(case)
    if rescaled is None:
        return False
    small, factor = rescaled
    args = (small["y"], case["method"], case["metric"])
    theirs_small = _outcome(lambda: sch.linkage(*args))
    if isinstance(theirs_small, Exception) or not np.isfinite(theirs_small[:, 2]).all():
        return False
    with np.errstate(over="ignore"):
        exact_heights = theirs_small[:, 2] / factor
    if not np.isfinite(exact_heights).all():
        assert isinstance(ours, ValueError), (
            f"scipy overflowed and the exact heights exceed the float64 range; "
            f"we returned {ours!r}"[:600])
        return True
    assert not isinstance(ours, Exception), (
        f"scipy overflowed ({theirs!r}) but the exact answer is representable; "
        f"we raised {ours!r}"[:600])
    assert np.isfinite(ours[:, 2]).all(), f"non-finite heights:\n{ours}"
    assert sch.is_valid_linkage(ours), ours
    ours_small = ours.copy()
    ours_small[:, 2] *= factor
    if backend == "cpu" and case["low_memory"] is not True:
        _assert_scipy_tree(ours_small, theirs_small)
    else:
        y, Zs = _scaled(_distances(small), ours_small)
        replay_check(Zs, y, case["method"], rtol=1e-9)
    return True


def _assert_scipy_tree(ours, theirs):
    """scipy's tree: ids and sizes exact, heights to rtol 1e-12 (scaled atol for
    heights that cancel to ~0, e.g. cosine of equal rows)."""
    scale = max(float(np.max(np.abs(theirs[:, 2]), initial=0.0)), np.finfo(float).tiny)
    assert_array_equal(ours[:, [0, 1, 3]], theirs[:, [0, 1, 3]])
    assert_allclose(ours[:, 2], theirs[:, 2], rtol=1e-12, atol=1e-12 * scale)


def _check(case, backend):
    kwargs = {"backend": backend, "low_memory": case["low_memory"]}
    args = (case["y"], case["method"], case["metric"])
    theirs = _outcome(lambda: sch.linkage(*args))
    ours = _outcome(lambda: gpu_hclust.linkage(*args, **kwargs))
    scipy_failed = isinstance(theirs, Exception) or not np.isfinite(theirs[:, 2]).all()
    if scipy_failed and _check_overflow(case, backend, ours, theirs):
        return
    if not _assert_same_outcome(ours, theirs):
        return
    assert np.isfinite(theirs[:, 2]).all(), (
        f"scipy gave non-finite heights on input that no rescaling helps:\n{theirs}")
    dense_cpu = backend == "cpu" and case["low_memory"] is not True
    if dense_cpu:
        _assert_scipy_tree(ours, theirs)
        return
    _assert_valid_and_replays(ours, case)
    again = gpu_hclust.linkage(*args, **kwargs)
    assert_array_equal(again, ours)  # deterministic: no arrival-order tie-breaks
    if case["method"] == "single":
        _assert_single_heights(ours, theirs)


def _case(y, method, metric="euclidean", low_memory=None):
    """A hand-written case (the form follows from y's shape)."""
    y = np.asarray(y)
    form = "condensed" if y.ndim == 1 else "observations"
    return {"y": y, "method": method, "metric": metric, "low_memory": low_memory,
            "form": form, "X": y if form == "observations" else None, "kind": "example"}


# Counterexamples Hypothesis found (shrunk by hand), each its own test.
_GRID_1E97 = np.array([[1, 1], [2, 4], [4, 4], [2, 3], [3, 2], [4, 3]]) * 1e-97
_LINE_1E100 = np.array([[0.0], [1.0], [1.0], [3.0], [7.0]]) * 1e100
REGRESSIONS = [
    # Ties: scipy's generic algorithm picks another of the equal pairs.
    pytest.param(_case(pdist(np.array([[8], [6], [6], [4]]), "chebyshev"), "centroid"),
                 id="ties-centroid"),
    pytest.param(_case(np.zeros(6), "median"), id="ties-median-all-equal"),
    # Ties in real arithmetic, decided by rounding: the compiled sqeuclidean
    # differs from scipy's pdist by an ulp (fastmath reassoc/contract).
    pytest.param(_case(_GRID_1E97, "average", "sqeuclidean", low_memory=False),
                 id="pdist-rounding-sqeuclidean"),
    # Squared distances overflow: scipy gives nan (ward) or raises (centroid).
    pytest.param(_case(pdist(_LINE_1E100, "sqeuclidean"), "ward"), id="overflow-ward"),
    pytest.param(_case(pdist(_LINE_1E100, "sqeuclidean"), "centroid"), id="overflow-centroid"),
    # scipy's gh-21011 (test_centroid_neg_distance): negative condensed input.
    pytest.param(_case(np.array([0.0, 0.0, -1.0]), "centroid"), id="negative-centroid"),
    # inf observations whose hamming distances are finite: scipy clusters them.
    pytest.param(_case(np.full((3, 1), -np.inf, np.float32), "single", "hamming"),
                 id="inf-observations-hamming"),
]


@pytest.mark.parametrize("case", REGRESSIONS)
def test_regressions_match_scipy(case):
    _check(case, "cpu")


# --- the bounded default run (derandomized: CI sees the same examples) -------------

BOUNDED = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@BOUNDED
@given(cases())
def test_cpu_matches_scipy(case):
    _check(case, "cpu")


@settings(max_examples=5, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_n=8))
def test_cuda_simulator_matches_scipy(case):
    _check(case, "cuda")


# --- generic-position data: the dense CPU path equals scipy on every method -------


@st.composite
def generic_cases(draw):
    n = draw(st.integers(2, MAX_N))
    d = draw(st.integers(1, 6))
    X = _data(draw(st.integers(0, 2**32 - 1)), "normal", n, d)
    X = X * 10.0 ** draw(st.integers(-150, 150))
    method = draw(st.sampled_from(METHODS))
    form = draw(st.sampled_from(["observations", "condensed"]))
    y = pdist(X) if form == "condensed" else X
    return {"y": y, "method": method, "metric": "euclidean", "low_memory": False,
            "form": form, "X": X, "kind": "normal"}


@BOUNDED
@given(generic_cases())
def test_cpu_generic_position_equals_scipy(case):
    _check(case, "cpu")


# --- the long search ------------------------------------------------------------

LONG = settings(max_examples=3000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.slow
@LONG
@given(cases())
def test_cpu_matches_scipy_long(case):
    _check(case, "cpu")


@pytest.mark.slow
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_n=CUDA_MAX_N))
def test_cuda_simulator_matches_scipy_long(case):
    _check(case, "cuda")


# --- post-processing of a given Z (scipy's own), against scipy ----------------------
#
# Z comes from scipy on tie-prone data, so equal heights, zero heights and
# inversions (centroid/median) reach every function. Results must be scipy's:
# exactly for labels, ids and orders; to rtol 1e-12 for statistics.

POST_TOL = {"rtol": 1e-12, "atol": 1e-300}


def _same(ours, theirs, exact=False):
    if isinstance(theirs, Exception):
        assert isinstance(ours, type(theirs)), f"scipy raised {theirs!r}; we gave {ours!r}"[:600]
        return
    assert not isinstance(ours, Exception), f"we raised {ours!r}; scipy did not"[:600]
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b, exact)
    elif isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            _same(ours[key], theirs[key], exact)
    elif isinstance(theirs, list) and theirs and isinstance(theirs[0], str):
        assert ours == theirs
    elif exact:
        assert_array_equal(np.asarray(ours), np.asarray(theirs))
    else:
        assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float),
                        **POST_TOL, equal_nan=True)


@st.composite
def linkages(draw):
    """scipy's Z for a tie-prone data set, and the condensed distances it came from."""
    n = draw(st.integers(2, 30))
    d = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(KINDS))
    X = _data(draw(st.integers(0, 2**32 - 1)), kind, n, d)
    method = draw(st.sampled_from(METHODS))
    y = pdist(X)
    return sch.linkage(y, method), y


@settings(BOUNDED, max_examples=60)
@given(linkages(), st.data())
def test_postprocessing_matches_scipy(zy, data):
    Z, y = zy
    n = Z.shape[0] + 1
    g, s = gpu_hclust, sch

    def pair(name, *args, exact=False, **kwargs):
        ours = _outcome(lambda: getattr(g, name)(*args, **kwargs))
        theirs = _outcome(lambda: getattr(s, name)(*args, **kwargs))
        _same(ours, theirs, exact)
        return theirs

    pair("cophenet", Z)
    pair("cophenet", Z, y)
    depth = data.draw(st.integers(1, 4), label="depth")
    R = pair("inconsistent", Z, depth)
    pair("maxdists", Z)
    if not isinstance(R, Exception):
        pair("maxinconsts", Z, R)
        pair("maxRstat", Z, R, data.draw(st.integers(0, 3), label="column"))
    pair("is_monotonic", Z, exact=True)
    pair("correspond", Z, y, exact=True)
    pair("leaves_list", Z, exact=True)
    pair("to_mlab_linkage", Z)
    pair("from_mlab_linkage", sch.to_mlab_linkage(Z))
    heights = Z[:, 2]
    t_distance = data.draw(st.sampled_from([0.0, *heights.tolist()]) if n > 1 else st.just(0.0),
                           label="t (distance)")
    pair("fcluster", Z, t_distance, "distance", exact=True)
    pair("fcluster", Z, data.draw(st.integers(1, n + 1), label="t (maxclust)"), "maxclust",
         exact=True)
    pair("fcluster", Z, data.draw(st.sampled_from([0.0, 0.5, 0.8, 1.0, 1.2]), label="t (inc.)"),
         "inconsistent", depth=depth, exact=True)
    T = sch.fcluster(Z, t_distance, "distance")
    pair("leaders", Z, T.astype(np.int32), exact=True)
    pair("cut_tree", Z, exact=True)
    pair("cut_tree", Z, height=t_distance, exact=True)
    if data.draw(st.booleans(), label="optimal ordering") and n <= 20:
        pair("optimal_leaf_ordering", Z, y)
    mode = data.draw(st.sampled_from([None, "lastp", "level"]), label="truncate_mode")
    p = data.draw(st.integers(0, n + 2), label="p")
    sort = data.draw(st.sampled_from([False, "ascending", "descending"]), label="sort")
    kwargs = {"no_plot": True, "truncate_mode": mode, "p": p,
              "count_sort": sort if data.draw(st.booleans(), label="count") else False,
              "distance_sort": sort}
    pair("dendrogram", Z, **kwargs)
