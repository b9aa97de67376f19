"""Canonicalisation: an engine's merge log becomes scipy's ``Z``.

mst/reducible families: square-root heights if the method worked on squared
distances, lift 1-ulp inversions (reducible only), stable sort by height, relabel. generic
family (centroid/median): merge order is the output order, no sort. Ties keep
emission order, so under ties ``Z`` may differ from scipy's yet be valid.
"""

import numpy as np

from .kernels import cpu_tree


def merge_log_to_linkage(a, b, h, n, method):
    """Build scipy's linkage matrix from a merge log.

    Parameters
    ----------
    a, b : ndarray of int64, shape (n-1,)
        Any observation inside each merged cluster, in merge order.
    h : ndarray, shape (n-1,)
        Merge heights (squared distances where ``method.squared``).
    n : int
        Number of observations.
    method : gpu_hclust._methods.Method

    Returns
    -------
    Z : ndarray of float64, shape (n-1, 4)
    """
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    h = np.array(h, dtype=np.float64)
    if method.squared:
        np.sqrt(np.maximum(h, 0.0, out=h), out=h)
    if method.sorted_output:
        # An MST's edges may come in tree order (Prim), which is not a merge
        # order, and their weights are exact input distances: sort, never lift.
        # Reducible engines emit children before parents; lifting 1-ulp
        # inversions keeps that true after the sort.
        if method.family != "mst":
            h = cpu_tree.lift_heights(a, b, h, n)
        order = np.argsort(h, kind="stable")
        a, b, h = a[order], b[order], h[order]
    return cpu_tree.relabel(a, b, h, n)
