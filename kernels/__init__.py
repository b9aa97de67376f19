"""Linkage kernels: Numba CPU (``cpu_*``) and Numba CUDA (``cuda_*``) modules.

This package imports only numba and numpy, never CuPy, so every CUDA kernel
also runs in numba-cuda's simulator on NumPy arrays. Modules are imported
lazily: ``import gpu_hclust`` must not pay for numba compilation or
``numba.cuda`` initialisation.

Engine contract (both backends)
-------------------------------
``REGISTRY[backend][family]`` names a module that provides::

    run(D, n, code, **options) -> (a, b, h)

``D`` is the working condensed distance matrix (length n(n-1)/2, float32 or
float64; squared distances where the engine works squared: the CUDA engines for
methods whose ``Method.squared`` is true, the CPU engines never, as scipy).
The engine owns it and may overwrite it. ``a`` and ``b`` are int64 NumPy arrays of
length n-1 holding, for each merge in the order the engine performed it, any
observation index inside each of the two merged clusters (for the mst family:
the tree's edges in any order); ``h`` holds the
merge heights (float64, in the matrix's units). ``gpu_hclust._tree``
turns this merge log into scipy's ``Z``. CUDA modules take the array namespace
(CuPy, or NumPy under the simulator) as the ``xp`` option and return the log as
host arrays, fetched once.

``REGISTRY[backend]["vector"]`` names the memory-saving engine of that backend
(every family, from the observations: no distance matrix). It works on the
transposed observations ``CT`` (d, n) prepared by ``gpu_hclust._lowmem``
and returns the same merge log; ``cpu_vector`` exposes one compiled driver per
family (``single``, ``reducible``, ``generic``), ``cuda_vector`` one ``run``.
"""

from importlib import import_module

REGISTRY = {
    "cpu": {"mst": "cpu_mst", "reducible": "cpu_nnchain", "generic": "cpu_generic",
            "vector": "cpu_vector"},
    "cuda": {"mst": "cuda_mst", "reducible": "cuda_reducible", "generic": "cuda_generic",
             "vector": "cuda_vector"},
}


def get_engine(backend, family):
    """Import and return the kernel module that runs ``family`` (or ``'vector'``,
    the memory-saving engine) on ``backend``."""
    return import_module(f".{REGISTRY[backend][family]}", __name__)
