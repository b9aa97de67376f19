"""Test set-up. Runs before anything imports numba: numba reads
NUMBA_ENABLE_CUDASIM once, at its first import, for the whole process."""

import os
import sys


def _gpu_usable():
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:  # no CuPy, no driver: both mean "simulate"
        return False


GPU_USABLE = _gpu_usable()
if not GPU_USABLE:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# Simulated CUDA threads are Python threads, and the GIL's switch interval
# sets how they interleave. Measured on the 2-core CI machine: 1 ms makes the
# dense kernels' many short barrier phases 1.6x faster than Python's 5 ms
# (tests/test_cuda_sim.py + test_cuda_families_sim.py: 228 s vs 375 s) but the
# memory-saving tiles, long compute between barriers, 6x slower (test_lowmem_
# cuda_sim.py: 818 s vs 139 s; one test swung between 13 s and 50 s from run to
# run). A module that wants another interval sets SIM_SWITCH_INTERVAL.
DEFAULT_SWITCH_INTERVAL = 1e-3
sys.setswitchinterval(DEFAULT_SWITCH_INTERVAL)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if GPU_USABLE:
        return
    skip_gpu = pytest.mark.skip(reason="needs a real CUDA GPU (CuPy could not find one)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _switch_interval(request):
    """The module's ``SIM_SWITCH_INTERVAL`` (seconds) while its tests run."""
    wanted = getattr(request.module, "SIM_SWITCH_INTERVAL", DEFAULT_SWITCH_INTERVAL)
    sys.setswitchinterval(wanted)
    yield
    sys.setswitchinterval(DEFAULT_SWITCH_INTERVAL)


@pytest.fixture
def rng():
    """A seeded generator per test: reproducible, independent of test order."""
    return np.random.default_rng(20261125)


@pytest.fixture
def lowmem_calls(monkeypatch):
    """Method names that reached the memory-saving path, in call order.

    ``gpu_hclust._lowmem.memory_saving_log`` (what ``linkage`` calls) is
    wrapped, not replaced: results stay real.
    """
    from gpu_hclust import _lowmem

    calls = []
    real = _lowmem.memory_saving_log

    def spy(*args, **kwargs):
        calls.append(args[1].name)
        return real(*args, **kwargs)

    monkeypatch.setattr(_lowmem, "memory_saving_log", spy)
    return calls
