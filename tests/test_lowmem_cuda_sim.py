"""Memory-saving linkage CUDA kernels (kernels/cuda_vector) in numba-cuda's simulator.

Simulated threads are Python threads, so n <= 40, 32 threads per block, at most
two blocks (``launch.blocks``). n = 40 with tpb = 32 crosses a row block and a
column tile (``TILE_C``); d = 9 crosses a coordinate chunk (``TILE_K``). On a
GPU machine (simulator off) the same tests run on the real kernels with CuPy.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster.hierarchy import is_monotonic, is_valid_linkage
from scipy.spatial.distance import pdist

from gpu_hclust import _backend, _lowmem
from gpu_hclust._methods import METHODS, memory_saving_pairs
from gpu_hclust.kernels import cuda_vector, formulas, metrics
from lowmem_common import assert_same_linkage, lowmem_linkage, scipy_reference
from reference import replay_check

SIMULATED = _backend.simulator_enabled()
# Long compute phases between barriers: Python's default interval, not conftest's
# 1 ms (which made this module 6x slower, see conftest).
SIM_SWITCH_INTERVAL = 5e-3


def _run(X, method, metric, backend="cuda", dtype=None, tpb=32):
    """``lowmem_linkage`` on the CUDA kernels by default, at the simulator's block size."""
    return lowmem_linkage(X, method, metric, backend, dtype, tpb)


@pytest.mark.skipif(not SIMULATED, reason="a real GPU is in use: the simulator is off")
def test_simulator_is_active():
    from numba import config, cuda
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    assert cuda.implementation == "NVIDIA"
    assert config.ENABLE_CUDASIM
    assert isinstance(cuda_vector.point_best, FakeCUDAKernel)


# Every pair of the support table, so a pair added there is simulated here too.
PAIRS = memory_saving_pairs()


@pytest.mark.parametrize("method, metric", PAIRS)
def test_equals_scipy(rng, method, metric):
    X = rng.standard_normal((20, 3))
    assert_same_linkage(_run(X, method, metric), scipy_reference(X, method, metric))


# centroid here takes ~30 s in the simulator; test_equals_scipy covers it in the default run.
@pytest.mark.parametrize("method, metric", [("single", "euclidean"), ("ward", "euclidean"),
                                            pytest.param("centroid", "euclidean",
                                                         marks=pytest.mark.slow),
                                            ("average", "cosine")])
def test_across_row_blocks_tiles_and_chunks(rng, method, metric):
    X = rng.standard_normal((40, 9))
    assert_same_linkage(_run(X, method, metric), scipy_reference(X, method, metric))


def test_single_rescans_points_whose_candidates_joined_their_component(rng):
    # Tight blobs of 8 points: every point's TOP_K candidates lie in its own blob,
    # so once blobs form the lists run out and points are rescanned or skipped
    # by their bound (point_carry / point_select), over several rounds.
    assert cuda_vector.TOP_K < 7
    centres = rng.uniform(-50, 50, size=(5, 3))
    X = np.repeat(centres, 8, axis=0) + 0.1 * rng.standard_normal((40, 3))
    assert_same_linkage(_run(X, "single", "euclidean"), scipy_reference(X, "single", "euclidean"))


@pytest.mark.parametrize("method, metric", [("single", "chebyshev"), ("ward", "euclidean"),
                                            ("median", "euclidean"), ("average", "sqeuclidean")])
def test_same_tree_as_the_cpu_engine(rng, method, metric):
    X = rng.standard_normal((24, 4))
    Zg = _run(X, method, metric)
    Zc = _run(X, method, metric, backend="cpu")
    assert_same_linkage(Zg, Zc, rtol=1e-12)


def test_float32_storage_is_valid_and_close(rng):
    X = rng.standard_normal((16, 3))
    for method, metric in [("single", "euclidean"), ("ward", "euclidean"), ("median", "euclidean")]:
        Z = _run(X, method, metric, dtype=np.float32)
        assert is_valid_linkage(Z, throw=True)
        assert_allclose(Z[:, 2], scipy_reference(X, method, metric)[:, 2], rtol=1e-5)


def test_float32_storage_rounds_the_data_once(rng):
    # Single linkage never updates the stored points: float32 storage with float64
    # arithmetic gives the float64 heights of the rounded data (the centred data:
    # euclidean is translation-invariant, and power-of-two scaling commutes with rounding).
    X = 1000.0 + rng.standard_normal((16, 5))
    rounded = (X - X.mean(axis=0)).astype(np.float32).astype(np.float64)
    assert_same_linkage(_run(X, "single", "euclidean", dtype=np.float32),
                        _run(rounded, "single", "euclidean"), rtol=1e-13)


@pytest.mark.parametrize("method, metric", [("single", "euclidean"), ("ward", "euclidean"),
                                            ("centroid", "euclidean"), ("average", "sqeuclidean")])
def test_ties_give_a_valid_replayable_tree(rng, method, metric):
    X = np.round(rng.uniform(0, 3, size=(18, 2)))  # a 4x4 grid with duplicates
    Z = _run(X, method, metric)
    assert is_valid_linkage(Z, throw=True)
    if method not in ("centroid", "median"):
        assert is_monotonic(Z)
    replay_check(Z, pdist(X, metric), method)


def test_two_points(rng):
    X = np.array([[0.0, 1.0], [3.0, 5.0]])
    for method, metric in [("single", "euclidean"), ("ward", "euclidean"), ("median", "euclidean")]:
        assert_same_linkage(_run(X, method, metric), scipy_reference(X, method, metric))


def test_tpb_must_be_a_power_of_two(rng):
    X = rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match="tpb .* power of two"):
        _run(X, "ward", "euclidean", tpb=48)


def test_run_rejects_methods_without_a_vector_path():
    CT = np.zeros((2, 4))
    with pytest.raises(ValueError, match="no memory-saving path for method code"):
        cuda_vector.run(CT, np.ones(4), formulas.COMPLETE, metrics.EUCLIDEAN, tpb=32)


@pytest.mark.skipif(not SIMULATED, reason="inspects simulator kernel objects")
def test_ptx_signatures_cover_every_kernel_for_both_precisions():
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    kernels = {name for name, obj in vars(cuda_vector).items()
               if isinstance(obj, FakeCUDAKernel) and not obj._device
               and obj.fn.__module__ == cuda_vector.__name__}
    assert kernels == set(cuda_vector.PTX_SIGNATURES)
    takes_data = {"point_best", "rnn_scan", "fresh_pass", "merge_pairs"}  # float32 or float64
    for name, sigs in cuda_vector.PTX_SIGNATURES.items():
        f32 = [s for s in sigs if "float32" in s]
        assert bool(f32) == (name in takes_data), name
        for sig in f32:
            assert sig.replace("float32", "float64") in sigs, (name, sig)


@pytest.mark.parametrize("method", ["single", "ward", "median"])
def test_progress_counter_reaches_n_minus_1(rng, method):
    X = rng.standard_normal((10, 2))
    counter = np.zeros(1, dtype=np.int64)
    _lowmem.run_vector(X, METHODS[method], "euclidean", "cuda", None, tpb=32, counter=counter)
    assert counter[0] == 9


# --------------------------------------------------------------------------
# Reducible rounds (ward, average): per-row candidate lists
# --------------------------------------------------------------------------

class _CountRescans:
    """Wraps ``cuda_vector.rnn_scan`` (simulator: a Python call) to record the rows
    of every rescan launch (round 0's first pass included)."""

    def __init__(self, kernel):
        self.kernel, self.rows = kernel, []

    def __getitem__(self, config):
        launch_ = self.kernel[config]

        def call(*args):
            self.rows.append(int(args[4]))
            return launch_(*args)
        return call


def _rescans(monkeypatch, X, method, metric, k, tpb=32):
    """Z with ``RNN_TOP_K = k`` and the rows of each rescan launch."""
    spy = _CountRescans(cuda_vector.rnn_scan)
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", k)
    monkeypatch.setattr(cuda_vector, "rnn_scan", spy)
    return _run(X, method, metric, tpb=tpb), spy.rows


@pytest.mark.skipif(not SIMULATED, reason="counts simulator kernel calls")
@pytest.mark.parametrize("method, metric", [("ward", "euclidean"), ("average", "cosine"),
                                            pytest.param("average", "sqeuclidean",
                                                         marks=pytest.mark.slow)])
def test_exhausted_lists_equal_scipy_and_the_cpu_engine(rng, monkeypatch, method, metric):
    # K = 1: a row keeps one candidate, so merged neighbours empty its list and
    # offers push entries out and lower the bound every round; rows are rescanned
    # after round 0 (the lists ran out), and the tree is still scipy's. Round 0
    # is the symmetric first pass (fresh_pass by segments), not a scan.
    X = rng.standard_normal((40, 9))
    Z1, rows1 = _rescans(monkeypatch, X, method, metric, 1)
    assert sum(rows1) > 0
    assert_same_linkage(Z1, scipy_reference(X, method, metric))
    assert_same_linkage(Z1, _run(X, method, metric, backend="cpu"), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.skipif(not SIMULATED, reason="counts simulator kernel calls")
def test_longer_lists_rescan_fewer_rows_for_the_same_tree(rng, monkeypatch):
    X = rng.standard_normal((40, 9))
    Z1, rows1 = _rescans(monkeypatch, X, "ward", "euclidean", 1)
    Z8, rows8 = _rescans(monkeypatch, X, "ward", "euclidean", 8)
    assert sum(rows8) < sum(rows1)
    assert_array_equal(Z8, Z1)


@pytest.mark.parametrize("tpb", [64, pytest.param(128, marks=pytest.mark.slow),
                                 pytest.param(256, marks=pytest.mark.slow)])
def test_lists_at_every_block_size(rng, monkeypatch, tpb):
    # Blocks wider than the rows: most threads hold no row, and fresh_pass's
    # offers go through every thread's shared slot.
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", 2)
    X = rng.standard_normal((12, 3))
    Z = _run(X, "ward", "euclidean", tpb=tpb)
    assert_same_linkage(Z, scipy_reference(X, "ward", "euclidean"))


# 9-25 s each in the simulator: ward with K = 1 in the default run, the rest under slow.
@pytest.mark.parametrize("method, metric, k", [
    ("ward", "euclidean", 1),
    pytest.param("ward", "euclidean", 3, marks=pytest.mark.slow),
    pytest.param("average", "sqeuclidean", 1, marks=pytest.mark.slow),
    pytest.param("average", "sqeuclidean", 3, marks=pytest.mark.slow)])
def test_lists_under_ties_are_deterministic_and_replay_valid(rng, monkeypatch, method, metric, k):
    # Duplicates and equal distances on an integer grid: the (distance, slot)
    # order decides, never thread arrival, so two runs give the same Z.
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", k)
    X = np.round(rng.uniform(0, 3, size=(24, 2)))
    Z = _run(X, method, metric)
    assert is_valid_linkage(Z, throw=True)
    assert is_monotonic(Z)
    replay_check(Z, pdist(X, metric), method)
    assert_array_equal(_run(X, method, metric), Z)


@pytest.mark.parametrize("k", [0, cuda_vector.RNN_TOP_K_MAX + 1])
def test_list_length_is_checked(rng, monkeypatch, k):
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", k)
    with pytest.raises(ValueError, match="RNN_TOP_K must be between 1 and"):
        _run(rng.standard_normal((5, 2)), "ward", "euclidean")


def _check_lists(CT, size, extra, active, LW, LJ, BW, BJ, code, metric):
    """The list invariant, from the summaries as they are: listed keys exact and
    ascending, every listed key before the bound, every unlisted active slot's
    key not before it."""
    mc = formulas.coordinate_metric(code, metric)
    act = np.flatnonzero(active)
    dist = np.vectorize(formulas.cluster_distance, otypes=[np.float64])
    for i in act:
        acc = np.zeros(len(act))
        for k in range(CT.shape[0]):
            acc = metrics.metric_accumulate(mc, acc, CT[k, i], CT[k, act], 0.0)
        key = dict(zip(act.tolist(), dist(code, metric, acc, size[i], size[act], extra[i],
                                          extra[act]).tolist()))
        del key[int(i)]
        listed = [(LW[q, i], int(LJ[q, i])) for q in range(LW.shape[0]) if LJ[q, i] >= 0]
        assert listed == sorted(listed)
        bound = (BW[i], np.inf if BJ[i] < 0 else int(BJ[i]))  # slot -1: after everything
        for w, j in listed:
            assert key[j] == w and (w, j) < bound, (i, j)
        for j in set(key) - {j for _, j in listed}:
            assert not (key[j], j) < bound, (i, j, key[j], bound)


@pytest.mark.skipif(not SIMULATED, reason="reads the device state between kernels")
@pytest.mark.parametrize("method, metric", [("ward", "euclidean"),
                                            pytest.param("average", "sqeuclidean",
                                                         marks=pytest.mark.slow)])
def test_list_invariant_holds_every_round(rng, monkeypatch, method, metric):
    # Checked at every round's rnn_select, with lists short enough (K = 2) to be
    # pushed, emptied and rescanned: an offer that forgot to lower a bound, or a
    # merged slot left listed, breaks it at once (the tree may survive such a bug
    # at this n, so the tree alone is not the test).
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", 2)
    state, checks = {}, []
    scan, select = cuda_vector.rnn_scan, cuda_vector.rnn_select

    class Spy:
        def __init__(self, kernel, before):
            self.kernel, self.before = kernel, before

        def __getitem__(self, config):
            def call(*args):
                self.before(args)
                return self.kernel[config](*args)
            return call

    def on_tiles(args):  # rnn_scan and fresh_pass: the summaries and the codes
        state.update(CT=args[0], size=args[1], extra=args[2], code=args[7], metric=args[8])

    def on_select(args):
        # from round 0 on: the first pass (fresh_pass by segments) made the first lists
        active, LW, LJ, BW, BJ = args[:5]
        _check_lists(state["CT"], state["size"], state["extra"], active, LW, LJ, BW, BJ,
                     int(state["code"]), int(state["metric"]))
        checks.append(int(active.sum()))

    monkeypatch.setattr(cuda_vector, "rnn_scan", Spy(scan, on_tiles))
    monkeypatch.setattr(cuda_vector, "fresh_pass", Spy(cuda_vector.fresh_pass, on_tiles))
    monkeypatch.setattr(cuda_vector, "rnn_select", Spy(select, on_select))
    X = rng.standard_normal((40, 9))
    Z = _run(X, method, metric)
    assert len(checks) >= 3 and checks[0] == 40
    assert_same_linkage(Z, scipy_reference(X, method, metric))


@pytest.mark.skipif(not SIMULATED, reason="calls a device function from the host")
def test_offers_keep_the_k_first_and_lower_the_bound_in_any_order(rng):
    # Reducible linkages rarely offer a key between a full list's last entry and
    # its bound (the rounds above may never do it), so _offer is checked alone:
    # a list of 3 with bound (5.0, 40), offers with tied distances; whatever the
    # order, the list is the 3 first of list + offers before the bound, and the
    # bound the first of the rest (or the old bound).
    base = [(1.0, 10), (3.0, 12), (4.0, 11)]
    offers = [(2.0, 30), (3.0, 5), (4.0, 31), (4.0, 2), (4.5, 33), (5.0, 39), (5.0, 41),
              (6.0, 1)]
    admitted = sorted(base + [o for o in offers if o < (5.0, 40)])
    for trial in range(20):
        k = 1 + trial % 3
        sub = [offers[i] for i in rng.permutation(len(offers))[: 2 + trial % 7]]
        LW = np.full((3, 1), np.inf)
        LJ = np.full((3, 1), -1, dtype=np.int32)
        for q, (w, j) in enumerate(base[:k]):
            LW[q, 0], LJ[q, 0] = w, j
        BW, BJ = np.array([5.0]), np.array([40], dtype=np.int32)
        for w, j in sub:
            cuda_vector._offer(LW, LJ, BW, BJ, 0, k, w, j)
        want = sorted(base[:k] + [o for o in sub if o < (5.0, 40)])
        got = [(LW[q, 0], int(LJ[q, 0])) for q in range(k) if LJ[q, 0] >= 0]
        assert got == want[:k], (k, sub)
        assert (BW[0], int(BJ[0])) == (want[k] if len(want) > k else (5.0, 40)), (k, sub)
    assert len(admitted) > 3


# --------------------------------------------------------------------------
# The symmetric first pass (round 0: each pair once, fresh_pass by segments)
# --------------------------------------------------------------------------

def _full_scan(CT, size, extra, code, metric, i):
    """Row i's (key, slot) over every other slot, ascending: what a full scan sees."""
    mc = formulas.coordinate_metric(code, metric)
    n = CT.shape[1]
    acc = np.zeros(n)
    for k in range(CT.shape[0]):
        acc = metrics.metric_accumulate(mc, acc, CT[k, i], CT[k], 0.0)
    dist = np.vectorize(formulas.cluster_distance, otypes=[np.float64])
    key = dist(code, metric, acc, size[i], size, extra[i], extra)
    return sorted((float(key[j]), j) for j in range(n) if j != i)


class _Spy:
    """A simulator kernel wrapped to call ``before(args)`` ahead of every launch."""

    def __init__(self, kernel, before):
        self.kernel, self.before = kernel, before

    def __getitem__(self, config):
        def call(*args):
            self.before(args)
            return self.kernel[config](*args)
        return call


def _round0_lists(monkeypatch, X, method, metric, k, first_rows, tpb=32):
    """Z, the first-pass launches (rows, columns) and the lists, bounds and
    summaries as round 0's ``rnn_select`` finds them."""
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", k)
    monkeypatch.setattr(cuda_vector, "FIRST_ROWS", first_rows)
    seen, launches = {}, []

    def on_fresh(args):
        launches.append((int(args[4]), int(args[6])))
        seen.update(CT=args[0], size=args[1], extra=args[2], code=int(args[7]),
                    metric=int(args[8]))

    def on_select(args):
        if "LW" not in seen:
            active, LW, LJ, BW, BJ = args[:5]
            seen.update(first_launches=len(launches), active=active.copy(), LW=LW.copy(),
                        LJ=LJ.copy(), BW=BW.copy(), BJ=BJ.copy(), CT0=seen["CT"].copy(),
                        size0=seen["size"].copy(), extra0=seen["extra"].copy())

    monkeypatch.setattr(cuda_vector, "fresh_pass", _Spy(cuda_vector.fresh_pass, on_fresh))
    monkeypatch.setattr(cuda_vector, "rnn_select", _Spy(cuda_vector.rnn_select, on_select))
    Z = _run(X, method, metric, tpb=tpb)
    return Z, launches[:seen["first_launches"]], seen


@pytest.mark.skipif(not SIMULATED, reason="reads the device state between kernels")
@pytest.mark.parametrize("method, metric, k, first_rows, tpb, queue", [
    ("ward", "euclidean", 2, 5, 32, 512),
    ("ward", "euclidean", 2, 9, 32, 3),
    ("average", "cosine", 1, 7, 64, 512),
    pytest.param("average", "sqeuclidean", 2, 4, 32, 512, marks=pytest.mark.slow)])
def test_first_pass_lists_are_the_full_scans(rng, monkeypatch, method, metric, k, first_rows,
                                             tpb, queue):
    # Segments of first_rows rows: each launch covers its segment against itself and
    # every later one (each pair between segments computed once), and after it every
    # row's list is exactly the full scan's k first (key, slot) and its bound the
    # (k + 1)-th: the same lists as round 0's old full scan, so the same tree. A
    # queue of 3 offers makes fresh_pass queue a tile's offers over many rounds.
    monkeypatch.setattr(cuda_vector, "OFFER_QUEUE", queue)
    n = 24
    X = rng.standard_normal((n, 3))
    Z, launches, seen = _round0_lists(monkeypatch, X, method, metric, k, first_rows, tpb)
    starts = list(range(0, n, first_rows))
    assert launches == [(min(first_rows, n - lo), n - lo) for lo in starts]
    pairs = sum(r * c for r, c in launches)
    assert pairs < 0.7 * n * n  # vs n^2 for a full scan
    for i in range(n):
        full = _full_scan(seen["CT0"], seen["size0"], seen["extra0"], seen["code"],
                          seen["metric"], i)
        got = [(seen["LW"][q, i], int(seen["LJ"][q, i])) for q in range(k)]
        assert got == full[:k], i
        assert (seen["BW"][i], int(seen["BJ"][i])) == full[k], i
    assert_same_linkage(Z, scipy_reference(X, method, metric))
    assert_same_linkage(Z, _run(X, method, metric, backend="cpu"), rtol=1e-12)


@pytest.mark.skipif(not SIMULATED, reason="reads the device state between kernels")
def test_first_pass_under_ties_keeps_the_slot_order(monkeypatch):
    # An integer grid with duplicates: many equal keys, decided by slot. Offers
    # from earlier segments and the row side's shares must still give the full
    # scan's (key, slot) order exactly.
    X = np.array([[0, 0], [1, 0], [0, 0], [0, 1], [1, 1], [1, 0], [0, 1], [2, 0], [0, 0],
                  [1, 1], [2, 1], [0, 2], [1, 2], [2, 2], [1, 0], [0, 0]], dtype=np.float64)
    n = X.shape[0]
    Z, launches, seen = _round0_lists(monkeypatch, X, "ward", "euclidean", 2, 3)
    assert len(launches) == 6
    for i in range(n):
        full = _full_scan(seen["CT0"], seen["size0"], seen["extra0"], seen["code"],
                          seen["metric"], i)
        got = [(seen["LW"][q, i], int(seen["LJ"][q, i])) for q in range(2)]
        assert got == full[:2] and (seen["BW"][i], int(seen["BJ"][i])) == full[2], i
    assert is_valid_linkage(Z, throw=True)
    replay_check(Z, pdist(X), "ward")


def test_first_segments_cover_every_slot_once(monkeypatch):
    monkeypatch.setattr(cuda_vector, "FIRST_ROWS", 7)
    segs = cuda_vector.first_segments(40, 32, 2)
    assert [lo for lo, _, _ in segs] == list(range(0, 40, 7))
    assert sum(nr for _, nr, _ in segs) == 40


# --------------------------------------------------------------------------
# Ward's division-free filter (``_ward_loses``)
# --------------------------------------------------------------------------

@pytest.mark.skipif(not SIMULATED, reason="calls a device function from the host")
def test_ward_filter_never_rejects_a_key_at_or_below_the_threshold(rng):
    # The filter may only say "loses" when the exact key (formulas.cluster_distance)
    # is above the threshold. Thresholds at the key and one ulp either side, sizes
    # up to 2^23 and sums over 600 decades: a wrong margin shows up as a rejected
    # key equal to (or one ulp below) its threshold.
    loses = cuda_vector._ward_loses
    rejected = 0
    for _ in range(3000):
        sa = float(rng.integers(1, 1 << rng.integers(1, 24)))
        sb = float(rng.integers(1, 1 << rng.integers(1, 24)))
        acc = float(rng.uniform(0.5, 2.0) * 2.0 ** rng.integers(-1000, 1000))
        w = formulas.cluster_distance(formulas.WARD, metrics.SQEUCLIDEAN, acc, sa, sb, 0.0, 0.0)
        t, s = 2.0 * (sa * sb), sa + sb
        up = float(np.nextafter(w, np.inf))
        for bw in (w, up, float(np.nextafter(up, np.inf))):
            assert not loses(acc, t, s, bw), (sa, sb, acc, bw)
        below = float(np.nextafter(w, 0.0))
        if loses(acc, t, s, below):
            assert w > below  # allowed, and true
        rejected += loses(acc, t, s, w * (1.0 - 1e-14))
    # it does filter: keys 1e-14 above the threshold are rejected (all in normal range)
    assert rejected > 2500
    # no filtering where the bound cannot be trusted: tiny, zero, NaN, infinite
    for bw in (0.0, 2.0 ** -1010, np.nan, np.inf):
        assert not loses(1.0, 2.0, 2.0, bw)
    assert not loses(np.nan, 2.0, 2.0, 1.0) and not loses(np.inf, 2.0, 2.0, 1.0)
    assert not loses(1e308, 2.0 ** 40, 2.0, 1.0)  # t * acc overflows: the exact key decides


@pytest.mark.skipif(not SIMULATED, reason="simulator arithmetic has no FMA: keys are the CPU's")
@pytest.mark.parametrize("tpb", [32, 64])
def test_ward_filter_on_near_ties_gives_the_cpu_engines_tree(rng, monkeypatch, tpb):
    # Grid points with 1e-15 jitter: keys tie or nearly tie (within the filter's
    # margin), short lists (K = 1) so most keys meet a full list. The simulator
    # rounds as the CPU engine does (no FMA), so every computed key is the CPU's and
    # the tree must be the CPU engine's bitwise: a near-tie minimum wrongly filtered
    # out would change it.
    monkeypatch.setattr(cuda_vector, "RNN_TOP_K", 1)
    monkeypatch.setattr(cuda_vector, "FIRST_ROWS", 6)
    X = np.round(rng.uniform(0, 3, size=(24, 2))) + 1e-15 * rng.standard_normal((24, 2))
    Z = _run(X, "ward", "euclidean", tpb=tpb)
    assert_array_equal(Z, _run(X, "ward", "euclidean", backend="cpu"))
