"""Adversarial data for the reciprocal-nearest-neighbour rounds, beside the Gaussian set.

Rounds merge every reciprocal nearest-neighbour pair at once; on the sets
below only one or a few pairs are reciprocal at a time, so rounds degrade to
about one merge per round (issue 12, "No chain penalty"). They are the
benchmark and test inputs of the chain guard (``kernels/cuda_chain.py``)::

    from _adversarial import NAMES, make
    X = make("growing_gap", 2000, 32, seed=0)    # float64, shape (2000, 32)

Sets (``make(name, n, d, seed)``):

``gaussian``
    Standard normal points (the baseline the others are compared with).
``growing_gap``
    Points on a line (a seeded random direction in d dimensions) whose gaps
    grow by 1 % each: gap k is 1.01**k. Past n ~ 1850 the rate is lowered to
    keep the span within 1e8 (gap k is r**k with r = 1e8**(1 / n)), so that
    centring the data (which the engines do) keeps the smallest gaps to ~1e-8
    relative; the gaps still strictly grow, the property that makes the pair
    at the small end the only reciprocal one.
``sorted_gaps``
    Points on a line whose gaps are uniform in (0, 1), sorted ascending.
``spiral``
    An Archimedean spiral r = theta (arms 2 pi apart) in a seeded random plane
    of the d dimensions, points at arc lengths with sorted uniform gaps
    (< 1, so neighbours along the arm are closer than the next arm). d >= 2.
``duplicates``
    Exact copies of a few locations: min(20, max(2, n // 4)) standard normal
    points, each observation a copy of one drawn at random. Every group of
    equal points merges one pair per round (ties at 0 go to the smallest slot).

Each set is drawn from ``numpy.random.default_rng(seed)`` in a fixed order:
the same seed gives the same data on every machine.
"""

import numpy as np

NAMES = ("gaussian", "growing_gap", "sorted_gaps", "spiral", "duplicates")
ADVERSARIAL = NAMES[1:]

GAP_GROWTH = 1.01  # the growing-gap line's rate while its span stays within MAX_SPAN
MAX_SPAN = 1e8


def _direction(rng, d):
    u = rng.standard_normal(d)
    return u / np.linalg.norm(u)


def _on_line(rng, positions, d):
    """Points at ``positions`` along a random unit direction of R^d."""
    return np.outer(positions, _direction(rng, d))


def _growing_positions(n):
    rate = min(GAP_GROWTH, MAX_SPAN ** (1.0 / max(n, 1)))
    return np.concatenate(([0.0], np.cumsum(rate ** np.arange(n - 1, dtype=np.float64))))


def _sorted_gap_positions(rng, n):
    return np.concatenate(([0.0], np.cumsum(np.sort(rng.uniform(0.0, 1.0, n - 1)))))


def make(name, n, d, seed):
    """An (n, d) float64 data set of kind ``name`` (see the module docstring).

    Parameters
    ----------
    name : str
        One of ``NAMES``.
    n : int
        Number of observations, at least 1.
    d : int
        Dimensions, at least 1 (``spiral``: at least 2).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    X : ndarray of float64, shape (n, d), C-contiguous
    """
    n, d = int(n), int(d)
    if n < 1 or d < 1:
        raise ValueError(f"make needs n >= 1 and d >= 1; got n={n}, d={d}")
    rng = np.random.default_rng(seed)
    if name == "gaussian":
        X = rng.standard_normal((n, d))
    elif name == "growing_gap":
        X = _on_line(rng, _growing_positions(n), d)
    elif name == "sorted_gaps":
        X = _on_line(rng, _sorted_gap_positions(rng, n), d)
    elif name == "spiral":
        if d < 2:
            raise ValueError(f"the spiral needs d >= 2 (a plane); got d={d}")
        s = _sorted_gap_positions(rng, n) + 1.0
        theta = np.sqrt(2.0 * s)  # arc length of r = theta from 0 is ~theta**2 / 2
        frame, _ = np.linalg.qr(rng.standard_normal((d, 2)))
        X = np.outer(theta * np.cos(theta), frame[:, 0]) + np.outer(theta * np.sin(theta),
                                                                   frame[:, 1])
    elif name == "duplicates":
        k = min(20, max(2, n // 4))
        X = rng.standard_normal((k, d))[rng.integers(0, k, size=n)]
    else:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")
    return np.ascontiguousarray(X, dtype=np.float64)
