"""Flat clusterings cut from a hierarchy."""


def fcluster(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.fcluster is not implemented yet")


def fclusterdata(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.fclusterdata is not implemented yet")


def leaders(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.leaders is not implemented yet")


def cut_tree(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.cut_tree is not implemented yet")

