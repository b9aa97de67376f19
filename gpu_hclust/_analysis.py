"""What the scipy tutorial writes by hand, as documented functions.

The tutorial (and its readers' questions) build these around ``linkage``,
``dendrogram`` and ``fcluster``: a dendrogram annotated with merge heights and
a cut line, the "elbow" of the last merge heights, the inconsistency table at
a chosen depth, a scatter of 2-D data coloured by cluster, cluster membership
as ``{cluster: sample indices}`` and back, assigning new samples to existing
flat clusters, and per-cluster feature profiles.

Everything runs on the host (O(n) on ``Z``, O(n m) on the data); matplotlib is
imported only by the plotting functions.
"""

from dataclasses import dataclass, field

import numpy as np

from ._checks import checked_linkage


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def _is_truncated(kwargs):
    return kwargs.get("truncate_mode") not in (None, "none")


# --------------------------------------------------------------------------
# annotated dendrogram
# --------------------------------------------------------------------------

def annotated_dendrogram(Z, *, max_d=None, annotate_above=0.0, fmt="%.3g", ax=None,
                         title=None, xlabel=None, ylabel="distance", **kwargs):
    """A dendrogram with its merge heights written on it and an optional cut line.

    The tutorial's ``fancy_dendrogram``: every link taller than
    ``annotate_above`` gets a dot in its colour at the top of the U and its
    height printed below it; ``max_d`` draws the horizontal cut line and, unless
    ``color_threshold`` is given, colours the clusters below the cut.

    Parameters
    ----------
    Z : array_like
        Linkage matrix.
    max_d : float, optional
        Cut height: draws the cut line and becomes ``color_threshold`` (so the
        colours are exactly the clusters ``fcluster(Z, max_d, 'distance')`` finds).
    annotate_above : float, optional
        Only links strictly higher than this are annotated (keeps small plots
        readable). Default 0: every link of positive height.
    fmt : str, optional
        %-format of the annotations (default ``'%.3g'``).
    ax : matplotlib Axes, optional
        Where to draw (default: the current axes).
    title, xlabel : str, optional
        Default: "Hierarchical Clustering Dendrogram" (plus " (truncated)") and
        "sample index" (plus " or (cluster size)" when truncated). Pass ``''``
        for none.
    ylabel : str, optional
        Height axis label (default "distance").
    **kwargs
        Any :func:`gpu_hclust.dendrogram` argument (``truncate_mode``, ``p``,
        ``show_contracted``, ``leaf_rotation``, ``orientation``...).
        With ``no_plot=True`` nothing is drawn.

    Returns
    -------
    R : dict
        :func:`gpu_hclust.dendrogram`'s dictionary.

    See Also
    --------
    gpu_hclust.dendrogram, gpu_hclust.fcluster

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hierarchy
    >>> X = np.array([[0, 0], [0, 1], [5, 5], [5, 6], [20, 20]], dtype=float)
    >>> Z = hierarchy.linkage(X, 'ward', backend='cpu')
    >>> R = hierarchy.annotated_dendrogram(Z, max_d=8, no_plot=True)
    >>> R['color_list']
    ['C1', 'C2', 'C0', 'C0']
    """
    from ._dendrogram import dendrogram

    if max_d is not None and "color_threshold" not in kwargs:
        kwargs["color_threshold"] = max_d
    if kwargs.get("no_plot", False):
        return dendrogram(Z, **kwargs)
    ax = _axes(ax)
    R = dendrogram(Z, ax=ax, **kwargs)
    truncated = _is_truncated(kwargs)
    if title is None:
        title = "Hierarchical Clustering Dendrogram" + (" (truncated)" if truncated else "")
    if xlabel is None:
        counts = truncated and kwargs.get("show_leaf_counts", True)
        xlabel = "sample index" + (" or (cluster size)" if counts else "")
    orientation = kwargs.get("orientation", "top")
    vertical = orientation in ("top", "bottom")
    ax.set_title(title)
    if vertical:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    else:
        ax.set_ylabel(xlabel)
        ax.set_xlabel(ylabel)
    below = -5 if orientation != "bottom" else 5
    for xs, ys, colour in zip(R["icoord"], R["dcoord"], R["color_list"]):
        x = 0.5 * (xs[1] + xs[2])  # middle of the U's top bar
        y = ys[1]  # its height
        if y > annotate_above:
            point = (x, y) if vertical else (y, x)
            ax.plot(*point, "o", c=colour)
            ax.annotate(fmt % y, point, xytext=(0, below), textcoords="offset points",
                        va="top" if below < 0 else "bottom", ha="center")
    if max_d is not None:
        (ax.axhline if vertical else ax.axvline)(max_d, c="k")
    return R


# --------------------------------------------------------------------------
# elbow
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Elbow:
    """The tutorial's elbow analysis of the last merge heights.

    Attributes
    ----------
    k : int
        Suggested number of clusters: where the heights accelerate most.
    steps : ndarray of int
        1, 2, ..., last: position of each height counted from the top merge.
    heights : ndarray
        The last merge heights, last merge first (``Z[-last:, 2][::-1]``).
    k_values : ndarray of int
        2, ..., last-1: the number of clusters each acceleration argues for.
    acceleration : ndarray
        Second difference of the heights (``np.diff(Z[-last:, 2], 2)[::-1]``).
    """

    k: int
    steps: np.ndarray
    heights: np.ndarray
    k_values: np.ndarray
    acceleration: np.ndarray


def elbow(Z, last=10):
    """Suggest a number of clusters from the acceleration of the last merge heights.

    Takes the ``last`` merge heights, their second difference (the
    "acceleration" of distance growth) and suggests the k where it is
    largest, as the tutorial does.

    Parameters
    ----------
    Z : array_like
        Linkage matrix (needs at least 3 merges).
    last : int, optional
        How many of the last merges to look at (default 10; at most n-1).

    Returns
    -------
    Elbow
        ``k``, the heights and the accelerations, ready to plot
        (:func:`plot_elbow`).

    Raises
    ------
    ValueError
        Fewer than 3 merges to look at.

    Notes
    -----
    A heuristic with known blind spots (the tutorial's words): it can never
    answer k = 1, and ``Z[:, 2]`` orders merges of different branches
    together, so clusters of very different spreads fool it (the tutorial's
    4-cluster data gives k = 4 instead of 5). Check the dendrogram.

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hierarchy
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (20, 2)), rng.normal(30, 1, (20, 2))])
    >>> hierarchy.elbow(hierarchy.linkage(X, 'ward', backend='cpu')).k
    2
    """
    Zh, _ = checked_linkage(Z)
    if isinstance(last, bool) or not isinstance(last, (int, np.integer)):
        raise TypeError(f"last must be an int (number of merges); got {last!r}")
    last = min(int(last), Zh.shape[0])
    if last < 3:
        raise ValueError(
            f"elbow needs at least 3 merge heights (a second difference); got last={last} "
            f"with {Zh.shape[0]} merges. Pass last >= 3 and Z of at least 4 observations."
        )
    tail = Zh[-last:, 2]
    acceleration = np.diff(tail, 2)[::-1]
    k_values = np.arange(2, last)
    return Elbow(k=int(k_values[int(np.argmax(acceleration))]),
                 steps=np.arange(1, last + 1), heights=tail[::-1].copy(),
                 k_values=k_values, acceleration=acceleration.copy())


def plot_elbow(Z, last=10, ax=None):
    """Plot the last merge heights and their acceleration; mark the suggested k.

    Parameters
    ----------
    Z : array_like or Elbow
        Linkage matrix, or the result of :func:`elbow`.
    last : int, optional
        Passed to :func:`elbow` when ``Z`` is a linkage matrix.
    ax : matplotlib Axes, optional
        Where to draw (default: the current axes).

    Returns
    -------
    Elbow
        The analysis that was drawn.

    Examples
    --------
    >>> import numpy as np, matplotlib
    >>> matplotlib.use('Agg')
    >>> import gpu_hclust as hierarchy
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (20, 2)), rng.normal(30, 1, (20, 2))])
    >>> hierarchy.plot_elbow(hierarchy.linkage(X, 'ward', backend='cpu')).k
    2
    """
    result = Z if isinstance(Z, Elbow) else elbow(Z, last)
    ax = _axes(ax)
    ax.plot(result.steps, result.heights, label="merge height (last merge first)")
    ax.plot(result.k_values, result.acceleration,
            label="acceleration (2nd difference)")
    best = int(np.argmax(result.acceleration))
    ax.plot(result.k_values[best], result.acceleration[best], "o", c="r")
    ax.annotate(f"k = {result.k}", (result.k_values[best], result.acceleration[best]),
                xytext=(8, 0), textcoords="offset points", va="center")
    ax.set_xlabel("number of clusters k (merges counted from the top)")
    ax.set_ylabel("distance")
    ax.set_title(f"Elbow method: suggested k = {result.k}")
    ax.legend()
    return result


# --------------------------------------------------------------------------
# inconsistency
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class InconsistencyReport:
    """Inconsistency statistics of the last merges at one depth.

    Attributes
    ----------
    depth : int
        Levels below each merge that its statistics cover.
    rows : ndarray of int
        Row indices into ``Z`` of the merges reported.
    heights : ndarray
        Their merge heights.
    R : ndarray, shape (len(rows), 4)
        The matching rows of ``inconsistent(Z, depth)``: mean and standard
        deviation of the heights covered, their count, and the inconsistency
        coefficient ``(height - mean) / std``.
    n_clusters : dict
        For each threshold asked for, the number of flat clusters
        ``fcluster(Z, t, 'inconsistent', depth)`` forms.
    """

    depth: int
    rows: np.ndarray
    heights: np.ndarray
    R: np.ndarray
    n_clusters: dict = field(default_factory=dict)

    def table(self):
        """The report as text, one merge per line."""
        lines = [f"inconsistency at depth {self.depth}",
                 f"{'row':>6} {'height':>11} {'mean':>11} {'std':>11} {'count':>6} "
                 f"{'coeff':>9}"]
        for r, h, (mean, std, count, coeff) in zip(self.rows, self.heights, self.R):
            lines.append(f"{r:>6d} {h:>11.5f} {mean:>11.5f} {std:>11.5f} {int(count):>6d} "
                         f"{coeff:>9.5f}")
        for t, k in self.n_clusters.items():
            lines.append(f"threshold {t:g}: {k} clusters")
        return "\n".join(lines)


def inconsistency_report(Z, depth=2, last=10, thresholds=()):
    """Inconsistency coefficients of the last merges, and the clusters thresholds give.

    The tutorial's inconsistency analysis: compare each merge height with the
    heights up to ``depth`` levels below it. Run it at two depths to see how
    much the answer depends on the depth.

    Parameters
    ----------
    Z : array_like
        Linkage matrix.
    depth : int, optional
        Depth of the statistics (scipy's ``d``; default 2).
    last : int, optional
        How many of the last merges to report (default 10; at most n-1).
    thresholds : sequence of float, optional
        Inconsistency thresholds to try with ``fcluster(..., 'inconsistent')``.

    Returns
    -------
    InconsistencyReport

    See Also
    --------
    gpu_hclust.inconsistent, gpu_hclust.fcluster

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hierarchy
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (20, 2)), rng.normal(30, 1, (20, 2))])
    >>> Z = hierarchy.linkage(X, 'ward', backend='cpu')
    >>> rep = hierarchy.inconsistency_report(Z, depth=3, last=5, thresholds=[1.5])
    >>> rep.R.shape
    (5, 4)
    """
    from ._flat import fcluster
    from ._stats import inconsistent

    Zh, _ = checked_linkage(Z)
    if isinstance(last, bool) or not isinstance(last, (int, np.integer)) or last < 1:
        raise ValueError(f"last must be a positive int (number of merges); got {last!r}")
    R = inconsistent(Zh, depth)
    last = min(int(last), Zh.shape[0])
    rows = np.arange(Zh.shape[0] - last, Zh.shape[0])
    counts = {}
    for t in thresholds:
        counts[float(t)] = int(np.unique(
            fcluster(Zh, t, criterion="inconsistent", depth=depth, R=R)).size)
    return InconsistencyReport(depth=int(depth), rows=rows, heights=Zh[rows, 2].copy(),
                               R=R[rows].copy(), n_clusters=counts)


# --------------------------------------------------------------------------
# scatter
# --------------------------------------------------------------------------

def _labels_1d(labels):
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D (one cluster id per sample); got shape "
                         f"{lab.shape}")
    return lab


def _labels_for(labels, n, what="X"):
    lab = _labels_1d(labels)
    if lab.shape[0] != n:
        hint = ""
        if lab.shape[0] == n + 1:
            hint = (f" {what} has one row fewer than labels: pass the observations, not the "
                    "linkage matrix Z.")
        raise ValueError(f"labels has {lab.shape[0]} entries but {what} has {n} rows; "
                         f"pass one cluster id per row of {what}.{hint}")
    return lab


def _cluster_means(arr, lab):
    """Cluster ids (ascending), their sizes and the mean row of each."""
    keys, inverse = np.unique(lab, return_inverse=True)
    sizes = np.bincount(inverse, minlength=keys.size)
    sums = np.zeros((keys.size, arr.shape[1]))
    np.add.at(sums, inverse, arr)
    return keys, sizes, sums / sizes[:, None]


def _data(X, name="X"):
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples x features); got shape {arr.shape}")
    return arr


def scatter_clusters(X, labels, *, ax=None, cmap="prism", highlight=None, title=None,
                     **scatter_kwargs):
    """Scatter 2-D data coloured by cluster (the tutorial's last figure).

    Parameters
    ----------
    X : array_like, shape (n, 2)
        The observations (two features; pass ``X[:, [i, j]]`` to pick two).
    labels : array_like, shape (n,), or None
        Cluster id of each observation, e.g. from :func:`gpu_hclust.fcluster`;
        None draws all points in one colour.
    ax : matplotlib Axes, optional
        Where to draw (default: the current axes).
    cmap : str or Colormap, optional
        Colour map for the cluster ids (default ``'prism'``, the tutorial's).
    highlight : sequence of int or dict, optional
        Observations to draw again on top: indices (in red), or
        ``{colour: indices}`` (the tutorial's red and yellow triples).
    title : str, optional
        Axes title (default "k clusters" when labels are given).
    **scatter_kwargs
        Passed to ``Axes.scatter``.

    Returns
    -------
    matplotlib Axes

    Raises
    ------
    ValueError
        X not of shape (n, 2), or labels not one per row (the message says when
        the linkage matrix was passed instead of the data).

    Examples
    --------
    >>> import numpy as np, matplotlib
    >>> matplotlib.use('Agg')
    >>> import gpu_hclust as hierarchy
    >>> X = np.array([[0, 0], [0, 1], [5, 5], [5, 6]], dtype=float)
    >>> labels = hierarchy.fcluster(hierarchy.linkage(X, backend='cpu'), 2, 'maxclust')
    >>> ax = hierarchy.scatter_clusters(X, labels)
    """
    arr = _data(X)
    if arr.shape[1] != 2:
        raise ValueError(f"X must have 2 columns to scatter; got {arr.shape[1]}. Pass "
                         "X[:, [i, j]] to pick two features.")
    ax = _axes(ax)
    if labels is None:
        ax.scatter(arr[:, 0], arr[:, 1], **scatter_kwargs)
    else:
        lab = _labels_for(labels, arr.shape[0])
        ax.scatter(arr[:, 0], arr[:, 1], c=lab, cmap=cmap, **scatter_kwargs)
        if title is None:
            title = f"{np.unique(lab).size} clusters"
    if highlight is not None:
        groups = highlight.items() if isinstance(highlight, dict) else [("r", highlight)]
        for colour, idx in groups:
            idx = np.asarray(idx, dtype=np.int64)
            ax.scatter(arr[idx, 0], arr[idx, 1], c=colour)
    if title is not None:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------
# membership
# --------------------------------------------------------------------------

def labels_to_indices(labels, ids=None):
    """Map each cluster to its members: ``{cluster: sample indices}``.

    Parameters
    ----------
    labels : array_like, shape (n,)
        Cluster id per sample (e.g. :func:`gpu_hclust.fcluster`'s output).
    ids : array_like, shape (n,), optional
        Your own sample identifiers; returned instead of indices.

    Returns
    -------
    dict
        Cluster id (Python int, or the label itself if not an integer) to an
        array of the sample indices (ascending) or of ``ids``, clusters in
        ascending order.

    See Also
    --------
    indices_to_labels : the inverse.

    Examples
    --------
    >>> import gpu_hclust as hierarchy
    >>> members = hierarchy.labels_to_indices([2, 1, 2, 3])
    >>> {k: v.tolist() for k, v in members.items()}
    {1: [1], 2: [0, 2], 3: [3]}
    >>> hierarchy.labels_to_indices([2, 1, 2], ids=['a', 'b', 'c'])[2].tolist()
    ['a', 'c']
    """
    lab = _labels_1d(labels)
    source = None
    if ids is not None:
        source = np.asarray(ids)
        if source.shape[:1] != lab.shape:
            raise ValueError(f"ids has {source.shape[0] if source.ndim else 0} entries but "
                             f"labels has {lab.shape[0]}; pass one id per sample.")
    order = np.argsort(lab, kind="stable")
    keys, starts = np.unique(lab[order], return_index=True)
    groups = np.split(order, starts[1:]) if lab.size else []
    return {(k.item() if hasattr(k, "item") else k): (g if source is None else source[g])
            for k, g in zip(keys, groups)}


def indices_to_labels(clusters, n=None):
    """Turn ``{cluster: sample indices}`` back into one label per sample.

    Parameters
    ----------
    clusters : dict
        Cluster id (int) to the indices of its samples.
    n : int, optional
        Number of samples (default: the largest index + 1). Every sample
        0..n-1 must be in exactly one cluster.

    Returns
    -------
    ndarray of int32
        ``labels[i]`` is the cluster of sample i (fcluster's dtype).

    Raises
    ------
    ValueError
        An index is negative, out of range, in two clusters, or missing.

    Examples
    --------
    >>> import gpu_hclust as hierarchy
    >>> hierarchy.indices_to_labels({1: [1], 2: [0, 2]})
    array([2, 1, 2], dtype=int32)
    """
    if not isinstance(clusters, dict):
        raise TypeError(f"clusters must be a dict {{cluster: indices}}; got "
                        f"{type(clusters).__name__}")
    parts = [np.asarray(v, dtype=np.int64).ravel() for v in clusters.values()]
    if n is None:
        n = 1 + max((int(p.max()) for p in parts if p.size), default=-1)
    n = int(n)
    labels = np.zeros(n, dtype=np.int32)
    seen = np.zeros(n, dtype=bool)
    for key, idx in zip(clusters, parts):
        outside = idx[(idx < 0) | (idx >= n)]
        if outside.size:
            raise ValueError(f"cluster {key!r} holds index {int(outside[0])}, outside "
                             f"0..{n - 1}; pass n= the number of samples.")
        if np.any(seen[idx]) or np.unique(idx).size != idx.size:
            raise ValueError(f"cluster {key!r} repeats a sample that is already in a "
                             "cluster; each sample belongs to exactly one.")
        seen[idx] = True
        labels[idx] = key
    if not seen.all():
        missing = np.flatnonzero(~seen)[:5].tolist()
        raise ValueError(f"samples {missing} are in no cluster; every sample 0..{n - 1} "
                         "needs one.")
    return labels


# --------------------------------------------------------------------------
# new samples
# --------------------------------------------------------------------------

# Distance-matrix elements per block when comparing new samples with all
# members: bounds the temporary to 64 MB whatever the sizes.
_BLOCK = 1 << 23


def assign_to_clusters(X_new, X, labels, method="centroid", metric="euclidean"):
    """Put new samples into existing flat clusters (the hierarchy is not rebuilt).

    Parameters
    ----------
    X_new : array_like, shape (q, m) or (m,)
        New samples.
    X : array_like, shape (n, m)
        The clustered samples.
    labels : array_like, shape (n,)
        Their flat cluster ids (e.g. from :func:`gpu_hclust.fcluster`).
    method : {'centroid', 'nearest'}, optional
        'centroid': the cluster whose mean is closest (suits ward, centroid,
        average linkages and compact clusters). 'nearest': the cluster of the
        closest clustered sample (single linkage's rule; follows elongated
        clusters, sensitive to outliers). Ties go to the smaller cluster id
        ('centroid') or the earlier sample ('nearest').
    metric : str or callable, optional
        Any :func:`scipy.spatial.distance.cdist` metric.

    Returns
    -------
    ndarray, shape (q,)
        The cluster id of each new sample, with ``labels``' dtype.

    Notes
    -----
    This is classification by the existing clusters, not an online update:
    a new sample that would bridge two clusters does not merge them (the
    tutorial's author explains why no cheap online update exists). Recluster
    everything to see its effect on the tree. 'nearest' compares with all n
    samples, in blocks of bounded memory.

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hierarchy
    >>> X = np.array([[0, 0], [0, 1], [5, 5], [5, 6]], dtype=float)
    >>> labels = np.array([1, 1, 2, 2], dtype=np.int32)
    >>> hierarchy.assign_to_clusters([[4.0, 4.0], [0.2, 0.1]], X, labels)
    array([2, 1], dtype=int32)
    """
    from scipy.spatial.distance import cdist

    arr = _data(X)
    lab = _labels_for(labels, arr.shape[0])
    new = np.asarray(X_new, dtype=np.float64)
    if new.ndim == 1:
        new = new[None, :]
    new = _data(new, "X_new")
    if new.shape[1] != arr.shape[1]:
        raise ValueError(f"X_new has {new.shape[1]} features but X has {arr.shape[1]}; "
                         "new samples need the same features, in the same order.")
    if arr.shape[0] == 0:
        raise ValueError("X is empty: there are no clusters to assign to.")
    if method == "centroid":
        keys, _, centroids = _cluster_means(arr, lab)
        return keys[np.argmin(cdist(new, centroids, metric=metric), axis=1)]
    if method == "nearest":
        out = np.empty(new.shape[0], dtype=lab.dtype)
        step = max(1, _BLOCK // max(arr.shape[0], 1))
        for s in range(0, new.shape[0], step):
            d = cdist(new[s:s + step], arr, metric=metric)
            out[s:s + step] = lab[np.argmin(d, axis=1)]
        return out
    raise ValueError(f"method must be 'centroid' or 'nearest'; got {method!r}")


# --------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterProfiles:
    """Per-cluster feature summary.

    Attributes
    ----------
    clusters : ndarray
        Cluster ids, ascending.
    sizes : ndarray of int
        Members per cluster.
    means : ndarray, shape (k, m)
        Mean of each feature in each cluster.
    scores : ndarray, shape (k, m)
        ``(cluster mean - overall mean) / overall std`` per feature (0 for
        constant features): how many standard deviations the cluster sits
        above (positive) or below the whole data set.
    feature_names : list of str
    top : dict
        Cluster id to its ``n_top`` most distinctive features, as
        ``(name, score)`` pairs by decreasing ``|score|``.
    """

    clusters: np.ndarray
    sizes: np.ndarray
    means: np.ndarray
    scores: np.ndarray
    feature_names: list
    top: dict

    def table(self):
        """The profiles as text: one line per cluster with its top features."""
        lines = []
        for c, size in zip(self.clusters.tolist(), self.sizes.tolist()):
            feats = ", ".join(f"{name} ({s:+.2f} sd)" for name, s in self.top[c])
            lines.append(f"cluster {c} ({size} samples): {feats}")
        return "\n".join(lines)


def cluster_profiles(X, labels, feature_names=None, n_top=3):
    """Which features characterise each cluster: means and standardised differences.

    Answers the tutorial readers' "which feature mostly represents cluster 1?"
    for numeric features: each feature's cluster mean, and how far it sits from
    the overall mean in overall standard deviations.

    Parameters
    ----------
    X : array_like, shape (n, m)
        The clustered samples.
    labels : array_like, shape (n,)
        Flat cluster id per sample.
    feature_names : sequence of str, optional
        Default ``'f0'``, ``'f1'``...
    n_top : int, optional
        Features listed per cluster in ``top`` (default 3).

    Returns
    -------
    ClusterProfiles

    Notes
    -----
    Clusters are formed from whole-sample distances, so no single feature need
    explain one; a large ``|score|`` says the feature separates that cluster
    from the rest. For term counts (documents), apply tf-idf weighting to X
    first (the author's suggestion: "cluster documents" and tf-icf).

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hierarchy
    >>> X = np.array([[0, 10], [0, 11], [5, 10], [5, 11]], dtype=float)
    >>> prof = hierarchy.cluster_profiles(X, [1, 1, 2, 2], ['a', 'b'], n_top=1)
    >>> prof.top
    {1: [('a', -1.0)], 2: [('a', 1.0)]}
    """
    arr = _data(X)
    lab = _labels_for(labels, arr.shape[0])
    m = arr.shape[1]
    names = [f"f{j}" for j in range(m)] if feature_names is None else list(feature_names)
    if len(names) != m:
        raise ValueError(f"feature_names has {len(names)} names but X has {m} features.")
    if arr.shape[0] == 0:
        raise ValueError("X is empty: there are no clusters to profile.")
    keys, sizes, means = _cluster_means(arr, lab)
    mu = arr.mean(axis=0)
    sd = arr.std(axis=0)
    scores = np.divide(means - mu, sd, out=np.zeros_like(means), where=sd > 0)
    top = {}
    for row, key in enumerate(keys.tolist()):
        order = np.argsort(-np.abs(scores[row]), kind="stable")[:n_top]
        top[key] = [(names[j], float(scores[row, j])) for j in order]
    return ClusterProfiles(clusters=keys, sizes=sizes, means=means, scores=scores,
                           feature_names=names, top=top)
