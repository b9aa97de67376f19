"""linkage's keyword-only options: low_memory (choice and errors) and progress."""

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust
from gpu_hclust import _plan

PAIRS = [("single", "cityblock"), ("single", "cosine"), ("ward", "euclidean"),
         ("centroid", "euclidean"), ("median", "euclidean"), ("average", "sqeuclidean"),
         ("average", "cosine"), ("average", "correlation")]


@pytest.mark.parametrize("method,metric", PAIRS)
def test_low_memory_true_equals_scipy(method, metric, rng):
    X = rng.normal(size=(60, 4))
    Z = gpu_hclust.linkage(X, method, metric, backend="cpu", low_memory=True)
    np.testing.assert_allclose(Z, sch.linkage(X, method, metric), rtol=1e-10)


@pytest.mark.parametrize("method,metric", [("complete", "euclidean"), ("weighted", "cosine"),
                                           ("average", "euclidean")])
def test_low_memory_true_rejects_pairs_without_an_exact_path(method, metric, rng):
    with pytest.raises(ValueError, match=f"low_memory=True cannot compute method='{method}'"):
        gpu_hclust.linkage(rng.normal(size=(8, 2)), method, metric, backend="cpu",
                           low_memory=True)


def test_low_memory_true_rejects_condensed_input(rng):
    with pytest.raises(ValueError, match="low_memory=True needs an \\(n, d\\) observation"):
        gpu_hclust.linkage(pdist(rng.normal(size=(8, 2))), "single", low_memory=True)


def test_low_memory_rejects_non_bool(rng):
    with pytest.raises(ValueError, match="low_memory must be None, True or False"):
        gpu_hclust.linkage(rng.normal(size=(8, 2)), low_memory="yes", backend="cpu")


def test_auto_takes_low_memory_when_the_matrix_does_not_fit(monkeypatch, rng, lowmem_calls):
    """None: dense when it fits, memory-saving when it does not (supported pair)."""
    X = rng.normal(size=(40, 3))
    calls = lowmem_calls
    gpu_hclust.linkage(X, "ward", backend="cpu")
    assert calls == []
    # dense: 780 distances x 8 B + 40 x 600 B scratch = 30 240 B; memory-saving:
    # 40 x 3 x 8 B + 40 x 192 B = 8 640 B
    monkeypatch.setattr(_plan, "host_available_bytes", lambda: 20_000)
    Z = gpu_hclust.linkage(X, "ward", backend="cpu")
    assert calls == ["ward"]
    np.testing.assert_allclose(Z, sch.linkage(X, "ward"), rtol=1e-10)
    # an unsupported pair cannot fall back: the MemoryError names the way out
    with pytest.raises(MemoryError, match="dtype=np.float32"):
        gpu_hclust.linkage(X, "complete", backend="cpu")
    with pytest.raises(MemoryError, match="low_memory=True"):
        gpu_hclust.linkage(X, "ward", backend="cpu", low_memory=False)


def test_auto_takes_low_memory_where_it_is_faster_on_the_cpu(monkeypatch, rng, lowmem_calls):
    """None: single above 256 points, ward/average above the size rule; never generic."""
    calls = lowmem_calls
    monkeypatch.setattr(_plan, "_SUMMARY_CHAIN_MIN_N", 30)
    X = rng.normal(size=(40, 3))  # n = 40 >= 30 * max(1, 3 / 32)
    for method, metric in [("ward", "euclidean"), ("average", "cosine"),
                           ("average", "sqeuclidean"), ("centroid", "euclidean"),
                           ("complete", "euclidean"), ("average", "euclidean"),
                           ("single", "euclidean")]:
        Z = gpu_hclust.linkage(X, method, metric=metric, backend="cpu")
        np.testing.assert_allclose(Z, sch.linkage(X, method, metric=metric), rtol=1e-10)
    assert calls == ["ward", "average", "average"]  # single: n <= 256
    calls.clear()
    wide = rng.normal(size=(40, 64))  # needs n >= 30 * 64 / 32 = 60
    gpu_hclust.linkage(wide, "ward", backend="cpu")
    gpu_hclust.linkage(X, "ward", backend="cpu", low_memory=False)
    gpu_hclust.linkage(rng.normal(size=(300, 2)), "single", backend="cpu", low_memory=False)
    assert calls == []
    gpu_hclust.linkage(rng.normal(size=(300, 2)), "single", backend="cpu")
    assert calls == ["single"]


@pytest.mark.parametrize("low_memory", [None, True])
def test_memory_saving_path_refuses_before_allocating_when_even_it_does_not_fit(
        monkeypatch, rng, low_memory):
    X = rng.normal(size=(40, 3))
    X0 = X.copy()
    monkeypatch.setattr(_plan, "host_available_bytes", lambda: 1000)
    with pytest.raises(MemoryError, match=r"needs 8\.4 KiB of host memory for its working copy "
                                          r"of the observations.*dtype=np\.float32 \(halves the "
                                          r"working copy"):
        gpu_hclust.linkage(X, "ward", backend="cpu", low_memory=low_memory)
    np.testing.assert_array_equal(X, X0)
    with pytest.raises(MemoryError, match="fewer observations"):
        gpu_hclust.linkage(X, "ward", backend="cpu", low_memory=low_memory, dtype=np.float32)


def test_progress_bars_drawn_when_forced_and_silent_by_default(capsys, rng):
    X = rng.normal(size=(30, 2))
    gpu_hclust.linkage(X, "average", backend="cpu")
    assert capsys.readouterr().err == ""
    gpu_hclust.linkage(X, "average", backend="cpu", progress=True)
    err = capsys.readouterr().err
    for phase in ("distances", "merges", "canonicalisation"):
        assert phase in err


@pytest.mark.parametrize("method", ["single", "average", "centroid"])
def test_cpu_kernels_count_merges_for_progress(method, rng):
    from gpu_hclust._methods import METHODS
    from gpu_hclust import _engine_cpu
    from gpu_hclust._validation import validate_linkage_input

    spec = METHODS[method]
    inp = validate_linkage_input(rng.normal(size=(25, 3)), spec, "euclidean")
    D = _engine_cpu.condensed_working_matrix(inp, np.dtype(np.float64), spec.squared)
    counter = np.zeros(1, dtype=np.int64)
    _engine_cpu.run_family(spec, D, 25, counter=counter)
    assert counter[0] == 24
