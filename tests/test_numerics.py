"""Numerics against exact references (DESIGN.md section 7).

* cosine/correlation distances of near-constant data, where every rounding of
  the dot product shows: no reassociation or fused multiply-add (CPU flags,
  CUDA PTX);
* the memory-saving path far from the origin (centred summaries) and at
  scales where squares overflow (power-of-two rescaling), or scipy's
  ValueError where a height itself is beyond float64;
* float32 storage that overflows raises instead of returning inf heights.
"""

import json
import os
import subprocess
import sys
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
from scipy.spatial.distance import pdist

from gpu_hclust import linkage
from gpu_hclust.kernels import cpu_pdist, metrics

ROOT = Path(__file__).resolve().parents[1]


def _near_constant(n, d, seed=0):
    return 1.0 + 1e-4 * np.random.default_rng(seed).standard_normal((n, d))


def _exact_cosine_family(X, metric):
    """Condensed cosine/correlation distances of the float64 data, to ~1e-60."""
    rows = [[Fraction(float(v)) for v in r] for r in X]
    if metric == "correlation":
        means = [sum(r) / len(r) for r in rows]
        rows = [[v - m for v in r] for r, m in zip(rows, means)]
    sq = [sum(v * v for v in r) for r in rows]

    def dec(f):
        return Decimal(f.numerator) / Decimal(f.denominator)

    out = []
    with localcontext() as ctx:
        ctx.prec = 60
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                dot = sum(a * b for a, b in zip(rows[i], rows[j]))
                out.append(float(1 - dec(dot) / dec(sq[i] * sq[j]).sqrt()))
    return np.array(out)


def _ours(X, metric):
    Xc = X - X.mean(axis=1, keepdims=True) if metric == "correlation" else X
    Xc = np.ascontiguousarray(Xc)
    out = np.empty(X.shape[0] * (X.shape[0] - 1) // 2)
    bad = cpu_pdist.pdist_into(Xc, metrics.METRIC_CODES[metric], 2.0, cpu_pdist.row_norms(Xc), out)
    assert bad == 0
    return out


@pytest.mark.parametrize("metric", ["cosine", "correlation"])
def test_cosine_family_d3_as_exact_as_scipy(metric):
    # Without fastmath=False spelled out, numba compiled the dot product with
    # its caller's reassoc/contract flags: heights 1.9e-3 off scipy's here.
    X = _near_constant(40, 3)
    exact = _exact_cosine_family(X, metric)
    ours, theirs = _ours(X, metric), pdist(X, metric)
    err_ours = np.abs(ours - exact) / exact
    err_scipy = np.abs(theirs - exact) / exact
    assert np.all(err_ours <= err_scipy)
    np.testing.assert_array_equal(ours, theirs)  # same summation order as scipy's loop


@pytest.mark.parametrize("metric", ["cosine", "correlation"])
@pytest.mark.parametrize("d", [8, 32, 384])
def test_cosine_family_wide_rows_as_exact_as_scipy(metric, d):
    # scipy 1.17's compiled loop sums the dot product and the norms in two
    # interleaved partial sums (even/odd coordinates); the kernel follows it,
    # so its error against the exact value is scipy's, pair by pair.
    X = _near_constant(24, d, seed=d)
    exact = _exact_cosine_family(X, metric)
    ours, theirs = _ours(X, metric), pdist(X, metric)
    err_ours = np.abs(ours - exact) / exact
    err_scipy = np.abs(theirs - exact) / exact
    assert np.all(err_ours <= err_scipy)
    np.testing.assert_array_equal(ours, theirs)


def test_average_cosine_heights_match_scipy_near_constant():
    X = _near_constant(400, 3, seed=1)
    Z = linkage(X, "average", metric="cosine", backend="cpu", low_memory=False)
    Zs = sch.linkage(pdist(X, "cosine"), "average")
    np.testing.assert_array_equal(Z[:, :2], Zs[:, :2])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12, atol=0)


_PTX_SCRIPT = r"""
import json, re
import numba.cuda.dispatcher as dispatcher
from numba import cuda

class _Device:
    compute_capability = (9, 0)

dispatcher.get_current_device = lambda: _Device
try:
    from numba.cuda.cudadrv import nvvm
    nvvm.NVVM()
except Exception as exc:
    print(json.dumps({"skip": f"libNVVM unavailable: {exc}"}))
    raise SystemExit(0)
from gpu_hclust.kernels import cuda_pdist
out = {}
for name in ("pdist_cosine", "pdist_euclidean", "pdist_sqeuclidean", "row_norms_kernel"):
    for sig in cuda_pdist.PTX_SIGNATURES[name]:
        ptx, _ = cuda.compile_ptx(getattr(cuda_pdist, name).py_func, sig, cc=(9, 0))
        out[name + sig] = {"fma": len(re.findall(r"\bfma\.rn\.f64", ptx)),
                    "mul_rn": len(re.findall(r"\bmul\.rn\.f64", ptx))}
print(json.dumps(out))
"""


def test_cuda_cosine_kernel_has_no_fused_multiply_add():
    # NVVM fuses a*b + c by default and numba-cuda has no switch: the dot
    # product's multiply is libdevice's explicitly rounded one (mul.rn).
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", _PTX_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(report["skip"])
    assert report
    for sig, counts in report.items():
        assert counts["fma"] == 0, f"{sig}: {counts}"
        assert counts["mul_rn"] > 0, f"{sig}: {counts}"


@pytest.mark.parametrize("d", [3, 8, 9, 33])
@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean", "sqeuclidean"])
def test_cuda_pdist_in_simulator_is_scipys_bitwise(metric, d):
    # Same partial sums and roundings as scipy (and the CPU kernel), norms too;
    # d = 33 spans three staged coordinate chunks (KC = 16) with an odd tail.
    from gpu_hclust import _engine_cuda
    from gpu_hclust._methods import METHODS
    from gpu_hclust._validation import validate_linkage_input

    X = _near_constant(20, d, seed=3)
    inp = validate_linkage_input(X, METHODS["average"], metric)
    out = _engine_cuda.condensed_working_matrix(inp, np.float64, False).D
    np.testing.assert_array_equal(out, pdist(X, metric))


# --------------------------------------------------------------------------
# Memory-saving path: far from the origin, huge and tiny scales
# --------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [(5e5, 5e6), (1e8, 1e8)])
def test_lowmem_ward_far_from_origin(offset):
    # Uncentred summaries: 4e-11 (5e6) and 8e-10 (1e8) relative here.
    X = np.asarray(offset) + np.random.default_rng(0).uniform(-1000, 1000, (1500, 2))
    Z = linkage(X, "ward", backend="cpu", low_memory=True)
    Zs = sch.linkage(X, "ward")
    np.testing.assert_array_equal(Z[:, :2], Zs[:, :2])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12, atol=0)


def test_lowmem_single_at_1e154_is_finite_and_exact():
    # Squares overflow at 1e154; power-of-two rescaling is exact, so the
    # heights are those of the unscaled data times the scale.
    X = np.random.default_rng(1).standard_normal((300, 3))
    Z = linkage(X * 1e154, "single", backend="cpu", low_memory=True)
    assert np.isfinite(Z).all()
    Zs = sch.linkage(X, "single")
    np.testing.assert_array_equal(Z[:, :2], Zs[:, :2])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2] * 1e154, rtol=1e-13)


def test_lowmem_heights_beyond_float64_raise():
    # average/sqeuclidean's heights are squared distances: beyond float64 here.
    X = np.random.default_rng(2).standard_normal((60, 3)) * 1e154
    with pytest.raises(ValueError, match="exceed the float64 range"):
        linkage(X, "average", metric="sqeuclidean", backend="cpu", low_memory=True)
    with pytest.raises(ValueError):  # scipy too
        sch.linkage(X, "average", metric="sqeuclidean")


@pytest.mark.parametrize("method", ["ward", "centroid", "median"])
def test_lowmem_squares_beyond_float64_heights_within(method):
    # The squared heights overflow, the heights (~1e155) do not: the scale is
    # undone after _tree's square root, as on the dense paths. scipy raises
    # here (its squares overflow); the exact answer is its tree of X, scaled.
    X = np.random.default_rng(2).standard_normal((60, 3))
    Z = linkage(X * 1e155, method, backend="cpu", low_memory=True)
    Zs = sch.linkage(X, method)
    np.testing.assert_array_equal(Z[:, :2], Zs[:, :2])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2] * 1e155, rtol=1e-12)


def test_lowmem_ward_1e152_matches_scipy():
    # Finite for scipy; the squared summaries used to overflow.
    X = np.random.default_rng(3).standard_normal((200, 3))
    Z = linkage(X * 1e152, "ward", backend="cpu", low_memory=True)
    Zs = sch.linkage(X, "ward")
    np.testing.assert_array_equal(Z[:, :2], Zs[:, :2])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2] * 1e152, rtol=1e-12)


@pytest.mark.parametrize("method", ["ward", "single"])
def test_lowmem_tiny_scale_is_exact(method):
    # Squared distances near 1e-320 are subnormal: scipy loses digits there
    # (up to 1e-3 relative, ids change); the memory-saving path scales by a
    # power of two and undoes it after the square root, so nothing is lost.
    X = np.random.default_rng(3).standard_normal((200, 3))
    exact = sch.linkage(X, method)
    Z = linkage(X * 1e-160, method, backend="cpu", low_memory=True)
    np.testing.assert_array_equal(Z[:, :2], exact[:, :2])
    np.testing.assert_allclose(Z[:, 2], exact[:, 2] * 1e-160, rtol=1e-13)


def test_lowmem_float32_storage_does_not_overflow():
    X = np.random.default_rng(4).standard_normal((80, 3))
    Z = linkage(X * 1e39, "ward", backend="cpu", low_memory=True, dtype=np.float32)
    assert np.isfinite(Z).all()
    Zr = linkage(X, "ward", backend="cpu", low_memory=True, dtype=np.float32)
    np.testing.assert_allclose(Z[:, 2], Zr[:, 2] * 1e39, rtol=1e-6)


def test_dense_float32_overflow_raises():
    X = np.random.default_rng(5).standard_normal((50, 3)) * 1e39
    with pytest.raises(ValueError, match="finite"):
        linkage(X, "complete", backend="cpu", dtype=np.float32)


# --------------------------------------------------------------------------
# Overflow on the CPU dense path: power-of-two rescaling (exact)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ward", "centroid", "median"])
def test_cpu_dense_huge_condensed_input_is_finite(method):
    # d*d in the updates overflowed above ~1e154: scipy raises, the exact
    # answer is representable; the rescaled run gives the unscaled tree.
    y = pdist(np.random.default_rng(0).standard_normal((50, 3)))
    Z = linkage(y * 1e155, method, backend="cpu")
    Zr = linkage(y, method, backend="cpu")
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[:, [0, 1, 3]], Zr[:, [0, 1, 3]])
    np.testing.assert_allclose(Z[:, 2], Zr[:, 2] * 1e155, rtol=1e-14)


def test_cpu_dense_power_of_two_scaling_is_bitwise():
    # scaling by 2**k commutes with every step: heights exactly 2**k times
    y = pdist(np.random.default_rng(1).standard_normal((40, 4)))
    for method in ("ward", "average", "centroid"):
        Z = linkage(np.ldexp(y, 600), method, backend="cpu")
        Zr = sch.linkage(y, method)
        np.testing.assert_array_equal(Z[:, 2], np.ldexp(Zr[:, 2], 600))
        np.testing.assert_array_equal(Z[:, [0, 1, 3]], Zr[:, [0, 1, 3]])


@pytest.mark.parametrize("n, low_memory", [(200, False), (300, None)])
def test_single_huge_observations_finite_on_both_paths(n, low_memory):
    X = np.random.default_rng(2).standard_normal((n, 3))
    Z = linkage(X * 1e154, "single", backend="cpu", low_memory=low_memory)
    Zs = sch.linkage(X, "single")
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[:, :2], Zs[:, :2])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2] * 1e154, rtol=1e-14)


def test_heights_beyond_float64_raise_naming_the_range():
    y = np.full(3, 1.7e308)  # ward: sqrt(4/3) * 1.7e308 > 1.8e308
    y[0] = 1.0
    with pytest.raises(ValueError, match="exceed the float64 range"):
        linkage(y, "ward", backend="cpu")


@pytest.mark.parametrize("kind", ["observations", "condensed"])
def test_float32_overflow_raises_naming_float32(kind):
    X = np.random.default_rng(3).standard_normal((30, 3)) * 1e39
    y = X if kind == "observations" else pdist(X)
    with pytest.raises(ValueError, match=r"float32 range.*dtype=np.float64"):
        linkage(y, "complete", backend="cpu", dtype=np.float32)


# --- no engine loop can spin: non-finite summaries fed to the engines directly ----

_SPIN_SCRIPT = r"""
import json, sys
import numpy as np
from gpu_hclust import _lowmem
from gpu_hclust._methods import METHODS
from gpu_hclust.kernels import cpu_vector
from gpu_hclust.kernels.cpu_common import NO_FINITE_CANDIDATE

def run(method, metric, poison, slot, n=10):
    X = np.random.default_rng(1).standard_normal((n, 2))
    spec = METHODS[method]
    CT, norms, code, mcode, _ = _lowmem.prepare_scaled(X, spec, metric, np.dtype(np.float64), np)
    if poison == "huge":  # squared distances overflow to inf in the engine
        CT *= 1e200
    else:
        CT[:, slot] = poison
    a, b = np.empty(n - 1, np.int64), np.empty(n - 1, np.int64)
    h, counter = np.empty(n - 1), np.zeros(1, np.int64)
    try:
        if spec.family == "mst":
            cpu_vector.single(mcode, CT, norms, 2.0, a, b, h, counter)
        else:
            size, extra = np.ones(n), np.zeros(n)
            fn = cpu_vector.generic if spec.family == "generic" else cpu_vector.reducible
            fn(code, mcode, CT, size, extra, a, b, h, counter)
    except ValueError as exc:
        return "raised" if str(exc) == NO_FINITE_CANDIDATE else f"ValueError({exc})"
    return f"returned heights {h.tolist()}"

out = {}
for method, metric in json.loads(sys.argv[1]):
    for poison in [float("nan"), float("inf"), -float("inf"), "huge"]:
        if poison == "huge" and method == "single":
            continue  # single's euclidean distances at 1e200 are finite
        for slot in ([0, 4, 9] if poison != "huge" else [0]):
            out[f"{method}/{metric}/{poison}/{slot}"] = run(method, metric, poison, slot)
print(json.dumps(out))
"""


def _spin_check(script, cases, timeout=300):
    """Run ``script`` in a subprocess (a spinning engine is killed by the timeout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report
    wrong = {k: v for k, v in report.items() if v != "raised"}
    assert not wrong, wrong


def test_cpu_vector_engines_raise_when_no_finite_candidate_is_left():
    # NaN/inf centroids (a NaN column, +-inf coordinates) and squares that
    # overflow: every engine must stop with NO_FINITE_CANDIDATE, never spin,
    # index with a -1 slot or return inf heights.
    _spin_check(_SPIN_SCRIPT, [["single", "euclidean"], ["ward", "euclidean"],
                               ["average", "sqeuclidean"], ["centroid", "euclidean"],
                               ["median", "euclidean"]])


_CUDA_SPIN_SCRIPT = r"""
import json, sys
import numpy as np
from scipy.spatial.distance import pdist
from gpu_hclust import _lowmem
from gpu_hclust._methods import METHODS
from gpu_hclust.kernels import cuda_generic, cuda_mst, cuda_reducible, cuda_vector
from gpu_hclust.kernels.cpu_common import NO_FINITE_CANDIDATE

DENSE = {"mst": cuda_mst, "reducible": cuda_reducible, "generic": cuda_generic}

def outcome(fn):
    try:
        h = fn()[2]
    except ValueError as exc:
        return "raised" if str(exc).startswith(NO_FINITE_CANDIDATE) else f"ValueError({exc})"
    return f"returned heights {list(h)}"

def dense(method, poison, n=8):
    D = pdist(np.random.default_rng(2).standard_normal((n, 2)))
    if poison == "all-nan":
        D[:] = np.nan
    else:  # every distance of observation 3
        rows = [k for k, (i, j) in enumerate((i, j) for i in range(n) for j in range(i + 1, n))
                if 3 in (i, j)]
        D[rows] = poison
    spec = METHODS[method]
    return outcome(lambda: DENSE[spec.family].run(D, n, spec.code, xp=np, tpb=32))

def lowmem(method, metric, poison, n=8):
    X = np.random.default_rng(2).standard_normal((n, 2))
    spec = METHODS[method]
    CT, norms, code, mcode, _ = _lowmem.prepare_scaled(X, spec, metric, np.dtype(np.float64), np)
    if poison == "huge":
        CT *= 1e200
    else:
        CT[:, 3] = poison
    return outcome(lambda: cuda_vector.run(CT, norms, code, mcode, 2.0, xp=np, tpb=32))

out = {}
for method in ["single", "complete", "centroid"]:
    for poison in ["all-nan", float("nan"), float("inf")]:
        out[f"dense/{method}/{poison}"] = dense(method, poison)
for method, metric in [("single", "euclidean"), ("ward", "euclidean"), ("centroid", "euclidean")]:
    for poison in [float("nan"), float("inf")] + ([] if method == "single" else ["huge"]):
        out[f"lowmem/{method}/{poison}"] = lowmem(method, metric, poison)
print(json.dumps(out))
"""


def test_cuda_engines_raise_when_no_finite_candidate_is_left():
    # The simulator at n = 8: NaN/inf distances (one observation's, or all)
    # for the dense engines, NaN/inf/overflowing summaries for the
    # memory-saving one. Each ends in ValueError(NO_FINITE_CANDIDATE ...),
    # read from the merge log or the round's count (no extra host sync).
    _spin_check(_CUDA_SPIN_SCRIPT, [], timeout=500)


# --------------------------------------------------------------------------
# Overflow on the CUDA dense path (simulator, n small, 32 threads per block):
# the same power-of-two rule as the CPU (``_scaling``)
# --------------------------------------------------------------------------

_CUDA_X = np.random.default_rng(0).standard_normal((30, 3))


# ~6 s each in the simulator: every method and input form once in the default run.
@pytest.mark.parametrize("method, kind", [
    ("ward", "observations"), ("centroid", "condensed"), ("median", "observations"),
    pytest.param("ward", "condensed", marks=pytest.mark.slow),
    pytest.param("centroid", "observations", marks=pytest.mark.slow),
    pytest.param("median", "condensed", marks=pytest.mark.slow)])
def test_cuda_dense_squares_beyond_float64_are_scipys_tree(method, kind):
    # The squared working distances overflow (1e155**2) where the heights do
    # not: scaled before squaring, heights scaled back after the root.
    y = _CUDA_X * 1e155 if kind == "observations" else pdist(_CUDA_X) * 1e155
    Z = linkage(y, method, backend="cuda")
    Zs = sch.linkage(_CUDA_X, method)
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2] * 1e155, rtol=1e-12)


@pytest.mark.parametrize("method", ["ward", "centroid", "median"])
def test_cuda_dense_1e152_matches_scipy(method):
    # scipy is finite here: its Z, to rtol 1e-12.
    Z = linkage(_CUDA_X * 1e152, method, backend="cuda")
    Zs = sch.linkage(_CUDA_X * 1e152, method)
    np.testing.assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12)


@pytest.mark.parametrize("kind", ["observations",
                                  pytest.param("condensed", marks=pytest.mark.slow)])
def test_cuda_dense_power_of_two_scaling_is_bitwise(kind):
    # 2**600 commutes with every step: heights exactly 2**600 times the unscaled run's
    X = _CUDA_X[:16]
    y = X if kind == "observations" else pdist(X)
    for method in ("ward", "average", "single"):
        Z = linkage(np.ldexp(y, 600), method, backend="cuda")
        Zr = linkage(y, method, backend="cuda")
        np.testing.assert_array_equal(Z[:, [0, 1, 3]], Zr[:, [0, 1, 3]])
        np.testing.assert_array_equal(Z[:, 2], np.ldexp(Zr[:, 2], 600))


def test_cuda_dense_heights_beyond_float64_raise_naming_the_range():
    y = np.full(3, 1.7e308)  # ward: sqrt(4/3) * 1.7e308 > 1.8e308; scipy: inf
    y[0] = 1.0
    with pytest.raises(ValueError, match="linkage heights exceed the float64 range"):
        linkage(y, "ward", backend="cuda")


def test_cuda_dense_distances_beyond_float64_raise_naming_the_range():
    X = np.array([[-1e308, 0.0], [1e308, 0.0], [0.0, 1.0]])  # d(0, 1) = 2e308; scipy: inf
    with pytest.raises(ValueError, match="distances exceed the float64 range"):
        linkage(X, "average", backend="cuda")


def test_cuda_dense_float32_squares_fit():
    # float32 storage of ward's squares: (2**100)**2 leaves float32, 2**100
    # does not (the CPU stores plain distances there); scaled by a power of
    # two, the float32 run is the unscaled one's, bit for bit.
    Z = linkage(np.ldexp(_CUDA_X, 100), "ward", backend="cuda", dtype=np.float32)
    Zr = linkage(_CUDA_X, "ward", backend="cuda", dtype=np.float32)
    np.testing.assert_array_equal(Z[:, [0, 1, 3]], Zr[:, [0, 1, 3]])
    np.testing.assert_array_equal(Z[:, 2], np.ldexp(Zr[:, 2], 100))


def test_cuda_dense_float32_cast_overflow_raises():
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="distances exceed the float32 range"):
        linkage(pdist(X) * 1e39, "average", backend="cuda", dtype=np.float32)
