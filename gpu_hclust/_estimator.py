"""scikit-learn style estimator: ``HierarchicalClustering``.

Modelled on :class:`sklearn.cluster.AgglomerativeClustering` (parameters stored
untouched in ``__init__``, validated in ``fit``; ``children_`` and ``distances_``
in its convention) with scipy's ``Z`` as ``linkage_``. scikit-learn is optional:
when it is importable the estimator inherits its ``BaseEstimator`` and
``ClusterMixin`` (so ``clone``, pipelines, grid search and ``check_estimator``
work); otherwise a small local base provides ``get_params``/``set_params``.
"""

import inspect
import numbers

import numpy as np

from ._backend import is_cupy_array, to_host
from .kernels import cpu_post

try:
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import ClusterMixin as _ClusterMixin

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False

    class _Base:
        """get_params/set_params/repr from ``__init__``'s signature (sklearn's contract)."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(
                p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            )

        def get_params(self, deep=True):
            """Parameters of this estimator, by name (``deep`` is accepted for sklearn parity)."""
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            """Set parameters by name and return the estimator; unknown names raise ValueError."""
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(
                        f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                        f"Valid parameters are: {valid!r}."
                    )
                setattr(self, key, value)
            return self

        def __repr__(self):
            defaults = {
                p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
            }
            changed = [
                f"{k}={v!r}" for k, v in self.get_params().items()
                if not (defaults.get(k) is v or _equal(defaults.get(k), v))
            ]
            return f"{type(self).__name__}({', '.join(changed)})"

    class _ClusterMixin:
        """Marks a clusterer, as sklearn's ClusterMixin does."""

        _estimator_type = "clusterer"


def _equal(a, b):
    try:
        return bool(a == b)
    except Exception:  # arrays and other objects without a plain truth value
        return False


def cut_labels(Z, applied):
    """Flat labels 0..k-1 after making the merges ``applied`` marks.

    Parameters
    ----------
    Z : ndarray, shape (n-1, 4)
        scipy linkage matrix.
    applied : ndarray of bool, shape (n-1,)
        Which merges to make; must be closed downwards (a made merge's child
        merges are made too), as a prefix of ``Z``'s rows or a height cut is.

    Returns
    -------
    labels : ndarray of intp, shape (n,)
        Clusters numbered in order of their first observation.

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.array([[0, 1, 1.0, 2], [2, 3, 6.4, 3]])
    >>> cut_labels(Z, np.array([True, False]))
    array([0, 0, 1])
    """
    n = Z.shape[0] + 1
    left = Z[:, 0].astype(np.int64)
    right = Z[:, 1].astype(np.int64)
    # rows in index order put children before parents, as the union-find pass needs
    rows = np.flatnonzero(applied).astype(np.int64)
    steps = np.array([rows.size], dtype=np.int64)
    labels = cpu_post.cut_labels_union_find(left, right, n, rows, steps)[0]
    return labels.astype(np.intp, copy=False)


class HierarchicalClustering(_ClusterMixin, _Base):
    """Exact agglomerative clustering, on a GPU when one is usable.

    A scikit-learn estimator around :func:`gpu_hclust.linkage`, following
    :class:`sklearn.cluster.AgglomerativeClustering`'s conventions. The whole
    tree is always built (``linkage_``), then cut into ``n_clusters`` clusters or
    at ``distance_threshold``.

    Parameters
    ----------
    n_clusters : int or None, default=2
        Number of clusters to find: the tree is cut by undoing its last
        ``n_clusters - 1`` merges, which always gives exactly this many
        clusters. Must be None when ``distance_threshold`` is set.
    distance_threshold : float or None, default=None
        Merges at a height at or above this value are not made
        (scikit-learn's rule; for centroid/median, whose heights may decrease,
        a merge counts at the largest height inside it, as ``fcluster`` does).
        Must be None when ``n_clusters`` is set.
    method : str, default='ward'
        'single', 'complete', 'average', 'weighted', 'centroid', 'median' or
        'ward' (scipy's names; sklearn calls this ``linkage``).
    metric : str or callable, default='euclidean'
        Any :func:`scipy.spatial.distance.pdist` metric, or 'precomputed' for a
        square distance matrix ``X``. ward, centroid and median need
        'euclidean' (or 'precomputed' Euclidean distances).
    backend : {None, 'auto', 'cpu', 'cuda'}, default=None
        Where :func:`gpu_hclust.linkage` runs (None: the GPU when usable and
        worthwhile).
    dtype : {None, np.float32, np.float64}, default=None
        Precision of the working distance matrix (float32 halves its memory).
    low_memory : {None, True, False}, default=None
        Memory-saving path of :func:`gpu_hclust.linkage` (no distance matrix,
        O(n_samples * n_features) memory) for the (method, metric) pairs that
        have one: single with a compiled metric, ward, centroid, median, and
        average with 'sqeuclidean', 'cosine' or 'correlation'. None takes it
        when the matrix would not fit (and for single linkage on the CPU);
        True always (ValueError for other pairs and for 'precomputed');
        False never.
    compute_full_tree : 'auto' or bool, default='auto'
        Accepted for scikit-learn compatibility; the full tree is always
        computed (the algorithms gain nothing from stopping early). False is
        refused together with ``distance_threshold``, as in scikit-learn.

    Attributes
    ----------
    labels_ : ndarray of int, shape (n_samples,)
        Cluster of each sample, 0 .. n_clusters_-1, numbered in order of first
        appearance.
    n_clusters_ : int
        Number of clusters found.
    n_leaves_ : int
        Number of samples (leaves of the tree).
    n_connected_components_ : int
        Always 1 (no connectivity constraint).
    n_features_in_ : int
        Number of features seen in ``fit`` (``n_samples`` for 'precomputed').
    feature_names_in_ : ndarray of str
        Column names of a DataFrame ``X`` (only when it had string names).
    children_ : ndarray of int, shape (n_samples-1, 2)
        Merged nodes at each step: values below ``n_samples`` are samples, a
        value ``n_samples + i`` is the cluster made at step ``i``
        (``linkage_[:, :2]`` as integers).
    distances_ : ndarray of float64, shape (n_samples-1,)
        Merge heights (``linkage_[:, 2]``).
    linkage_ : ndarray of float64, shape (n_samples-1, 4)
        The scipy linkage matrix ``Z`` (NumPy, also for CuPy input).

    See Also
    --------
    gpu_hclust.linkage : the function underneath.
    gpu_hclust.fcluster : other ways to cut ``linkage_``.
    sklearn.cluster.AgglomerativeClustering : the estimator this one follows.

    Notes
    -----
    ``labels_`` equal ``fcluster(linkage_, n_clusters, 'maxclust')`` (or
    ``fcluster(linkage_, t, 'distance')``) up to renumbering whenever no merge
    height is tied at the cut; ``n_clusters`` always gives exactly that many
    clusters, where ``fcluster`` may give fewer under ties. CuPy input is
    clustered on its device; the attributes are NumPy arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from gpu_hclust import HierarchicalClustering
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]])
    >>> model = HierarchicalClustering(n_clusters=2, method="single", backend="cpu").fit(X)
    >>> model.labels_
    array([0, 0, 1, 1])
    >>> model.distances_
    array([1.        , 1.        , 6.40312424])
    """

    def __init__(self, n_clusters=2, *, distance_threshold=None, method="ward",
                 metric="euclidean", backend=None, dtype=None, low_memory=None,
                 compute_full_tree="auto"):
        self.n_clusters = n_clusters
        self.distance_threshold = distance_threshold
        self.method = method
        self.metric = metric
        self.backend = backend
        self.dtype = dtype
        self.low_memory = low_memory
        self.compute_full_tree = compute_full_tree

    # -- validation -------------------------------------------------------------
    def _check_params(self):
        from ._methods import get_method

        if (self.n_clusters is None) == (self.distance_threshold is None):
            raise ValueError(
                "Exactly one of n_clusters and distance_threshold has to be set, and the "
                f"other needs to be None; got n_clusters={self.n_clusters!r}, "
                f"distance_threshold={self.distance_threshold!r}"
            )
        if self.n_clusters is not None and (
            not isinstance(self.n_clusters, numbers.Integral)
            or isinstance(self.n_clusters, (bool, np.bool_))
            or self.n_clusters < 1
        ):
            raise ValueError(
                f"n_clusters must be an integer >= 1 (or None with distance_threshold); "
                f"got {self.n_clusters!r}"
            )
        if self.distance_threshold is not None and (
            not isinstance(self.distance_threshold, numbers.Real)
            or isinstance(self.distance_threshold, (bool, np.bool_))
            or not self.distance_threshold >= 0
        ):
            raise ValueError(
                "distance_threshold must be a real number >= 0 (or None with n_clusters); "
                f"got {self.distance_threshold!r}"
            )
        full = self.compute_full_tree
        if not (isinstance(full, (bool, np.bool_)) or (isinstance(full, str) and full == "auto")):
            raise ValueError(f"compute_full_tree must be 'auto', True or False; got {full!r}")
        if self.distance_threshold is not None and full is not True and full != "auto":
            raise ValueError(
                "compute_full_tree must be True (or 'auto') if distance_threshold is set"
            )
        get_method(self.method)  # scipy's ValueError for an unknown method
        if self.metric == "precomputed":
            return
        if not (callable(self.metric) or isinstance(self.metric, str)):
            raise ValueError(
                f"metric must be a string, a callable or 'precomputed'; got {self.metric!r}"
            )

    def _validate_X(self, X):
        if type(X).__module__.startswith("dask."):  # a dask array: gpu_hclust.dask checks the rest
            if self.metric == "precomputed" or X.ndim != 2 or X.shape[0] < 2:
                raise ValueError(
                    "a dask array X must be (n_samples, n_features) observations with at least "
                    f"2 samples (metric='precomputed' is not supported); got shape {X.shape}"
                )
            self.n_features_in_ = int(X.shape[1])
            return X
        if is_cupy_array(X):
            if X.ndim != 2 or X.shape[0] < 2:
                raise ValueError(
                    f"X must be a 2-D array with at least 2 samples; got shape {X.shape}"
                )
            self.n_features_in_ = int(X.shape[1])
            return X
        kwargs = dict(accept_sparse=False, dtype=np.float64, ensure_min_samples=2)
        if HAVE_SKLEARN:
            try:
                from sklearn.utils.validation import validate_data
            except ImportError:  # scikit-learn < 1.6
                return self._validate_data(X, **kwargs)
            return validate_data(self, X, **kwargs)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2D array (n_samples, n_features); got {X.ndim} dimensions. "
                "Reshape a single feature with X.reshape(-1, 1)."
            )
        if X.shape[0] < 2:
            raise ValueError(
                f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a "
                "minimum of 2 is required."
            )
        if X.shape[1] < 1:
            raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}).")
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity.")
        self.n_features_in_ = int(X.shape[1])
        return X

    # -- fitting ----------------------------------------------------------------
    def fit(self, X, y=None):
        """Build the hierarchy of ``X`` and cut it into flat clusters.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features), or (n_samples, n_samples)
            Observations (NumPy, CuPy, lists, DataFrames), or a square distance
            matrix when ``metric='precomputed'``.
        y : None
            Ignored; present for scikit-learn's API.

        Returns
        -------
        self : HierarchicalClustering
            Fitted estimator.

        Raises
        ------
        ValueError
            Invalid parameters, fewer than 2 samples, NaN/inf, more clusters
            than samples, or a non-Euclidean metric with ward/centroid/median.
        """
        from ._linkage import linkage
        from ._methods import get_method
        from ._stats import maxdists

        self._check_params()
        X = self._validate_X(X)
        n = int(X.shape[0])
        y_in, metric = X, self.metric
        if self.metric == "precomputed":
            y_in, metric = self._condensed(X), "euclidean"
        if self.n_clusters is not None and self.n_clusters > n:
            raise ValueError(
                f"Cannot extract more clusters than samples: {self.n_clusters} clusters "
                f"were given for a tree with {n} leaves."
            )
        Z = linkage(y_in, method=self.method, metric=metric, backend=self.backend,
                    dtype=self.dtype, low_memory=self.low_memory)
        Z = np.asarray(to_host(Z), dtype=np.float64)

        if self.n_clusters is not None:
            applied = np.arange(n - 1) < n - self.n_clusters
        else:
            heights = Z[:, 2]
            if not get_method(self.method).sorted_output:
                # centroid/median heights can decrease: judge a merge by the
                # largest height inside it, so the made merges stay a subtree cut.
                heights = np.asarray(maxdists(Z), dtype=np.float64)
            applied = heights < self.distance_threshold
        self.linkage_ = Z
        self.children_ = Z[:, :2].astype(np.intp)
        self.distances_ = Z[:, 2].copy()
        self.n_leaves_ = n
        self.n_connected_components_ = 1
        self.labels_ = cut_labels(Z, applied)
        self.n_clusters_ = int(n - np.count_nonzero(applied))
        return self

    @staticmethod
    def _condensed(X):
        from scipy.spatial.distance import squareform

        if is_cupy_array(X):
            X = to_host(X)
        if X.shape[0] != X.shape[1]:
            raise ValueError(
                f"metric='precomputed' needs a square (n_samples, n_samples) distance "
                f"matrix; got shape {X.shape}"
            )
        if np.any(np.diagonal(X) != 0) or not np.allclose(X, X.T) or np.any(X < 0):
            raise ValueError(
                "metric='precomputed' needs a symmetric, non-negative distance matrix with "
                "a zero diagonal"
            )
        return squareform(X, checks=False)

    def fit_predict(self, X, y=None):
        """Fit and return ``labels_``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            As in :meth:`fit`.
        y : None
            Ignored.

        Returns
        -------
        labels : ndarray of int, shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from gpu_hclust import HierarchicalClustering
        >>> X = np.array([[0.0], [0.1], [4.0], [4.2], [9.0]])
        >>> HierarchicalClustering(n_clusters=3, backend="cpu").fit_predict(X)
        array([0, 0, 1, 1, 2])
        """
        return self.fit(X).labels_

    # -- scikit-learn tags ------------------------------------------------------
    def __sklearn_tags__(self):
        # Only reached with scikit-learn >= 1.6, whose BaseEstimator defines it.
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.metric == "precomputed"
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"pairwise": self.metric == "precomputed"}
