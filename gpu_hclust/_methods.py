"""The one table of linkage methods.

Every other module asks this table which algorithm family runs a method,
whether it has a squared-distance form and whether observation input must be
Euclidean. Kernel-side method codes live in ``kernels.formulas``.
"""

from dataclasses import dataclass

from .kernels import formulas


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
    """

    name: str
    code: int
    family: str
    squared: bool
    euclidean_only: bool

    @property
    def sorted_output(self):
        """scipy sorts the merges by height for every family but 'generic'."""
        return self.family != "generic"


METHODS = {
    m.name: m
    for m in (
        Method("single", formulas.SINGLE, "mst", False, False),
        Method("complete", formulas.COMPLETE, "reducible", False, False),
        Method("average", formulas.AVERAGE, "reducible", False, False),
        Method("weighted", formulas.WEIGHTED, "reducible", False, False),
        Method("ward", formulas.WARD, "reducible", True, True),
        Method("centroid", formulas.CENTROID, "generic", True, True),
        Method("median", formulas.MEDIAN, "generic", True, True),
    )
}


def get_method(method):
    """Look up a method by name; unknown names raise scipy's ValueError."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"Invalid method: {method!r}. Valid methods are {', '.join(METHODS)}."
        )
    return METHODS[method]
