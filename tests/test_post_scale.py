"""Post-processing at scale: random valid trees and caterpillars (each merge
adds one leaf, depth n - 1) of 10^5 leaves by default and 10^6 under `slow`.

Nothing may recurse; results are compared with scipy where scipy's compiled
code runs at that size (leaves_list, fcluster, inconsistent, maxdists), and
checked for their defining properties where it does not (to_tree, cut_tree).
"""

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch

import gpu_hclust as hc

SIZES = [100_000, pytest.param(1_000_000, marks=pytest.mark.slow)]


def random_tree(rng, n):
    """A valid Z merging two random current clusters at each step, with
    strictly increasing heights."""
    active = list(range(n))
    rows = np.empty((n - 1, 2), dtype=np.float64)
    pick = rng.random((n - 1, 2))
    for k in range(n - 1):
        m = len(active)
        i = int(pick[k, 0] * m)
        j = int(pick[k, 1] * (m - 1))
        j += j >= i
        a, b = active[i], active[j]
        rows[k] = (a, b) if a < b else (b, a)
        active[i] = n + k
        active[j] = active[m - 1]
        active.pop()
    return _finish(rows, rng, n)


def caterpillar(rng, n):
    """Each merge joins the previous cluster and a new leaf (random order)."""
    leaves = rng.permutation(n).astype(np.float64)
    rows = np.empty((n - 1, 2))
    rows[:, 0] = leaves[1:]
    rows[0, 1] = leaves[0]
    rows[1:, 1] = np.arange(n, 2 * n - 2)
    return _finish(np.sort(rows, axis=1), rng, n)


def _finish(rows, rng, n):
    Z = np.empty((n - 1, 4))
    Z[:, :2] = rows
    Z[:, 2] = np.cumsum(rng.random(n - 1) + 0.01)
    size = np.ones(2 * n - 1)
    ids = rows.astype(np.int64)
    for k in range(n - 1):  # children come before parents: one pass
        size[n + k] = size[ids[k, 0]] + size[ids[k, 1]]
    Z[:, 3] = size[n:]
    return Z


@pytest.fixture(params=["random", "caterpillar"])
def shape(request):
    return request.param


def _tree(rng, shape, n):
    return random_tree(rng, n) if shape == "random" else caterpillar(rng, n)


@pytest.mark.parametrize("n", SIZES)
def test_walks_equal_scipy(rng, shape, n):
    Z = _tree(rng, shape, n)
    assert sch.is_valid_linkage(Z)
    np.testing.assert_array_equal(hc.leaves_list(Z), sch.leaves_list(Z))
    np.testing.assert_array_equal(hc.maxdists(Z), sch.maxdists(Z))
    R = hc.inconsistent(Z)
    np.testing.assert_array_equal(R, sch.inconsistent(Z))
    np.testing.assert_array_equal(hc.inconsistent(Z, 6), sch.inconsistent(Z, 6))
    t = Z[n // 2, 2]
    np.testing.assert_array_equal(hc.fcluster(Z, t, "distance"), sch.fcluster(Z, t, "distance"))
    np.testing.assert_array_equal(hc.fcluster(Z, 1.0, R=R), sch.fcluster(Z, 1.0, R=R))
    for k in (2, 1000):
        np.testing.assert_array_equal(hc.fcluster(Z, k, "maxclust"),
                                      sch.fcluster(Z, k, "maxclust"))


@pytest.mark.parametrize("n", SIZES)
def test_to_tree_without_recursion(rng, shape, n):
    Z = _tree(rng, shape, n)
    root, nodes = hc.to_tree(Z, rd=True)
    assert len(nodes) == 2 * n - 1 and root.count == n
    assert root.pre_order() == hc.leaves_list(Z).tolist()
    if shape == "caterpillar":  # the deepest leaf sits n - 1 levels down
        depth, node = 0, root
        while not node.is_leaf():
            node = node.left if node.left.count >= node.right.count else node.right
            depth += 1
        assert depth == n - 1


@pytest.mark.parametrize("n", SIZES)
def test_cut_tree_partitions(rng, shape, n):
    Z = _tree(rng, shape, n)
    ks = [1, 2, 10, 1000]
    cuts = hc.cut_tree(Z, n_clusters=ks)
    assert cuts.shape == (n, len(ks))
    for col, k in enumerate(ks):
        groups = cuts[:, col]
        labels = sch.fcluster(Z, k, "maxclust")  # heights are distinct: same partition
        pairs = np.unique(np.stack([groups, labels]), axis=1)
        assert pairs.shape[1] == len(np.unique(groups)) == len(np.unique(labels)) == k
        # scipy numbers groups by their smallest observation
        _, first = np.unique(groups, return_index=True)
        assert np.all(np.diff(first) > 0)
    by_height = hc.cut_tree(Z, height=[Z[-2, 2] + 1e-9])
    np.testing.assert_array_equal(by_height[:, 0], cuts[:, 1])


def test_cophenet_deep_trees_equal_scipy(rng, shape):
    n = 2500
    Z = _tree(rng, shape, n)
    np.testing.assert_array_equal(hc.cophenet(Z), sch.cophenet(Z))
