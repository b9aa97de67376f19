"""Input checks for ``linkage``: scipy's exception types, messages that name the
argument and the fix, and the input is never modified."""

import warnings
from dataclasses import dataclass

import numpy as np

from ._backend import is_cupy_array
from ._warnings import warn_cluster
from .kernels.metrics import METRIC_CODES as COMPILED_METRICS


@dataclass
class LinkageInput:
    """Validated ``linkage`` input.

    Attributes
    ----------
    kind : {'condensed', 'observations'}
    data : ndarray
        float64, C-contiguous; NumPy or CuPy (same namespace as the input).
        May share memory with the caller's array: engines must copy before writing.
    n : int
        Number of observations.
    metric : str or callable
        Canonical scipy metric name (aliases resolved) or the user's callable.
    is_cupy : bool
    """

    kind: str
    data: object
    n: int
    metric: object
    is_cupy: bool


def canonical_metric(metric):
    """Resolve scipy's metric aliases ('cityblock' for 'cb', ...); callables pass."""
    if callable(metric):
        return metric
    if not isinstance(metric, str):
        raise TypeError(
            f"metric must be a string or a callable; got {type(metric).__name__}"
        )
    if metric.lower() in COMPILED_METRICS:
        # Already canonical (scipy lower-cases names too): skip importing
        # scipy.spatial (~35 MiB, 0.1 s) on the linkage path.
        return metric.lower()
    from scipy.spatial import distance

    aliases = getattr(distance, "_METRIC_ALIAS", None)
    if aliases is None:  # private in scipy: fall back to the canonical names
        names = getattr(distance, "_METRICS_NAMES", ())
        if metric in names:
            return metric
    elif metric.lower() in aliases:
        return aliases[metric.lower()].canonical_name
    raise ValueError(
        f"Unknown Distance Metric: {metric!r}. Use a scipy.spatial.distance metric "
        "name such as 'euclidean', 'cosine' or 'cityblock', or a callable."
    )


def _as_float64(y):
    """float64 C-contiguous array in y's namespace; non-numbers raise ValueError."""
    if is_cupy_array(y):
        import cupy

        if y.dtype.kind not in "biuf":
            raise ValueError(f"`y` must hold real numbers; got dtype {y.dtype}")
        return cupy.ascontiguousarray(y, dtype=cupy.float64)
    arr = np.asarray(y) if not isinstance(y, np.ndarray) else y
    if arr.dtype.kind == "c":
        warnings.warn(
            "Casting complex values to real discards the imaginary part",
            np.exceptions.ComplexWarning if hasattr(np, "exceptions") else RuntimeWarning,
            stacklevel=4,
        )
        arr = arr.real
    if arr.dtype.kind in "biuf":
        return np.ascontiguousarray(arr, dtype=np.float64)
    try:  # object arrays of numbers (lists with None fail the finite check)
        return np.ascontiguousarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"`y` must hold real numbers; got dtype {arr.dtype} ({exc})"
        ) from None


def _num_obs_condensed(m):
    """n with n(n-1)/2 == m, or None."""
    n = int(np.ceil(np.sqrt(2.0 * m)))
    return n if n * (n - 1) // 2 == m else None


# scipy's words for non-finite distances, once for every module that raises them:
# the distances computed by an engine (NONFINITE), the user's `y` (NONFINITE_INPUT).
NONFINITE = "The condensed distance matrix must contain only finite values."
NONFINITE_INPUT = f"{NONFINITE[:-1]}: `y` holds NaN or inf; remove or impute them first."

# Issued when observations look like an uncondensed distance matrix (scipy's words first).
SQUARE_DISTANCES_WARNING = (
    "The symmetric non-negative hollow observation matrix looks suspiciously like an "
    "uncondensed distance matrix; pass scipy.spatial.distance.squareform(y) if it is one."
)


def _looks_like_distance_matrix(x, xp):
    return (
        x.shape[0] == x.shape[1]
        and bool(xp.all(xp.diagonal(x) == 0))
        and bool(xp.all(x >= 0))
        and bool(xp.allclose(x, x.T))
    )


# Elements per piece of the NumPy finiteness scan: a huge (memory-mapped)
# condensed input is checked without an n(n-1)/2 boolean temporary.
_FINITE_CHUNK = 1 << 22


def _all_finite(data, xp):
    if xp is not np:
        return bool(xp.isfinite(data).all())
    flat = data.reshape(-1)  # C-contiguous: a view
    return all(bool(np.isfinite(flat[i:i + _FINITE_CHUNK]).all())
               for i in range(0, flat.size, _FINITE_CHUNK))


def _checks_input_finiteness(kind, metric):
    """Must NaN/inf in ``y`` itself be refused (scipy checks only the distances)?

    Condensed input is the distances. Observations under a compiled metric
    (dense and memory-saving paths) give a NaN or inf distance for every pair
    with a non-finite coordinate, so refusing them up front is scipy's answer,
    earlier. scipy-only metrics and callables can map non-finite observations
    to finite distances (hamming of -inf rows is 0): scipy's pdist computes
    them and the engines check its output.
    """
    return kind == "condensed" or (isinstance(metric, str) and metric in COMPILED_METRICS)


def validate_linkage_input(y, method, metric):
    """Check ``linkage``'s input the way scipy does and describe it.

    Parameters
    ----------
    y : array_like
        Condensed distances (1-D) or observations (2-D), NumPy, CuPy or nested lists.
    method : gpu_hclust._methods.Method
    metric : str or callable

    Returns
    -------
    LinkageInput

    Raises
    ------
    TypeError
        ``y`` is not array_like (a dict, a set, an arbitrary object).
    ValueError
        Wrong ndim, condensed length not n(n-1)/2, fewer than 2 observations,
        NaN/inf (condensed input, or observations under a compiled metric),
        non-numeric dtype, unknown metric, or a non-Euclidean metric
        for ward/centroid/median on observations.
    """
    is_cupy = is_cupy_array(y)
    xp = np
    if is_cupy:
        import cupy as xp
    elif np.asarray(y).dtype == object and np.ndim(y) == 0:
        # A dict, set or other non-sequence: scipy fails converting it to
        # float64 with a TypeError, so do we (not a ValueError about ndim).
        raise TypeError(
            f"`y` must be array_like (a condensed distance matrix or an (n, d) "
            f"observation matrix of numbers); got {type(y).__name__}."
        )
    ndim = y.ndim if is_cupy else np.ndim(y)
    if ndim not in (1, 2):
        raise ValueError(
            f"`y` must be 1 or 2 dimensional (condensed distances or an (n, d) "
            f"observation matrix); got {ndim} dimensions."
        )
    data = _as_float64(y)
    if data.ndim == 1:
        n = _num_obs_condensed(data.shape[0])
        if n is None:
            raise ValueError(
                f"Length {data.shape[0]} of condensed distance matrix 'y' must be a "
                "binomial coefficient n*(n-1)/2 (there must be an n with "
                "(n choose 2) = length); pass scipy.spatial.distance.pdist output "
                "or an (n, d) observation matrix."
            )
        kind = "condensed"
        metric = canonical_metric(metric)
    else:
        n = data.shape[0]
        kind = "observations"
        if method.euclidean_only and metric != "euclidean":
            raise ValueError(
                f"`method={method.name}` requires the distance metric to be Euclidean "
                f"(metric='euclidean'); got metric={metric!r}. Pass precomputed "
                "distances as a condensed matrix to use another metric."
            )
        metric = canonical_metric(metric)
        if n >= 2 and _looks_like_distance_matrix(data, xp):
            warn_cluster(SQUARE_DISTANCES_WARNING, stacklevel=3)
    if n < 2:
        raise ValueError(
            "The number of observations cannot be determined on an empty distance "
            f"matrix: `y` describes {n} observation(s) and linkage needs at least 2."
        )
    if _checks_input_finiteness(kind, metric) and data.size and not _all_finite(data, xp):
        raise ValueError(NONFINITE_INPUT)
    return LinkageInput(kind=kind, data=data, n=int(n), metric=metric, is_cupy=is_cupy)
