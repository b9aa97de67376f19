"""Flat clusterings cut from a hierarchy: ``fcluster``, ``fclusterdata``,
``leaders``, ``cut_tree``.

Same contracts as :mod:`scipy.cluster.hierarchy` (1.17), including scipy's
cluster numbering (the order of its depth-first walk). Tree walks are compiled
loops in ``kernels/cpu_post.py``; nothing recurses.
"""

import numbers

import numpy as np

from ._backend import is_cupy_array
from ._checks import (check_counts, checked_im, checked_linkage, checked_tree, host_array,
                      like_input, linkage_tree)
from .kernels import cpu_post

CRITERIA = ("inconsistent", "distance", "maxclust", "monocrit", "maxclust_monocrit")


def _c_int(t):
    """``t`` as scipy's compiled code takes an ``int`` argument: numbers are
    truncated, anything else (strings, None, lists) is a TypeError."""
    if isinstance(t, numbers.Real) or (isinstance(t, np.ndarray) and t.ndim == 0
                                       and t.dtype.kind in "biuf"):
        return int(t)
    raise TypeError(f"an integer is required: t is the maximum number of clusters; "
                    f"got {t!r}")


def _criterion_values(values, name, m):
    """A per-merge criterion array (``monocrit``) as float64 of length m."""
    if values is None:
        raise ValueError(f"criterion={name!r} needs monocrit: an array with one "
                         f"value per merge ({m} values), e.g. maxdists(Z).")
    if values.ndim != 1 or values.shape[0] != m:
        raise ValueError(f"monocrit must be 1-D with one value per merge ({m} values, "
                         f"the rows of Z); got shape {values.shape}.")
    return np.ascontiguousarray(values)


def _maxclust(left, right, n, mc, max_nc):
    """Labels with at most ``max_nc`` clusters, thresholding ``mc``."""
    if max_nc >= n:
        return np.arange(1, n + 1, dtype=np.int32)
    idx = cpu_post.maxclust_index(left, right, n, mc, max_nc)
    # idx == n - 1 only when no threshold gives <= max_nc clusters (max_nc < 1):
    # scipy then reads one element past its array; here nothing is merged.
    cutoff = mc[idx] if idx < n - 1 else -np.inf
    return cpu_post.monocrit_labels(left, right, n, mc, cutoff)


def fcluster(Z, t, criterion="inconsistent", depth=2, R=None, monocrit=None):
    """Form flat clusters from the hierarchical clustering ``Z``.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.
    t : scalar
        Threshold for 'inconsistent', 'distance' and 'monocrit'; maximum
        number of clusters for 'maxclust' and 'maxclust_monocrit'.
    criterion : str, optional
        ``'inconsistent'`` (default): a node whose subtree's inconsistency
        coefficients are all ``<= t`` forms one cluster.
        ``'distance'``: observations in a cluster have cophenetic distance
        ``<= t``.
        ``'maxclust'``: the smallest distance threshold giving at most ``t``
        clusters.
        ``'monocrit'``: a node with ``monocrit[i] <= t`` forms one cluster.
        ``'maxclust_monocrit'``: the smallest threshold on ``monocrit``
        giving at most ``t`` clusters.
    depth : int, optional
        Depth of the inconsistency calculation (criterion 'inconsistent').
    R : array_like, optional
        The inconsistency matrix to use for 'inconsistent' (computed with
        ``depth`` if not given).
    monocrit : array_like, optional
        One value per merge (n-1), monotone up the tree (e.g. ``maxdists(Z)``,
        ``maxinconsts(Z, R)``, ``maxRstat(Z, R, i)``).

    Returns
    -------
    fcluster : ndarray
        int32 array of length n: the flat cluster number (from 1) of each
        observation, numbered as scipy numbers them.

    Raises
    ------
    TypeError, ValueError
        Invalid ``Z`` or ``R``; unknown criterion; ``monocrit`` missing or not
        of length n-1; a non-integer ``t`` for 'maxclust'.

    See Also
    --------
    fclusterdata : linkage and fcluster in one call.
    scipy.cluster.hierarchy.fcluster : the reference implementation.

    Notes
    -----
    O(n) per threshold ('maxclust' bisects over the n-1 merges: O(n log n));
    iterative, so a caterpillar tree of 10^6 leaves takes well under a second.
    With ``t < 1`` for the maxclust criteria scipy reads past its array; here
    every observation is then its own cluster.

    Examples
    --------
    >>> from gpu_hclust import fcluster, linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")  # five points on a line
    >>> fcluster(Z, 2, criterion="maxclust")  # at most two clusters
    array([2, 2, 2, 1, 1], dtype=int32)
    >>> fcluster(Z, 3, criterion="distance")  # no merge above height 3
    array([2, 2, 3, 1, 1], dtype=int32)
    """
    Zh, was_cupy, left, right = checked_tree(Z)
    n = Zh.shape[0] + 1
    if monocrit is not None:
        monocrit, _ = host_array(monocrit, np.float64)
    heights = np.ascontiguousarray(Zh[:, 2])
    if criterion == "inconsistent":
        if R is None:
            from ._stats import inconsistent

            Rh = inconsistent(Zh, depth)
        else:
            Rh, _ = checked_im(R)
            if Rh.shape[0] != n - 1:
                raise ValueError(f"'R' has {Rh.shape[0]} rows but 'Z' has {n - 1}: "
                                 "pass R = inconsistent(Z, depth).")
        mi = cpu_post.max_over_subtree(left, right, n, np.ascontiguousarray(Rh[:, 3]))
        T = cpu_post.monocrit_labels(left, right, n, mi, float(t))
    elif criterion == "distance":
        md = cpu_post.max_over_subtree(left, right, n, heights)
        T = cpu_post.monocrit_labels(left, right, n, md, float(t))
    elif criterion == "maxclust":
        max_nc = _c_int(t)
        md = cpu_post.max_over_subtree(left, right, n, heights)
        T = _maxclust(left, right, n, md, max_nc)
    elif criterion == "monocrit":
        mc = _criterion_values(monocrit, criterion, n - 1)
        T = cpu_post.monocrit_labels(left, right, n, mc, float(t))
    elif criterion == "maxclust_monocrit":
        mc = _criterion_values(monocrit, criterion, n - 1)
        T = _maxclust(left, right, n, mc, int(t))
    else:
        raise ValueError(f"Invalid cluster formation criterion: {criterion!s}; "
                         f"use one of {', '.join(repr(c) for c in CRITERIA)}.")
    return like_input(T, was_cupy)


def fclusterdata(X, t, criterion="inconsistent", metric="euclidean", depth=2,
                 method="single", R=None, *, backend=None, dtype=None):
    """Cluster observation data: :func:`linkage` then :func:`fcluster`.

    Parameters
    ----------
    X : (N, M) array_like
        N observations in M dimensions (NumPy, CuPy or lists).
    t : scalar
        Threshold or maximum number of clusters (see :func:`fcluster`).
    criterion : str, optional
        'inconsistent' (default), 'distance' or 'maxclust' (see :func:`fcluster`).
    metric : str or callable, optional
        Distance metric (see :func:`scipy.spatial.distance.pdist`).
    depth : int, optional
        Depth of the inconsistency calculation.
    method : str, optional
        Linkage method (default 'single').
    R : array_like, optional
        The inconsistency matrix to use (computed if needed).
    backend, dtype : keyword-only
        Passed to :func:`linkage` (where to run, working precision).

    Returns
    -------
    fclusterdata : ndarray
        int32 flat cluster number of each observation, in the input's namespace.

    Raises
    ------
    TypeError
        ``X`` is not 2-D.
    ValueError
        Invalid method, metric, criterion or data (as :func:`linkage` and
        :func:`fcluster`).

    See Also
    --------
    scipy.cluster.hierarchy.fclusterdata : the reference implementation.

    Notes
    -----
    Like scipy, ward/centroid/median accept any metric here: the distances
    are computed first and clustered as a condensed matrix.

    Examples
    --------
    >>> from gpu_hclust import fclusterdata
    >>> X = [[0, 0], [0, 1], [2, 0], [6, 5], [7, 8], [13, 1]]
    >>> fclusterdata(X, 3, criterion="maxclust", method="average")
    array([1, 1, 1, 2, 2, 3], dtype=int32)
    """
    from ._linkage import linkage
    from ._methods import get_method

    is_cupy = is_cupy_array(X)
    ndim = X.ndim if is_cupy else np.ndim(X)
    if ndim != 2:
        raise TypeError("The observation matrix X must be an n by m array (n "
                        f"observations, m features); got {ndim} dimensions.")
    spec = get_method(method)
    if spec.euclidean_only and metric != "euclidean":
        # scipy clusters pdist(X, metric) as a condensed matrix, where any
        # metric is allowed; linkage() on observations would refuse it.
        from scipy.spatial.distance import pdist

        Xh, _ = host_array(X, np.float64)
        data = pdist(Xh, metric=metric)
        Z = linkage(data, method=method, backend=backend, dtype=dtype)
    else:
        if not is_cupy:
            X = np.asarray(X, dtype=np.float64)
        Z = linkage(X, method=method, metric=metric, backend=backend, dtype=dtype)
    Zh, _ = host_array(Z)
    T = fcluster(Zh, t, criterion=criterion, depth=depth, R=R)
    return like_input(T, is_cupy)


def leaders(Z, T):
    """Return the root nodes (leaders) of the flat clusters ``T`` in ``Z``.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.
    T : array_like
        int32 flat cluster assignment (as :func:`fcluster` returns).

    Returns
    -------
    L : ndarray
        int32 leader node ids: ``L[j]`` is the node whose leaves are exactly
        the observations of flat cluster ``M[j]`` (``< n``: an observation).
    M : ndarray
        int32 flat cluster ids, in scipy's order (post-order walk).

    Raises
    ------
    TypeError
        ``T`` is not int32, or ``Z`` is invalid.
    ValueError
        ``len(T) != n``, or ``T`` is not a valid assignment (a flat cluster
        that is not a whole subtree).

    See Also
    --------
    fcluster : makes ``T``.
    scipy.cluster.hierarchy.leaders : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import fcluster, leaders, linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")
    >>> T = fcluster(Z, 2, criterion="maxclust")
    >>> T
    array([2, 2, 2, 1, 1], dtype=int32)
    >>> leaders(Z, T)  # cluster 1 is node 5 (row 0 of Z), cluster 2 node 7
    (array([5, 7], dtype=int32), array([1, 2], dtype=int32))
    """
    Zh, was_cupy = checked_linkage(Z)
    Th, t_cupy = host_array(T)
    if Th.dtype != np.int32:
        raise TypeError("T must be a 1-D array of dtype int32 (as returned by "
                        f"fcluster); got dtype {Th.dtype}.")
    if Th.ndim != 1:
        raise ValueError(f"T must be a 1-D array of dtype int32; got {Th.ndim} dimensions.")
    n = Zh.shape[0] + 1
    if Th.shape[0] != n:
        raise ValueError(f"Mismatch: len(T)!=Z.shape[0] + 1 ({Th.shape[0]} labels for "
                         f"{n} observations).")
    left, right = linkage_tree(Zh)  # our extra check, after scipy's checks of T
    nc = int(np.unique(Th).size)
    L, M, err = cpu_post.leaders(left, right, n, np.ascontiguousarray(Th), nc)
    if err >= 0:
        raise ValueError("T is not a valid assignment vector. Error found when "
                         f"examining linkage node {err} (< 2n-1): each flat cluster "
                         "must be the set of leaves of one node of Z.")
    out = was_cupy or t_cupy
    return like_input(L, out), like_input(M, out)


def _cut_columns(Zh, heights_sorted, n_clusters, height):
    """scipy's column indices (number of merges applied) for cut_tree."""
    nobs = Zh.shape[0] + 1
    if height is not None:
        cols = np.searchsorted(heights_sorted, np.asarray(height))
    elif n_clusters is not None:
        cols = nobs - np.searchsorted(np.arange(nobs), np.asarray(n_clusters))
    else:
        cols = np.arange(nobs)
    cols = np.asarray(cols)
    if cols.ndim == 0:
        cols = cols.reshape(1)
    if cols.ndim != 1:
        raise ValueError("n_clusters and height must be a scalar or 1-D; got "
                         f"{cols.ndim} dimensions.")
    return cols.astype(np.int64)


def cut_tree(Z, n_clusters=None, height=None):
    """Cluster memberships after cutting the tree at given numbers of
    clusters or heights.

    Parameters
    ----------
    Z : array_like
        The linkage matrix (float64; not cast).
    n_clusters : array_like, optional
        Number(s) of clusters at the cut.
    height : array_like, optional
        Height(s) of the cut (meaningful for monotone trees).

    Returns
    -------
    cutree : ndarray
        int64, shape (n, k): column j holds each observation's group (from
        0) for the j-th requested cut; without ``n_clusters``/``height``,
        column j is the state after j merges (k = n).

    Raises
    ------
    TypeError, ValueError
        Invalid ``Z`` or a wrong count column; both ``n_clusters`` and
        ``height`` given.

    See Also
    --------
    fcluster : flat clusters by other criteria.
    scipy.cluster.hierarchy.cut_tree : the reference implementation.

    Notes
    -----
    Merges are applied in scipy's order (by height; ties in reverse
    breadth-first order). Groups are numbered by their smallest observation,
    as scipy's relabelling produces; one union-find pass serves all columns,
    O(n·k). When a merge precedes one of its own children in that order (an
    inversion of a centroid/median tree), scipy's relabelling is replayed step
    by step instead (O(n) per merge), reproducing its output.

    Examples
    --------
    >>> from gpu_hclust import cut_tree, linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")
    >>> cut_tree(Z, n_clusters=[2, 3])  # one column per cut
    array([[0, 0],
           [0, 0],
           [0, 1],
           [1, 2],
           [1, 2]])
    """
    Zh, was_cupy, left, right = checked_tree(Z, cast=False)
    check_counts(Zh, left, right)
    nobs = Zh.shape[0] + 1
    if height is not None and n_clusters is not None:
        raise ValueError("At least one of either height or n_clusters must be None: "
                         "pass only one of them.")
    heights = np.ascontiguousarray(Zh[:, 2])
    rank = cpu_post.bfs_rank(left, right, nobs)
    rows = np.lexsort((-rank, heights)).astype(np.int64)
    cols = _cut_columns(Zh, heights[rows], n_clusters, height)

    groups = np.zeros((cols.shape[0], nobs), dtype=np.int64)
    if np.any(cols == 0):
        # scipy writes the unmerged state into the first column (not the
        # column that asked for 0 merges); reproduced.
        groups[0] = np.arange(nobs)
    steps = np.unique(cols[(cols >= 1) & (cols <= nobs - 1)])
    if steps.size:
        if cpu_post.children_first(left, right, nobs, rows):
            labels = cpu_post.cut_labels_union_find(left, right, nobs, rows, steps)
        else:
            labels = cpu_post.cut_labels_literal(left, right, nobs, rows, steps)
        for c, s in enumerate(steps):
            groups[cols == s] = labels[c]
    return like_input(groups.T, was_cupy)
