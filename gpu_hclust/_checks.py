"""Validity checks and conversions for linkage matrices.

Same contracts as :mod:`scipy.cluster.hierarchy` (1.17): return values,
exception types and message texts (each message starts with scipy's words, so
code matching scipy's messages keeps working, and then says how to fix it).

CuPy input is fetched to the host once (``Z`` is O(n)); array results go back
to the input's namespace. The helpers ``host_array``/``like_input`` and
``checked_linkage``/``checked_tree``/``checked_im`` are shared by the other
post-processing modules.
"""

import numpy as np

from ._backend import is_cupy_array, to_host
from ._warnings import warn_cluster
from .kernels import cpu_post

_LINKAGE_HINT = " Pass the matrix returned by linkage() (shape (n-1, 4), float64)."


# --------------------------------------------------------------------------
# namespace helpers (shared by _stats, _flat, _treenode, _ordering)
# --------------------------------------------------------------------------

def host_array(x, dtype=None):
    """``(numpy_array, was_cupy)``: a host view/copy of ``x``, optionally cast.

    Never modifies ``x``; a cast or a device fetch makes a copy.
    """
    was_cupy = is_cupy_array(x)
    arr = to_host(x) if was_cupy else np.asarray(x)
    if dtype is not None:
        arr = np.asarray(arr, dtype=dtype)
    return arr, was_cupy


def like_input(result, was_cupy):
    """Return ``result`` (NumPy array or scalar) in the input's namespace."""
    if not was_cupy:
        return result
    import cupy

    return cupy.asarray(result)


# --------------------------------------------------------------------------
# is_valid_linkage / is_valid_im
# --------------------------------------------------------------------------

def _verdict(problems, warning, throw):
    """Raise, warn or stay silent about ``(exc_type, message, prefix)`` problems
    (scipy's policy: one warning per problem); True when there is none.

    Warnings point at the caller of the public check (stacklevel 3).
    """
    for exc, msg, prefix in problems:
        if throw:
            raise exc(msg)
        if warning:
            warn_cluster(prefix + msg, stacklevel=3)
    return not problems


def _form_problems(arr, what, doubles, hint):
    """scipy's dtype and shape checks of a 4-column float64 matrix, in its order.

    ``what`` starts the message ("Linkage matrix 'Z'"), ``doubles`` is scipy's
    wording of the dtype. A problem found here is reported alone, with scipy's
    warning prefix.
    """
    if arr.dtype != np.float64:
        return [(TypeError, f"{what}must contain {doubles}." + hint, "gpu_hclust: ")]
    if arr.ndim != 2:
        return [(ValueError, f"{what}must have shape=2 (i.e. be two-dimensional)."
                 + hint, "gpu_hclust: ")]
    if arr.shape[1] != 4:
        return [(ValueError, f"{what}must have 4 columns." + hint, "gpu_hclust: ")]
    return []


def _linkage_problems(Z, name):
    """Problems scipy would report for ``Z``: a list of ``(exc_type, message, prefix)``.

    ``Z`` is a NumPy array that has not been cast. Empty when valid. A shape or
    dtype problem is reported alone; content problems are all reported (scipy
    warns once per failed check).
    """
    name_str = f"{name!r} " if name else ""
    problems = _form_problems(Z, f"Linkage matrix {name_str}", "doubles", _LINKAGE_HINT)
    if problems:
        return problems
    if Z.shape[0] == 0:
        return [(ValueError, "Linkage must be computed on at least two observations."
                 " A linkage matrix has n-1 rows for n observations.", "gpu_hclust: ")]
    m = Z.shape[0]
    if m < 2:
        # scipy checks the contents only from two rows on; a single row passes.
        return []
    ids = Z[:, :2]
    checks = (
        (np.any(ids < 0), f"Linkage {name_str}contains negative indices."),
        (np.any(Z[:, 2] < 0), f"Linkage {name_str}contains negative distances."),
        (np.any(Z[:, 3] < 0), f"Linkage {name_str}contains negative counts."),
        (np.any(Z[:, 3] > m + 1),
         f"Linkage {name_str}contains excessive observations in a cluster"),
        (np.any(ids.max(axis=1) >= np.arange(m + 1, 2 * m + 1, dtype=np.float64)),
         f"Linkage {name_str}uses non-singleton cluster before it is formed."),
        (np.unique(ids).size < m * 2,
         f"Linkage {name_str}uses the same cluster more than once."),
    )
    hint = (" Row i may only join clusters 0..n+i-1, each once, with non-negative "
            "heights and counts up to n.")
    return [(ValueError, msg + ("" if msg.endswith(".") else ".") + hint, "")
            for failed, msg in checks if failed]


def is_valid_linkage(Z, warning=False, throw=False, name=None):
    """Check the validity of a linkage matrix.

    A valid linkage matrix is a 2-D float64 array with ``n-1`` rows and 4
    columns; row ``i`` joins two clusters with ids in ``0 .. n+i-1`` (each id
    used at most once), with a non-negative distance and a count between 0
    and ``n``.

    Parameters
    ----------
    Z : array_like
        Linkage matrix (NumPy, CuPy or nested lists). Not cast: an integer
        array is invalid, as in scipy.
    warning : bool, optional
        Issue a :class:`ClusterWarning` naming the problem when invalid.
    throw : bool, optional
        Raise an exception naming the problem when invalid.
    name : str, optional
        Variable name used in the messages.

    Returns
    -------
    b : bool
        True if the linkage matrix is valid.

    Raises
    ------
    TypeError
        ``throw=True`` and ``Z`` is not float64.
    ValueError
        ``throw=True`` and ``Z`` has the wrong shape or invalid contents.

    See Also
    --------
    scipy.cluster.hierarchy.is_valid_linkage : the reference implementation.

    Notes
    -----
    Like scipy, a single-row ``Z`` (two observations) is only checked for its
    shape and dtype.

    Examples
    --------
    >>> from gpu_hclust import is_valid_linkage, linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")  # five points on a line
    >>> is_valid_linkage(Z)
    True
    >>> is_valid_linkage([[0.0, 1.0, 1.0, 2.0], [0.0, 2.0, 3.0, 3.0]])  # joins 0 twice
    False
    """
    Zh, _ = host_array(Z)
    return _verdict(_linkage_problems(Zh, name), warning, throw)


def checked_linkage(Z, cast=True):
    """Validate ``Z`` as scipy's internal checks do and return it on the host.

    Parameters
    ----------
    Z : array_like
        Linkage matrix, NumPy/CuPy/lists.
    cast : bool
        Convert to float64 first (scipy does for most functions; ``leaves_list``,
        ``to_tree``, ``is_monotonic`` and ``num_obs_linkage`` do not, so an
        integer ``Z`` raises TypeError there).

    Returns
    -------
    Zh : ndarray of float64, C-contiguous
    was_cupy : bool
    """
    Zh, was_cupy = host_array(Z, np.float64 if cast else None)
    is_valid_linkage(Zh, throw=True, name="Z")
    return np.ascontiguousarray(Zh), was_cupy


def _im_problems(R, name):
    """Problems scipy would report for the inconsistency matrix ``R`` (see
    ``_linkage_problems``)."""
    name_str = f"{name!r} " if name else ""
    hint = " Pass the matrix returned by inconsistent(Z) (shape (n-1, 4), float64)."
    what = f"Inconsistency matrix {name_str}"
    problems = _form_problems(R, what, "doubles (double)", hint)
    if problems:
        return problems
    if R.shape[0] < 1:
        return [(ValueError, f"{what}must have at least one row." + hint, "gpu_hclust: ")]
    # scipy's content messages have a double space after the name; kept verbatim.
    # Every failed check is reported (one warning each), as scipy does.
    return [(ValueError, f"{what} contains negative {col_name}." + hint, "")
            for col, col_name in ((0, "link height means"),
                                  (1, "link height standard deviations"),
                                  (2, "link counts"))
            if np.any(R[:, col] < 0)]


def is_valid_im(R, warning=False, throw=False, name=None):
    """Return True if the inconsistency matrix passed is valid.

    It must be a 2-D float64 array with 4 columns and at least one row, and
    its link-height means, standard deviations and link counts (columns 0-2)
    must be non-negative.

    Parameters
    ----------
    R : array_like
        The inconsistency matrix to check (from :func:`inconsistent`).
    warning : bool, optional
        Issue a :class:`ClusterWarning` naming the problem when invalid.
    throw : bool, optional
        Raise an exception naming the problem when invalid.
    name : str, optional
        Variable name used in the messages.

    Returns
    -------
    b : bool
        True if the inconsistency matrix is valid.

    Raises
    ------
    TypeError
        ``throw=True`` and ``R`` is not float64.
    ValueError
        ``throw=True`` and ``R`` has the wrong shape or negative entries.

    See Also
    --------
    scipy.cluster.hierarchy.is_valid_im : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import inconsistent, is_valid_im, linkage
    >>> R = inconsistent(linkage([[0], [2], [6], [13], [14]], "single"))
    >>> is_valid_im(R)
    True
    >>> is_valid_im(R[:, :3], throw=True)
    Traceback (most recent call last):
        ...
    ValueError: Inconsistency matrix must have 4 columns. Pass the matrix returned by inconsistent(Z) ...
    """
    Rh, _ = host_array(R)
    return _verdict(_im_problems(Rh, name), warning, throw)


def checked_im(R):
    """Validate the inconsistency matrix ``R`` (cast to float64) and return
    ``(Rh, was_cupy)``, ``Rh`` C-contiguous on the host."""
    Rh, was_cupy = host_array(R, np.float64)
    Rh = np.ascontiguousarray(Rh)
    is_valid_im(Rh, throw=True, name="R")
    return Rh, was_cupy


# --------------------------------------------------------------------------
# simple queries
# --------------------------------------------------------------------------

def is_monotonic(Z):
    """Return True if the linkage passed is monotonic.

    Monotonic means each merge height is no less than the previous row's:
    ``Z[i+1, 2] >= Z[i, 2]``. centroid and median linkages may not be.

    Parameters
    ----------
    Z : array_like
        The linkage matrix (float64; not cast).

    Returns
    -------
    b : bool
        A NumPy bool (a 0-d CuPy array for CuPy input), as scipy returns.

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix (see :func:`is_valid_linkage`).

    See Also
    --------
    scipy.cluster.hierarchy.is_monotonic : the reference implementation.

    Examples
    --------
    centroid linkage can merge at a lower height than the merge before:

    >>> from gpu_hclust import is_monotonic, linkage
    >>> Z = linkage([[0, 0], [1, 0], [0.5, 0.9]], "centroid")
    >>> Z[:, 2]
    array([1. , 0.9])
    >>> bool(is_monotonic(Z))  # a NumPy bool, as scipy returns
    False
    """
    Zh, was_cupy = checked_linkage(Z, cast=False)
    return like_input(np.all(Zh[1:, 2] >= Zh[:-1, 2]), was_cupy)


def num_obs_linkage(Z):
    """Return the number of original observations of the linkage matrix passed.

    Parameters
    ----------
    Z : array_like
        The linkage matrix (float64; not cast).

    Returns
    -------
    n : int
        ``Z.shape[0] + 1``.

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix.

    See Also
    --------
    scipy.cluster.hierarchy.num_obs_linkage : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import linkage, num_obs_linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")
    >>> num_obs_linkage(Z)
    5
    """
    Zh, _ = checked_linkage(Z, cast=False)
    return Zh.shape[0] + 1


def correspond(Z, Y):
    """Check for correspondence between linkage and condensed distance matrices.

    Parameters
    ----------
    Z : array_like
        The linkage matrix.
    Y : array_like
        The condensed distance matrix.

    Returns
    -------
    b : bool
        True when both describe the same number of observations.

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix or ``Y`` not a valid condensed
        distance matrix.

    See Also
    --------
    scipy.cluster.hierarchy.correspond : the reference implementation.

    Examples
    --------
    >>> from scipy.spatial.distance import pdist
    >>> from gpu_hclust import correspond, linkage
    >>> y = pdist([[0], [2], [6], [13], [14]])
    >>> Z = linkage(y, "single")
    >>> correspond(Z, y)
    True
    >>> correspond(Z, y[:6])  # 6 distances: 4 observations
    False
    """
    from scipy.spatial import distance  # scipy.spatial costs ~35 MiB: imported on use

    Zh, _ = host_array(Z)
    Yh, _ = host_array(Y)
    is_valid_linkage(Zh, throw=True)
    distance.is_valid_y(Yh, throw=True)
    return distance.num_obs_y(Yh) == Zh.shape[0] + 1


def is_isomorphic(T1, T2):
    """Determine if two different cluster assignments are equivalent.

    Parameters
    ----------
    T1, T2 : array_like
        Flat cluster assignments of the same observations (1-D, same length).

    Returns
    -------
    b : bool
        A NumPy bool (0-d CuPy array for CuPy input).

    Raises
    ------
    ValueError
        An input is not 1-D, or the lengths differ.

    See Also
    --------
    scipy.cluster.hierarchy.is_isomorphic : the reference implementation.

    Notes
    -----
    The test is scipy's: sort by ``T1`` and require that label changes along
    that order (cyclically) coincide in ``T1`` and ``T2``. Like scipy's, it can
    answer True for some non-isomorphic pairs where two ``T1`` clusters share a
    ``T2`` label but are not neighbours in ``T1``'s label order, e.g.
    ``[1, 2, 3, 4]`` vs ``[5, 6, 5, 7]``; kept so results equal scipy's.

    Examples
    --------
    >>> from gpu_hclust import is_isomorphic
    >>> bool(is_isomorphic([1, 1, 2, 3], [2, 2, 3, 1]))  # same groups, other numbers
    True
    >>> bool(is_isomorphic([1, 1, 2, 3], [1, 2, 2, 3]))
    False
    """
    A, was_cupy = host_array(T1)
    B, was_cupy2 = host_array(T2)
    if A.ndim != 1:
        raise ValueError("T1 must be one-dimensional (one flat cluster label per "
                         f"observation); got {A.ndim} dimensions.")
    if B.ndim != 1:
        raise ValueError("T2 must be one-dimensional (one flat cluster label per "
                         f"observation); got {B.ndim} dimensions.")
    if A.shape != B.shape:
        raise ValueError("T1 and T2 must have the same number of elements; got "
                         f"{A.shape[0]} and {B.shape[0]}.")
    order = np.argsort(A, kind="stable")
    A = A[order]
    B = B[order]
    same = np.all((A != np.roll(A, -1)) == (B != np.roll(B, -1)))
    return like_input(same, was_cupy or was_cupy2)


# --------------------------------------------------------------------------
# MATLAB conversions
# --------------------------------------------------------------------------

def from_mlab_linkage(Z):
    """Convert a linkage matrix generated by MATLAB(TM) to scipy's format.

    Indices go from ``1..N`` to ``0..N-1`` and a fourth column with each
    cluster's number of observations is added.

    Parameters
    ----------
    Z : array_like
        A MATLAB linkage matrix (n-1 rows: two 1-based ids and a height).

    Returns
    -------
    ZS : ndarray
        A linkage matrix compatible with this module (float64).

    Raises
    ------
    ValueError
        ``Z`` is not 2-D, or its ids are not 1-based.

    See Also
    --------
    to_mlab_linkage : the inverse conversion.
    scipy.cluster.hierarchy.from_mlab_linkage : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import from_mlab_linkage
    >>> from_mlab_linkage([[4, 5, 1.0], [1, 2, 2.0], [3, 7, 4.0], [6, 8, 7.0]])
    array([[3., 4., 1., 2.],
           [0., 1., 2., 2.],
           [2., 6., 4., 3.],
           [5., 7., 7., 5.]])
    """
    Zh, was_cupy = host_array(Z, np.float64)
    if Zh.shape in ((), (0,)):
        return like_input(Zh.copy(), was_cupy)
    if Zh.ndim != 2:
        raise ValueError("The linkage array must be rectangular: pass a 2-D MATLAB "
                         f"linkage matrix (n-1 rows, 3 columns); got {Zh.ndim} dimensions.")
    m = Zh.shape[0]
    if m == 0:
        return like_input(Zh.copy(), was_cupy)
    ids = Zh[:, :2]
    if ids.min() != 1.0 and ids.max() != 2 * m:
        raise ValueError("The format of the indices is not 1..N: MATLAB linkage "
                         "matrices number observations from 1; pass the MATLAB "
                         "matrix unchanged.")
    res = np.empty((m, Zh.shape[1] + 1), dtype=np.float64)
    res[:, :2] = ids - 1.0
    res[:, 2:-1] = Zh[:, 2:]
    res[:, -1] = _mlab_cluster_sizes(res[:, :2], m)
    return like_input(res, was_cupy)


def _mlab_cluster_sizes(ids, m):
    """Cluster sizes from 0-based child ids, row by row, as scipy sums them."""
    n = m + 1
    child = ids.astype(np.int64)  # truncation toward zero, as scipy's C casts
    bad = cpu_post.mlab_sizes_bad_row(child, n)
    if bad >= 0:
        raise ValueError(
            f"The MATLAB linkage matrix refers to a cluster that does not exist in "
            f"row {bad}: ids must lie in 1..{2 * n - 2}."
        )
    return cpu_post.mlab_sizes(child, n)


def to_mlab_linkage(Z):
    """Convert a linkage matrix to a MATLAB(TM) compatible one.

    The count column is dropped and cluster ids become 1-based.

    Parameters
    ----------
    Z : array_like
        A linkage matrix from :func:`linkage`.

    Returns
    -------
    to_mlab_linkage : ndarray
        Shape (n-1, 3), float64, in the input's namespace.

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix.

    See Also
    --------
    from_mlab_linkage : the inverse conversion.
    scipy.cluster.hierarchy.to_mlab_linkage : the reference implementation.

    Examples
    --------
    >>> from gpu_hclust import linkage, to_mlab_linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")
    >>> to_mlab_linkage(Z)
    array([[4., 5., 1.],
           [1., 2., 2.],
           [3., 7., 4.],
           [6., 8., 7.]])
    """
    Zh, was_cupy = host_array(Z, np.float64)
    if Zh.shape in ((), (0,)):
        return like_input(Zh.copy(), was_cupy)
    is_valid_linkage(Zh, throw=True, name="Z")
    return like_input(np.concatenate((Zh[:, :2] + 1.0, Zh[:, 2:3]), axis=1), was_cupy)


# --------------------------------------------------------------------------
# the tree of a validated Z (shared by _stats, _flat, _treenode, _ordering)
# --------------------------------------------------------------------------

def linkage_tree(Zh):
    """Child ids ``(left, right)`` (int64) of a validated host ``Z``.

    ``is_valid_linkage`` accepts ids that are not whole numbers and checks
    nothing in a single row; scipy's C code then truncates them and may read
    out of bounds. Here the truncated ids must form a tree (each id
    ``< n + row``, used once), else ValueError: the compiled walks rely on it.
    """
    n = Zh.shape[0] + 1
    left, right, bad = cpu_post.check_tree(Zh, n)
    if bad >= 0:
        raise ValueError(
            f"Linkage 'Z' does not describe a tree: row {bad} joins "
            f"{Zh[bad, 0]!r} and {Zh[bad, 1]!r}; row i must join two distinct whole-number "
            "cluster ids below n+i that no earlier row has used. Pass the matrix "
            "returned by linkage()."
        )
    return left, right


def checked_tree(Z, cast=True):
    """:func:`checked_linkage`, then :func:`linkage_tree`: ``(Zh, was_cupy, left, right)``."""
    Zh, was_cupy = checked_linkage(Z, cast)
    left, right = linkage_tree(Zh)
    return Zh, was_cupy, left, right


def check_counts(Zh, left, right):
    """Raise scipy's ValueError when a count ``Z[i, 3]`` is not the number of
    observations below merge i (``to_tree`` and ``cut_tree`` check this)."""
    bad = cpu_post.first_bad_count(left, right, Zh.shape[0] + 1, Zh[:, 3].copy())
    if bad >= 0:
        raise ValueError(f"Corrupt matrix Z. The count Z[{bad},3] is incorrect: it "
                         "must equal the number of observations below that merge.")
