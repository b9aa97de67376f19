"""scipy's ``ClusterWarning``, imported on first use.

Our warnings must be scipy's class (code that filters
``scipy.cluster.hierarchy.ClusterWarning`` has to catch ours too), but importing
``scipy.cluster`` costs about 35 MiB and 0.2 s, which the linkage path, the
memory-saving one in particular, should not pay. Nothing here imports scipy
until a warning is actually issued or the class is asked for.
"""

import warnings


def cluster_warning_class():
    """Return :class:`scipy.cluster.hierarchy.ClusterWarning` (imports scipy.cluster)."""
    from scipy.cluster.hierarchy import ClusterWarning

    return ClusterWarning


def warn_cluster(message, stacklevel):
    """Issue ``message`` as a ClusterWarning pointing ``stacklevel`` frames above the caller."""
    warnings.warn(message, cluster_warning_class(), stacklevel=stacklevel + 1)
