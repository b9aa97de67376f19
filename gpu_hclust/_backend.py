"""Backend resolution in one place: which engine runs, and on which arrays.

Rules (design guide, section 3):

* ``backend=None`` / ``'auto'``: CuPy input runs on CUDA; NumPy input runs on
  CUDA when a GPU is usable and n is at least ``AUTO_CUDA_MIN_N``, else on the CPU.
  Under the numba-cuda simulator 'auto' never picks CUDA.
* ``'cpu'`` always works (CuPy input is copied to the host and the result back).
* ``'cuda'`` without a usable GPU raises ``RuntimeError`` naming what is missing
  and how to install it: never a silent fallback. Under the simulator
  (``NUMBA_ENABLE_CUDASIM=1``) it runs the CUDA kernels on NumPy arrays.

Importing this module imports neither CuPy nor ``numba.cuda``: the probe runs on
first use and its answer is cached.
"""

import functools
import os

import numpy as np

# The one host-transfer helper (and its CuPy test) lives with the kernels, which
# use it too; kernels.host imports NumPy only (no CuPy, no numba.cuda).
from .kernels.host import is_cupy_array, to_host  # noqa: F401 (re-exported)

BACKENDS = ("auto", "cpu", "cuda")

# Smallest n for which 'auto' sends NumPy input to the GPU (and where that
# value came from): ``_crossovers``.
from ._crossovers import AUTO_CUDA_MIN_N  # noqa: E402

_INSTALL_HINT = (
    'install the CUDA extra matching your driver: pip install "gpu-hclust[cuda13]" '
    '(CUDA 13) or "gpu-hclust[cuda12]" (CUDA 12), or pass backend="cpu"'
)


def simulator_enabled():
    """True when numba-cuda's simulator is switched on for this process."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


@functools.cache
def cuda_unavailable_reason():
    """Why the real CUDA backend cannot run here, or None when it can.

    Checks, in order: CuPy importable, a CUDA device visible to CuPy, and
    numba-cuda importable with a working driver. Cached for the process.
    """
    if simulator_enabled():
        return "the numba-cuda simulator is enabled (NUMBA_ENABLE_CUDASIM=1)"
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed; " + _INSTALL_HINT
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: report its words
        return f"CuPy cannot reach a CUDA driver ({exc}); check `nvidia-smi`, or pass backend=\"cpu\""
    if count < 1:
        return 'no CUDA device is visible (CUDA_VISIBLE_DEVICES?); pass backend="cpu"'
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed; " + _INSTALL_HINT
    if not cuda.is_available():
        return 'numba-cuda cannot use the CUDA driver; check `nvidia-smi`, or pass backend="cpu"'
    return None


def cuda_devices():
    """The CUDA devices CuPy sees, with their memory, and the CUDA versions.

    Returns
    -------
    devices : list of dict
        Per device: 'index', 'name', 'compute_capability' ('9.0'),
        'memory_total' and 'memory_free' (bytes). Empty when CuPy is missing or
        cannot reach a driver (:func:`cuda_unavailable_reason` says why).
    versions : dict or None
        'driver' and 'runtime' versions as CUDA numbers them (13000 = 13.0).
    """
    try:
        import cupy

        runtime = cupy.cuda.runtime
        count = runtime.getDeviceCount()
        versions = {"driver": runtime.driverGetVersion(), "runtime": runtime.runtimeGetVersion()}
    except Exception:  # ImportError, or no driver: cuda_unavailable_reason explains
        return [], None
    devices = []
    for i in range(count):
        props = runtime.getDeviceProperties(i)
        with cupy.cuda.Device(i):
            free, total = runtime.memGetInfo()
        name = props["name"]
        devices.append({
            "index": i,
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "memory_total": int(total),
            "memory_free": int(free),
        })
    return devices, versions


def resolve_backend(backend, n, input_is_cupy=False):
    """Return ``'cpu'`` or ``'cuda'`` for a run on ``n`` observations.

    Parameters
    ----------
    backend : {None, 'auto', 'cpu', 'cuda'}
        The user's choice.
    n : int
        Number of observations.
    input_is_cupy : bool
        The input already lives on a GPU.

    Raises
    ------
    ValueError
        ``backend`` is not one of the names above.
    RuntimeError
        ``backend='cuda'`` but no usable GPU (and no simulator).
    """
    if backend is None:
        backend = "auto"
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(
            f"backend must be one of None, 'auto', 'cpu', 'cuda'; got {backend!r}"
        )
    if backend == "cpu":
        return "cpu"
    if backend == "cuda":
        if simulator_enabled():
            return "cuda"
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"backend='cuda' cannot run: {reason}")
        return "cuda"
    # auto
    if input_is_cupy:
        return "cuda"
    if n >= AUTO_CUDA_MIN_N and cuda_unavailable_reason() is None:
        return "cuda"
    return "cpu"


def device_namespace():
    """Array module holding device arrays: CuPy on a GPU, NumPy in the simulator."""
    if simulator_enabled():
        return np
    import cupy

    return cupy


