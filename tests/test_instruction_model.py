"""The instruction-count model behind the GPU projections (benchmarks/_instruction_model.py).

It is a projection; these tests pin what it counts so that a change to a
kernel's inner loop that the model does not follow shows up here.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _instruction_model as im  # noqa: E402


def test_a_euclidean_term_is_three_fp64_instructions_and_one_shared_load():
    # metrics.metric_accumulate: diff, rounded product (never fused), add
    a, b = im.pair_cost("ward", 32), im.pair_cost("ward", 33)
    assert b.fp64 - a.fp64 == 3
    assert b.lsu - a.lsu == 1
    c, e = im.pair_cost("average-cosine", 32), im.pair_cost("average-cosine", 33)
    assert e.fp64 - c.fp64 == 2  # product and add


def test_micro_tiles_cut_shared_loads_not_fp64():
    one, four = im.pair_cost("ward", 32), im.pair_cost("ward", 32, rows_per_thread=4)
    assert four.fp64 == one.fp64 and four.lsu < one.lsu
    assert im.binding_pipe(four) == "fp64"


def test_ward_pays_its_filter_not_a_division_per_pair():
    ward, avg = im.pair_cost("ward", 32), im.pair_cost("average-sqeuclidean", 32)
    assert ward.fp64 - avg.fp64 == 4  # the filter, not the division


def test_projection_adds_overheads_and_scales_with_pairs():
    p1 = im.project("ward", 32, scan_pairs=1e12, fresh_pairs=0.0, launches=0, host_syncs=0)
    p2 = im.project("ward", 32, scan_pairs=2e12, fresh_pairs=0.0, launches=0, host_syncs=0)
    assert p2["compute_s"] == pytest.approx(2 * p1["compute_s"])
    p3 = im.project("ward", 32, scan_pairs=1e12, fresh_pairs=0.0, launches=1000, host_syncs=100,
                    chain_steps=10)
    assert p3["overhead_s"] == pytest.approx(1000 * im.LAUNCH_S + 100 * im.SYNC_S
                                             + 20 * im.GRID_SYNC_S)
    assert p3["realistic_s"] > p3["peak_s"] > p3["compute_s"]
    # ward 1e6 x 32 at 1.0 n^2 pairs: seconds, not minutes or milliseconds
    assert 2 < p1["compute_s"] < 20


def test_fresh_pairs_cost_more_than_scan_pairs():
    s = im.pair_seconds(im.pair_cost("ward", 32, "scan"))
    f = im.pair_seconds(im.pair_cost("ward", 32, "fresh"))
    assert f > s


def test_assumptions_are_recorded():
    a = im.assumptions()
    assert "projection" in a["what"] and a["sms"] == 132


def test_committed_counts_carry_the_models_projections():
    # a model change must be followed by --reproject, or the file quotes stale figures
    import json

    import count_gpu_work

    doc = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                      / "gpu-work-count.json").read_text())
    rows = [r for r in doc["results"] if "skipped" not in r]
    assert rows and doc["projection_model"] == im.assumptions()
    for r in rows:
        for key, value in count_gpu_work.projection(r).items():
            assert r[key] == (pytest.approx(value) if isinstance(value, float) else value), key
