"""``gpu-hclust info``: versions, devices, usable backends and the largest n.

The largest n comes from the predictions ``linkage`` refuses by
(``_memory.largest_n`` for the dense path, ``_memory.memory_saving_largest_n``
for the memory-saving one), for the memory free now.
"""

import json
import os
import platform
import sys
import textwrap

from ._parser import AUTO_LOW_MEMORY, cli_words

# -- info ------------------------------------------------------------------------
_PACKAGES = [  # (what to show, import name)
    ("numpy", "numpy"), ("scipy", "scipy"), ("numba", "numba"),
    ("numba-cuda", "numba_cuda"), ("cupy", "cupy"), ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"), ("scikit-learn", "sklearn"), ("fastcluster", "fastcluster"),
]

# Feature counts for which `info` reports the memory-saving path's largest n;
# the GPU's dense limit is for observations of the first (they are copied there).
MEMORY_SAVING_DIMS = (32, 384, 1024)


def _package_versions():
    from importlib import metadata

    dists = metadata.packages_distributions()
    out = {}
    for shown, module in _PACKAGES:
        out[shown] = None
        for dist in dists.get(module, ()):
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            out[shown] = version if dist == shown else f"{version} ({dist})"
            break
    return out


def collect_info():
    """Everything ``gpu-hclust info`` reports, as a dict.

    Returns
    -------
    dict
        Keys: 'gpu_hclust', 'python', 'platform', 'packages', 'cpu', 'cuda',
        'backends', 'largest_n' (dense path: {'cpu'|'cuda': {dtype: n}}, from
        ``_memory.largest_n``, the prediction linkage refuses by) and
        'largest_n_memory_saving' ({'cpu'|'cuda': {d: n}},
        ``_memory.memory_saving_largest_n``).
    """
    import numba

    from .. import _backend, _crossovers, _memory
    from .._version import __version__

    devices, cuda_versions = _backend.cuda_devices()
    reason = _backend.cuda_unavailable_reason()
    free = {"cpu": _memory.host_available_bytes()}
    if devices and reason is None:
        free["cuda"] = devices[0]["memory_free"]
    dense = {where: {dt: _memory.largest_n(avail, dt, on_gpu=where == "cuda",
                                           d=MEMORY_SAVING_DIMS[0] if where == "cuda" else 0)
                     for dt in ("float64", "float32")} for where, avail in free.items()}
    saving = {where: {str(d): _memory.memory_saving_largest_n(avail, d) for d in MEMORY_SAVING_DIMS}
              for where, avail in free.items()}
    return {
        "gpu_hclust": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "cpu": {"cores": os.cpu_count(), "numba_threads": int(numba.config.NUMBA_NUM_THREADS),
                "memory_available": free["cpu"]},
        "cuda": {"devices": devices, "versions": cuda_versions},
        "backends": {
            "cpu": {"usable": True, "reason": None},
            "cuda": {"usable": reason is None, "reason": reason},
            "auto_cuda_min_n": _backend.AUTO_CUDA_MIN_N,
            "auto_cuda_min_n_source": _crossovers.AUTO_CUDA_SOURCE,
            "gpu_memory_saving_min_n": dict(_crossovers.GPU_MEMORY_SAVING_MIN_N),
            "gpu_memory_saving_source": _crossovers.GPU_MEMORY_SAVING_SOURCE,
        },
        "largest_n": dense,
        "largest_n_memory_saving": saving,
    }


def _gib(nbytes):
    return f"{nbytes / 2**30:.1f} GiB" if nbytes is not None else "unknown"


def _count(n):
    return f"{n:,}" if n is not None else "unknown"


def cmd_info(args):
    """``gpu-hclust info``: what this machine can run."""
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lines = [f"gpu-hclust {info['gpu_hclust']} on Python {info['python']} ({info['platform']})",
             "packages:"]
    lines += [f"  {name:<13} {v or 'not installed'}" for name, v in info["packages"].items()]
    cpu = info["cpu"]
    lines.append(f"CPU: {cpu['cores']} cores, {cpu['numba_threads']} numba threads, "
                 f"{_gib(cpu['memory_available'])} memory available")
    devices = info["cuda"]["devices"]
    if devices:
        v = info["cuda"]["versions"]
        lines.append(f"CUDA devices (driver {v['driver']}, runtime {v['runtime']}):")
        lines += [f"  [{d['index']}] {d['name']} (compute {d['compute_capability']}): "
                  f"{_gib(d['memory_free'])} free of {_gib(d['memory_total'])}" for d in devices]
    else:
        lines.append("CUDA devices: none found")
    cuda = info["backends"]["cuda"]
    lines += ["backends:", "  cpu   usable",
              "  cuda  usable" if cuda["usable"] else f"  cuda  not usable: {cuda['reason']}",
              f"  auto  -> cuda for n >= {info['backends']['auto_cuda_min_n']} when cuda is "
              "usable, else cpu",
              "largest n, dense path (distance matrix + working arrays, free memory now; "
              f"cuda: observations of d = {MEMORY_SAVING_DIMS[0]}):",
              f"  {'':<6}{'float64':>12}{'float32':>12}"]
    for where, per_dtype in info["largest_n"].items():
        lines.append(f"  {where:<6}" + "".join(f"{_count(n):>12}" for n in per_dtype.values()))
    lines += textwrap.wrap(
        "for any method from a condensed matrix. From observations, --low-memory auto takes "
        f"the memory-saving path (no matrix) {AUTO_LOW_MEMORY}: single on the CPU never needs "
        "the matrix.", 96, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
    lines += ["largest n, memory-saving path (--low-memory on, float64; single, ward, centroid, "
              "median, average with sqeuclidean/cosine/correlation):"]
    for where, per_d in info["largest_n_memory_saving"].items():
        lines.append(f"  {where:<6}" + ", ".join(f"d = {d}: {_count(n)}"
                                                 for d, n in per_d.items()))
    print(cli_words("\n".join(lines), one_line=False))
    return 0
