"""Helpers shared by the benchmark scripts: per-call time and memory, run metadata.

The scripts run as plain files (``python benchmarks/bench_*.py``), so their
folder is on ``sys.path`` and they import this module as ``_common``.
"""

import platform
import subprocess
import time
from pathlib import Path


def status_kib(field):
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# Largest VmHWM seen before a reset_peak(): with it, process_peak_bytes() is the
# process's lifetime peak although measure() resets the mark before each call.
_hwm_before_resets_kib = 0


def process_peak_bytes():
    """This process's lifetime peak resident set, in bytes.

    Linux: the largest ``VmHWM`` seen, resets included. Not ``ru_maxrss``: on
    Linux it carries the parent's high-water mark across fork/exec, so a worker
    spawned by a large driver would report the driver's memory. Elsewhere
    ``ru_maxrss`` is all there is.
    """
    hwm = status_kib("VmHWM")
    if hwm is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(hwm, _hwm_before_resets_kib) * 1024


def reset_peak():
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    global _hwm_before_resets_kib
    _hwm_before_resets_kib = max(_hwm_before_resets_kib, status_kib("VmHWM") or 0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(fn, gpu):
    """(seconds, result, host peak bytes above the start, GPU pool bytes) of one call.

    The host figure is None where the high-water mark cannot be reset; the GPU
    figure is what CuPy's default pool holds after the call (emptied before it),
    None without ``gpu``. ``fn`` must synchronise the device itself.
    """
    pool = None
    if gpu:
        import cupy

        pool = cupy.get_default_memory_pool()
        pool.free_all_blocks()
    can_reset = reset_peak()
    rss0 = status_kib("VmRSS")
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    hwm = status_kib("VmHWM")
    host = (hwm - rss0) * 1024 if (can_reset and hwm is not None and rss0 is not None) else None
    gpu_bytes = int(pool.total_bytes()) if pool is not None else None
    return seconds, result, host, gpu_bytes


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(dist):
    """Installed version of distribution ``dist``, None if it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git(*args):
    """Output of ``git args...`` in the repository (stripped), None if git fails."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
