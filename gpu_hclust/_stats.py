"""Statistics of a hierarchy: cophenetic distances, inconsistency, maxima."""


def cophenet(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.cophenet is not implemented yet")


def inconsistent(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.inconsistent is not implemented yet")


def maxdists(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.maxdists is not implemented yet")


def maxinconsts(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.maxinconsts is not implemented yet")


def maxRstat(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.maxRstat is not implemented yet")

