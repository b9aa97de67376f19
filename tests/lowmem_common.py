"""Helpers shared by the memory-saving linkage tests (test_lowmem, test_lowmem_cuda_sim)."""

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist

from gpu_hclust import _lowmem
from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage

OBSERVATION_METHODS = {"single", "ward", "centroid", "median"}  # scipy takes X directly


def lowmem_linkage(X, method, metric, backend="cpu", dtype=None, tpb=None):
    """Z of ``_lowmem.run_vector`` (``tpb`` reaches only the CUDA kernels), merge log checked."""
    n = X.shape[0]
    a, b, h = _lowmem.run_vector(X, METHODS[method], metric, backend, dtype, tpb=tpb)
    assert a.dtype == np.int64 and b.dtype == np.int64 and h.dtype == np.float64
    assert a.shape == b.shape == h.shape == (n - 1,)
    return merge_log_to_linkage(a, b, h, n, METHODS[method])


def scipy_reference(X, method, metric):
    """scipy's linkage of X (average linkage: of ``pdist(X, metric)``)."""
    if method in OBSERVATION_METHODS:
        return scipy_linkage(X, method, metric=metric)
    return scipy_linkage(pdist(X, metric), method)


def assert_same_linkage(Z, Zs, rtol=1e-10):
    """Ids and sizes exact, heights to ``rtol``."""
    assert Z.dtype == np.float64 and Z.shape == Zs.shape
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=rtol, atol=0)
