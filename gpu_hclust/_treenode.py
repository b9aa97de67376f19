"""Tree objects built from a linkage matrix."""


def to_tree(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.to_tree is not implemented yet")


def leaves_list(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.leaves_list is not implemented yet")


class ClusterNode:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("gpu_hclust.ClusterNode is not implemented yet")
