"""gpu_hclust: exact hierarchical clustering on NVIDIA GPUs and fast CPUs.

A drop-in for :mod:`scipy.cluster.hierarchy`::

    import gpu_hclust as hierarchy
    Z = hierarchy.linkage(X, "ward")          # GPU when usable, else CPU
    labels = hierarchy.fcluster(Z, 4, "maxclust")

GPU-only options are keyword-only: ``backend=`` ('auto', 'cpu', 'cuda') and
``dtype=`` (np.float32 halves the distance matrix). Importing this package
imports neither CuPy nor numba.cuda.
"""

# scipy.cluster.hierarchy's API (ClusterWarning and DisjointSet: see __getattr__)
from ._checks import (
    correspond,
    from_mlab_linkage,
    is_isomorphic,
    is_monotonic,
    is_valid_im,
    is_valid_linkage,
    num_obs_linkage,
    to_mlab_linkage,
)
from ._dendrogram import dendrogram, set_link_color_palette
from ._flat import cut_tree, fcluster, fclusterdata, leaders
from ._linkage import average, centroid, complete, linkage, median, single, ward, weighted
from ._ordering import optimal_leaf_ordering
from ._stats import cophenet, inconsistent, maxdists, maxinconsts, maxRstat
from ._treenode import ClusterNode, leaves_list, to_tree

# ours: the estimator (HierarchicalClustering: see __getattr__), tutorial helpers, version
from ._analysis import (
    annotated_dendrogram,
    assign_to_clusters,
    cluster_profiles,
    elbow,
    inconsistency_report,
    indices_to_labels,
    labels_to_indices,
    plot_elbow,
    scatter_clusters,
)
from ._version import __version__

# scipy's contract: every name in scipy.cluster.hierarchy.__all__, with scipy's
# signatures, results and exceptions (ClusterNode, DisjointSet, ...), plus
# ClusterWarning, which scipy defines there too but leaves out of __all__.
_SCIPY_NAMES = [
    "ClusterNode",
    "ClusterWarning",
    "DisjointSet",
    "average",
    "centroid",
    "complete",
    "cophenet",
    "correspond",
    "cut_tree",
    "dendrogram",
    "fcluster",
    "fclusterdata",
    "from_mlab_linkage",
    "inconsistent",
    "is_isomorphic",
    "is_monotonic",
    "is_valid_im",
    "is_valid_linkage",
    "leaders",
    "leaves_list",
    "linkage",
    "maxRstat",
    "maxdists",
    "maxinconsts",
    "median",
    "num_obs_linkage",
    "optimal_leaf_ordering",
    "set_link_color_palette",
    "single",
    "to_mlab_linkage",
    "to_tree",
    "ward",
    "weighted",
]

# Ours, beyond scipy: the scikit-learn style estimator, the tutorial helpers
# (gpu_hclust._analysis) and the version.
_OUR_NAMES = [
    "HierarchicalClustering",
    "__version__",
    "annotated_dendrogram",
    "assign_to_clusters",
    "cluster_profiles",
    "elbow",
    "inconsistency_report",
    "indices_to_labels",
    "labels_to_indices",
    "plot_elbow",
    "scatter_clusters",
]

__all__ = _SCIPY_NAMES + _OUR_NAMES


def __getattr__(name):
    # The estimator imports scikit-learn (about a second) when it is installed:
    # load it on first use so `import gpu_hclust` stays fast for scipy-style code.
    if name == "HierarchicalClustering":
        from ._estimator import HierarchicalClustering

        return HierarchicalClustering
    # scipy's own classes (so that isinstance checks and warning filters written
    # for scipy match ours), imported on first use: scipy.cluster costs ~35 MiB.
    if name == "ClusterWarning":
        from ._warnings import cluster_warning_class

        return cluster_warning_class()
    if name == "DisjointSet":
        from scipy.cluster.hierarchy import DisjointSet

        return DisjointSet
    raise AttributeError(f"module 'gpu_hclust' has no attribute {name!r}")
