"""Canonicalisation: merge log -> scipy Z (sort, lift, relabel)."""

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage
from reference import naive_linkage


def _log_from_scipy(Z, n, rng):
    """A merge log that names a random member of each cluster, rows shuffled
    within what keeps children before parents (emission order of a parallel engine)."""
    members = [[i] for i in range(n)]
    a, b = [], []
    for row in Z:
        ca, cb = int(row[0]), int(row[1])
        a.append(rng.choice(members[ca]))
        b.append(rng.choice(members[cb]))
        members.append(members[ca] + members[cb])
    return np.array(a), np.array(b), Z[:, 2].copy()


@pytest.mark.parametrize("method", ["single", "complete", "average", "weighted", "ward"])
def test_sorted_families_match_scipy_from_any_member(method, rng):
    X = rng.normal(size=(40, 3))
    Zs = sch.linkage(X, method)
    a, b, h = _log_from_scipy(Zs, 40, rng)
    spec = METHODS[method]
    if spec.squared:
        h = h * h
    # swap the sides of half the rows: Z must list the smaller id first anyway
    flip = rng.random(a.size) < 0.5
    a[flip], b[flip] = b[flip], a[flip].copy()
    Z = merge_log_to_linkage(a, b, h, 40, spec)
    np.testing.assert_allclose(Z, Zs, rtol=1e-12)


def test_emission_order_is_sorted_by_height(rng):
    """A reversed emission of independent merges comes out height-sorted."""
    X = rng.normal(size=(30, 2))
    Zs = sch.linkage(X, "complete")
    a, b, h = _log_from_scipy(Zs, 30, rng)
    # merges 0 and 1 are leaf pairs here: emit them in the other order
    assert Zs[0, 3] == 2 and Zs[1, 3] == 2
    order = np.r_[1, 0, 2:29]
    Z = merge_log_to_linkage(a[order], b[order], h[order], 30, METHODS["complete"])
    np.testing.assert_allclose(Z, Zs, rtol=1e-12)


def test_lift_removes_one_ulp_inversion():
    # child merged at 1.0, parent emitted at 1.0 - 1 ulp: the parent must not sort first
    a = np.array([0, 0])
    b = np.array([1, 2])
    h = np.array([1.0, np.nextafter(1.0, 0.0)])
    Z = merge_log_to_linkage(a, b, h, 3, METHODS["average"])
    np.testing.assert_array_equal(Z[:, :2], [[0, 1], [2, 3]])
    assert sch.is_valid_linkage(Z) and sch.is_monotonic(Z)


@pytest.mark.parametrize("method", ["centroid", "median"])
def test_generic_family_keeps_merge_order(method, rng):
    X = rng.normal(size=(25, 2))
    y = pdist(X)
    Zs = sch.linkage(y, method)
    Zn = naive_linkage(y, method)
    np.testing.assert_allclose(Zn, Zs, rtol=1e-10)
    a, b, h = _log_from_scipy(Zs, 25, rng)
    Z = merge_log_to_linkage(a, b, h * h, 25, METHODS[method])
    np.testing.assert_allclose(Z, Zs, rtol=1e-12)


def test_broken_log_raises():
    with pytest.raises(ValueError, match="joins a cluster with itself"):
        merge_log_to_linkage(np.array([0, 1]), np.array([1, 0]), np.array([1.0, 2.0]), 3,
                             METHODS["single"])


def test_mst_edges_in_tree_order_give_scipy_single(rng):
    """Prim emits edges in tree order (a heavy edge before a light one that
    joins later): the canonicaliser must sort them, not treat them as merges."""
    from scipy.sparse.csgraph import minimum_spanning_tree, depth_first_order
    from scipy.spatial.distance import squareform

    X = rng.normal(size=(30, 2))
    y = pdist(X)
    T = minimum_spanning_tree(squareform(y)).toarray()
    T = T + T.T
    order, pred = depth_first_order(T, 0, directed=False)
    a = np.array([pred[v] for v in order[1:]])
    b = order[1:]
    h = T[a, b]
    assert (np.diff(h) < 0).any()  # really out of height order
    Z = merge_log_to_linkage(a, b, h, 30, METHODS["single"])
    np.testing.assert_array_equal(Z, sch.linkage(y, "single"))
