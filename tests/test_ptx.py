"""Every CUDA kernel compiles to PTX for Ampere (cc 8.0) and Hopper (cc 9.0), no GPU needed.

The simulator never compiles anything, so a kernel can pass every simulator
test and still fail to type or lower for a real device. This test runs in a
subprocess *without* NUMBA_ENABLE_CUDASIM (conftest sets it for this process,
and numba reads it once), discovers every ``kernels/cuda_*.py`` module and
compiles each kernel listed in its ``PTX_SIGNATURES`` with each signature via
``cuda.compile_ptx(kernel.py_func, signature, cc=...)``. Modules must list every
``@cuda.jit`` kernel they define (see ``kernels/launch.py``).

Needs libNVVM and NVRTC (``numba-cuda[cu13]`` wheels); skipped, with the
reason, only when they are missing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "kernels").glob("cuda_*.py"))
CCS = [(8, 0), (9, 0)]

# Runs in the subprocess. Prints one JSON document on its last line.
_SCRIPT = r"""
import importlib, inspect, json, sys

def probe():
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
    except Exception as exc:
        return f"libNVVM unavailable ({exc.__class__.__name__}: {exc}); pip install 'numba-cuda[cu13]'"
    try:
        from numba.cuda.cudadrv import nvrtc
        nvrtc.get_supported_ccs()
    except Exception as exc:
        return f"NVRTC unavailable ({exc.__class__.__name__}: {exc}); pip install 'numba-cuda[cu13]'"
    return None

reason = probe()
if reason is not None:
    print(json.dumps({"skip": reason}))
    sys.exit(0)

# Kernels that call device functions compile those for the "current device",
# which would initialise the (absent) driver: answer with the target cc instead.
import numba.cuda.dispatcher as dispatcher
from numba import cuda

class _Device:
    compute_capability = (9, 0)

dispatcher.get_current_device = lambda: _Device

from numba.cuda.dispatcher import CUDADispatcher

name = sys.argv[1]
ccs = [tuple(cc) for cc in json.loads(sys.argv[2])]
mod = importlib.import_module(f"gpu_hclust.kernels.{name}")
report = {"module": name, "results": [], "unlisted": [], "missing": []}
sigs = getattr(mod, "PTX_SIGNATURES", None)
if not isinstance(sigs, dict):
    report["error"] = "module has no PTX_SIGNATURES dict"
    print(json.dumps(report))
    sys.exit(0)
kernels = {
    attr: obj for attr, obj in vars(mod).items()
    if isinstance(obj, CUDADispatcher)
    and not obj.targetoptions.get("device", False)
    and getattr(obj.py_func, "__module__", None) == mod.__name__
}
report["unlisted"] = sorted(set(kernels) - set(sigs))
report["missing"] = sorted(set(sigs) - set(kernels))
for kname, signatures in sigs.items():
    if kname not in kernels:
        continue
    if not signatures:
        report["results"].append({"kernel": kname, "sig": None, "cc": None, "error": "no signatures"})
    for sig in signatures:
        for cc in ccs:
            _Device.compute_capability = cc
            entry = {"kernel": kname, "sig": sig, "cc": list(cc), "error": None}
            try:
                ptx, _ = cuda.compile_ptx(kernels[kname].py_func, sig, cc=cc)
                target = f".target sm_{cc[0]}{cc[1]}"
                if target not in ptx:
                    entry["error"] = f"PTX lacks {target!r}"
            except Exception as exc:
                entry["error"] = f"{exc.__class__.__name__}: {str(exc)[:2000]}"
            report["results"].append(entry)
print(json.dumps(report))
"""


def _compile_module(name):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, name, json.dumps(CCS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"PTX subprocess for {name} failed:\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"PTX subprocess for {name} printed nothing:\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


def test_kernel_modules_discovered():
    # The single-linkage and distance kernels at least; the other families'
    # modules join the parametrisation below as soon as they exist.
    assert {"cuda_mst", "cuda_pdist"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_kernel_compiles_to_ptx(name):
    report = _compile_module(name)
    if "skip" in report:
        pytest.skip(report["skip"])
    assert "error" not in report, f"{name}: {report.get('error')}"
    assert not report["unlisted"], f"{name}: kernels missing from PTX_SIGNATURES: {report['unlisted']}"
    assert not report["missing"], f"{name}: PTX_SIGNATURES names no kernel: {report['missing']}"
    assert report["results"], f"{name}: no kernel compiled"
    failures = [r for r in report["results"] if r["error"]]
    assert not failures, "\n".join(
        f"{name}.{r['kernel']} {r['sig']} cc={r['cc']}: {r['error']}" for r in failures
    )
    compiled = {(r["kernel"], tuple(r["cc"])) for r in report["results"]}
    for kernel in {r["kernel"] for r in report["results"]}:
        for cc in CCS:
            assert (kernel, cc) in compiled
