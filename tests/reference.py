"""Independent oracles for the linkage tests.

``naive_linkage``: the textbook O(n^3) Lance-Williams algorithm on a full square
matrix (n <= ~64), written for clarity, sharing no code with the engines except
the formula it is meant to check against scipy. ``replay_check``: verifies that
each row of a Z merges a pair at the global minimum of the current
Lance-Williams matrix (relative tolerance), which holds under any tie order.
"""

import numpy as np
from scipy.spatial.distance import squareform

SQUARED = {"ward", "centroid", "median"}


def _update(method, dik, djk, dij, ni, nj, nk):
    if method == "single":
        return min(dik, djk)
    if method == "complete":
        return max(dik, djk)
    if method == "average":
        return (ni * dik + nj * djk) / (ni + nj)
    if method == "weighted":
        return (dik + djk) / 2
    if method == "ward":
        return ((ni + nk) * dik + (nj + nk) * djk - nk * dij) / (ni + nj + nk)
    if method == "centroid":
        return (ni * dik + nj * djk) / (ni + nj) - ni * nj * dij / (ni + nj) ** 2
    if method == "median":
        return dik / 2 + djk / 2 - dij / 4
    raise ValueError(method)


def _square_matrix(y, method):
    D = squareform(np.asarray(y, dtype=np.float64))
    if method in SQUARED:
        D = D * D
    return D


def naive_linkage(y, method):
    """Z from condensed distances ``y`` by the naive algorithm (ids as scipy's)."""
    D = _square_matrix(y, method)
    n = D.shape[0]
    active = list(range(n))
    sizes = [1] * n
    log = []  # (a leaf of cluster i, a leaf of cluster j, height)
    for _ in range(n - 1):
        best = (np.inf, 0, 0)
        for ai, i in enumerate(active):
            for j in active[ai + 1:]:
                if D[i, j] < best[0]:
                    best = (D[i, j], i, j)
        d, i, j = best
        ni, nj = sizes[i], sizes[j]
        for k in active:
            if k not in (i, j):
                D[j, k] = D[k, j] = _update(method, D[i, k], D[j, k], d, ni, nj, sizes[k])
        log.append((i, j, np.sqrt(max(d, 0)) if method in SQUARED else d))
        active.remove(i)
        sizes[j] = ni + nj
    if method not in ("centroid", "median"):
        log.sort(key=lambda row: row[2])  # stable, as scipy's mergesort
    return _label(log, n)


def _label(log, n):
    """scipy numbering for a merge log given by leaf representatives."""
    parent = list(range(n))
    cid = list(range(n))
    size = [1] * n

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    Z = np.zeros((n - 1, 4))
    for step, (i, j, h) in enumerate(log):
        ri, rj = find(i), find(j)
        Z[step] = (min(cid[ri], cid[rj]), max(cid[ri], cid[rj]), h, size[ri] + size[rj])
        parent[ri] = rj
        size[rj] += size[ri]
        cid[rj] = n + step
    return Z


def replay_check(Z, y, method, rtol=1e-9):
    """Assert each merge in Z joins clusters at the current global minimum distance.

    Holds for any valid tie order. For sorted families the rows are replayed in
    order; heights are compared in the method's own (squared or not) units.
    """
    D = _square_matrix(y, method)
    n = D.shape[0]
    slot = {i: i for i in range(n)}  # cluster id -> matrix row
    sizes = {i: 1 for i in range(n)}
    active = set(range(n))
    for step, (ca, cb, h, cnt) in enumerate(Z):
        ca, cb = int(ca), int(cb)
        i, j = slot.pop(ca), slot.pop(cb)
        rows = sorted(active)
        sub = D[np.ix_(rows, rows)]
        sub = sub[np.triu_indices(len(rows), 1)]
        dmin = sub.min()
        d = D[i, j]
        hh = np.sqrt(max(d, 0)) if method in SQUARED else d
        scale = max(abs(dmin), abs(d), 1e-300)
        assert d - dmin <= rtol * scale, f"step {step}: merged at {d}, minimum is {dmin}"
        assert abs(hh - h) <= rtol * max(abs(h), 1e-300) + 1e-12, f"step {step}: height {h} != {hh}"
        ni, nj = sizes.pop(ca), sizes.pop(cb)
        assert cnt == ni + nj, f"step {step}: size {cnt} != {ni + nj}"
        for k in active:
            if k not in (i, j):
                D[j, k] = D[k, j] = _update(method, D[i, k], D[j, k], d, ni, nj, _size_of(sizes, slot, k))
        active.discard(i)
        new = n + step
        slot[new] = j
        sizes[new] = ni + nj


def _size_of(sizes, slot, row):
    for cid, r in slot.items():
        if r == row:
            return sizes[cid]
    raise KeyError(row)
