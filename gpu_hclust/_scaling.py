"""Overflow on the dense paths: exact power-of-two scaling, one rule for every engine.

Multiplying by a power of two is exact (barring subnormals) and commutes with
every step of a dense linkage: differences, squares, sums, square roots (of
an even power), the Lance-Williams updates, comparisons. So data beyond a
safe range is scaled down, computed on, and the heights scaled back: the
same bits as without scaling wherever that does not overflow (scipy's
results, when scipy itself is finite), and finite wherever the exact answer
is representable. The CPU engine (``_engine_cpu``) and the CUDA engine
(``_engine_cuda``) take their exponents from here; the memory-saving path
scales its cluster summaries by its own rule (``_lowmem.scaling_exponent``).
"""

import numpy as np

from ._validation import NONFINITE

# Working distances above 2**SAFE_DISTANCE_EXP[dtype] are scaled down to it:
# the updates square them and multiply by cluster sizes (ward:
# (n_i + n_x) d^2), which stays finite for any n below 2**200 (float64) or
# 2**40 (float32) from there.
SAFE_DISTANCE_EXP = {np.dtype(np.float64): 400, np.dtype(np.float32): 40}
# Distance degree of each compiled metric in the data (scale factor c gives
# distances times c**degree); cosine/correlation do not change.
DEGREE = {"euclidean": 1, "cityblock": 1, "chebyshev": 1, "minkowski": 1,
          "sqeuclidean": 2, "cosine": 0, "correlation": 0}


def exponent_above(big, limit):
    """k >= 0 such that big * 2**-k <= 2**limit (0 when big already is)."""
    if not big > np.ldexp(1.0, limit):
        return 0
    return int(np.frexp(big)[1]) - limit


def distance_exponent(top, dtype):
    """The power of two that brings the largest distance ``top`` into the safe range."""
    return exponent_above(top, SAFE_DISTANCE_EXP[np.dtype(dtype)])


def observation_exponent(absmax, d, dtype):
    """The power of two to divide observations by so that no distance leaves the safe range.

    Every coordinate difference is at most ``2 * absmax`` and a compiled
    metric sums at most ``d`` of them (cityblock; euclidean and minkowski
    less, chebyshev takes the largest), so ``absmax <= 2**(limit - bits(d) -
    1)`` bounds every distance by ``2**limit``, ``limit`` being
    ``SAFE_DISTANCE_EXP[dtype]``; sqeuclidean's values, the squares, by
    ``2**(2 limit)``. A bound, not the distances themselves: a larger scale
    than needed changes no bit.
    """
    return exponent_above(absmax, SAFE_DISTANCE_EXP[np.dtype(dtype)] - int(d).bit_length() - 1)


def range_error(dtype, what):
    """ValueError for values beyond ``dtype``'s range (named, with the fix)."""
    dtype = np.dtype(dtype)
    fix = ("pass dtype=np.float64" if dtype == np.float32 else
           "divide the data by a large power of two (e.g. 2.0**600) and multiply "
           "the heights back")
    return ValueError(
        f"{NONFINITE} The {what} exceed the {dtype.name} range (largest finite value "
        f"{float(np.finfo(dtype).max):.3g}) for this input: {fix}."
    )


def unscale_heights(h, exponent):
    """Heights ``h * 2**exponent`` as float64; ValueError where they leave its range."""
    h = np.asarray(h, dtype=np.float64)
    if not exponent:
        return h
    with np.errstate(over="ignore"):  # reported below, with the cause
        h = np.ldexp(h, exponent)
    if not np.isfinite(h).all():
        raise range_error(np.float64, "linkage heights")
    return h
