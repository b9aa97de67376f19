"""The dense engine's chain guard (kernels/cuda_dense_chain) in numba-cuda's simulator.

Simulated threads are Python threads: n <= 60, 32 or 64 threads per block and
a cooperative grid of one block (the simulator's limit). The chain runs alone
(``cuda_dense_chain.run``), handed over after round 1 (the trigger forced to
fire at once) and in the middle of a run, through ``cuda_reducible.run``;
results are compared with scipy and the CPU engine. Host reads are counted
by wrapping ``launch.to_host``, the kernels' one device-to-host copy.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster.hierarchy import is_monotonic, is_valid_linkage
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist

import gpu_hclust
from _adversarial import make
from gpu_hclust import _backend
from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage
from gpu_hclust.kernels import cuda_chain, cuda_dense_chain, cuda_reducible, formulas, launch
from reference import replay_check

SIMULATED = _backend.simulator_enabled()
REDUCIBLE = ["complete", "average", "weighted", "ward"]
# (dtype, threads per block): both precisions, both block sizes.
VARIANTS = [(np.float64, 32), (np.float32, 64)]
SWAPPED = [(np.float64, 64), (np.float32, 32)]
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def _condensed(X, method, dtype=np.float64):
    y = pdist(X)
    if METHODS[method].squared:
        y = y * y
    return y.astype(dtype)


def _Z(log, n, method):
    a, b, h = log
    assert a.dtype == np.int64 and b.dtype == np.int64 and h.dtype == np.float64
    assert a.shape == b.shape == h.shape == (n - 1,)
    return merge_log_to_linkage(a, b, h, n, METHODS[method])


def _chain_alone(X, method, dtype=np.float64, tpb=32, **kw):
    D = _condensed(X, method, dtype)
    return _Z(cuda_dense_chain.run(D, X.shape[0], METHODS[method].code, np, tpb=tpb, **kw),
              X.shape[0], method)


def _engine(X, method, dtype=np.float64, tpb=32):
    D = _condensed(X, method, dtype)
    return _Z(cuda_reducible.run(D, X.shape[0], METHODS[method].code, xp=np, tpb=tpb),
              X.shape[0], method)


def _record_hand_overs(monkeypatch):
    """Wrap the engine's hand-over point: the (clusters left, merges) of each call."""
    left, chain = [], cuda_reducible._chain_hand_over

    def spy(s, m, merges):
        left.append((m, merges))
        return chain(s, m, merges)
    monkeypatch.setattr(cuda_reducible, "_chain_hand_over", spy)
    return left


def _rounds_then_chain(monkeypatch, X, method, after, dtype=np.float64, tpb=32):
    """The chain forced to take over after round ``after`` (1-based); the clusters
    left then."""
    monkeypatch.setattr(cuda_reducible, "FORCE_HAND_OVER_AFTER", after)
    calls = _record_hand_overs(monkeypatch)
    return _engine(X, method, dtype, tpb), [m for m, _ in calls]


def _like_scipy(Z, X, method, dtype=np.float64):
    Zs = scipy_linkage(X, method)
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=RTOL[dtype], atol=0)


def _like_cpu_engine(Z, X, method):
    Zc = gpu_hclust.linkage(X, method, backend="cpu")
    assert_array_equal(Z[:, [0, 1, 3]], Zc[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zc[:, 2], rtol=1e-12, atol=0)


class _HostReads:
    """Counting wrapper of ``launch.to_host`` (every module reads through it)."""

    def __init__(self, monkeypatch):
        self.count = 0
        self._real = launch.to_host
        monkeypatch.setattr(launch, "to_host", self)

    def __call__(self, x):
        self.count += 1
        return self._real(x)


# --------------------------------------------------------------------------
# The kernel and its listing
# --------------------------------------------------------------------------

@pytest.mark.skipif(not SIMULATED, reason="a real GPU is in use: the simulator is off")
def test_simulator_runs_the_kernel():
    from numba import cuda
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    assert cuda.implementation == "NVIDIA"
    assert isinstance(cuda_dense_chain.dense_chain_steps, FakeCUDAKernel)


@pytest.mark.skipif(not SIMULATED, reason="a real GPU is in use: the simulator is off")
def test_ptx_signatures_list_the_kernel_for_both_precisions():
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    kernels = {name for name, obj in vars(cuda_dense_chain).items()
               if isinstance(obj, FakeCUDAKernel) and not obj._device
               and obj.fn.__module__ == cuda_dense_chain.__name__}
    assert kernels == set(cuda_dense_chain.PTX_SIGNATURES) == {"dense_chain_steps"}
    sigs = cuda_dense_chain.PTX_SIGNATURES["dense_chain_steps"]
    assert sorted(s.split("[")[0] for s in sigs) == ["void(float32", "void(float64"]


# --------------------------------------------------------------------------
# Equal to scipy and the CPU engine on tie-free data
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, tpb", VARIANTS)
@pytest.mark.parametrize("method", REDUCIBLE)
def test_chain_alone_equals_scipy_and_the_cpu_engine(rng, method, dtype, tpb):
    X = rng.standard_normal((12, 3))
    Z = _chain_alone(X, method, dtype, tpb)
    _like_scipy(Z, X, method, dtype)
    if dtype == np.float64:
        _like_cpu_engine(Z, X, method)


@pytest.mark.parametrize("dtype, tpb", SWAPPED)
@pytest.mark.parametrize("method", REDUCIBLE)
def test_hand_over_after_the_first_round(rng, monkeypatch, method, dtype, tpb):
    # The trigger forced to fire at once: round 0 merges its pairs, the chain the rest.
    X = rng.standard_normal((12, 3))
    Z, left = _rounds_then_chain(monkeypatch, X, method, 1, dtype, tpb)
    assert len(left) == 1 and 2 < left[0] < 12
    _like_scipy(Z, X, method, dtype)
    if dtype == np.float64:
        _like_cpu_engine(Z, X, method)


# Each method once, the variants alternating (the two tests above cover the product).
@pytest.mark.parametrize("method, dtype, tpb", [
    ("complete", np.float64, 32), ("average", np.float32, 64),
    ("weighted", np.float64, 64), ("ward", np.float32, 32)])
def test_hand_over_mid_run(rng, monkeypatch, method, dtype, tpb):
    # 34 points: the rounds' kernels span two blocks of 32 threads. After round 2
    # the chain starts from merged clusters (sizes > 1, updated rows of D).
    X = rng.standard_normal((34, 3))
    Z, left = _rounds_then_chain(monkeypatch, X, method, 2, dtype, tpb)
    assert len(left) == 1 and 2 < left[0] < 34
    _like_scipy(Z, X, method, dtype)
    if dtype == np.float64:
        _like_cpu_engine(Z, X, method)


def test_chain_resumes_across_launches(rng, monkeypatch):
    # Small chunks: several launches; chain, lists and state persist on the device.
    X = rng.standard_normal((14, 3))
    whole = _chain_alone(X, "average")
    reads = _HostReads(monkeypatch)
    counter = np.zeros(1, dtype=np.int64)
    Z = _chain_alone(X, "average", counter=counter, chunk=2)
    assert_array_equal(Z, whole)
    assert counter[0] == 13
    assert reads.count == 7 + 3  # one state read per chunk of 2 merges, the log once


def test_chunk_limit_through_the_engine(rng, monkeypatch):
    X = rng.standard_normal((16, 3))
    whole, _ = _rounds_then_chain(monkeypatch, X, "ward", 1)
    monkeypatch.setattr(cuda_dense_chain, "CHUNK_MERGES", 3)
    assert cuda_dense_chain.chunk_merges(1000) == 3
    Z, _ = _rounds_then_chain(monkeypatch, X, "ward", 1)
    assert_array_equal(Z, whole)


# --------------------------------------------------------------------------
# Adversarial data
# --------------------------------------------------------------------------

# ward at 36 points: the chain starts with 35 active slots, more than the 32
# threads of its one simulated block, so its grid-stride scan and update wrap.
@pytest.mark.parametrize("method, n", [("ward", 36), ("average", 14)])
def test_growing_gap_line_hands_over_at_once_and_equals_scipy(monkeypatch, method, n):
    X = make("growing_gap", n, 2, 0)
    calls = _record_hand_overs(monkeypatch)
    Z = _engine(X, method)
    # Round 1 merges the one reciprocal pair, at the small end: the chain does the rest.
    assert calls == [(n - 1, 1)]
    _like_scipy(Z, X, method)
    _like_cpu_engine(Z, X, method)


@pytest.mark.parametrize("method", ["complete", "ward"])
def test_duplicates_are_deterministic_and_replay_valid(monkeypatch, method):
    X = make("duplicates", 16, 3, 1)
    assert len(np.unique(X, axis=0)) <= 4  # many exact ties at 0
    Z1, left = _rounds_then_chain(monkeypatch, X, method, 1)
    Z2, _ = _rounds_then_chain(monkeypatch, X, method, 1)
    assert left and left[0] > 2
    assert_array_equal(Z1, Z2)
    assert is_valid_linkage(Z1, throw=True)
    assert is_monotonic(Z1)
    replay_check(Z1, pdist(X), method)
    # Heights of a reducible linkage do not depend on how ties are broken.
    assert_allclose(np.sort(Z1[:, 2]), np.sort(scipy_linkage(X, method)[:, 2]),
                    rtol=1e-10, atol=1e-12)


def test_chain_alone_on_rounded_distances_is_replay_valid(rng):
    # Integer distances: many exact ties away from 0, the previous element wins them.
    n = 12
    X = rng.standard_normal((n, 2))
    y = np.round(pdist(X) * 4)
    assert len(np.unique(y)) < len(y) // 2
    Z = merge_log_to_linkage(*cuda_dense_chain.run(y.copy(), n, formulas.COMPLETE, np, tpb=32),
                             n, METHODS["complete"])
    again = cuda_dense_chain.run(y.copy(), n, formulas.COMPLETE, np, tpb=32)
    assert_array_equal(merge_log_to_linkage(*again, n, METHODS["complete"]), Z)
    assert is_valid_linkage(Z, throw=True)
    replay_check(Z, y, "complete")


# --------------------------------------------------------------------------
# Errors and edge cases
# --------------------------------------------------------------------------

def test_nan_row_raises():
    n = 6
    D = pdist(np.arange(n, dtype=np.float64)[:, None]) ** 2
    D[:n - 1] = np.nan  # slot 0's row: where the chain starts
    with pytest.raises(ValueError, match="no finite distance is left.*nearest-neighbour chain"):
        cuda_dense_chain.run(D, n, formulas.WARD, np, tpb=32)


def test_inf_distances_raise():
    with pytest.raises(ValueError, match="no finite distance is left.*nearest-neighbour chain"):
        cuda_dense_chain.run(np.full(6, np.inf), 4, formulas.AVERAGE, np, tpb=32)


def test_nan_after_the_hand_over_raises(rng, monkeypatch):
    n = 12
    X = rng.standard_normal((n, 2))
    D = _condensed(X, "ward")
    for k in range(n - 1):  # slot n-1 is NaN to everything
        D[formulas.condensed_index(n, k, n - 1)] = np.nan
    monkeypatch.setattr(cuda_reducible, "FORCE_HAND_OVER_AFTER", 1)
    with pytest.raises(ValueError, match="no finite distance is left.*nearest-neighbour chain"):
        cuda_reducible.run(D, n, formulas.WARD, xp=np, tpb=32)


def test_run_refuses_non_reducible_methods():
    with pytest.raises(ValueError, match="reducible methods only"):
        cuda_dense_chain.run(np.ones(3), 3, formulas.CENTROID, np, tpb=32)


def test_run_with_fewer_than_two_observations_and_two():
    a, b, h = cuda_dense_chain.run(np.empty(0), 1, formulas.WARD, np, tpb=32)
    assert a.shape == b.shape == h.shape == (0,)
    a, b, h = cuda_dense_chain.run(np.array([4.0]), 2, formulas.WARD, np, tpb=32)
    assert (a.tolist(), b.tolist(), h.tolist()) == ([0], [1], [4.0])


def test_finish_checks_its_state():
    msg = r"merges \(2\) \+ active clusters \(4\) must equal n \(5\)"
    with pytest.raises(ValueError, match=msg):
        cuda_dense_chain.finish(np.ones(10), 5, np.arange(5), 4, np.ones(5), np.empty(4, np.int64),
                                np.empty(4, np.int64), np.empty(4), 2, formulas.WARD, np, 32,
                                launch.stream_for(np), np.zeros(1, np.int64))


def test_tpb_above_the_cap_is_lowered_and_a_bad_one_refused(rng):
    # finish takes the rounds' tpb (up to cuda_reducible.MAX_TPB = 1024) and
    # lowers it to its own cap; run, like every engine, refuses a bad one.
    n = 5
    D = _condensed(rng.standard_normal((n, 2)), "average")
    logs = []
    for tpb in (32, 4 * cuda_dense_chain.MAX_TPB):
        log = (np.empty(n - 1, np.int64), np.empty(n - 1, np.int64), np.empty(n - 1))
        done = cuda_dense_chain.finish(D.copy(), n, np.arange(n), n, np.ones(n), *log, 0,
                                       formulas.AVERAGE, np, tpb, launch.stream_for(np),
                                       np.zeros(1, np.int64))
        assert done == n - 1
        logs.append(log)
    for a, b in zip(*logs):
        assert_array_equal(a, b)
    with pytest.raises(ValueError, match="tpb .* power of two"):
        cuda_dense_chain.run(np.ones(3), 3, formulas.WARD, np, tpb=48)


# --------------------------------------------------------------------------
# Host reads (issue 12, done-when: adversarial sets need no more than Gaussian data)
# --------------------------------------------------------------------------

_READS = {}


def _host_reads(monkeypatch, name, n, method):
    """Host reads of ``cuda_reducible.run`` on data set ``name`` (memoised: the
    Gaussian baseline of the slow test is shared by its cases)."""
    key = (name, n, method)
    if key not in _READS:
        X = make(name, n, 3, 0)
        with monkeypatch.context() as m:
            reads = _HostReads(m)
            Z = _engine(X, method)
        assert is_valid_linkage(Z, throw=True)
        _READS[key] = reads.count
    return _READS[key]


def test_adversarial_sets_need_no_more_host_reads_than_gaussian_data(monkeypatch):
    n = 32
    gauss = _host_reads(monkeypatch, "gaussian", n, "ward")
    line = _host_reads(monkeypatch, "growing_gap", n, "ward")
    # Round 0's batch (one pair), the chain's one chunk, the log (3 arrays) and
    # the rounds' first rows: 1 + 1 + 3 + 1.
    assert line == 6
    assert line <= gauss


# Measured here (ward, n = 200, seed 0, batched rounds): Gaussian 9 host reads;
# growing_gap and sorted_gaps 6 (the chain from round 1); spiral and duplicates
# 10. Batches make the rounds' reads about log2(rounds): spiral runs 19 rounds
# (3-6 pairs each, above cuda_chain's max(2, 2 %) until 113 clusters are left)
# and duplicates 18 (20 groups: 20 pairs per round = 10 %) against Gaussian's
# 15, then the chain costs its one read. So at this n they need at most one read
# more than Gaussian data; the per-round reads they needed before batching
# (22-23 against 19) are gone. The memory-saving engine's emulation meets "no
# more than Gaussian" outright at n = 5 000-20 000 (results/gpu-work-count.json).
@pytest.mark.slow
@pytest.mark.parametrize("name, extra", [
    ("growing_gap", 0), ("sorted_gaps", 0), ("spiral", 1), ("duplicates", 1)])
def test_host_reads_at_n_200(monkeypatch, name, extra):
    assert _host_reads(monkeypatch, name, 200, "ward") <= _host_reads(
        monkeypatch, "gaussian", 200, "ward") + extra


@pytest.mark.parametrize("method, dtype", [("ward", np.float64), ("average", np.float32)])
def test_hand_over_after_a_compaction(rng, monkeypatch, method, dtype):
    # Compaction renumbers D's slots before the chain starts: the chain works in
    # the compacted numbering and its log rows are mapped back to original slots.
    monkeypatch.setattr(cuda_reducible, "COMPACT_FRACTION", 0.95)
    compactions = []
    original = cuda_reducible._Rounds.compact_matrix

    def spy(self, m, nstale):
        compactions.append((self.ns, m))
        return original(self, m, nstale)
    monkeypatch.setattr(cuda_reducible._Rounds, "compact_matrix", spy)
    X = rng.standard_normal((34, 3))
    Z, left = _rounds_then_chain(monkeypatch, X, method, 3, dtype)
    assert compactions and compactions[0][0] == 34  # D was compacted before the hand-over
    assert len(left) == 1 and left[0] < compactions[-1][1] + 1
    _like_scipy(Z, X, method, dtype)
