"""The scipy hierarchical clustering tutorial, reproduced with gpu_hclust.

``run_demo`` rebuilds the tutorial's data (seed 4711: two Gaussian blobs of
100 and 50 points, then three wider blobs of 200 added), walks through every
step the tutorial takes, returns the numbers it publishes and writes every
figure it shows into a folder. ``examples/tutorial.py`` and the CLI's ``demo``
subcommand are thin wrappers around it.

Figures are drawn on ``matplotlib.figure.Figure`` objects, not pyplot: no
GUI backend, no global state, safe on headless machines.
"""

import contextlib
import os

import numpy as np

# The tutorial's parameters, in the order it uses them.
SEED = 4711
MAX_D = 50  # the cut-off read off the dendrogram
MAX_D_4 = 16  # "Say we choose a cut-off of max_d = 16, we'd get 4 final clusters"
MAX_D_X2 = 170  # cut line of the second data set's dendrogram
HIGHLIGHT = {"r": [33, 68, 62], "y": [15, 69, 41]}
DENDROGRAM_TITLE = "Hierarchical Clustering Dendrogram"


def tutorial_data():
    """The tutorial's two data sets, bit for bit.

    Returns
    -------
    X : ndarray, shape (150, 2)
        100 points around (10, 0) and 50 around (0, 20).
    X2 : ndarray, shape (750, 2)
        X plus 200 points each around (40, 40), (80, 80) and (0, 100), with
        increasing variances.

    Notes
    -----
    The tutorial calls ``np.random.seed(4711)`` and draws from the global
    generator; a ``RandomState(4711)`` draws the same numbers without touching
    global state.
    """
    rs = np.random.RandomState(SEED)
    a = rs.multivariate_normal([10, 0], [[3, 1], [1, 4]], size=[100])
    b = rs.multivariate_normal([0, 20], [[3, 1], [1, 4]], size=[50])
    X = np.concatenate((a, b))
    c = rs.multivariate_normal([40, 40], [[20, 1], [1, 30]], size=[200])
    d = rs.multivariate_normal([80, 80], [[30, 1], [1, 30]], size=[200])
    e = rs.multivariate_normal([0, 100], [[100, 1], [1, 100]], size=[200])
    X2 = np.concatenate((X, c, d, e))
    return X, X2


class _Figures:
    """Creates figures and saves each into the output folder, numbered."""

    def __init__(self, out_dir):
        from matplotlib.figure import Figure

        self._Figure = Figure
        self.out_dir = out_dir
        self.paths = []

    @contextlib.contextmanager
    def figure(self, name, figsize=(10, 8), **labels):
        """Axes of a new figure, saved as the next numbered PNG when the block ends.

        ``labels`` (title=, xlabel=, ylabel=) are set after the block has drawn.
        """
        fig = self._Figure(figsize=figsize)
        ax = fig.add_subplot()
        yield ax
        ax.set(**labels)
        path = os.path.join(self.out_dir, f"{len(self.paths) + 1:02d}_{name}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        self.paths.append(path)


def run_demo(out_dir, backend=None, echo=None):
    """Run the tutorial end to end: its numbers, and its figures as PNG files.

    Parameters
    ----------
    out_dir : str or path
        Folder for the figures (created if missing).
    backend : {None, 'auto', 'cpu', 'cuda'}, optional
        Where :func:`gpu_hclust.linkage` runs.
    echo : callable, optional
        Called with each line of the walk-through (``print`` shows it);
        default: silent.

    Returns
    -------
    dict
        The tutorial's numbers under descriptive keys (``'Z'``,
        ``'cophenetic_correlation'``, ``'last_4_heights'``, ``'elbow_k'``,
        ``'clusters_distance'``...) and ``'figures'``, the list of PNG paths
        written.

    Examples
    --------
    >>> import tempfile
    >>> from gpu_hclust._demo import run_demo
    >>> numbers = run_demo(tempfile.mkdtemp(), backend='cpu')  # doctest: +SKIP
    >>> round(numbers['last_4_heights'][-1], 5)  # doctest: +SKIP
    180.27043
    """
    from scipy.spatial.distance import pdist

    import gpu_hclust as hierarchy

    say = echo if echo is not None else (lambda *args: None)
    os.makedirs(out_dir, exist_ok=True)
    figs = _Figures(out_dir)
    out = {}

    def show(title, value):
        with np.printoptions(precision=5, suppress=True):
            say(f"{title}:\n{value}" if isinstance(value, np.ndarray) and value.ndim > 1
                else f"{title}: {value}")

    # -- data -------------------------------------------------------------
    X, X2 = tutorial_data()
    out["X_shape"] = X.shape
    show("X.shape (150 samples with 2 dimensions)", X.shape)
    with figs.figure("data", title="Sample data: two clusters (100 and 50 points)") as ax:
        ax.scatter(X[:, 0], X[:, 1])

    # -- clustering -------------------------------------------------------
    Z = hierarchy.linkage(X, "ward", backend=backend)
    out["Z"] = Z
    c, _ = hierarchy.cophenet(Z, pdist(X))
    out["cophenetic_correlation"] = float(c)
    show("cophenetic correlation", f"{c:.5f}")
    out["first_merges"] = Z[:20].copy()
    show("Z[0] (merged clusters, distance, size)", Z[0])
    show("Z[1]", Z[1])
    show("Z[:20], the first 20 merges", Z[:20])
    out["X_33_68_62"] = X[[33, 68, 62]].copy()
    show("X[[33, 68, 62]] (merged in iterations 2 and 13)", X[[33, 68, 62]])
    with figs.figure("early_merges") as ax:
        hierarchy.scatter_clusters(
            X, None, ax=ax, highlight=HIGHLIGHT,
            title="Merged early: 33, 68, 62 (red) and 15, 69, 41 (yellow)")

    # -- dendrograms ------------------------------------------------------
    with figs.figure("dendrogram_full", (25, 10), title=DENDROGRAM_TITLE,
                     xlabel="sample index", ylabel="distance") as ax:
        hierarchy.dendrogram(Z, leaf_rotation=90.0, leaf_font_size=8.0, ax=ax)
    out["last_4_heights"] = Z[-4:, 2].copy()
    show("distances of the last 4 merges", Z[-4:, 2])

    # The tutorial's truncated view, the same in every later dendrogram of Z.
    fancy = dict(truncate_mode="lastp", p=12, leaf_rotation=90.0, leaf_font_size=12.0,
                 show_contracted=True)
    with figs.figure("dendrogram_truncated", (10, 6), title=DENDROGRAM_TITLE + " (truncated)",
                     xlabel="sample index", ylabel="distance") as ax:
        hierarchy.dendrogram(Z, show_leaf_counts=False, ax=ax, **fancy)
    with figs.figure("dendrogram_truncated_counts", (10, 6),
                     title=DENDROGRAM_TITLE + " (truncated)",
                     xlabel="sample index or (cluster size)", ylabel="distance") as ax:
        R = hierarchy.dendrogram(Z, ax=ax, **fancy)
    out["truncated_leaf_labels"] = list(R["ivl"])
    show("leaves of the truncated dendrogram", " ".join(R["ivl"]))

    with figs.figure("dendrogram_annotated", (10, 6)) as ax:
        hierarchy.annotated_dendrogram(Z, annotate_above=10, ax=ax, **fancy)

    for max_d in (MAX_D, MAX_D_4):
        with figs.figure(f"cut_at_{max_d}", (10, 6)) as ax:
            hierarchy.annotated_dendrogram(Z, annotate_above=10, max_d=max_d, ax=ax, **fancy)
        k = int(np.unique(hierarchy.fcluster(Z, max_d, criterion="distance")).size)
        out[f"n_clusters_at_{max_d}"] = k
        show(f"clusters below the cut at max_d = {max_d}", k)

    # -- inconsistency ----------------------------------------------------
    for depth in (5, 3):
        rep = hierarchy.inconsistency_report(Z, depth=depth, last=10)
        out[f"inconsistent_depth{depth}"] = rep.R
        show(f"inconsistent(Z, {depth})[-10:] (mean, std, count, inconsistency)", rep.R)

    # -- elbow ------------------------------------------------------------
    with figs.figure("elbow") as ax:
        result = hierarchy.plot_elbow(Z, last=10, ax=ax)
    out["elbow_k"] = result.k
    out["elbow_heights"] = result.heights
    show("elbow method: clusters", result.k)

    # -- the 4-cluster variant --------------------------------------------
    with figs.figure("data_x2", title="Second data set: clusters of increasing variance") as ax:
        ax.scatter(X2[:, 0], X2[:, 1])
    Z2 = hierarchy.linkage(X2, "ward", backend=backend)
    out["Z2"] = Z2
    with figs.figure("dendrogram_x2", (12, 7)) as ax:
        hierarchy.annotated_dendrogram(Z2, annotate_above=40, max_d=MAX_D_X2, ax=ax,
                                       **dict(fancy, p=30))
    with figs.figure("elbow_x2") as ax:
        result2 = hierarchy.plot_elbow(Z2, last=10, ax=ax)
    out["elbow_k_x2"] = result2.k
    out["last_10_heights_x2"] = Z2[-10:, 2].copy()
    show("second data set, elbow method: clusters", result2.k)
    rep2 = hierarchy.inconsistency_report(Z2, depth=5, last=10)
    out["inconsistent_x2_depth5"] = rep2.R
    show("inconsistent(Z2, 5)[-10:]", rep2.R)

    # -- retrieve the clusters --------------------------------------------
    clusters = hierarchy.fcluster(Z, MAX_D, criterion="distance")
    out["clusters_distance"] = clusters
    show(f"fcluster(Z, {MAX_D}, criterion='distance')", clusters)
    k = 2
    out["clusters_maxclust"] = hierarchy.fcluster(Z, k, criterion="maxclust")
    show(f"fcluster(Z, {k}, criterion='maxclust')", out["clusters_maxclust"])
    out["clusters_inconsistent"] = hierarchy.fcluster(Z, 8, depth=10)
    show("fcluster(Z, 8, depth=10)", out["clusters_inconsistent"])

    with figs.figure("clusters") as ax:
        hierarchy.scatter_clusters(X, clusters, ax=ax, cmap="prism",
                                   title=f"fcluster(Z, {MAX_D}, 'distance'): 2 clusters")

    # -- what the readers asked for ----------------------------------------
    members = hierarchy.labels_to_indices(clusters)
    out["cluster_sizes"] = {c: int(v.size) for c, v in members.items()}
    show("cluster sizes ({cluster: samples})", out["cluster_sizes"])
    profiles = hierarchy.cluster_profiles(X, clusters, feature_names=["x", "y"])
    out["cluster_means"] = profiles.means
    say("per-cluster feature profile:\n" + profiles.table())
    new = np.array([[9.0, 1.0], [1.0, 19.0]])
    out["new_samples_assigned"] = hierarchy.assign_to_clusters(new, X, clusters)
    show("new samples (9, 1) and (1, 19) go to clusters", out["new_samples_assigned"])

    out["figures"] = figs.paths
    say(f"{len(figs.paths)} figures written to {out_dir}")
    return out

