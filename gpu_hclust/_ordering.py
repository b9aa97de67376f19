"""Optimal leaf ordering."""


def optimal_leaf_ordering(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.optimal_leaf_ordering is not implemented yet")

