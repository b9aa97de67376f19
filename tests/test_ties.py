"""Ties and duplicates: scipy's tree on the CPU dense path, a valid one elsewhere.

CPU dense path (``backend='cpu', low_memory=False``, float64): ``Z`` equals
scipy 1.17's (ids and sizes exact, heights rtol 1e-12) for all 7 methods on
integer grids, duplicated rows, binary data, rounded condensed matrices and
all-equal distances, from observations and from condensed input. The kernels
follow scipy's algorithms and arithmetic (``kernels/cpu_nnchain.py``,
``kernels/cpu_generic.py``, ``formulas.lw_update_scipy_form``), so this is an
equality, not a "some valid tree" check.

Memory-saving engines (CPU, and CUDA in the simulator) and the CUDA dense
engine work on squared distances and merge in rounds, so under ties they may
build another of the tied trees: they must give the same ``Z`` on every run,
a valid linkage, every merge at the current minimum of the method's
Lance-Williams matrix (``reference.replay_check``) and, for single linkage,
scipy's heights.

A default run covers a few dozen seeds per kind; ``-m slow`` sweeps hundreds.
"""

import threading

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import num_obs_y, pdist

import gpu_hclust
from gpu_hclust._methods import METHODS, memory_saving_pairs
from gpu_hclust.kernels import cpu_generic, cpu_nnchain, formulas

from reference import TIED_KINDS, replay_check, tied_input

ALL_METHODS = list(METHODS)
MONOTONE = {"single", "complete", "average", "weighted", "ward"}
DEFAULT_SEEDS = range(12)
SLOW_SEEDS = range(12, 112)
NO_FINITE = "no finite distance is left"


def _inputs(X, y):
    """(label, input) pairs: observations where the kind has them, condensed always."""
    return ([] if X is None else [("observations", X)]) + [("condensed", y)]


def assert_scipys_tree(inp, method, **kw):
    """The CPU dense Z is scipy's: ids and sizes exact, heights rtol 1e-12.

    Where scipy raises ValueError (its generic loop finds no finite
    neighbour), so must we.
    """
    try:
        Zs = sch.linkage(inp, method)
    except ValueError:
        with pytest.raises(ValueError, match=NO_FINITE):
            gpu_hclust.linkage(inp, method, backend="cpu", low_memory=False, **kw)
        return
    Z = gpu_hclust.linkage(inp, method, backend="cpu", low_memory=False, **kw)
    assert Z.dtype == np.float64 and Z.shape == Zs.shape
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12, atol=0)


def _check_cpu_dense(kind, method, seed):
    X, y = tied_input(kind, seed)
    for label, inp in _inputs(X, y):
        try:
            assert_scipys_tree(inp, method)
        except AssertionError as exc:
            n = num_obs_y(y)
            raise AssertionError(f"{kind}, seed {seed}, {label}, n = {n}: {exc}") from exc


# --------------------------------------------------------------------------
# CPU dense path: scipy's tree.


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("kind", TIED_KINDS)
def test_cpu_dense_is_scipys_tree(kind, method, seed):
    _check_cpu_dense(kind, method, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("kind", TIED_KINDS)
def test_cpu_dense_is_scipys_tree_sweep(kind, method, seed):
    _check_cpu_dense(kind, method, seed)


@pytest.mark.parametrize("method", ["ward", "centroid", "median"])
def test_issue_grid_example(method):
    # The reported case: integer grid, values 1..4, n = 90..300, d = 2..10,
    # where the squared form gave other trees (e.g. a height 2.41 for 2.99).
    rng = np.random.default_rng(11)
    for n, d in [(90, 2), (200, 5), (300, 10)]:
        X = rng.integers(1, 5, size=(n, d)).astype(np.float64)
        assert_scipys_tree(X, method)
        assert_scipys_tree(pdist(X), method)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_float32_under_ties(method):
    # float32 storage: valid and repeatable; where every stored value is an
    # exact small integer and the update only picks one (single, complete),
    # the tree is still scipy's.
    _, y = tied_input("rounded", 3, 120)
    Z = gpu_hclust.linkage(y, method, backend="cpu", low_memory=False, dtype=np.float32)
    sch.is_valid_linkage(Z, throw=True)
    assert_array_equal(Z, gpu_hclust.linkage(y, method, backend="cpu", low_memory=False,
                                             dtype=np.float32))
    if method in ("single", "complete"):
        assert_array_equal(Z, sch.linkage(y, method))


# --------------------------------------------------------------------------
# No finite candidate left: ValueError, never a hang.


def _run_in_thread(fn, timeout=300):
    """Run fn in a daemon thread; fail (not hang) if it does not finish.

    The kernels release the GIL, so a spinning kernel cannot block the
    join. Returns the exception fn raised (None if it returned).
    """
    box = {}

    def target():
        try:
            fn()
        except BaseException as exc:  # handed to the test thread
            box["exc"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "linkage did not return: a merge loop spins"
    return box.get("exc")


@pytest.mark.parametrize("method", ["centroid", "median", "ward"])
def test_overflowing_updates_rescale_not_hang(method):
    # The issue's repro: distances ~1e155 square to inf inside the updates.
    # scipy raises ValueError for centroid/median (its fast_linkage finds no
    # neighbour) and returns NaN heights for ward; the exact answer is
    # representable, so the CPU engine rescales by a power of two (exact) and
    # returns it: scipy's tree of the scaled-down input, heights scaled back.
    y = pdist(np.random.default_rng(0).normal(size=(50, 3))) * 1e155
    if method != "ward":
        with pytest.raises(ValueError, match="find_min_dist cannot find any neighbors"):
            sch.linkage(y, method)
    box = {}
    exc = _run_in_thread(lambda: box.setdefault("Z", gpu_hclust.linkage(y, method, backend="cpu")))
    assert exc is None, f"linkage raised {exc!r}"
    scale = 2.0 ** -600
    Zs = sch.linkage(y * scale, method)
    np.testing.assert_array_equal(box["Z"][:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    np.testing.assert_array_equal(box["Z"][:, 2], Zs[:, 2] / scale)


@pytest.mark.parametrize("module, code", [
    (cpu_nnchain, formulas.COMPLETE),
    (cpu_nnchain, formulas.WARD),
    (cpu_generic, formulas.CENTROID),
    (cpu_generic, formulas.MEDIAN),
])
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_kernels_raise_when_nothing_is_finite(module, code, bad):
    # Validation keeps such input out of linkage; the kernels must still stop
    # rather than follow slot -1 (previously an endless loop / wild index).
    D = np.full(6, bad)
    with pytest.raises(ValueError, match=NO_FINITE):
        module.run(D, 4, code)


def test_generic_raises_when_updates_turn_nan():
    # Finite input whose centroid updates are inf - inf = NaN: the rescan of
    # the merged row finds nothing finite.
    D = np.array([1.0, 1e200, 1e200])  # n = 3: d(0,1) = 1, the rest overflow when squared
    with pytest.raises(ValueError, match=NO_FINITE):
        cpu_generic.run(D, 3, formulas.CENTROID)


# --------------------------------------------------------------------------
# Other paths: deterministic, valid, replayable; single: scipy's heights.


def _lowmem_pairs():
    return memory_saving_pairs()


def _observations(kind, seed, n_max, metric):
    X, _ = tied_input(kind, seed, n_max)
    if metric == "cosine":
        X = X[np.abs(X).sum(axis=1) > 0]  # scipy: undefined for zero rows
    elif metric == "correlation":
        X = X[X.std(axis=1) > 0]  # undefined for constant rows
    return X


def assert_valid_tie_break(Z1, Z2, y, method, metric="euclidean"):
    """Same Z twice, a valid linkage, replayable; single: scipy's heights."""
    assert_array_equal(Z1, Z2)  # deterministic
    sch.is_valid_linkage(Z1, throw=True)
    if method in MONOTONE:
        assert sch.is_monotonic(Z1)
    # cosine/correlation are 1 - similarity: an absolute error near 0
    atol = 1e-14 if metric in ("cosine", "correlation") else 0.0
    replay_check(Z1, y, method, atol=atol)
    if method == "single":
        assert_allclose(np.sort(Z1[:, 2]), np.sort(sch.linkage(y, "single")[:, 2]),
                        rtol=1e-12, atol=atol)


def _check_lowmem(kind, method, metric, seed, backend, n_max):
    X = _observations(kind, seed, n_max, metric)
    kw = dict(metric=metric, backend=backend, low_memory=True)
    Z1 = gpu_hclust.linkage(X, method, **kw)
    Z2 = gpu_hclust.linkage(X, method, **kw)
    assert_valid_tie_break(Z1, Z2, pdist(X, metric), method, metric)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method, metric", _lowmem_pairs())
@pytest.mark.parametrize("kind", ["grid", "duplicates", "binary"])
def test_cpu_memory_saving_valid_tie_break(kind, method, metric, seed):
    if kind == "binary" and metric in ("cosine", "correlation"):
        pytest.skip("0/1 rows: mostly zero or constant, undefined for this metric")
    _check_lowmem(kind, method, metric, seed, "cpu", 150)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 40))
@pytest.mark.parametrize("method, metric", _lowmem_pairs())
@pytest.mark.parametrize("kind", ["grid", "duplicates", "binary"])
def test_cpu_memory_saving_valid_tie_break_sweep(kind, method, metric, seed):
    if kind == "binary" and metric in ("cosine", "correlation"):
        pytest.skip("0/1 rows: mostly zero or constant, undefined for this metric")
    _check_lowmem(kind, method, metric, seed, "cpu", 300)


def _check_cuda_dense(kind, method, seed, n_max):
    _, y = tied_input(kind, seed, n_max)
    Z1 = gpu_hclust.linkage(y, method, backend="cuda", low_memory=False)
    Z2 = gpu_hclust.linkage(y, method, backend="cuda", low_memory=False)
    assert_valid_tie_break(Z1, Z2, y, method)


# Simulator: tiny n (simulated threads are Python threads, seconds per run);
# one method per engine family by default, all of them under -m slow.
@pytest.mark.parametrize("method", ["single", "complete", "ward", "centroid"])
def test_cuda_dense_valid_tie_break(method):
    _check_cuda_dense("grid", method, 0, 14)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("kind", TIED_KINDS)
def test_cuda_dense_valid_tie_break_sweep(kind, method, seed):
    _check_cuda_dense(kind, method, seed, 32)


@pytest.mark.parametrize("method, metric", [("single", "euclidean"), ("ward", "euclidean")])
def test_cuda_memory_saving_valid_tie_break(method, metric):
    _check_lowmem("grid", method, metric, 0, "cuda", 14)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("method, metric", _lowmem_pairs())
@pytest.mark.parametrize("kind", ["grid", "duplicates", "binary"])
def test_cuda_memory_saving_valid_tie_break_sweep(kind, method, metric, seed):
    if kind == "binary" and metric in ("cosine", "correlation"):
        pytest.skip("0/1 rows: mostly zero or constant, undefined for this metric")
    _check_lowmem(kind, method, metric, seed, "cuda", 32)
