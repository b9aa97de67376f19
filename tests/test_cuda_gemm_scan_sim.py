"""The GEMM scans of average/cosine (kernels/cuda_gemm_scan) in numba-cuda's simulator.

The GEMM path must leave exactly the state the tile kernels leave: every
row's list, bound, nn and nnd after ``_Lists.scan`` (``rnn_scan`` +
``rnn_combine``) and ``_Lists.fresh`` (``fresh_pass`` + ``rnn_combine``), so
the tree is the same bit for bit. Each test runs both paths on copies of one
state and compares them, on random and near-tied data (rows almost parallel,
duplicates), with short lists (``RNN_TOP_K`` 1-3: lists run out, bounds come
from offers) and small slabs (several row slabs and column shares). n <= 40,
32 threads per block.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy.cluster.hierarchy import is_monotonic, is_valid_linkage

from gpu_hclust import _backend, _lowmem
from gpu_hclust._methods import METHODS
from gpu_hclust.kernels import cuda_gemm_scan, cuda_vector, formulas, launch, metrics
from lowmem_common import assert_same_linkage, lowmem_linkage, scipy_reference

SIMULATED = _backend.simulator_enabled()
SIM_SWITCH_INTERVAL = 5e-3  # long compute phases between barriers (see test_lowmem_cuda_sim)
pytestmark = pytest.mark.skipif(not SIMULATED, reason="compares simulator runs of both paths")

STATE = ("LW", "LJ", "BW", "BJ", "nn", "nnd")


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

def _random(rng, n, d):
    return rng.standard_normal((n, d))


def _near_parallel(rng, n, d):
    """Rows within ~1e-9 of a few directions: cosine keys agree to ~1e-16,
    below the GEMM's rounding, and some rows are exact duplicates."""
    base = rng.standard_normal((3, d))
    X = base[rng.integers(0, 3, n)] * rng.uniform(0.5, 2.0, (n, 1))
    X += 1e-9 * rng.standard_normal((n, d)) * (rng.random((n, 1)) < 0.7)
    X[n // 2] = X[0]
    X[n // 2 + 1] = 3.0 * X[1]  # parallel: key 0 to a rounding error
    return X


DATA = {"random": _random, "near_parallel": _near_parallel}


def _unit_columns(X, dtype=np.float64):
    """The engine's CT for average/cosine (``_lowmem.prepare``)."""
    CT, _, code, mcode = _lowmem.prepare(X, METHODS["average"], "cosine", np.dtype(dtype))
    assert (code, mcode) == (formulas.AVERAGE, metrics.COSINE)
    return CT


# --------------------------------------------------------------------------
# One step of the lists on both paths
# --------------------------------------------------------------------------

def _state(CT, kk):
    """The device state of ``cuda_vector._rnn_rounds`` before round 0 (NumPy, simulator)."""
    n = CT.shape[1]
    return dict(CT=CT, size=np.ones(n), extra=np.zeros(n), flag=np.zeros(n, np.int8),
                LW=np.full((kk, n), np.inf), LJ=np.full((kk, n), -1, np.int32),
                BW=np.full(n, np.inf), BJ=np.full(n, -1, np.int32),
                nn=np.zeros(n, np.int32), nnd=np.full(n, np.inf))


def _copy(dv):
    return {k: v.copy() for k, v in dv.items()}


def _lists(monkeypatch, dv, kk, gemm):
    monkeypatch.setattr(cuda_gemm_scan, "ENABLED", gemm)
    lists = cuda_vector._Lists(dv, np, 32, launch.stream_for(np), formulas.AVERAGE,
                               metrics.COSINE, kk)
    assert (lists.gemm is not None) == gemm
    return lists


def _both(monkeypatch, dv, kk, step):
    """(tile state, GEMM state) after ``step(lists)`` on copies of dv."""
    out = []
    for gemm in (False, True):
        state = _copy(dv)
        step(_lists(monkeypatch, state, kk, gemm))
        out.append(state)
    return out


def _assert_same_state(tile, gemm):
    for name in STATE:
        assert_array_equal(gemm[name], tile[name], err_msg=name)


def _small_slabs(monkeypatch, rows=8):
    """Row slabs of ``rows`` rows and column shares of 12: several of each at n = 24-40."""
    monkeypatch.setattr(cuda_gemm_scan, "SLAB_COLS", 12)
    monkeypatch.setattr(cuda_gemm_scan, "SLAB_BYTES",
                        rows * 12 * cuda_gemm_scan.SLAB_ELEM_BYTES)


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("kk, slabs", [(2, False), (3, True), (16, False)])
def test_scan_gives_the_tile_scans_lists_and_bounds(rng, monkeypatch, data, kk, slabs):
    # kk = 16 > the 12 columns of the column subset: lists not full, bound "none"
    if slabs:
        _small_slabs(monkeypatch)
    n = 32
    CT = _unit_columns(DATA[data](rng, n, 9))
    dv = _state(CT, kk)
    rows = rng.permutation(n)[:20].astype(np.int32)
    for cols in (np.arange(n, dtype=np.int32), np.sort(rng.permutation(n)[:12]).astype(np.int32)):
        tile, gemm = _both(monkeypatch, dv, kk, lambda lists: lists.scan(rows, len(rows), cols))
        _assert_same_state(tile, gemm)
        assert (tile["LJ"][:, rows] >= 0).any()  # the scan wrote something


def _after_merges(dv, kk, pairs):
    """The state a round leaves before ``fresh``: lists from a full scan, the
    pairs merged (kept slot: a mean unit vector, flag 1; other slot gone, flag 2),
    and ``rnn_drop`` applied. Returns (new slots, active slots)."""
    n = dv["CT"].shape[1]
    act = np.arange(n, dtype=np.int32)
    cuda_vector._Lists(dv, np, 32, launch.stream_for(np), formulas.AVERAGE, metrics.COSINE,
                       kk).scan(act, n, act)
    active = np.ones(n, np.int8)
    for i, j in pairs:
        dv["CT"][:, i] = 0.5 * (dv["CT"][:, i] + dv["CT"][:, j])  # mean of two unit vectors
        dv["size"][i] = 2.0
        dv["flag"][i], dv["flag"][j] = 1, 2
        active[j] = 0
    cuda_vector.rnn_drop[1, 32](active, dv["flag"], dv["LW"], dv["LJ"], np.int64(kk), np.int64(n))
    new = np.array([i for i, _ in pairs], dtype=np.int32)
    return new, np.flatnonzero(active).astype(np.int32)


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("kk, slabs", [(1, False), (2, False), (3, True)])
def test_fresh_gives_fresh_pass_lists_bounds_and_offers(rng, monkeypatch, data, kk, slabs):
    if slabs:
        _small_slabs(monkeypatch, rows=4)  # the 6 new clusters in 2 row slabs
    n = 36
    CT = _unit_columns(DATA[data](rng, n, 7))
    dv = _state(CT, kk)
    perm = rng.permutation(n)
    new, act = _after_merges(dv, kk, [(min(a, b), max(a, b))
                                           for a, b in zip(perm[:6], perm[6:12])])
    tile, gemm = _both(monkeypatch, dv, kk, lambda lists: lists.fresh(new, act))
    _assert_same_state(tile, gemm)
    kept = act[dv["flag"][act] == 0]
    # offers happened: some kept row's list or bound now names a new cluster
    assert np.isin(np.concatenate([tile["LJ"][:, kept].ravel(), tile["BJ"][kept]]), new).any()


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("offers", [0, 1])
def test_slab_kernels_select_the_reference_candidates(rng, data, offers):
    # slab_count + slab_emit (the device's selection, reading G in place) give
    # exactly the pairs of ``candidates`` (the array-form rule the counts use)
    n, kk = 30, 3
    CT = _unit_columns(DATA[data](rng, n, 384))
    CT[:, :8] = 0.5 * (CT[:, :8] + CT[:, 8:16])  # some mean vectors (norms < 1)
    R = np.sort(rng.permutation(n)[:7]).astype(np.int32)
    C = np.sort(rng.permutation(n)[:20]).astype(np.int32)
    G = np.matmul(CT[:, R].T, CT[:, C])
    A, B = cuda_gemm_scan.margin_coefficients(CT.shape[0])
    delta = A * cuda_gemm_scan.row_norms(CT[:, R], np) * cuda_gemm_scan.row_norms(
        CT[:, C], np).max() + B
    bw = np.where(rng.random(len(C)) < 0.3, -np.inf, rng.uniform(0.0, 1.0, len(C)))
    bj = np.where(rng.random(len(C)) < 0.2, -1, 5).astype(np.int32)
    thr = np.empty(len(R))
    count = np.zeros(len(R), np.int64)
    I64 = np.int64
    cuda_gemm_scan.slab_count[2, 32](G, R, C, I64(len(R)), I64(len(C)), delta, I64(kk), bw, bj,
                                     I64(offers), thr, count)
    starts = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    total = int(starts[-1])
    pr, pc, pcol = (np.full(total, -1, np.int32) for _ in range(3))
    cuda_gemm_scan.slab_emit[2, 32](G, R, C, I64(len(R)), I64(len(C)), delta, bw, bj,
                                    I64(offers), thr, starts, np.zeros(len(R), np.int64), pr, pc,
                                    pcol)
    sr, sc = np.nonzero(R[:, None] == C[None, :])
    g = cuda_gemm_scan.approx_keys(CT[:, R], CT[:, C], np)
    mask = cuda_gemm_scan.candidates(g, delta, kk, sr, sc, bw if offers else None,
                                     bj if offers else None, np)
    rows = np.repeat(np.arange(len(R)), np.diff(starts))
    assert (pr == R[rows]).all() and (pc == C[pcol]).all()
    assert set(zip(rows.tolist(), pcol.tolist())) == set(zip(*(x.tolist() for x in
                                                             np.nonzero(mask))))
    assert (count >= kk + 1).all()


# --------------------------------------------------------------------------
# Whole linkages
# --------------------------------------------------------------------------

class _Spy:
    """Counts the launches of a simulator kernel (a Python call)."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, 0

    def __getitem__(self, config):
        launch_ = self.kernel[config]

        def call(*args):
            self.calls += 1
            return launch_(*args)
        return call


def _spy(monkeypatch, module, name):
    spy = _Spy(getattr(module, name))
    monkeypatch.setattr(module, name, spy)
    return spy


def _linkage(monkeypatch, X, metric, dtype, gemm, kk):
    monkeypatch.setattr(cuda_gemm_scan, "ENABLED", gemm)
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", kk)
    return lowmem_linkage(X, "average", metric, "cuda", dtype, 32)


# ~15 s each in the simulator (both paths run): one case in the default run.
@pytest.mark.parametrize("metric, dtype", [
    ("cosine", np.float64),
    pytest.param("correlation", np.float64, marks=pytest.mark.slow),
    pytest.param("cosine", np.float32, marks=pytest.mark.slow),
    pytest.param("correlation", np.float32, marks=pytest.mark.slow)])
def test_linkage_equals_the_tile_path_scipy_and_the_cpu_engine(rng, monkeypatch, metric, dtype):
    X = rng.standard_normal((26, 9))
    _small_slabs(monkeypatch)
    scans = _spy(monkeypatch, cuda_vector, "rnn_scan")
    fresh = _spy(monkeypatch, cuda_vector, "fresh_pass")
    keys = _spy(monkeypatch, cuda_gemm_scan, "pair_keys")
    Zg = _linkage(monkeypatch, X, metric, dtype, True, 2)
    assert keys.calls > 0 and scans.calls == 0 and fresh.calls == 0  # the GEMM path ran
    Zt = _linkage(monkeypatch, X, metric, dtype, False, 2)
    assert scans.calls > 0 and fresh.calls > 0
    assert_array_equal(Zg, Zt)  # bit for bit: same merges, same heights
    if dtype == np.float64:
        assert_same_linkage(Zg, scipy_reference(X, "average", metric))
    assert_same_linkage(Zg, lowmem_linkage(X, "average", metric, "cpu", dtype), rtol=1e-12)


def test_near_tied_linkage_equals_the_tile_path(rng, monkeypatch):
    X = _near_parallel(rng, 20, 6)
    Zg = _linkage(monkeypatch, X, "cosine", None, True, 1)
    assert_array_equal(Zg, _linkage(monkeypatch, X, "cosine", None, False, 1))
    # exact ties (duplicates, parallel rows): the CUDA rounds' tie order, not the CPU
    # engine's (README); the tree is a valid, monotonic one
    assert is_valid_linkage(Zg, throw=True) and is_monotonic(Zg)


# --------------------------------------------------------------------------
# The margin
# --------------------------------------------------------------------------

def _exact_keys(CT):
    """Every pair's engine key: the in-order sum of ``metrics.metric_accumulate``."""
    V = CT.astype(np.float64)
    acc = np.zeros((V.shape[1], V.shape[1]))
    for k in range(V.shape[0]):
        acc = metrics.metric_accumulate(metrics.COSINE, acc, V[k][:, None], V[k][None, :], 0.0)
    return np.vectorize(formulas.cluster_distance, otypes=[np.float64])(
        formulas.AVERAGE, metrics.COSINE, acc, 1.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("d, dtype", [(384, np.float64), (384, np.float32), (1000, np.float64)])
def test_margin_covers_the_gemm_error_on_hard_data(rng, d, dtype):
    n = 60
    X = _near_parallel(rng, n, d)
    X[-10:] = rng.standard_normal((10, d)) * np.exp(rng.uniform(-30, 30, (10, 1)))
    CT = _unit_columns(X, dtype)
    # mean unit vectors of clusters of every spread (norms from ~0.2 to 1)
    CT[:, :20] = (CT[:, :20] + CT[:, 20:40] + CT[:, 40:60]) / 3.0
    V = CT.astype(np.float64)
    g = cuda_gemm_scan.approx_keys(V, V, np)
    A, B = cuda_gemm_scan.margin_coefficients(d)
    nu = cuda_gemm_scan.row_norms(V, np)
    delta = A * nu * nu.max() + B
    err = np.abs(g - _exact_keys(CT))
    assert (err <= delta[:, None]).all()
    assert err.max() > 0  # the product really rounds differently: the recheck is needed
    assert delta.max() < 1e-12  # and the margin is not vacuous


def test_margin_grows_with_d_and_rejects_absurd_d():
    a1, b1 = cuda_gemm_scan.margin_coefficients(10)
    a2, b2 = cuda_gemm_scan.margin_coefficients(1000)
    assert 0 < a1 < a2 < 1e-12 and b1 <= b2 < 1e-14
    with pytest.raises(ValueError, match="GEMM margin undefined for d"):
        cuda_gemm_scan.margin_coefficients(2 ** 52)


def test_without_the_margin_the_filter_can_lose_candidates(rng):
    # The filter itself can fail: on near-tied keys, candidates chosen with a
    # zero margin miss pairs among the exact K + 1 first (so the margin matters).
    missed = 0
    for _ in range(20):
        CT = _unit_columns(_near_parallel(rng, 40, 384))
        V = CT.astype(np.float64)
        e = _exact_keys(CT)
        g = cuda_gemm_scan.approx_keys(V, V, np)
        idx = np.arange(40)
        mask = cuda_gemm_scan.candidates(g, np.zeros(40), 2, idx, idx, xp=np)
        np.fill_diagonal(e, np.inf)
        first = np.lexsort((np.broadcast_to(idx, e.shape), e), axis=1)[:, :3]
        missed += int((~np.take_along_axis(mask, first, 1)).sum())
    assert missed > 0


# --------------------------------------------------------------------------
# The switch and the kernels
# --------------------------------------------------------------------------

def test_switch_default_is_off_in_the_simulator_and_only_for_average_cosine(monkeypatch):
    monkeypatch.setattr(cuda_gemm_scan, "ENABLED", None)
    assert not cuda_gemm_scan.enabled(formulas.AVERAGE, metrics.COSINE)
    monkeypatch.setattr(cuda_gemm_scan, "ENABLED", True)
    assert cuda_gemm_scan.enabled(formulas.AVERAGE, metrics.COSINE)
    assert not cuda_gemm_scan.enabled(formulas.AVERAGE, metrics.SQEUCLIDEAN)
    assert not cuda_gemm_scan.enabled(formulas.WARD, metrics.COSINE)


def test_ptx_signatures_cover_every_kernel():
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    kernels = {name for name, obj in vars(cuda_gemm_scan).items()
               if isinstance(obj, FakeCUDAKernel) and not obj._device
               and obj.fn.__module__ == cuda_gemm_scan.__name__}
    assert kernels == set(cuda_gemm_scan.PTX_SIGNATURES)
    for sig in cuda_gemm_scan.PTX_SIGNATURES["pair_keys"]:
        assert sig.replace("float32", "float64") in cuda_gemm_scan.PTX_SIGNATURES["pair_keys"]
