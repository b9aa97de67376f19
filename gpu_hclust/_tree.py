"""Canonicalisation: an engine's merge log becomes scipy's ``Z``.

mst/reducible families: square-root heights if the engine worked on squared
distances, lift 1-ulp inversions (reducible, engines that ask for it), stable
sort by height, relabel. generic family (centroid/median): merge order is the
output order, no sort.

What the heights mean and whether to lift depends on the engine, not only on
the method, so each engine states its :class:`LogForm`. The CPU dense engine
follows scipy's arithmetic and order (plain distances, no lift: scipy sorts
its log as it is), so its ``Z`` is scipy's, ties included. The CUDA and
memory-saving engines work on squared distances for ward/centroid/median and
lift; under ties their ``Z`` is valid but may be another of the tied trees.
"""

from typing import NamedTuple

import numpy as np

from ._scaling import unscale_heights
from .kernels import cpu_tree


class LogForm(NamedTuple):
    """How an engine's merge log is to be read.

    Attributes
    ----------
    squared : bool
        The heights are squared distances: take their square root.
    lift : bool
        Before the height sort, raise each reducible-family height to at
        least its children's. Engines whose rounding can put a parent 1 ulp
        below its child ask for it; scipy does not lift (a parent sorted
        before its child then joins other clusters, as in scipy's ``label``).
    exponent : int
        The engine worked on distances divided by ``2**exponent`` (overflow,
        ``_scaling``): the heights, after the square root, are multiplied
        back. A property of one run, not of the method: 0 unless the engine
        says otherwise after building its working matrix.
    """

    squared: bool
    lift: bool
    exponent: int = 0


def squared_form(method):
    """The CUDA and memory-saving engines' log: squared where the method is, lifted."""
    return LogForm(squared=method.squared, lift=True)


def scipy_form(method):
    """The CPU dense engine's log: scipy's plain distances and plain stable sort."""
    return LogForm(squared=False, lift=False)


def merge_log_to_linkage(a, b, h, n, method, form=None):
    """Build scipy's linkage matrix from a merge log.

    Parameters
    ----------
    a, b : ndarray of int64, shape (n-1,)
        Any observation inside each merged cluster, in merge order.
    h : ndarray, shape (n-1,)
        Merge heights (squared distances where ``form.squared``).
    n : int
        Number of observations.
    method : gpu_hclust._methods.Method
    form : LogForm, optional
        What the engine's log holds; default :func:`squared_form`.

    Returns
    -------
    Z : ndarray of float64, shape (n-1, 4)

    Raises
    ------
    ValueError
        Heights scaled back by ``form.exponent`` exceed the float64 range.
    """
    if form is None:
        form = squared_form(method)
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    h = np.array(h, dtype=np.float64)
    if form.squared:
        np.sqrt(np.maximum(h, 0.0, out=h), out=h)
    # Exact, and after the root (a squared height can overflow where the height
    # does not); order and lift are unchanged by a power of two.
    h = unscale_heights(h, form.exponent)
    if method.sorted_output:
        # An MST's edges may come in tree order (Prim), which is not a merge
        # order, and their weights are exact input distances: sort, never lift.
        # Reducible engines emit children before parents; lifting 1-ulp
        # inversions keeps that true after the sort.
        if form.lift and method.family != "mst":
            h = cpu_tree.lift_heights(a, b, h, n)
        order = np.argsort(h, kind="stable")
        a, b, h = a[order], b[order], h[order]
    return cpu_tree.relabel(a, b, h, n)
