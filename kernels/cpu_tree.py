"""Merge log -> scipy ``Z``: union-find passes compiled for the CPU.

These run on every backend's output (the merge log is O(n) and lives on the
host), so they are plain njit loops, not CUDA kernels.
"""

import numba
import numpy as np

from ._config import NUMBA_CACHE
from .cpu_common import find


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def lift_heights(a, b, h, n):
    """Raise each merge height to at least its children's, in emission order.

    A no-op in exact arithmetic for monotone methods; it removes 1-ulp
    inversions (parallel reductions, float32) that would otherwise let the
    height sort put a parent before its child.
    """
    parent = np.arange(n)
    top = np.full(n, -np.inf)  # height of the cluster rooted here (distances may be negative)
    out = h.copy()
    for k in range(a.shape[0]):
        ra = find(parent, a[k])
        rb = find(parent, b[k])
        hk = out[k]
        if top[ra] > hk:
            hk = top[ra]
        if top[rb] > hk:
            hk = top[rb]
        out[k] = hk
        parent[ra] = rb
        top[rb] = hk
    return out


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def relabel(a, b, h, n):
    """scipy's cluster numbering for merges already in output order.

    Row k creates cluster n + k; each row lists the smaller id first and the
    new cluster's size. ``a``/``b`` may name any observation of each cluster.
    Raises ValueError if a row merges a cluster with itself (a broken log).
    """
    m = a.shape[0]
    Z = np.empty((m, 4), dtype=np.float64)
    parent = np.arange(n)
    label = np.arange(n)
    size = np.ones(n, dtype=np.int64)
    for k in range(m):
        ra = find(parent, a[k])
        rb = find(parent, b[k])
        if ra == rb:
            raise ValueError("merge log joins a cluster with itself")
        la = label[ra]
        lb = label[rb]
        if la < lb:
            Z[k, 0] = la
            Z[k, 1] = lb
        else:
            Z[k, 0] = lb
            Z[k, 1] = la
        Z[k, 2] = h[k]
        s = size[ra] + size[rb]
        Z[k, 3] = s
        # union by size keeps the trees shallow
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] = s
        label[ra] = n + k
    return Z
