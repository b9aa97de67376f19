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


def replay_check(Z, y, method, rtol=1e-9, atol=0.0):
    """Assert each merge in Z joins clusters at the current global minimum distance.

    Holds for any valid tie order. For sorted families the rows are replayed in
    order; heights are compared in the method's own (squared or not) units.
    ``atol`` allows an absolute slack in the merge test, for metrics computed
    with an absolute error (cosine, correlation: 1 - similarity near 0).
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
        assert d - dmin <= rtol * scale + atol, f"step {step}: merged at {d}, minimum is {dmin}"
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


# --------------------------------------------------------------------------
# Tied and duplicated inputs (test_ties.py and any test that wants ties).

TIED_KINDS = ("grid", "duplicates", "binary", "rounded", "all-equal")


def tied_input(kind, seed, n_max=300):
    """A seeded input full of equal distances.

    Returns ``(X, y)``: observations (None where the kind is condensed-only)
    and the condensed Euclidean distances scipy would compute from them.

    * ``grid``: integer coordinates 1..4, d = 2..10 (ties and duplicates).
    * ``duplicates``: Gaussian rows, each repeated 2..5 times, rows shuffled.
    * ``binary``: 0/1 coordinates, d = 3..12.
    * ``rounded``: ``np.round(D * n / 4)`` of Gaussian distances (condensed
      only; not Euclidean, so centroid/median can meet negative radicands).
    * ``all-equal``: one distance everywhere (condensed), or one repeated
      point (observations) on odd seeds.
    """
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng([seed, TIED_KINDS.index(kind)])
    n = int(rng.integers(max(2, n_max // 8), n_max + 1))
    if kind == "grid":
        X = rng.integers(1, 5, size=(n, int(rng.integers(2, 11)))).astype(np.float64)
    elif kind == "duplicates":
        reps = int(rng.integers(2, 6))
        base = rng.standard_normal((max(1, n // reps), int(rng.integers(2, 9))))
        X = rng.permutation(np.repeat(base, reps, axis=0))
    elif kind == "binary":
        X = rng.integers(0, 2, size=(n, int(rng.integers(3, 13)))).astype(np.float64)
    elif kind == "rounded":
        y = pdist(rng.standard_normal((n, int(rng.integers(2, 9)))))
        return None, np.round(y * n / 4)
    elif kind == "all-equal":
        if seed % 2 == 0:
            return None, np.full(n * (n - 1) // 2, float(rng.integers(1, 4)))
        X = np.repeat(rng.standard_normal((1, 3)), n, axis=0)
    else:
        raise ValueError(kind)
    return X, pdist(X)
