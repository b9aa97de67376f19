"""The one device-to-host copy, for the kernels and the package alike.

Kept apart from ``launch`` because ``launch`` imports ``numba.cuda``, which
the CPU paths (and ``import gpu_hclust``) must not pay for; this module
imports NumPy only and recognises a CuPy array without importing CuPy.
"""

import numpy as np


def is_cupy_array(x):
    """True when ``x`` is a CuPy array, decided without importing CuPy."""
    return type(x).__module__.split(".")[0] == "cupy"


def to_host(x):
    """NumPy view or copy of ``x``: one device-to-host transfer for a CuPy
    array, ``np.asarray`` for anything else (NumPy arrays, also the
    simulator's device arrays, come back as they are)."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)
