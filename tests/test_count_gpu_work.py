"""benchmarks/count_gpu_work.py: its emulation of the memory-saving driver is the driver's.

The work counts in benchmarks/results/gpu-work-count.json come from a NumPy
emulation of ``cuda_vector._rnn_rounds`` (list rounds, then the chain guard's
hand-over to ``cuda_chain.finish``) and of ``_single``. Here the emulation is
held to the real driver in numba-cuda's simulator (every kernel launch and
host read, in order, and the merge log), on a growing-gap line that hands
over to the chain after round 0, and on Gaussian data where rounds run to
the tail. Small n, 32 threads per block: a few seconds each.
"""

import numpy as np
import pytest

import count_gpu_work as cgw
from gpu_hclust import _backend

SIMULATED = _backend.simulator_enabled()
needs_sim = pytest.mark.skipif(not SIMULATED,
                               reason="a real GPU is in use: the driver spy needs the simulator")


@pytest.fixture(scope="module")
def growing_gap_run():
    """The real driver on a 36-point growing-gap line (ward), spied."""
    mp = pytest.MonkeyPatch()
    try:
        yield cgw.driver_run("ward", "growing_gap", 36, 5, patch=mp.setattr)
    finally:
        mp.undo()


@needs_sim
def test_hand_over_matches_the_driver(growing_gap_run):
    _, _, tally, chain = cgw.emulate("ward", cgw.make_data("growing_gap", 36, 5, 0), tpb=32)
    assert chain is not None and chain["left"] == 35  # round 0 merged one pair
    assert cgw.same_as_driver(growing_gap_run, tally) == (True, True)
    # the symmetric first pass (segments of tpb / 2 = 16 rows in the simulator, each
    # against itself and the later ones), round 0 (select, read: no row to rescan,
    # find_pairs, read, merge), one chain chunk, the three reads of the merge log
    assert tally.events == [("fresh_pass", 16, 36), ("rnn_combine",), ("fresh_pass", 16, 20),
                            ("rnn_combine",), ("fresh_pass", 4, 4), ("rnn_combine",),
                            ("rnn_select",), ("read",), ("find_pairs",), ("read",),
                            ("merge_pairs",), ("chain_steps",), ("read",), ("read",), ("read",),
                            ("read",)]


@needs_sim
def test_the_comparison_can_fail(growing_gap_run):
    # Without the hand-over the emulation runs ~n/2 rounds: a different launch sequence,
    # and the comparison must say so (it is not vacuous).
    _, rounds, tally, chain = cgw.emulate("ward", cgw.make_data("growing_gap", 36, 5, 0),
                                          tpb=32, guard=False)
    assert chain is None and len(rounds) > 10
    same_events, same_log = cgw.same_as_driver(growing_gap_run, tally)
    assert not same_events
    assert not same_log  # same heights, but the log's order is by round


@needs_sim
def test_rounds_to_the_tail_match_the_driver(monkeypatch):
    run = cgw.driver_run("average-cosine", "gaussian", 32, 9, patch=monkeypatch.setattr)
    _, rounds, tally, _ = cgw.emulate("average-cosine", cgw.make_data("gaussian", 32, 9, 0),
                                      tpb=32)
    assert len(rounds) > 1 and any(e[0] == "fresh_pass" for e in tally.events)
    assert cgw.same_as_driver(run, tally) == (True, True)


def test_count_run_adversarial_row():
    r = cgw.count_run("ward", 300, 8, "growing_gap", 0, None, check_max_n=300)
    assert r["check"] == cgw.OK
    assert (r["rounds"], r["handover_left"], r["chain_launches"]) == (1, 299, 1)
    # reads: nrows, npairs, the chain chunk's state; launches: the first pass (one
    # segment: fresh_pass, rnn_combine), select, find_pairs, merge_pairs, chain_steps
    assert (r["host_syncs"], r["launches"]) == (3, 6)
    # first pass: one segment (n < FIRST_ROWS), every pair from both sides; then the
    # chain: about 3 steps per merge over the m active clusters
    assert r["first_pass_pairs_per_n2"] == 1.0 and r["rescan_pairs_per_n2"] == 0.0
    assert 1.0 < r["chain_pairs_per_n2"] < 2.0
    assert r["pairs_per_n2"] == pytest.approx(1.0 + r["chain_pairs_per_n2"])


def test_first_pass_computes_pairs_between_segments_once(monkeypatch):
    # Segments of 100 rows: segment s against itself and every later one, so the
    # first pass counts n^2 / 2 + n * 100 / 2 pairs, and the tree is still the CPU engine's.
    from gpu_hclust.kernels import cuda_vector

    monkeypatch.setattr(cuda_vector, "FIRST_ROWS", 100)
    n = 600
    r = cgw.count_run("ward", n, 6, "gaussian", 0, None, check_max_n=n)
    assert r["check"] == cgw.OK
    want = sum(100 * (n - lo) for lo in range(0, n, 100))
    assert want == n * n // 2 + n * 100 // 2
    assert r["first_pass_pairs_per_n2"] == pytest.approx(want / n**2)
    assert r["launches"] >= 2 * (n // 100)


def test_no_guard_counts_the_rounds():
    g = cgw.count_run("ward", 300, 8, "growing_gap", 0, None, check_max_n=300, guard=False)
    assert g["check"] == cgw.OK and g["handover_left"] is None
    assert g["rounds"] > 100 and g["host_syncs"] == 3 * g["rounds"] - 1


def test_cosine_on_a_line_through_the_origin_is_skipped():
    r = cgw.count_run("average-cosine", 50, 4, "sorted_gaps", 0, None)
    assert set(r) == {"engine", "n", "d", "data", "seed", "skipped"}
    assert "all-zero" in r["skipped"]
    assert cgw.count_run("average-cosine", 50, 4, "spiral", 0, None).get("skipped") is None


def test_unknown_data_is_refused(capsys):
    with pytest.raises(SystemExit, match="2"):
        cgw.main(["--data", "gaussian,lines"])
    assert "--data: unknown ['lines']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--data must be one of"):
        cgw.make_data("lines", 10, 2, 0)
