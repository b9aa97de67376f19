"""The dense CUDA RNN rounds' driver (``kernels/cuda_reducible.run``), in the simulator.

What the round loop adds on top of the kernels (tests/test_cuda_families_sim.py
checks the kernels' result against scipy): rounds queued in batches with one
host read per batch, the stop flag on the device (last merge, no pair, a small
round for the chain hand-over), and compaction of the matrix over the active
slots. Each must leave the merge log exactly as it is with one round per batch
and no compaction: same slots (original ones), same heights, same order.
Sizes stay tiny (simulated threads are Python threads).
"""

import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist

from gpu_hclust._methods import METHODS
from gpu_hclust._tree import merge_log_to_linkage
from gpu_hclust.kernels import cuda_chain, cuda_reducible, formulas, launch
from gpu_hclust.kernels.cpu_common import NO_FINITE_CANDIDATE


@pytest.fixture(autouse=True)
def _rounds_only(monkeypatch):
    """The loop's own behaviour: no chain hand-over unless a test sets the rule
    (the simulator reads ``cuda_chain``'s constants when the device rule runs;
    tests/test_cuda_dense_chain_sim.py covers the hand-over with the chain)."""
    monkeypatch.setattr(cuda_chain, "CHAIN_FRACTION", 0.0)
    monkeypatch.setattr(cuda_chain, "CHAIN_MIN_PAIRS", 0)


def _matrix(X, method, dtype=np.float64):
    y = pdist(X)
    if METHODS[method].squared:
        y = y * y
    return y.astype(dtype)


def _log(X, method, dtype=np.float64, tpb=32, **options):
    D = _matrix(X, method, dtype)
    return cuda_reducible.run(D, X.shape[0], METHODS[method].code, xp=np, tpb=tpb, **options)


def _assert_same_log(log, ref):
    for got, want in zip(log, ref):
        assert_array_equal(got, want)


def _plain(monkeypatch):
    """One round per host read, no compaction, no chain guard: the reference loop."""
    monkeypatch.setattr(cuda_reducible, "MAX_BATCH", 1)
    monkeypatch.setattr(cuda_reducible, "COMPACT_FRACTION", 0.0)
    monkeypatch.setattr(cuda_chain, "CHAIN_FRACTION", 0.0)
    monkeypatch.setattr(cuda_chain, "CHAIN_MIN_PAIRS", 0)


def _compactions(monkeypatch):
    calls = []
    original = cuda_reducible._Rounds.compact_matrix

    def spy(self, m, nstale):
        calls.append((self.ns, m))
        return original(self, m, nstale)
    monkeypatch.setattr(cuda_reducible._Rounds, "compact_matrix", spy)
    return calls


N = 20
POINTS = np.random.default_rng(12).standard_normal((N, 3))
_REFERENCE = {}


def _reference(method, dtype=np.float64):
    """The log of the reference loop on POINTS (computed once per module)."""
    key = (method, np.dtype(dtype).name)
    if key not in _REFERENCE:
        with pytest.MonkeyPatch.context() as mp:
            _plain(mp)
            _REFERENCE[key] = _log(POINTS, method, dtype)
    return _REFERENCE[key]


def _assert_like_scipy(log, method):
    Z = merge_log_to_linkage(*log, N, METHODS[method])
    Zs = scipy_linkage(POINTS, method)
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-12)


def test_batch_sizes_give_the_same_log(monkeypatch):
    ref = _reference("average")
    _assert_like_scipy(ref, "average")
    for batch in (3, 64):
        with monkeypatch.context() as mp:
            mp.setattr(cuda_reducible, "MAX_BATCH", batch)
            mp.setattr(cuda_reducible, "COMPACT_FRACTION", 0.0)
            _assert_same_log(_log(POINTS, "average"), ref)


@pytest.mark.parametrize("method, dtype, tpb", [("ward", np.float64, 32),
                                                ("complete", np.float32, 64)])
def test_compaction_keeps_the_log_in_original_slots(monkeypatch, method, dtype, tpb):
    ref = _reference(method, dtype)
    # Compaction after nearly every batch, through a scratch of one row or so
    # (many chunks per compaction), with one block gathering rows (grid stride).
    monkeypatch.setattr(cuda_reducible, "COMPACT_FRACTION", 0.95)
    monkeypatch.setattr(cuda_reducible, "COMPACT_SCRATCH_PER_SLOT", 1)
    calls = _compactions(monkeypatch)
    _assert_same_log(_log(POINTS, method, dtype, tpb=tpb, max_blocks=1), ref)
    assert len(calls) >= 3 and calls[0][0] == N  # compacted again and again
    assert all(m < ns for ns, m in calls)


def test_compaction_under_ties_is_deterministic_and_equal(rng, monkeypatch):
    # A 4 x 4 grid with duplicates: equal distances everywhere, zeros too.
    X = np.round(rng.uniform(0, 3, size=(24, 2)))
    with monkeypatch.context() as mp:
        _plain(mp)
        ref = _log(X, "average")
    calls = _compactions(monkeypatch)
    log = _log(X, "average")  # the defaults: doubling batches, compaction at half
    assert calls, "the default threshold never compacted"
    _assert_same_log(log, ref)


def test_defaults_compact_and_match_scipy(monkeypatch):
    calls = _compactions(monkeypatch)
    log = _log(POINTS, "ward")
    assert calls and calls[0][1] <= calls[0][0] * cuda_reducible.COMPACT_FRACTION
    _assert_same_log(log, _reference("ward"))
    _assert_like_scipy(log, "ward")


def _count_reads(monkeypatch):
    reads = []
    to_host = launch.to_host

    def spy(x):
        reads.append(np.shape(x))
        return to_host(x)
    monkeypatch.setattr(launch, "to_host", spy)
    return reads


def test_host_reads_are_fewer_than_rounds(monkeypatch):
    # A line whose gaps grow: one reciprocal pair per round (n - 1 rounds).
    n = 24
    X = np.cumsum(1.05 ** np.arange(n))[:, None]
    with monkeypatch.context() as mp:
        _plain(mp)
        reads = _count_reads(mp)
        ref = _log(X, "complete")
    rounds = len(reads) - 4  # one read per round, then the log's three arrays and rstart
    assert rounds >= 12
    reads = _count_reads(monkeypatch)
    _assert_same_log(_log(X, "complete"), ref)
    # Batches of 1, 2, 4, 8, ... rounds (the guard may cut one short, once).
    assert len(reads) <= 10 < rounds


def test_a_small_round_stops_the_batch_at_the_hand_over_point(monkeypatch):
    seen = []
    chain = cuda_reducible._chain_hand_over

    def hook(s, m, merges):
        state = launch.to_host(s.x["ctl"]).reshape(2, cuda_reducible.CTL_SET)
        stopped = state[state[:, cuda_reducible.S_STOP] == cuda_reducible.HAND_OVER]
        seen.append((m, merges, stopped.copy()))
        return chain(s, m, merges)  # the device-side chain merges the rest
    monkeypatch.setattr(cuda_reducible, "_chain_hand_over", hook)
    monkeypatch.setattr(cuda_chain, "CHAIN_FRACTION", 0.2)  # rounds under 20 % hand over
    monkeypatch.setattr(cuda_reducible, "COMPACT_FRACTION", 0.0)
    _assert_like_scipy(_log(POINTS, "average"), "average")
    assert len(seen) == 1
    m, merges, stopped = seen[0]
    assert 1 < m < N and merges == N - m
    assert stopped.shape[0] >= 1 and stopped[0, cuda_reducible.S_M] == m


def _host_chain(s, m, merges):
    """A stand-in for the dense chain at the hand-over point: finishes the
    linkage on the host from the documented state (sequential global minimum
    over ``D`` in the current slot numbering), logs original slots."""
    ns = s.ns
    D = np.asarray(s.x["D"])
    act = [int(k) for k in s.x["alist"][:m]]
    size = {k: float(s.x["size"][k]) for k in act}
    smap = s.x["slot_map"]
    d = {(i, j): float(D[formulas.condensed_index(ns, i, j)]) for i in act for j in act if i < j}
    q = merges
    while len(act) > 1:
        h, i, j = min((v, i, j) for (i, j), v in d.items())
        s.x["log_a"][q], s.x["log_b"][q], s.x["log_h"][q] = smap[i], smap[j], h
        q += 1
        act.remove(j)
        for k in act:
            if k != i:
                dik, djk = d[min(i, k), max(i, k)], d[min(j, k), max(j, k)]
                d[min(i, k), max(i, k)] = formulas.lw_update(s.code, dik, djk, h, size[i],
                                                             size[j], size[k])
        size[i] += size[j]
        d = {key: v for key, v in d.items() if j not in key}
    return q


@pytest.mark.parametrize("compact_first", [False, True])
def test_a_chain_that_finishes_ends_the_loop(monkeypatch, compact_first):
    # The hand-over comes after round 0 (it merges under 30 % of the clusters);
    # compacting there first checks the state contract in the new numbering.
    calls = []

    def hook(s, m, merges):
        calls.append(m)
        if compact_first:
            state = launch.to_host(s.x["ctl"]).reshape(2, cuda_reducible.CTL_SET)
            row = state[state[:, cuda_reducible.S_STOP] == cuda_reducible.HAND_OVER][0]
            s.compact_matrix(m, int(row[cuda_reducible.S_STALE]))
            assert s.ns == m
        return _host_chain(s, m, merges)
    monkeypatch.setattr(cuda_chain, "CHAIN_FRACTION", 0.3)
    monkeypatch.setattr(cuda_reducible, "_chain_hand_over", hook)
    log = _log(POINTS, "weighted")
    assert len(calls) == 1 and 1 < calls[0] < N
    _assert_like_scipy(log, "weighted")


@pytest.mark.parametrize("batch", [1, 64])
def test_nan_rows_raise_instead_of_spinning(monkeypatch, batch):
    monkeypatch.setattr(cuda_reducible, "MAX_BATCH", batch)
    monkeypatch.setattr(cuda_reducible, "COMPACT_FRACTION", 0.9)
    n = 10
    X = np.random.default_rng(3).standard_normal((n, 2))
    D = pdist(X)
    # Every distance of observation 3 is NaN: the others merge, then no pair is left.
    pos = [k for k, (i, j) in enumerate((i, j) for i in range(n) for j in range(i + 1, n))
           if 3 in (i, j)]
    D[pos] = np.nan
    message = re.escape(NO_FINITE_CANDIDATE) + ".*reciprocal pair at merge 8 of 9"
    with pytest.raises(ValueError, match=message):
        cuda_reducible.run(D, n, METHODS["complete"].code, xp=np, tpb=32)


def test_ptx_signatures_list_the_new_kernels():
    # tests/test_ptx.py compiles what PTX_SIGNATURES lists; the round loop's kernels
    # (and the compaction's) must be there for both precisions where they take D.
    sigs = cuda_reducible.PTX_SIGNATURES
    for name in ("gather_rows", "slot_inverse", "remap_slots", "first_rows", "first_columns",
                 "first_combine", "rescan_rows", "compact"):
        assert sigs[name], name
    for name in ("gather_rows", "remap_slots", "first_rows", "first_columns", "first_combine"):
        assert {("float32" in s) for s in sigs[name]} == {True, False}, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_pass_equals_a_rescan_of_every_row(dtype):
    # Ties (rounded distances), zeros, a NaN row and inf entries: round 0's
    # minima read along rows (first_pass) must be those of the per-row rescan.
    n = 37
    rng = np.random.default_rng(5)
    D = np.round(pdist(rng.uniform(0, 3, size=(n, 2))) * 2).astype(dtype)
    pos = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    D[rng.choice(D.size, 40, replace=False)] = np.inf
    D[(pos == 7).any(axis=1)] = np.nan
    s = cuda_reducible._Rounds(D, n, METHODS["average"].code, np, 32,
                               launch.stream_for(np), None)
    s.first_pass()
    ctl = np.zeros(2 * cuda_reducible.CTL_SET, dtype=np.int64)
    ctl[cuda_reducible.S_M] = ctl[cuda_reducible.S_STALE] = n
    nn, nnd = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=dtype)
    cuda_reducible.rescan_rows[2, 32](D, n, np.arange(n), np.arange(n), ctl, 0, nn, nnd)
    assert_array_equal(s.x["nn"], nn)
    assert_array_equal(s.x["nnd"], nnd)
    assert nn[7] == n and np.isinf(nnd[7])  # the NaN row has no candidate
