"""Statistics of a hierarchy: cophenetic distances, inconsistency, maxima.

Same contracts as :mod:`scipy.cluster.hierarchy` (1.17). The tree walks are
compiled loops in ``kernels/cpu_post.py`` (iterative: a caterpillar of a
million leaves is fine); CuPy input is answered with CuPy arrays.
"""

import numpy as np

from ._checks import checked_im, checked_tree, host_array, like_input
from .kernels import cpu_post

# Elements per chunk when reducing over the condensed matrices: bounds the
# temporaries of the correlation to a few MB whatever n is.
_CHUNK = 1 << 20


def cophenet(Z, Y=None):
    """Cophenetic distances of the hierarchy ``Z``, and optionally their
    correlation with the original distances ``Y``.

    The cophenetic distance of observations i and j is the height of the
    merge that first puts them in one cluster.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.
    Y : array_like, optional
        The condensed distance matrix ``Z`` was built from.

    Returns
    -------
    c : float
        The cophenetic correlation coefficient (only when ``Y`` is given).
    d : ndarray
        The condensed cophenetic distance matrix, float64, length n(n-1)/2.
        ``cophenet(Z)`` returns ``d`` alone; ``cophenet(Z, Y)`` returns ``(c, d)``.

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix, ``Y`` not a valid condensed
        distance matrix, or their sizes differ.

    See Also
    --------
    scipy.cluster.hierarchy.cophenet : the reference implementation.

    Notes
    -----
    Memory is the output (8 bytes per pair: 4 GB at n = 32 000) plus O(n);
    the correlation is reduced in chunks without n(n-1)/2-sized temporaries.
    The rows of ``d`` are filled in parallel.

    Examples
    --------
    >>> from scipy.spatial.distance import pdist
    >>> from gpu_hclust import cophenet, linkage
    >>> X = [[0], [2], [6], [13], [14]]  # five points on a line
    >>> Z = linkage(X, "single")
    >>> cophenet(Z)
    array([2., 4., 7., 7., 4., 7., 7., 7., 7., 1.])
    >>> c, d = cophenet(Z, pdist(X))
    >>> print(round(c, 4))
    0.8839
    """
    Zh, was_cupy, left, right = checked_tree(Z)
    n = Zh.shape[0] + 1
    d = np.zeros(n * (n - 1) // 2, dtype=np.float64)
    cpu_post.cophenetic_fill(left, right, n, np.ascontiguousarray(Zh[:, 2]), d)
    if Y is None:
        return like_input(d, was_cupy)
    from scipy.spatial import distance  # scipy.spatial costs ~35 MiB: imported on use

    Yh, y_cupy = host_array(Y)
    distance.is_valid_y(Yh, throw=True, name="Y")
    if Yh.shape[0] != d.shape[0]:
        raise ValueError(
            f"'Y' has {Yh.shape[0]} distances but 'Z' describes {n} observations "
            f"({d.shape[0]} pairs): pass the condensed distance matrix Z was built from."
        )
    c = _correlation(np.asarray(Yh, dtype=np.float64), d)
    return like_input(c, was_cupy or y_cupy), like_input(d, was_cupy or y_cupy)


def _correlation(y, z):
    """Pearson correlation of two equal-length vectors, chunk by chunk."""
    ym = y.mean()
    zm = z.mean()
    num = 0.0
    ssy = 0.0
    ssz = 0.0
    for s in range(0, y.shape[0], _CHUNK):
        a = y[s:s + _CHUNK] - ym
        b = z[s:s + _CHUNK] - zm
        num += np.dot(a, b)
        ssy += np.dot(a, a)
        ssz += np.dot(b, b)
    return np.float64(num) / np.sqrt(np.float64(ssy) * np.float64(ssz))


def inconsistent(Z, d=2):
    r"""Inconsistency statistics of each merge of a linkage matrix.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.
    d : int, optional
        Number of levels (the merge itself and the merges up to ``d - 1``
        levels below it) whose heights enter the statistics.

    Returns
    -------
    R : ndarray
        (n-1, 4) float64: mean and standard deviation of the included
        heights, their number, and the inconsistency coefficient
        :math:`(Z[i,2] - R[i,0]) / R[i,1]` (0 when the deviation is 0).

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix; ``d`` is negative or not a whole
        number.

    See Also
    --------
    scipy.cluster.hierarchy.inconsistent : the reference implementation.

    Notes
    -----
    Sums are taken in scipy's order, so ``R`` equals scipy's bit for bit.
    Cost O(n · nodes within ``d`` levels); no recursion.

    Examples
    --------
    >>> from gpu_hclust import inconsistent, linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")
    >>> inconsistent(Z)
    array([[1.        , 0.        , 1.        , 0.        ],
           [2.        , 0.        , 1.        , 0.        ],
           [3.        , 1.41421356, 2.        , 0.70710678],
           [4.        , 3.        , 3.        , 1.        ]])
    """
    Zh, was_cupy, left, right = checked_tree(Z)
    if d != np.floor(d) or d < 0:
        raise ValueError("The second argument d must be a nonnegative integer value "
                         f"(the number of levels); got d={d!r}.")
    n = Zh.shape[0] + 1
    R = cpu_post.inconsistency(left, right, n, np.ascontiguousarray(Zh[:, 2]), int(d))
    return like_input(R, was_cupy)


def maxdists(Z):
    """Maximum merge height in the subtree of each merge.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.

    Returns
    -------
    maxdists : ndarray
        (n-1,) float64; ``MD[i]`` is the largest height among merge i and the
        merges below it (differs from ``Z[i, 2]`` only for inversions, as in
        centroid/median linkage).

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix.

    See Also
    --------
    scipy.cluster.hierarchy.maxdists : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import linkage, maxdists
    >>> Z = linkage([[0, 0], [1, 0], [0.5, 0.9]], "centroid")  # an inversion
    >>> Z[:, 2]
    array([1. , 0.9])
    >>> maxdists(Z)
    array([1., 1.])
    """
    Zh, was_cupy, left, right = checked_tree(Z)
    n = Zh.shape[0] + 1
    MD = cpu_post.max_over_subtree(left, right, n, np.ascontiguousarray(Zh[:, 2]))
    return like_input(MD, was_cupy)


def maxinconsts(Z, R):
    """Maximum inconsistency coefficient in the subtree of each merge.

    The same as ``maxRstat(Z, R, 3)``.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.
    R : array_like
        The inconsistency matrix of ``Z`` (:func:`inconsistent`).

    Returns
    -------
    MI : ndarray
        (n-1,) float64, the maximum of ``R[:, 3]`` over each merge and the
        merges below it.

    Raises
    ------
    TypeError, ValueError
        ``Z`` or ``R`` is invalid, or their row counts differ.

    See Also
    --------
    maxRstat : the maximum of any column of ``R``.
    scipy.cluster.hierarchy.maxinconsts : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import inconsistent, linkage, maxinconsts
    >>> Z = linkage([[0], [1], [5], [6.5], [20]], "single")
    >>> R = inconsistent(Z)
    >>> R[:, 3]  # the root is less inconsistent than the merge below it
    array([0.        , 0.        , 1.14064686, 0.70710678])
    >>> maxinconsts(Z, R)
    array([0.        , 0.        , 1.14064686, 1.14064686])
    """
    return maxRstat(Z, R, 3)  # same checks, in the same order, as scipy's


def maxRstat(Z, R, i):
    """Maximum of column ``i`` of ``R`` in the subtree of each merge.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.
    R : array_like
        The inconsistency matrix of ``Z``.
    i : int
        Column of ``R`` (0: mean, 1: standard deviation, 2: count,
        3: inconsistency coefficient).

    Returns
    -------
    MR : ndarray
        (n-1,) float64.

    Raises
    ------
    TypeError
        ``i`` is not a Python int (as scipy, NumPy integers are refused), or
        ``Z``/``R`` is not float64-valid.
    ValueError
        ``i`` outside 0..3, invalid ``Z``/``R``, or differing row counts.

    See Also
    --------
    scipy.cluster.hierarchy.maxRstat : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import inconsistent, linkage, maxRstat
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")
    >>> R = inconsistent(Z)
    >>> maxRstat(Z, R, 1)  # largest standard deviation below each merge
    array([0.        , 0.        , 1.41421356, 3.        ])
    """
    Zh, was_cupy, left, right = checked_tree(Z)
    Rh, r_cupy = checked_im(R)
    if not isinstance(i, int):
        raise TypeError("The third argument must be an integer (the column of R, "
                        f"0..3, as a Python int); got {type(i).__name__}.")
    if i < 0 or i > 3:
        raise ValueError(f"i must be an integer between 0 and 3 inclusive; got {i}.")
    if Rh.shape[0] != Zh.shape[0]:
        raise ValueError("The inconsistency matrix and linkage matrix each have a "
                         f"different number of rows ({Rh.shape[0]} and {Zh.shape[0]}): "
                         "pass R = inconsistent(Z).")
    n = Zh.shape[0] + 1
    MR = cpu_post.max_over_subtree(left, right, n, np.ascontiguousarray(Rh[:, i]))
    return like_input(MR, was_cupy or r_cupy)

