"""HierarchicalClustering: scikit-learn's contract, and labels equal to scipy's cuts."""

import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import pdist, squareform

import gpu_hclust
from gpu_hclust import HierarchicalClustering
from gpu_hclust._estimator import HAVE_SKLEARN, cut_labels

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]
MONOTONE = ["single", "complete", "average", "weighted", "ward"]


def same_partition(a, b):
    """Two labelings describe the same partition (cluster names may differ)."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.fixture
def X(rng):
    return rng.normal(size=(40, 3))


# -- scikit-learn's own checks -------------------------------------------------
if HAVE_SKLEARN:
    from sklearn.utils.estimator_checks import parametrize_with_checks

    @parametrize_with_checks([HierarchicalClustering()])
    def test_sklearn_check_estimator(estimator, check):
        check(estimator)


def test_check_estimator_in_one_call():
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(HierarchicalClustering(method="average"))


# -- results against scipy ----------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_linkage_attributes_match_scipy(X, method):
    model = HierarchicalClustering(n_clusters=3, method=method, backend="cpu").fit(X)
    Zs = sch.linkage(X, method)
    assert_array_equal(model.linkage_[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(model.linkage_[:, 2], Zs[:, 2], rtol=1e-10)
    assert_array_equal(model.children_, Zs[:, :2].astype(np.intp))
    assert model.children_.dtype.kind == "i"
    assert_allclose(model.distances_, Zs[:, 2], rtol=1e-10)
    assert model.n_leaves_ == 40
    assert model.n_features_in_ == 3
    assert model.n_connected_components_ == 1


@pytest.mark.parametrize("method", MONOTONE)
@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_n_clusters_matches_fcluster_maxclust(X, method, k):
    model = HierarchicalClustering(n_clusters=k, method=method, backend="cpu").fit(X)
    expected = sch.fcluster(sch.linkage(X, method), k, "maxclust")
    assert model.n_clusters_ == k
    assert_array_equal(np.unique(model.labels_), np.arange(k))
    assert same_partition(model.labels_, expected)


@pytest.mark.parametrize("method", ["centroid", "median"])
def test_n_clusters_undoes_the_last_merges(X, method):
    # Non-monotone trees: exactly k clusters, from the first n-k merges in Z
    # (scipy's cut_tree is unreliable on such trees, so the oracle is a DisjointSet).
    k = 4
    model = HierarchicalClustering(n_clusters=k, method=method, backend="cpu").fit(X)
    Zs = sch.linkage(X, method)
    assert not sch.is_monotonic(Zs)  # the case this test is about
    n = X.shape[0]
    ds = sch.DisjointSet(range(2 * n - 1))
    for i in range(n - k):
        ds.merge(int(Zs[i, 0]), n + i)
        ds.merge(int(Zs[i, 1]), n + i)
    expected = [ds[j] for j in range(n)]
    assert model.n_clusters_ == k
    assert same_partition(model.labels_, expected)


@pytest.mark.parametrize("method", METHODS)
def test_distance_threshold_matches_fcluster_distance(X, method):
    Zs = sch.linkage(X, method)
    levels = np.unique(sch.maxdists(Zs))
    for i in (len(levels) // 3, len(levels) - 3):  # thresholds between two merge levels
        t = 0.5 * (levels[i] + levels[i + 1])
        model = HierarchicalClustering(n_clusters=None, distance_threshold=t, method=method,
                                       backend="cpu").fit(X)
        expected = sch.fcluster(Zs, t, "distance")
        assert model.n_clusters_ == len(np.unique(expected))
        assert same_partition(model.labels_, expected)


def test_distance_threshold_follows_sklearn_at_a_merge_height(X):
    # sklearn: merges at a height >= threshold are not made.
    Zs = sch.linkage(X, "ward")
    t = Zs[-3, 2]
    model = HierarchicalClustering(n_clusters=None, distance_threshold=t, backend="cpu").fit(X)
    assert model.n_clusters_ == 4
    model = HierarchicalClustering(n_clusters=None, distance_threshold=0.0, backend="cpu").fit(X)
    assert model.n_clusters_ == 40
    assert_array_equal(model.labels_, np.arange(40))
    model = HierarchicalClustering(n_clusters=None, distance_threshold=1e9, backend="cpu").fit(X)
    assert model.n_clusters_ == 1
    assert_array_equal(model.labels_, np.zeros(40))


@pytest.mark.parametrize("method", ["single", "complete", "average", "ward"])
def test_same_as_sklearn_agglomerative_clustering(X, method):
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    ref = sklearn_cluster.AgglomerativeClustering(n_clusters=3, linkage=method,
                                                  compute_distances=True).fit(X)
    model = HierarchicalClustering(n_clusters=3, method=method, backend="cpu").fit(X)
    assert same_partition(model.labels_, ref.labels_)
    assert_allclose(np.sort(model.distances_), np.sort(ref.distances_), rtol=1e-10)


def test_fit_predict_labels_are_numbered_by_first_appearance(X):
    labels = HierarchicalClustering(n_clusters=5, backend="cpu").fit_predict(X)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in range(5)]
    assert firsts == sorted(firsts)
    assert labels.dtype == np.intp


def test_precomputed_distances(X):
    D = squareform(pdist(X, "cityblock"))
    model = HierarchicalClustering(n_clusters=3, method="average", metric="precomputed",
                                   backend="cpu").fit(D)
    expected = sch.fcluster(sch.linkage(pdist(X, "cityblock"), "average"), 3, "maxclust")
    assert same_partition(model.labels_, expected)


def test_metric_and_dtype_reach_linkage(X):
    model = HierarchicalClustering(n_clusters=3, method="average", metric="cosine",
                                   backend="cpu").fit(X)
    assert_allclose(model.linkage_[:, 2], sch.linkage(X, "average", "cosine")[:, 2], rtol=1e-10)
    blobs = np.concatenate([X, X + 100.0])
    model32 = HierarchicalClustering(n_clusters=2, dtype=np.float32, backend="cpu").fit(blobs)
    assert model32.linkage_.dtype == np.float64
    assert_array_equal(model32.labels_, np.repeat([0, 1], 40))


def test_low_memory_reaches_linkage(X, lowmem_calls):
    calls = lowmem_calls
    model = HierarchicalClustering(n_clusters=3, method="average", metric="cosine",
                                   low_memory=True, backend="cpu").fit(X)
    assert calls == ["average"]
    assert_allclose(model.linkage_[:, 2], sch.linkage(X, "average", "cosine")[:, 2], rtol=1e-10)
    HierarchicalClustering(n_clusters=3, method="ward", low_memory=False, backend="cpu").fit(X)
    assert calls == ["average"]
    with pytest.raises(ValueError, match="low_memory=True cannot compute method='complete'"):
        HierarchicalClustering(method="complete", low_memory=True, backend="cpu").fit(X)
    D = squareform(pdist(X))
    with pytest.raises(ValueError, match="low_memory=True needs an \\(n, d\\) observation matrix"):
        HierarchicalClustering(metric="precomputed", method="average", low_memory=True,
                               backend="cpu").fit(D)
    with pytest.raises(ValueError, match="low_memory must be None, True or False"):
        HierarchicalClustering(low_memory="yes", backend="cpu").fit(X)


def test_lists_and_input_not_mutated(X):
    before = X.copy()
    a = HierarchicalClustering(n_clusters=3, backend="cpu").fit(X).labels_
    b = HierarchicalClustering(n_clusters=3, backend="cpu").fit(X.tolist()).labels_
    assert_array_equal(a, b)
    assert_array_equal(X, before)


def test_pickles(X):
    model = HierarchicalClustering(n_clusters=3, backend="cpu").fit(X)
    again = pickle.loads(pickle.dumps(model))
    assert_array_equal(again.labels_, model.labels_)


# -- parameters ----------------------------------------------------------------
def test_get_and_set_params():
    model = HierarchicalClustering()
    assert model.get_params() == {
        "n_clusters": 2, "distance_threshold": None, "method": "ward", "metric": "euclidean",
        "backend": None, "dtype": None, "low_memory": None, "compute_full_tree": "auto",
    }
    assert model.set_params(method="single", n_clusters=4) is model
    assert (model.method, model.n_clusters) == ("single", 4)
    with pytest.raises(ValueError, match="Invalid parameter 'linkage'"):
        model.set_params(linkage="single")


def test_params_stored_untouched():
    # Validation happens in fit, so even nonsense is stored as given.
    model = HierarchicalClustering(n_clusters=-3, method="nope", compute_full_tree="maybe")
    assert (model.n_clusters, model.method, model.compute_full_tree) == (-3, "nope", "maybe")


@pytest.mark.parametrize("params, match", [
    (dict(n_clusters=2, distance_threshold=1.0), "Exactly one of n_clusters and distance_threshold"),
    (dict(n_clusters=None), "Exactly one of n_clusters and distance_threshold"),
    (dict(n_clusters=0), "n_clusters must be an integer >= 1"),
    (dict(n_clusters=2.5), "n_clusters must be an integer >= 1"),
    (dict(n_clusters=True), "n_clusters must be an integer >= 1"),
    (dict(n_clusters=None, distance_threshold=-1.0), "distance_threshold must be a real number >= 0"),
    (dict(n_clusters=None, distance_threshold="1"), "distance_threshold must be a real number >= 0"),
    (dict(compute_full_tree="yes"), "compute_full_tree must be 'auto', True or False"),
    (dict(n_clusters=None, distance_threshold=1.0, compute_full_tree=False),
     "compute_full_tree must be True"),
    (dict(method="wardd"), "Invalid method: 'wardd'"),
    (dict(method="ward", metric="cityblock"), "Euclidean"),
    (dict(n_clusters=41), "Cannot extract more clusters than samples: 41 clusters"),
    (dict(metric=3), "metric must be a string, a callable or 'precomputed'"),
])
def test_bad_parameters(X, params, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalClustering(**params).set_params(backend="cpu").fit(X)


@pytest.mark.parametrize("data, match", [
    (np.zeros((1, 3)), "minimum of 2"),
    (np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), "NaN"),
    (np.zeros(5), "2D array"),
])
def test_bad_data(data, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalClustering(backend="cpu").fit(data)


def test_precomputed_needs_a_square_distance_matrix(X):
    model = HierarchicalClustering(metric="precomputed", method="average", backend="cpu")
    with pytest.raises(ValueError, match="square"):
        model.fit(X)
    D = squareform(pdist(X))
    D[0, 1] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        model.fit(D)


def test_cut_labels():
    Z = sch.linkage(np.array([[0.0], [1.0], [10.0], [11.5], [30.0]]), "single")
    assert_array_equal(cut_labels(Z, np.zeros(4, bool)), [0, 1, 2, 3, 4])
    assert_array_equal(cut_labels(Z, np.ones(4, bool)), [0, 0, 0, 0, 0])
    assert_array_equal(cut_labels(Z, np.array([True, True, False, False])), [0, 0, 1, 1, 2])


# -- without scikit-learn --------------------------------------------------------
def _load_estimator_without_sklearn(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now fails
    path = Path(gpu_hclust.__file__).with_name("_estimator.py")
    spec = importlib.util.spec_from_file_location("gpu_hclust._estimator_nosk", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_works_without_sklearn(monkeypatch, X):
    module = _load_estimator_without_sklearn(monkeypatch)
    assert module.HAVE_SKLEARN is False
    cls = module.HierarchicalClustering
    assert not any(base.__module__.startswith("sklearn") for base in cls.__mro__)
    model = cls(n_clusters=3, method="average", backend="cpu")
    labels = model.fit_predict(X)
    expected = sch.fcluster(sch.linkage(X, "average"), 3, "maxclust")
    assert same_partition(labels, expected)
    assert model.get_params()["method"] == "average"
    assert model.set_params(n_clusters=2).fit(X).n_clusters_ == 2
    assert repr(model) == "HierarchicalClustering(backend='cpu', method='average')"
    with pytest.raises(ValueError, match="Invalid parameter 'linkage'"):
        model.set_params(linkage="single")
    with pytest.raises(ValueError, match="minimum of 2"):
        model.fit(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.fit(np.full((3, 2), np.inf))
