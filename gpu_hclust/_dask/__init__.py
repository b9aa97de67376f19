"""Dask engines behind :mod:`gpu_hclust.dask` (worker tasks, kernels, client drivers)."""
