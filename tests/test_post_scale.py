"""Post-processing at scale: random valid trees and caterpillars (each merge
adds one leaf, depth n - 1) of 10^5 leaves by default and 10^6 under `slow`.

Nothing may recurse; results are compared with scipy where scipy's compiled
code runs at that size (leaves_list, fcluster, inconsistent, maxdists), and
checked for their defining properties where it does not (to_tree, cut_tree).
"""

import doctest

import numpy as np
import pytest
import synthetic  # benchmarks/synthetic.py (pytest's pythonpath): not part of the package
from scipy.cluster import hierarchy as sch
from synthetic import caterpillar, random_tree

import gpu_hclust as hc

SIZES = [100_000, pytest.param(1_000_000, marks=pytest.mark.slow)]


@pytest.fixture(params=["random", "caterpillar"])
def shape(request):
    return request.param


def _tree(rng, shape, n):
    return random_tree(rng, n) if shape == "random" else caterpillar(rng, n)


def test_synthetic_examples():
    # The generators left the package (tests/test_doctests.py scans only gpu_hclust/):
    # their docstring examples run here.
    result = doctest.testmod(synthetic, optionflags=doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("n", [2, 3, 17, 1000])
def test_synthetic_trees_are_valid_and_monotonic(rng, shape, n):
    # The generators every test here (and benchmarks/bench_post.py) relies on.
    Z = _tree(rng, shape, n)
    assert Z.shape == (n - 1, 4) and Z.dtype == np.float64
    assert hc.is_valid_linkage(Z, throw=True)
    assert hc.is_monotonic(Z)
    assert np.all(np.diff(Z[:, 2]) > 0)
    assert Z[-1, 3] == n
    if shape == "caterpillar":
        np.testing.assert_array_equal(Z[:, 3], np.arange(2, n + 1))
        np.testing.assert_array_equal(Z[1:, 1], np.arange(n, 2 * n - 2))


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
