"""optimal_leaf_ordering must equal scipy's result bit for bit (scipy keeps
float32 partial costs and orients each merge by its own best end leaves; both
are reproduced), on generic data, ties, duplicates and inverted trees."""

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.cluster.hierarchy import ClusterWarning
from scipy.spatial.distance import pdist, squareform

import gpu_hclust as hc
from gpu_hclust.kernels import cpu_olo

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]


def _data(rng, kind, n):
    if kind == "generic":
        return rng.random((n, 2))
    if kind == "blobs":
        return np.concatenate([rng.normal(c, 0.3, size=(n // 3 + 1, 3)) for c in range(3)])[:n]
    if kind == "grid":  # many exactly tied distances
        return rng.integers(0, 5, size=(n, 2)).astype(float)
    base = rng.random((max(1, n // 3), 2))  # duplicated points: zero distances
    return np.concatenate([base, base, base])[:n]


@pytest.mark.parametrize("kind", ["generic", "blobs", "grid", "duplicates"])
def test_equals_scipy(rng, kind):
    for n in (2, 3, 4, 7, 25, 60):
        X = _data(rng, kind, n)
        y = pdist(X)
        for m in METHODS:
            Z = sch.linkage(y, m)
            Zc, yc = Z.copy(), y.copy()
            ours = hc.optimal_leaf_ordering(Z, y)
            np.testing.assert_array_equal(ours, sch.optimal_leaf_ordering(Z, y),
                                          err_msg=f"{kind} n={n} {m}")
            np.testing.assert_array_equal(Z, Zc)
            np.testing.assert_array_equal(y, yc)


def test_equals_scipy_larger(rng):
    # large enough that the top merges run on the parallel path (work >= 2**14)
    for kind, m in (("blobs", "ward"), ("generic", "average"), ("grid", "complete")):
        X = _data(rng, kind, 400)
        y = pdist(X)
        Z = sch.linkage(y, m)
        np.testing.assert_array_equal(hc.optimal_leaf_ordering(Z, y),
                                      sch.optimal_leaf_ordering(Z, y), err_msg=kind)


def test_observations_and_metric(rng):
    X = rng.random((30, 4))
    for metric in ("euclidean", "cityblock", "cosine"):
        Z = sch.linkage(X, "average", metric=metric)
        np.testing.assert_array_equal(hc.optimal_leaf_ordering(Z, X, metric=metric),
                                      sch.optimal_leaf_ordering(Z, X, metric=metric))
    Z = sch.linkage(X, "single")
    np.testing.assert_array_equal(hc.optimal_leaf_ordering(Z.tolist(), X.tolist()),
                                  sch.optimal_leaf_ordering(Z, X))


def test_result_only_swaps_children(rng):
    X = rng.random((40, 2))
    y = pdist(X)
    Z = sch.linkage(y, "average")
    out = hc.optimal_leaf_ordering(Z, y)
    np.testing.assert_array_equal(np.sort(out[:, :2], axis=1), np.sort(Z[:, :2], axis=1))
    np.testing.assert_array_equal(out[:, 2:], Z[:, 2:])
    order = hc.leaves_list(out)
    D = squareform(y)
    cost = D[order[:-1], order[1:]].sum()
    before = D[hc.leaves_list(Z)[:-1], hc.leaves_list(Z)[1:]].sum()
    assert cost <= before


def test_errors(rng):
    X = rng.random((6, 2))
    y = pdist(X)
    Z = sch.linkage(y)
    with pytest.warns(ClusterWarning, match="looks suspiciously like an uncondensed "
                                            "distance matrix"):
        hc.optimal_leaf_ordering(Z, squareform(y))
    with pytest.raises(ValueError, match="`y` must be 1 or 2 dimensional"):
        hc.optimal_leaf_ordering(Z, np.ones((2, 2, 2)))
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="The condensed distance matrix must contain only "
                                         "finite values"):
        hc.optimal_leaf_ordering(Z, bad)
    with pytest.raises(ValueError, match="`y` describes 7 observations but `Z` has 6"):
        hc.optimal_leaf_ordering(Z, pdist(rng.random((7, 2))))
    with pytest.raises(ValueError, match="Length n of condensed distance matrix 'y'"):
        hc.optimal_leaf_ordering(Z, np.ones(4))
    with pytest.raises(TypeError, match="Linkage matrix 'Z' must contain doubles"):
        hc.optimal_leaf_ordering(Z.astype(int), y)


def test_permuted_distances(rng):
    for n in (2, 3, 4, 9, 10):
        y = pdist(rng.random((n, 2)))
        order = rng.permutation(n).astype(np.int32)
        expect = squareform(squareform(y)[np.ix_(order, order)]).astype(np.float32)
        np.testing.assert_array_equal(cpu_olo.permuted_distances(y, n, order), expect)
