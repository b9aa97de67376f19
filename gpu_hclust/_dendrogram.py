"""Dendrogram layout and plotting."""


def dendrogram(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.dendrogram is not implemented yet")


def set_link_color_palette(*args, **kwargs):
    raise NotImplementedError("gpu_hclust.set_link_color_palette is not implemented yet")

