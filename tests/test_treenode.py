"""ClusterNode, to_tree and leaves_list against scipy 1.17."""

import pickle
import weakref

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust as hc

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]


def _cases(rng, sizes=(2, 3, 12, 40)):
    out = []
    for n in sizes:
        X = rng.random((n, 2))
        for data in (X, np.round(X * 2) / 2):
            out.extend((m, sch.linkage(pdist(data), m)) for m in METHODS)
    return out


def _caterpillar(n):
    """Each merge adds one leaf: depth n - 1."""
    Z = np.empty((n - 1, 4))
    Z[:, 0] = np.r_[0, np.arange(n, 2 * n - 2)]
    Z[:, 1] = np.arange(1, n)
    Z[:, 2] = np.arange(1, n, dtype=float)
    Z[:, 3] = np.arange(2, n + 1)
    return Z


def _same_tree(nodes, ref_nodes):
    assert len(nodes) == len(ref_nodes)
    for a, b in zip(nodes, ref_nodes):
        assert (a.id, a.count, a.dist) == (b.id, b.count, b.dist)
        assert a.is_leaf() == b.is_leaf()
        if not a.is_leaf():
            assert (a.left.id, a.right.id) == (b.left.id, b.right.id)


def test_to_tree_equals_scipy(rng):
    for m, Z in _cases(rng):
        root, nodes = hc.to_tree(Z, rd=True)
        ref_root, ref_nodes = sch.to_tree(Z, rd=True)
        _same_tree(nodes, ref_nodes)
        assert root is nodes[-1]
        assert isinstance(root, hc.ClusterNode)
        assert hc.to_tree(Z).id == ref_root.id
        assert root.pre_order() == ref_root.pre_order()
        assert root.pre_order(lambda nd: -nd.id) == ref_root.pre_order(lambda nd: -nd.id)
        assert root.get_left().pre_order() == ref_root.get_left().pre_order()


def test_leaves_list_equals_scipy(rng):
    for m, Z in _cases(rng):
        L = hc.leaves_list(Z)
        np.testing.assert_array_equal(L, sch.leaves_list(Z))
        assert L.dtype == np.int32
    Z = _caterpillar(3000)  # deeper than Python's recursion limit
    np.testing.assert_array_equal(hc.leaves_list(Z), sch.leaves_list(Z))
    assert hc.to_tree(Z).pre_order() == list(sch.leaves_list(Z))


def test_to_tree_and_leaves_list_errors(rng):
    Z = sch.linkage(pdist(rng.random((7, 2))))
    bad = Z.copy()
    bad[3, 3] = 2
    with pytest.raises(ValueError, match=r"Corrupt matrix Z. The count Z\[3,3\] is incorrect"):
        hc.to_tree(bad)
    for fn in (hc.to_tree, hc.leaves_list):
        with pytest.raises(TypeError, match="Linkage matrix 'Z' must contain doubles"):
            fn(Z.astype(int))  # not cast, as in scipy
        with pytest.raises(ValueError, match="uses the same cluster more than once"):
            dup = Z.copy()
            dup[4, 0] = dup[3, 1]
            fn(dup)
        with pytest.raises(ValueError, match="does not describe a tree"):
            fn(np.array([[0.0, 0.0, 1.0, 2.0]]))


def test_cluster_node_api():
    a = hc.ClusterNode(0)
    b = hc.ClusterNode(1, dist=0.0)
    c = hc.ClusterNode(2, a, b, dist=1.5, count=99)
    assert c.count == 2 and c.get_count() == 2  # count comes from the children
    assert (c.get_id(), c.get_left(), c.get_right()) == (2, a, b)
    assert a.is_leaf() and not c.is_leaf()
    assert a.get_left() is None and a.get_right() is None
    assert c.pre_order() == [0, 1]
    assert c > a and a < c and a == b and not (a == c)
    assert hc.ClusterNode(5, count=3).count == 3
    with pytest.raises(TypeError):
        hash(a)  # scipy's nodes define __eq__ and are unhashable too
    for other in (1, None, "x"):
        with pytest.raises(ValueError, match="Can't compare ClusterNode to type"):
            a < other  # noqa: B015
        with pytest.raises(ValueError, match="Can't compare ClusterNode to type"):
            a > other  # noqa: B015
        with pytest.raises(ValueError, match="Can't compare ClusterNode to type"):
            a == other  # noqa: B015
    with pytest.raises(ValueError, match="The id must be non-negative"):
        hc.ClusterNode(-1)
    with pytest.raises(ValueError, match="The distance must be non-negative"):
        hc.ClusterNode(1, dist=-0.5)
    with pytest.raises(ValueError, match="Only full or proper binary trees are permitted"):
        hc.ClusterNode(3, left=a)
    with pytest.raises(ValueError, match="Only full or proper binary trees are permitted"):
        hc.ClusterNode(3, right=a)
    with pytest.raises(ValueError, match="A cluster must contain at least one original "
                                         "observation"):
        hc.ClusterNode(3, count=0)


def test_cluster_node_is_an_ordinary_object(rng):
    root = hc.to_tree(sch.linkage(pdist(rng.random((6, 2)))))
    root.label = "mine"  # arbitrary attributes work, as on scipy's nodes
    assert root.label == "mine"
    assert weakref.ref(root)() is root
    copy = pickle.loads(pickle.dumps(root))
    assert copy.pre_order() == root.pre_order() and copy.label == "mine"
    assert sorted([root, root.left, root.right])[-1] is root


def test_to_tree_node_types(rng):
    root, nodes = hc.to_tree(sch.linkage(pdist(rng.random((5, 2)))), rd=True)
    for nd in nodes:
        assert type(nd.id) is int and type(nd.count) is int
        assert isinstance(nd.dist, float)
    assert nodes[0].dist == 0.0 and nodes[0].count == 1
