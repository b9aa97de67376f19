"""The memory-saving path on a real GPU (``pytest -m gpu``; skipped without one).

The simulator tests (``test_lowmem_cuda_sim.py``) check the kernels' logic at
n <= 40 with 32 threads per block; here the same kernels run compiled, at sizes
where every launch has many blocks, tiles and coordinate chunks, the single
linkage candidate lists run dry and the reciprocal-pair rounds number in the
hundreds: every (method, metric) pair of the method table against scipy,
CuPy in and out, float32 storage, ties, the public ``linkage`` switch (explicit
and automatic) and its memory refusal.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.cluster.hierarchy import is_monotonic, is_valid_linkage
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust import _plan
from gpu_hclust._methods import memory_saving_pairs
from lowmem_common import assert_same_linkage, lowmem_linkage, scipy_reference
from reference import replay_check

pytestmark = pytest.mark.gpu

PAIRS = memory_saving_pairs()
# Large enough for many blocks (256 threads) and column tiles, small enough for
# scipy's reference to take seconds.
N = 3000
D = 19  # not a multiple of the coordinate chunk


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


def test_every_supported_pair_is_covered():
    assert len(PAIRS) == 13  # 7 single metrics, ward/centroid/median, 3 average metrics


@pytest.mark.parametrize("method, metric", PAIRS)
def test_equals_scipy(rng, method, metric):
    X = rng.standard_normal((N, D))
    assert_same_linkage(lowmem_linkage(X, method, metric, "cuda"),
                        scipy_reference(X, method, metric))


@pytest.mark.parametrize("tpb", [32, 64, 128, 256])
@pytest.mark.parametrize("method", ["single", "ward", "centroid"])
def test_every_block_size_gives_the_same_tree(rng, method, tpb):
    X = rng.standard_normal((1000, 7))
    assert_same_linkage(lowmem_linkage(X, method, "euclidean", "cuda", tpb=tpb),
                        scipy_reference(X, method, "euclidean"))


def test_single_on_blobs_exhausts_candidate_lists(rng):
    # 400 tight blobs of 10: every point's few candidates lie in its own blob, so
    # later Borůvka rounds rescan or skip points by their bound.
    centres = rng.uniform(-1000, 1000, size=(400, 5))
    X = np.repeat(centres, 10, axis=0) + 0.01 * rng.standard_normal((4000, 5))
    assert_same_linkage(lowmem_linkage(X, "single", "euclidean", "cuda"),
                        scipy_reference(X, "single", "euclidean"))


@pytest.mark.parametrize("method, metric", [("single", "euclidean"), ("ward", "euclidean"),
                                            ("average", "cosine")])
def test_same_tree_as_the_cpu_engine_at_20000(rng, method, metric):
    X = rng.standard_normal((20_000, 32))
    assert_same_linkage(lowmem_linkage(X, method, metric, "cuda"),
                        lowmem_linkage(X, method, metric, "cpu"), rtol=1e-12)


@pytest.mark.parametrize("method, metric", [("single", "cosine"), ("ward", "euclidean"),
                                            ("median", "euclidean"), ("average", "correlation")])
def test_linkage_cupy_in_cupy_out(cp, rng, method, metric):
    X = rng.standard_normal((2000, 12))
    Xd = cp.asarray(X)
    Z = gpu_hclust.linkage(Xd, method, metric=metric, backend="cuda", low_memory=True)
    assert isinstance(Z, cp.ndarray)
    assert_same_linkage(cp.asnumpy(Z), scipy_reference(X, method, metric))
    assert_allclose(cp.asnumpy(Xd), X, rtol=0, atol=0)  # input untouched


# Reducible methods only: their tree does not depend on the order of independent
# merges, so float32 rounding moves heights, not the tree, on generic data.
@pytest.mark.parametrize("method", ["single", "ward", "average"])
def test_float32_storage_is_valid_and_close(rng, method):
    metric = "sqeuclidean" if method == "average" else "euclidean"
    X = rng.standard_normal((2000, 16))
    Z = gpu_hclust.linkage(X, method, metric=metric, backend="cuda", low_memory=True,
                           dtype=np.float32)
    assert is_valid_linkage(Z, throw=True)
    assert_allclose(np.sort(Z[:, 2]), np.sort(scipy_reference(X, method, metric)[:, 2]),
                    rtol=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cityblock"])
def test_float32_storage_rounds_the_data_once(rng, metric):
    X = 1000.0 + rng.standard_normal((3000, 19))
    rounded = X.astype(np.float32).astype(np.float64)
    assert_same_linkage(lowmem_linkage(X, "single", metric, "cuda", dtype=np.float32),
                        lowmem_linkage(rounded, "single", metric, "cuda"), rtol=1e-13)


@pytest.mark.parametrize("method, metric", [("single", "cityblock"), ("ward", "euclidean"),
                                            ("centroid", "euclidean"),
                                            ("average", "sqeuclidean")])
def test_ties_give_a_valid_replayable_tree(rng, method, metric):
    X = np.round(rng.uniform(0, 6, size=(600, 2)))  # a 7 x 7 grid, many duplicates
    Z = lowmem_linkage(X, method, metric, "cuda")
    assert is_valid_linkage(Z, throw=True)
    if method not in ("centroid", "median"):
        assert is_monotonic(Z)
    replay_check(Z, pdist(X, metric), method)


def test_automatic_choice_when_the_matrix_does_not_fit(monkeypatch, rng):
    X = rng.standard_normal((3000, 8))
    # dense: 4.5e6 distances x 8 B alone; memory-saving: under 1 MB
    monkeypatch.setattr(_plan, "device_available_bytes", lambda: 5_000_000)
    for method in ("single", "ward"):
        Z = gpu_hclust.linkage(X, method, backend="cuda")
        assert_same_linkage(Z, scipy_reference(X, method, "euclidean"))
    with pytest.raises(MemoryError, match=r"GPU memory for its distance matrix.*dtype=np\.float32"):
        gpu_hclust.linkage(X, "complete", backend="cuda")
    monkeypatch.setattr(_plan, "device_available_bytes", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"GPU memory for its working copy of the observations"
                                          r".*backend=\"cpu\""):
        gpu_hclust.linkage(X, "ward", backend="cuda")
