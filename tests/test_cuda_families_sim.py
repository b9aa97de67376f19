"""The CUDA reducible (RNN rounds) and generic (cooperative loop) engines, in the simulator.

Each engine's ``run`` gets a NumPy condensed matrix (squared for ward, centroid
and median) and its merge log goes through ``_tree.merge_log_to_linkage``:
on generic-position data the result must be scipy's Z (ids exact, heights to
rtol 1e-12 in float64); under ties it must be a valid linkage whose every merge
is at the current global minimum (``reference.replay_check``). Sizes stay tiny:
simulated threads are Python threads. On a GPU machine the same engines run
for real (tests/test_gpu.py).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster.hierarchy import is_monotonic, is_valid_linkage
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist

from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage
from gpu_hclust.kernels import cuda_generic, cuda_reducible, formulas
from reference import replay_check

REDUCIBLE = ["complete", "average", "weighted", "ward"]
GENERIC = ["centroid", "median"]
ENGINES = {m: cuda_reducible for m in REDUCIBLE} | {m: cuda_generic for m in GENERIC}


def _condensed(X, method, dtype=np.float64):
    y = pdist(X)
    if METHODS[method].squared:
        y = y * y
    return y.astype(dtype)


def _linkage(X, method, dtype=np.float64, **options):
    n = X.shape[0]
    spec = METHODS[method]
    D = _condensed(X, method, dtype)
    a, b, h = ENGINES[method].run(D, n, spec.code, xp=np, tpb=32, **options)
    assert a.dtype == np.int64 and b.dtype == np.int64 and h.dtype == np.float64
    assert a.shape == b.shape == h.shape == (n - 1,)
    return merge_log_to_linkage(a, b, h, n, spec)


@pytest.mark.parametrize("method", REDUCIBLE + GENERIC)
def test_float64_equals_scipy(rng, method):
    X = rng.standard_normal((24, 3))
    Z = _linkage(X, method)
    Zs = scipy_linkage(X, method)
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12)


# float32 matrices through these engines: test_cuda_sim.test_linkage_condensed_matches_scipy.


def test_reducible_many_blocks_and_grid_stride(rng):
    # 40 slots over two 32-thread blocks (compaction across blocks) with one block
    # rescanning every stale row and one pair per grid row (both loops wrap).
    X = rng.standard_normal((40, 2))
    Z = _linkage(X, "average", max_blocks=1)
    Zs = scipy_linkage(X, "average")
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12)


@pytest.mark.parametrize("method", REDUCIBLE + GENERIC)
def test_ties_give_a_valid_replayable_tree(rng, method):
    # Points on a 4x4 grid with duplicates: equal distances everywhere, zero ones too.
    X = np.round(rng.uniform(0, 3, size=(22, 2)))
    Z = _linkage(X, method)
    assert is_valid_linkage(Z, throw=True)
    if method in REDUCIBLE:
        assert is_monotonic(Z)
    replay_check(Z, pdist(X), method)


@pytest.mark.parametrize("method", ["complete", "centroid"])
def test_nan_distances_raise_instead_of_hanging(method):
    n = 5
    D = np.full(n * (n - 1) // 2, np.nan)
    with pytest.raises(ValueError, match="no finite distance is left.*(reciprocal|mergeable) pair"):
        ENGINES[method].run(D, n, METHODS[method].code, xp=np, tpb=32)


@pytest.mark.parametrize("method", ["ward", "median"])
def test_tiny_inputs(method):
    code = METHODS[method].code
    for n in (0, 1):
        a, b, h = ENGINES[method].run(np.zeros(0), n, code, xp=np, tpb=32)
        assert a.shape == b.shape == h.shape == (0,)
    a, b, h = ENGINES[method].run(np.array([4.0]), 2, code, xp=np, tpb=32)
    assert sorted([int(a[0]), int(b[0])]) == [0, 1] and h[0] == 4.0


@pytest.mark.parametrize("engine", [cuda_reducible, cuda_generic])
def test_tpb_must_be_a_power_of_two(engine):
    with pytest.raises(ValueError, match="tpb .* power of two"):
        engine.run(np.ones(3), 3, formulas.COMPLETE, xp=np, tpb=48)


@pytest.mark.parametrize("engine", [cuda_reducible, cuda_generic])
def test_ptx_signatures_cover_every_kernel_for_both_precisions(engine):
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    kernels = {name for name, obj in vars(engine).items()
               if isinstance(obj, FakeCUDAKernel) and not obj._device
               and obj.fn.__module__ == engine.__name__}
    assert kernels == set(engine.PTX_SIGNATURES)
    takes_D = {"rescan_rows", "find_pairs", "update_pairs", "gather_rows", "remap_slots",
               "first_rows", "first_columns", "first_combine", "init_upper", "generic_loop"}
    for name, sigs in engine.PTX_SIGNATURES.items():
        f32 = [s for s in sigs if "float32" in s]
        assert bool(f32) == (name in takes_D), name
        for sig in f32:  # the same kernel for float64 data
            assert sig.replace("float32", "float64") in sigs, (name, sig)


def test_rounds_are_logged_in_slot_order():
    """Pairs of a round arrive in thread order (an atomic counter); the driver
    sorts each round by slot, so tied heights give the same Z on every run."""
    from gpu_hclust.kernels.cuda_reducible import _slot_order_within_rounds

    a = np.array([7, 2, 0, 5, 1], dtype=np.int64)
    b = np.array([3, 6, 4, 0, 2], dtype=np.int64)
    h = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    a, b, h = _slot_order_within_rounds(a, b, h, [0, 3])  # rounds: rows 0-2, rows 3-4
    assert a.tolist() == [0, 2, 7, 5, 1] and b.tolist() == [4, 6, 3, 0, 2]
    assert h.tolist() == [1.0, 1.0, 1.0, 2.0, 2.0]
