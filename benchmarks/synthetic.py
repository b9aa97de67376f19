"""Synthetic linkage matrices of any size, for tests and benchmarks.

Post-processing (fcluster, leaves_list, to_tree, cut_tree, inconsistent, ...)
needs only ``Z``, so its scale tests and benchmarks build trees directly
instead of clustering millions of points: a random merge tree (balanced-ish,
depth O(log n) on average) and a caterpillar (depth n - 1, the tree that makes
recursive code fail). Both are valid (``is_valid_linkage``) with strictly
increasing heights (``is_monotonic``), so every criterion has distinct cut
points and scipy's results are unique.

The generators draw from the ``numpy.random.Generator`` they are given, in a
fixed order, so a seed gives the same tree on every machine and every run.

Not part of the package (only ``tests/test_post_scale.py`` and
``benchmarks/bench_post.py`` use it): the benchmark scripts import it as
``synthetic`` because their own folder is on ``sys.path`` when they run, and
pytest adds ``benchmarks/`` to ``sys.path`` (``pythonpath`` in pyproject.toml).
``tests/test_post_scale.py`` runs the examples below.
"""

import numpy as np


def random_tree(rng, n):
    """A valid linkage matrix in which two random current clusters merge at each step.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the merge choices and heights.
    n : int
        Number of observations (leaves), at least 2.

    Returns
    -------
    Z : ndarray of float64, shape (n - 1, 4)
        Row ``k`` merges two clusters that exist after ``k`` merges (smaller
        id first) into cluster ``n + k``; heights strictly increase; column 3
        holds the cluster sizes.

    Notes
    -----
    O(n) time and memory; a Python loop (about a second per million leaves).

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hc
    >>> from synthetic import random_tree
    >>> Z = random_tree(np.random.default_rng(0), 6)
    >>> Z.shape
    (5, 4)
    >>> bool(hc.is_valid_linkage(Z)) and bool(hc.is_monotonic(Z))
    True
    >>> float(Z[-1, 3])
    6.0
    """
    active = list(range(n))  # ids of the current clusters
    rows = np.empty((n - 1, 2), dtype=np.float64)
    pick = rng.random((n - 1, 2))
    for k in range(n - 1):
        m = len(active)
        i = int(pick[k, 0] * m)
        j = int(pick[k, 1] * (m - 1))
        j += j >= i  # a second, different cluster
        a, b = active[i], active[j]
        rows[k] = (a, b) if a < b else (b, a)
        # the merged cluster takes slot i; slot j is filled from the end
        active[i] = n + k
        active[j] = active[m - 1]
        active.pop()
    return _with_heights_and_sizes(rows, rng, n)


def caterpillar(rng, n):
    """A valid linkage matrix in which each merge joins the previous cluster and a new leaf.

    The deepest leaf sits n - 1 levels below the root: the worst case for
    anything that recurses or keeps a stack per level.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the leaf order and heights.
    n : int
        Number of observations (leaves), at least 2.

    Returns
    -------
    Z : ndarray of float64, shape (n - 1, 4)
        Row 0 joins two random leaves; row ``k > 0`` joins a new random leaf
        and cluster ``n + k - 1`` (smaller id first). Heights strictly
        increase; column 3 holds the cluster sizes (``k + 2`` in row ``k``).

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hc
    >>> from synthetic import caterpillar
    >>> Z = caterpillar(np.random.default_rng(0), 5)
    >>> Z[:, 3]
    array([2., 3., 4., 5.])
    >>> Z[1:, 1]  # each row after the first takes the cluster made just before
    array([5., 6., 7.])
    >>> bool(hc.is_valid_linkage(Z)) and bool(hc.is_monotonic(Z))
    True
    """
    leaves = rng.permutation(n).astype(np.float64)
    rows = np.empty((n - 1, 2))
    rows[:, 0] = leaves[1:]
    rows[0, 1] = leaves[0]
    rows[1:, 1] = np.arange(n, 2 * n - 2)
    # a leaf id (< n) is always smaller than a cluster id: sorting puts it first
    return _with_heights_and_sizes(np.sort(rows, axis=1), rng, n)


def _with_heights_and_sizes(rows, rng, n):
    """Z from its child ids: random strictly increasing heights, true sizes."""
    Z = np.empty((n - 1, 4))
    Z[:, :2] = rows
    # every gap at least 0.01: distinct heights, so no criterion meets a tie
    Z[:, 2] = np.cumsum(rng.random(n - 1) + 0.01)
    size = np.ones(2 * n - 1)
    ids = rows.astype(np.int64)
    for k in range(n - 1):  # children come before parents: one pass
        size[n + k] = size[ids[k, 0]] + size[ids[k, 1]]
    Z[:, 3] = size[n:]
    return Z
