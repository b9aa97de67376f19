"""fcluster, fclusterdata, leaders and cut_tree against scipy 1.17.

Flat cluster numbers follow scipy's traversal, so labels are compared exactly
(not up to relabelling), on generic, tied and non-monotone (centroid/median)
linkages.
"""

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust as hc
from gpu_hclust import _flat
from gpu_hclust.kernels import cpu_post

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]


def _cases(rng, sizes=(2, 3, 9, 31)):
    out = []
    for n in sizes:
        X = rng.random((n, 2))
        for data in (X, np.round(X * 3) / 3):
            out.extend((m, sch.linkage(pdist(data), m)) for m in METHODS)
    return out


def _same(a, b):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == b.dtype


def test_fcluster_thresholds_equal_scipy(rng):
    for m, Z in _cases(rng):
        Zc = Z.copy()
        hmax = Z[:, 2].max()
        for t in (0.0, 0.3, 0.8, 1.2, 2.0):
            _same(hc.fcluster(Z, t), sch.fcluster(Z, t))  # 'inconsistent', depth 2
            _same(hc.fcluster(Z, t * hmax, "distance"), sch.fcluster(Z, t * hmax, "distance"))
        for depth in (1, 3):
            _same(hc.fcluster(Z, 0.7, depth=depth), sch.fcluster(Z, 0.7, depth=depth))
        R = sch.inconsistent(Z, 3)
        _same(hc.fcluster(Z, 0.5, R=R), sch.fcluster(Z, 0.5, R=R))
        np.testing.assert_array_equal(Z, Zc)


def test_fcluster_maxclust_equal_scipy(rng):
    for m, Z in _cases(rng):
        n = Z.shape[0] + 1
        R = sch.inconsistent(Z)
        MI = sch.maxinconsts(Z, R)
        for t in list(range(1, n + 2)) + [2.7, np.float64(3.5), True]:
            _same(hc.fcluster(Z, t, "maxclust"), sch.fcluster(Z, t, "maxclust"))
            _same(hc.fcluster(Z, t, "maxclust_monocrit", monocrit=MI),
                  sch.fcluster(Z, t, "maxclust_monocrit", monocrit=MI))
        _same(hc.fcluster(Z, "3", "maxclust_monocrit", monocrit=MI),
              sch.fcluster(Z, "3", "maxclust_monocrit", monocrit=MI))


def test_fcluster_monocrit_equal_scipy(rng):
    for m, Z in _cases(rng):
        R = sch.inconsistent(Z)
        for i in range(4):
            MR = sch.maxRstat(Z, R, i)
            for t in np.quantile(MR, [0.0, 0.3, 0.7, 1.0]):
                _same(hc.fcluster(Z, t, "monocrit", monocrit=MR),
                      sch.fcluster(Z, t, "monocrit", monocrit=MR))
        MD = sch.maxdists(Z)
        _same(hc.fcluster(Z, MD[len(MD) // 2], "monocrit", monocrit=MD.tolist()),
              sch.fcluster(Z, MD[len(MD) // 2], "monocrit", monocrit=MD))


def test_fcluster_maxclust_below_one_is_all_singletons(rng):
    # scipy reads past its array there (its answer is whatever lies in memory)
    Z = sch.linkage(pdist(rng.random((7, 2))))
    for t in (0, -3):
        T = hc.fcluster(Z, t, "maxclust")
        assert sorted(T) == list(range(1, 8))
        _same(T, hc.fcluster(Z, -np.inf, "distance"))


def test_fcluster_errors(rng):
    Z = sch.linkage(pdist(rng.random((7, 2))))
    with pytest.raises(ValueError, match="Invalid cluster formation criterion: bogus"):
        hc.fcluster(Z, 1, "bogus")
    for crit in ("monocrit", "maxclust_monocrit"):
        with pytest.raises(ValueError, match=f"criterion='{crit}' needs monocrit"):
            hc.fcluster(Z, 1, crit)
        with pytest.raises(ValueError, match="monocrit must be 1-D with one value per merge"):
            hc.fcluster(Z, 1, crit, monocrit=np.ones(3))
    for t in ("3", None, [2]):
        with pytest.raises(TypeError, match="an integer is required"):
            hc.fcluster(Z, t, "maxclust")
    with pytest.raises(OverflowError):
        hc.fcluster(Z, np.inf, "maxclust")
    with pytest.raises(TypeError, match="float"):
        hc.fcluster(Z, None, "distance")
    with pytest.raises(ValueError, match="could not convert string to float"):
        hc.fcluster(Z, 1, "distance", monocrit="abc")
    R = sch.inconsistent(Z)
    with pytest.raises(ValueError, match="'R' has 3 rows but 'Z' has 6"):
        hc.fcluster(Z, 1, R=R[:3])
    bad = R.copy()
    bad[0, 2] = -1
    with pytest.raises(ValueError, match="contains negative link counts"):
        hc.fcluster(Z, 1, R=bad)
    with pytest.raises(ValueError, match="The second argument d must be a nonnegative"):
        hc.fcluster(Z, 1, depth=-1)
    badZ = Z.copy()
    badZ[2, 1] = 50
    with pytest.raises(ValueError, match="uses non-singleton cluster before it is formed"):
        hc.fcluster(badZ, 1)


def test_fclusterdata_wiring_matches_scipy(rng, monkeypatch):
    # With linkage replaced by scipy's, fclusterdata's own steps (distances,
    # criterion, depth, R, method/metric passthrough) must give scipy's labels.
    import gpu_hclust._linkage as lk

    calls = []

    def scipy_linkage(y, method="single", metric="euclidean", *, backend=None, dtype=None):
        calls.append((np.ndim(y), method, metric, backend, dtype))
        return sch.linkage(y, method=method, metric=metric)

    monkeypatch.setattr(lk, "linkage", scipy_linkage)
    X = rng.random((25, 3))
    for method, metric in (("single", "euclidean"), ("average", "cityblock"),
                           ("ward", "euclidean"), ("centroid", "cosine")):
        for crit, t in (("inconsistent", 0.9), ("distance", 0.4), ("maxclust", 4)):
            got = hc.fclusterdata(X, t, criterion=crit, metric=metric, method=method,
                                  depth=3, backend="cpu")
            _same(got, sch.fclusterdata(X, t, criterion=crit, metric=metric, method=method,
                                        depth=3))
    # ward with a non-Euclidean metric clusters pdist output, as scipy does
    assert (1, "centroid", "euclidean", "cpu", None) in calls
    assert (2, "average", "cityblock", "cpu", None) in calls
    R = sch.inconsistent(sch.linkage(X))
    _same(hc.fclusterdata(X, 0.8, R=R), sch.fclusterdata(X, 0.8, R=R))


def test_fclusterdata_end_to_end(rng):
    X = rng.random((40, 2))
    for method in ("single", "average", "ward"):
        for crit, t in (("inconsistent", 1.0), ("distance", 0.3), ("maxclust", 3)):
            _same(hc.fclusterdata(X, t, criterion=crit, method=method, backend="cpu"),
                  sch.fclusterdata(X, t, criterion=crit, method=method))


def test_fclusterdata_errors():
    with pytest.raises(TypeError, match="The observation matrix X must be an n by m array"):
        hc.fclusterdata(np.ones(5), 1)
    with pytest.raises(ValueError, match="Invalid method"):
        hc.fclusterdata(np.ones((5, 2)), 1, method="nope")


def test_leaders_equal_scipy(rng):
    for m, Z in _cases(rng):
        n = Z.shape[0] + 1
        for t in range(1, n + 1):
            T = sch.fcluster(Z, t, "maxclust")
            L, M = hc.leaders(Z, T)
            Ls, Ms = sch.leaders(Z, T)
            _same(L, Ls)
            _same(M, Ms)
        # labels need not be 1..k
        T = (sch.fcluster(Z, 2, "maxclust") * 7 - 3).astype(np.int32)
        for ours, ref in zip(hc.leaders(Z, T), sch.leaders(Z, T)):
            _same(ours, ref)


def test_leaders_errors(rng):
    Z = sch.linkage(pdist(rng.random((8, 2))))
    T = sch.fcluster(Z, 3, "maxclust")
    with pytest.raises(TypeError, match="T must be a 1-D array of dtype int32"):
        hc.leaders(Z, T.astype(np.int64))
    with pytest.raises(ValueError, match=r"Mismatch: len\(T\)!=Z.shape\[0\] \+ 1"):
        hc.leaders(Z, T[:-1])
    # one flat cluster split across the tree: scipy's error, same node
    bad = np.arange(8, dtype=np.int32) % 2
    with pytest.raises(ValueError) as ref:
        sch.leaders(Z, bad)
    with pytest.raises(ValueError, match=str(ref.value).split("(")[0].rstrip()):
        hc.leaders(Z, bad)


def test_cut_tree_equals_scipy(rng):
    inverted = 0
    for m, Z in _cases(rng):
        n = Z.shape[0] + 1
        _same(hc.cut_tree(Z), sch.cut_tree(Z))
        for k in ([1], [2, 1], [3, 0, n + 2, -1, 2, 2.5], 2, np.array([n, 1])):
            _same(hc.cut_tree(Z, n_clusters=k), sch.cut_tree(Z, n_clusters=k))
        hs = [0.0, Z[n // 2 - 1, 2], Z[:, 2].max() + 1, 0.25]
        _same(hc.cut_tree(Z, height=hs), sch.cut_tree(Z, height=hs))
        _same(hc.cut_tree(Z, height=0.3), sch.cut_tree(Z, height=0.3))
        left, right = hc._checks.linkage_tree(Z)
        rank = cpu_post.bfs_rank(left, right, n)
        rows = np.lexsort((-rank, Z[:, 2]))
        inverted += not cpu_post.children_first(left, right, n, rows)
    assert inverted > 0  # the step-by-step replay was exercised


def test_cut_tree_errors(rng):
    Z = sch.linkage(pdist(rng.random((6, 2))))
    with pytest.raises(ValueError, match="At least one of either height or n_clusters must "
                                         "be None"):
        hc.cut_tree(Z, n_clusters=2, height=0.5)
    bad = Z.copy()
    bad[2, 3] = 1
    with pytest.raises(ValueError, match=r"Corrupt matrix Z. The count Z\[2,3\] is incorrect"):
        hc.cut_tree(bad, n_clusters=2)
    with pytest.raises(TypeError, match="must contain doubles"):
        hc.cut_tree(Z.astype(int))
    with pytest.raises(ValueError, match="must be a scalar or 1-D"):
        hc.cut_tree(Z, n_clusters=[[1, 2]])


def test_criteria_list_is_complete():
    assert set(_flat.CRITERIA) == {"inconsistent", "distance", "maxclust", "monocrit",
                                   "maxclust_monocrit"}


@pytest.mark.gpu
def test_cupy_in_cupy_out(rng):
    cp = pytest.importorskip("cupy")
    Z = sch.linkage(pdist(rng.random((20, 2))), "average")
    Zd = cp.asarray(Z)
    T = hc.fcluster(Zd, 3, "maxclust")
    assert isinstance(T, cp.ndarray)
    np.testing.assert_array_equal(T.get(), sch.fcluster(Z, 3, "maxclust"))
    for fn, args in ((hc.cut_tree, (Zd, 4)), (hc.leaves_list, (Zd,)),
                     (hc.inconsistent, (Zd,)), (hc.maxdists, (Zd,)), (hc.cophenet, (Zd,)),
                     (hc.to_mlab_linkage, (Zd,))):
        out = fn(*args)
        assert isinstance(out, cp.ndarray), fn.__name__
    L, M = hc.leaders(Zd, cp.asarray(sch.fcluster(Z, 3, "maxclust")))
    assert isinstance(L, cp.ndarray) and isinstance(M, cp.ndarray)
    assert isinstance(hc.optimal_leaf_ordering(Zd, cp.asarray(pdist(rng.random((20, 2))))),
                      cp.ndarray)
    assert hc.is_valid_linkage(Zd) is True
    assert hc.num_obs_linkage(Zd) == 20
