"""The one table of linkage methods.

Every other module asks this table which algorithm family runs a method,
whether it has a squared-distance form, whether observation input must be
Euclidean and which metrics its memory-saving path computes exactly.
Kernel-side method and metric codes live in ``kernels.formulas`` and
``kernels.metrics``.
"""

from dataclasses import dataclass

from .kernels import formulas, metrics

# Metric names below are scipy's canonical names (``_validation.canonical_metric``).
# Single linkage is the minimum spanning tree: any metric with a compiled
# kernel, its distances recomputed from the points when needed.
_EVERY_COMPILED_METRIC = frozenset(metrics.METRIC_CODES)
# ward/centroid/median: their Lance-Williams recurrences are distances between
# centroids (scipy requires euclidean for observations anyway).
_CENTROIDS = frozenset({"euclidean"})
# average: the mean pair distance decomposes into per-cluster sums for these
# (sqeuclidean: centroid + spread; cosine/correlation: mean unit vector).
_CLUSTER_SUMS = frozenset({"sqeuclidean", "cosine", "correlation"})


@dataclass(frozen=True)
class Method:
    """One linkage method.

    Attributes
    ----------
    name : str
        scipy's name for the method.
    code : int
        Integer the kernels dispatch on (``kernels.formulas``).
    family : str
        ``'mst'`` (minimum spanning tree), ``'reducible'`` (nearest-neighbour
        chain / reciprocal nearest neighbours) or ``'generic'`` (inversions
        possible; merge order is the output order).
    squared : bool
        The method has a squared Euclidean form (ward/centroid/median): the
        CUDA and memory-saving engines update squared distances and take the
        square root of the heights at the end. The CPU dense engine uses
        scipy's plain form instead; each engine states which it uses
        (``log_form``, ``gpu_hclust._tree.LogForm``).
    euclidean_only : bool
        Observation input requires ``metric='euclidean'`` (scipy's rule).
    memory_saving_metrics : frozenset of str
        Metrics with which the memory-saving path (``low_memory``,
        ``gpu_hclust._lowmem``) computes this method exactly from the
        observations, without the distance matrix; empty for complete
        (the largest pair distance has no summary smaller than the points)
        and weighted (it depends on the merge history). The README's
        "Memory-saving path" gives the reasons per pair.
    """

    name: str
    code: int
    family: str
    squared: bool
    euclidean_only: bool
    memory_saving_metrics: frozenset = frozenset()

    def supports_memory_saving(self, metric):
        """True when the memory-saving path computes this method with ``metric``
        (a canonical scipy name; callables never) exactly."""
        return isinstance(metric, str) and metric in self.memory_saving_metrics

    @property
    def sorted_output(self):
        """scipy sorts the merges by height for every family but 'generic'."""
        return self.family != "generic"


METHODS = {
    m.name: m
    for m in (
        Method("single", formulas.SINGLE, "mst", False, False, _EVERY_COMPILED_METRIC),
        Method("complete", formulas.COMPLETE, "reducible", False, False),
        Method("average", formulas.AVERAGE, "reducible", False, False, _CLUSTER_SUMS),
        Method("weighted", formulas.WEIGHTED, "reducible", False, False),
        Method("ward", formulas.WARD, "reducible", True, True, _CENTROIDS),
        Method("centroid", formulas.CENTROID, "generic", True, True, _CENTROIDS),
        Method("median", formulas.MEDIAN, "generic", True, True, _CENTROIDS),
    )
}


def memory_saving_pairs():
    """Every (method, metric) pair the memory-saving path computes, sorted.

    Examples
    --------
    >>> [p for p in memory_saving_pairs() if p[0] == "average"]
    [('average', 'correlation'), ('average', 'cosine'), ('average', 'sqeuclidean')]
    """
    return sorted((m.name, k) for m in METHODS.values() for k in m.memory_saving_metrics)


def get_method(method):
    """Look up a method by name; unknown names raise scipy's ValueError."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"Invalid method: {method!r}. Valid methods are {', '.join(METHODS)}."
        )
    return METHODS[method]
