"""Validity checks and conversions for linkage matrices."""


def is_valid_linkage(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.is_valid_linkage is not implemented yet")


def is_valid_im(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.is_valid_im is not implemented yet")


def is_monotonic(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.is_monotonic is not implemented yet")


def num_obs_linkage(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.num_obs_linkage is not implemented yet")


def correspond(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.correspond is not implemented yet")


def is_isomorphic(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.is_isomorphic is not implemented yet")


def from_mlab_linkage(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.from_mlab_linkage is not implemented yet")


def to_mlab_linkage(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.to_mlab_linkage is not implemented yet")

