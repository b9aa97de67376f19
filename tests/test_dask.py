"""gpu_hclust.dask on a real 2-worker LocalCluster (processes, one thread each).

Oracle: the single-machine memory-saving path, ``gpu_hclust.linkage(X, method,
metric, low_memory=True)``: ids and sizes exact, heights to rtol 1e-12, on
generic-position data. Under ties: deterministic (the same Z for other
chunkings) and replay-valid (tests/reference.py).
"""

import os
import signal
import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import pdist

pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import gpu_hclust  # noqa: E402
from gpu_hclust import dask as gdask  # noqa: E402
from gpu_hclust._dask import _engines  # noqa: E402
from reference import replay_check  # noqa: E402

PAIRS = [(m, metric) for m, metrics in gdask.SUPPORTED.items() for metric in metrics]


def _default_run(pairs, keep):
    """``pairs`` as parameters; those outside ``keep`` run under -m slow only (the
    default run must stay short on 2 cores; CI runs ``keep``, a full run all)."""
    return [pytest.param(*p, marks=() if p in keep else pytest.mark.slow) for p in pairs]


WORKERS = 2


@pytest.fixture(scope="module")
def shared_cluster():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    cl = Client(cluster)
    yield cl
    cl.close()
    cluster.close()


@pytest.fixture
def client(shared_cluster):
    """The shared 2-worker cluster, with both workers running when the test starts.

    No test may depend on what an earlier one left behind (a worker being
    restarted after a crash); tests that kill workers use ``own_client``.
    """
    shared_cluster.wait_for_workers(WORKERS, timeout=120)
    return shared_cluster


@pytest.fixture
def own_client():
    """A 2-worker cluster of this test's own (for tests that kill worker processes)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as cl:
        cl.wait_for_workers(WORKERS, timeout=120)
        yield cl


@pytest.fixture
def rounds_only(monkeypatch):
    """Keep the rounds going to the last merge (the client finishes only at 2 clusters)."""
    monkeypatch.setattr(_engines, "CLIENT_FINISH_CLUSTERS", 2)
    monkeypatch.setattr(_engines, "CHAIN_GUARD_FRACTION", 0.0)


def _data(rng, n, d, metric):
    X = rng.normal(size=(n, d))
    if metric in ("cosine", "correlation"):
        X += 0.5  # away from the origin: no near-zero rows
    return X


def assert_same(Z, Zr, rtol=1e-12):
    assert Z.dtype == np.float64 and Z.shape == Zr.shape
    assert_array_equal(Z[:, [0, 1, 3]], Zr[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zr[:, 2], rtol=rtol, atol=0)


@pytest.mark.parametrize("method,metric", _default_run(
    PAIRS, {("single", "euclidean"), ("single", "cosine"), ("ward", "euclidean"),
            ("average", "correlation")}))
def test_rounds_equal_single_machine(client, rounds_only, rng, method, metric):
    X = _data(rng, 240, 4, metric)
    Xd = da.from_array(X, chunks=(70, 4))  # 4 uneven blocks
    Z = gdask.linkage(Xd, method, metric, client=client)
    assert_same(Z, gpu_hclust.linkage(X, method, metric, low_memory=True))


def test_squares_beyond_float64_heights_within(client, rng):
    # Ward's squared heights overflow at 1e155, its heights do not: the scale is
    # undone after the square root, as on the single-machine path.
    X = _data(rng, 120, 3, "euclidean") * 1e155
    Z = gdask.linkage(da.from_array(X, chunks=(40, 3)), "ward", client=client)
    assert np.isfinite(Z[:, 2]).all()
    assert_same(Z, gpu_hclust.linkage(X, "ward", low_memory=True))


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("method,metric", [("single", "euclidean"), ("ward", "euclidean"),
                                           ("average", "cosine")])
def test_short_candidate_lists(client, rounds_only, rng, monkeypatch, k, method, metric):
    """Lists of 1-2 entries run empty and evict often: bounds, evictions and
    rescans decide most rounds, and Z must not change."""
    monkeypatch.setattr(_engines, "CANDIDATES", k)
    monkeypatch.setattr(_engines, "CLUSTER_CANDIDATES", k)
    X = _data(rng, 180, 3, metric)
    Z = gdask.linkage(da.from_array(X, chunks=(50, 3)), method, metric, client=client)
    assert_same(Z, gpu_hclust.linkage(X, method, metric, low_memory=True))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_candidate_lists_exact_under_arbitrary_merges(rng, k):
    """The block state's list heads equal a fresh full scan after every round,
    whichever pairs merge (random pairs here, not reciprocal ones: the list
    invariant must not lean on reducibility). Runs the task functions in-process."""
    from gpu_hclust._dask import _tasks
    from gpu_hclust._methods import get_method

    spec = get_method("ward")
    n = 200
    X = rng.normal(size=(n, 2))
    blk = _tasks.prepare_block(X, 0, spec, "euclidean", np.float64, (None, 0))
    code, mcode = spec.code, blk.mcode
    S = _tasks.init_summaries(blk, k)
    active = np.ones(n, dtype=np.bool_)
    while active.sum() > 1:
        S = _tasks.finish_scan(S, [0], _tasks.scan_clusters_pair(code, mcode, S, S))
        nn, nnd, _, _ = _tasks.neighbours(S)
        D1, I1 = _tasks.empty_lists(n, 1)
        full = S.replace(D=D1, I=I1, need=S.active.copy())  # a from-scratch scan of the same state
        fresh = _tasks.finish_scan(full, [0], _tasks.scan_clusters_pair(code, mcode, full, full))
        nn_ref, nnd_ref, _, _ = _tasks.neighbours(fresh)
        assert_array_equal(nn, nn_ref)
        assert_array_equal(nnd, nnd_ref)
        act = np.flatnonzero(active)
        take = rng.permutation(act)[: 2 * max(1, act.size // 12)]
        lo = np.minimum(take[0::2], take[1::2])
        hi = np.maximum(take[0::2], take[1::2])
        slots = np.column_stack([lo, hi]).ravel()  # pair p: lo at 2p, hi at 2p + 1
        merged = _tasks.merge_children(code, mcode, slots.size, [np.arange(slots.size)],
                                       _tasks.take_summaries(S, slots))
        S = _tasks.apply_merges(code, mcode, S, n, lo, hi, merged)
        active[hi] = False


def test_offer_lowers_bound_between_last_entry_and_bound():
    """An offer after a full list's last entry but before its bound becomes the bound
    (every slot not listed must come after it: the offered one is not listed)."""
    from gpu_hclust._dask import _kernels

    D = np.array([[1.0, 2.0]])
    I = np.array([[4, 6]])
    bd, bi = np.array([5.0]), np.array([9])
    thr = _kernels.offer(D, I, bd, bi, 0, 3.0, 7)
    assert_array_equal(I, [[4, 6]])  # the list keeps its two first
    assert (bd[0], bi[0], thr) == (3.0, 7, 3.0)  # and the bound drops to the offer
    _kernels.offer(D, I, bd, bi, 0, 3.0, 8)  # after the new bound: no change
    assert (bd[0], bi[0]) == (3.0, 7)
    _kernels.offer(D, I, bd, bi, 0, 1.5, 11)  # into the list: the last entry is the bound
    assert_array_equal(I, [[4, 11]])
    assert (bd[0], bi[0]) == (2.0, 6)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_offers_of_the_k_plus_1_first_decide_the_list(rng, k):
    """The GPU tiles return each row's K + 1 first new clusters, not every one:
    offering those alone (``offer_lists``) leaves the lists and bounds that
    offering every new cluster leaves (``drop_and_offer``), ties included."""
    from gpu_hclust._dask import _kernels
    from gpu_hclust._methods import get_method
    from gpu_hclust.kernels import metrics

    code, mcode = get_method("ward").code, metrics.SQEUCLIDEAN  # ward: centroid distances
    n, m, d = 60, 25, 2
    CT = np.round(rng.uniform(0, 4, size=(d, n)))  # integer grid: tied distances
    size = np.ones(n)
    extra = np.zeros(n)
    rows = np.arange(n)
    D0 = np.sort(np.round(rng.uniform(0, 9, size=(n, k))), axis=1)
    I0 = np.tile(np.arange(100, 100 + k), (n, 1))
    I0[rng.uniform(size=(n, k)) < 0.2] = -1  # some lists not full
    I0 = np.where(np.cumsum(I0 < 0, axis=1) > 0, -1, I0)
    D0[I0 < 0] = np.inf
    bd0 = np.where(rng.uniform(size=n) < 0.7, 9.0, np.inf)
    bi0 = np.where(np.isfinite(bd0), 500, -1)
    CTn = np.round(rng.uniform(0, 4, size=(d, m)))
    sn, en = np.ones(m), np.zeros(m)
    slots = np.arange(200, 200 + m)
    dead = np.zeros(300, dtype=np.bool_)
    ref = [x.copy() for x in (D0, I0, bd0, bi0)]
    _kernels.drop_and_offer(code, mcode, CT, size, extra, rows, dead, *ref, CTn, sn, en, slots)
    # every (row, new cluster) distance, the K + 1 first per row under (distance, slot)
    W = ((CT[:, :, None] - CTn[:, None, :]) ** 2).sum(axis=0)
    full = [x.copy() for x in (D0, I0, bd0, bi0)]
    W1, J1 = np.full((n, k + 1), np.inf), np.full((n, k + 1), -1, dtype=np.int64)
    for r in range(n):
        order = np.lexsort((slots, W[r]))[: k + 1]
        W1[r], J1[r] = W[r, order], slots[order]
    _kernels.offer_lists(rows, W1, J1, *full)
    for a, b in zip(ref, full):
        assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(ref, (D0, I0, bd0, bi0)))


def test_workers_inherit_the_simulator(client):
    """The CUDA-tile tests below rely on the worker processes running numba-cuda's
    simulator as this process does (conftest sets it before numba loads)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("a GPU is usable here: the workers run real CUDA tiles")

    def probe():
        from numba import config

        return os.environ.get("NUMBA_ENABLE_CUDASIM"), bool(config.ENABLE_CUDASIM)

    assert set(client.run(probe).values()) == {("1", True)}


@pytest.mark.parametrize("method,metric,k", [
    ("single", "euclidean", None), ("ward", "euclidean", None), ("average", "cosine", None),
    ("ward", "euclidean", 1)])
def test_cuda_tiles_equal_single_machine(client, rounds_only, rng, monkeypatch, method, metric, k):
    """tiles='cuda' on the workers (the simulator here): the same Z as the single
    machine, through scans, offers and (k = 1) bounds and rescans."""
    if k is not None:
        monkeypatch.setattr(_engines, "CANDIDATES", k)
        monkeypatch.setattr(_engines, "CLUSTER_CANDIDATES", k)
    X = _data(rng, 40, 3, metric)
    Z = gdask.linkage(da.from_array(X, chunks=(14, 3)), method, metric, client=client,
                      tiles="cuda")
    assert gdask.last_run_stats["tiles"] == ["cuda"]
    assert_same(Z, gpu_hclust.linkage(X, method, metric, low_memory=True))


def test_numpy_chunks_run_cpu_tiles_under_auto(client, rng):
    X = rng.normal(size=(30, 2))
    Z = gdask.linkage(da.from_array(X, chunks=(10, 2)), "single", client=client)
    assert gdask.last_run_stats["tiles"] == ["cpu"]  # 'auto' never picks the simulator
    assert_same(Z, gpu_hclust.linkage(X, "single", low_memory=True))


def test_cuda_tiles_without_a_gpu_raise(rng, monkeypatch):
    """tiles='cuda' on a worker without a usable GPU: RuntimeError from the worker,
    naming the cause and the way out; never a silent fallback to the CPU tiles."""
    from distributed import Client, LocalCluster

    from gpu_hclust._dask import _gpu

    with pytest.raises(ValueError, match="tiles must be one of 'auto', 'cpu', 'cuda'; got 'gpu'"):
        gdask.linkage(da.zeros((4, 2), chunks=(2, 2)), "single", tiles="gpu")
    monkeypatch.setattr(_gpu, "simulator_enabled", lambda: False)
    monkeypatch.setattr(_gpu, "cuda_unavailable_reason", lambda: "CuPy is not installed")
    assert _gpu.resolve_tiles("auto", np.zeros((2, 2))) == "cpu"
    X = da.from_array(rng.normal(size=(20, 2)), chunks=(10, 2))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as cl:
        with pytest.raises(RuntimeError, match=r"tiles='cuda' cannot run on this Dask worker: "
                                               r"CuPy is not installed.*tiles='cpu'"):
            gdask.linkage(X, "single", client=cl, tiles="cuda")


@pytest.mark.parametrize("method", ["single", "ward"])
def test_default_settings_n2000(client, rng, method):
    """Default thresholds: rounds down to CLIENT_FINISH_CLUSTERS, then the client's chain."""
    X = rng.normal(size=(2000, 8))
    Z = gdask.linkage(da.from_array(X, chunks=(500, 8)), method, client=client)
    assert_same(Z, gpu_hclust.linkage(X, method, low_memory=True))


@pytest.mark.slow
@pytest.mark.parametrize("method,metric", [("single", "euclidean"), ("ward", "euclidean"),
                                           ("average", "cosine")])
def test_default_settings_n5000(client, rng, method, metric):
    X = _data(rng, 5000, 16, metric)
    Z = gdask.linkage(da.from_array(X, chunks=(1250, 16)), method, metric, client=client)
    assert_same(Z, gpu_hclust.linkage(X, method, metric, low_memory=True))


@pytest.mark.parametrize("method,metric", _default_run(
    [("single", "euclidean"), ("ward", "euclidean"), ("average", "cosine")],
    {("ward", "euclidean")}))
def test_float32_storage(client, rounds_only, rng, method, metric):
    X = _data(rng, 200, 5, metric)
    Z = gdask.linkage(da.from_array(X, chunks=(64, 5)), method, metric, client=client,
                      dtype=np.float32)
    assert_same(Z, gpu_hclust.linkage(X, method, metric, low_memory=True, dtype=np.float32))


@pytest.mark.parametrize("method,metric", _default_run(
    [("single", "euclidean"), ("single", "cityblock"), ("ward", "euclidean"),
     ("average", "sqeuclidean")], {("single", "cityblock"), ("ward", "euclidean")}))
def test_ties_deterministic_and_replay_valid(client, rounds_only, rng, method, metric):
    X = np.round(rng.uniform(0, 3, size=(60, 2)))  # integer grid: duplicates, many ties
    Z1 = gdask.linkage(da.from_array(X, chunks=(20, 2)), method, metric, client=client)
    Z2 = gdask.linkage(da.from_array(X, chunks=(25, 2)), method, metric, client=client)
    assert_array_equal(Z1, Z2)  # any chunking, any task order: the same Z
    assert gpu_hclust.is_valid_linkage(Z1) and gpu_hclust.is_monotonic(Z1)
    y = pdist(X, metric)
    replay_check(Z1, y, method, rtol=1e-9)
    if method == "single":  # every minimum spanning tree has the same weights
        Zs = gpu_hclust.linkage(X, method, metric, low_memory=True)
        assert_allclose(np.sort(Z1[:, 2]), np.sort(Zs[:, 2]), rtol=1e-12, atol=0)


def test_chain_guard_finishes_on_client(client, monkeypatch):
    """A line with growing gaps merges one pair per round: the guard hands it to the client."""
    calls = []
    real = _engines._finish_on_client

    def spy(*args):
        out = real(*args)
        calls.append(out[0].size + 1)  # clusters left when the client took over
        return out

    monkeypatch.setattr(_engines, "_finish_on_client", spy)
    monkeypatch.setattr(_engines, "CLIENT_FINISH_CLUSTERS", 2)
    x = np.cumsum(np.linspace(1.0, 2.0, 300)) ** 1.1
    X = np.column_stack([x, np.zeros_like(x)])
    Z = gdask.linkage(da.from_array(X, chunks=(100, 2)), "ward", client=client)
    assert calls and calls[0] > 250  # taken over after the first thin round
    assert_same(Z, gpu_hclust.linkage(X, "ward", low_memory=True))


def test_entry_points(client, rng):
    X = rng.normal(size=(150, 3))
    Xd = da.from_array(X, chunks=(50, 3))
    Zr = gpu_hclust.linkage(X, "ward", low_memory=True)
    assert_same(gpu_hclust.linkage(Xd, "ward"), Zr)  # current client, dispatch by duck type
    model = gpu_hclust.HierarchicalClustering(n_clusters=4, method="ward").fit(Xd)
    ref = gpu_hclust.HierarchicalClustering(n_clusters=4, method="ward", low_memory=True).fit(X)
    assert_array_equal(model.labels_, ref.labels_)
    assert_same(model.linkage_, Zr)
    with pytest.raises(ValueError, match="optimal_ordering=True is not available"):
        gpu_hclust.linkage(Xd, "ward", optimal_ordering=True)
    with pytest.raises(ValueError, match="backend='cuda' is not available"):
        gpu_hclust.linkage(Xd, "ward", backend="cuda")
    with pytest.raises(ValueError, match="metric='precomputed' is not supported"):
        gpu_hclust.HierarchicalClustering(metric="precomputed").fit(Xd)


def test_progress_bar(client, rng, capsys):
    pytest.importorskip("tqdm")
    X = rng.normal(size=(120, 3))
    gdask.linkage(da.from_array(X, chunks=(40, 3)), "single", client=client, progress=True)
    err = capsys.readouterr().err
    assert "single rounds (dask)" in err and "119/119" in err and "round" in err


@pytest.mark.parametrize("method,metric,match", [
    ("complete", "euclidean", "complete linkage needs every pairwise distance"),
    ("weighted", "euclidean", "weighted linkage depends on the merge history"),
    ("centroid", "euclidean", "centroid linkage is not reducible"),
    ("median", "euclidean", "median linkage is not reducible"),
    ("ward", "cityblock", r"method='ward' with metric='cityblock'.*euclidean"),
    ("average", "euclidean", r"average supports metric in \['correlation', 'cosine', 'sqeuclidean'\]"),
    ("single", "hamming", "cannot compute method='single' with metric='hamming'"),
    ("bogus", "euclidean", "Invalid method"),
])
def test_unsupported_pairs(method, metric, match):
    X = da.zeros((10, 2), chunks=(5, 2))
    with pytest.raises(ValueError, match=match):
        gdask.linkage(X, method, metric)


def test_callable_metric_refused():
    with pytest.raises(ValueError, match="not a callable"):
        gdask.linkage(da.zeros((10, 2), chunks=(5, 2)), "single", lambda u, v: 0.0)


def test_bad_input(client, rng):
    with pytest.raises(ValueError, match="must be a dask.array.Array"):
        gdask.linkage(np.zeros((5, 2)), "single", client=client)
    with pytest.raises(ValueError, match="2-D"):
        gdask.linkage(da.zeros(10, chunks=5), "single", client=client)
    with pytest.raises(ValueError, match="at least 2"):
        gdask.linkage(da.zeros((1, 3), chunks=(1, 3)), "single", client=client)
    with pytest.raises(ValueError, match="real numbers"):
        gdask.linkage(da.from_array(np.array([["a"], ["b"]])), "single", client=client)
    with pytest.raises(ValueError, match="dtype must be None"):
        gdask.linkage(da.zeros((4, 2), chunks=(2, 2)), "single", client=client, dtype=np.int32)
    X = rng.normal(size=(20, 2))
    X[13, 1] = np.nan
    with pytest.raises(ValueError, match="only finite values"):
        gdask.linkage(da.from_array(X, chunks=(5, 2)), "single", client=client)
    X = rng.normal(size=(20, 2))
    X[7] = 0.0
    with pytest.raises(ValueError, match=r"undefined for all-zero observations \(rows \[2\].*row 5"):
        gdask.linkage(da.from_array(X, chunks=(5, 2)), "average", "cosine", client=client)
    Xu = da.from_array(rng.normal(size=(20, 2)), chunks=(5, 2))
    Xu = Xu[Xu[:, 0] > -10]  # unknown row chunk sizes
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        gdask.linkage(Xu, "single", client=client)


def test_input_not_modified(client, rng):
    X = rng.normal(size=(60, 3))
    keep = X.copy()
    gdask.linkage(da.from_array(X, chunks=(20, 3)), "average", "correlation", client=client)
    assert_array_equal(X, keep)


def test_memory_error_before_computing(client):
    X = da.zeros((10**9, 1000), chunks=(10**7, 1000))  # never computed
    with pytest.raises(MemoryError, match=r"per worker for n=1000000000.*Ways out: dtype=np.float32"):
        gdask.linkage(X, "ward", client=client)


def test_predict_worker_bytes_scales_with_workers():
    one = gdask.predict_worker_bytes(10**6, 32, [25_000] * 40, 1, np.float64)
    four = gdask.predict_worker_bytes(10**6, 32, [25_000] * 40, 4, np.float64)
    assert 3 * four < one  # O(n d / workers + n)


def test_worker_loss_same_result(own_client, rounds_only, rng, monkeypatch):
    """Kill a worker process mid-run: the run completes with the same Z (or raises).

    On a cluster of its own: the killed worker's nanny restarts it some
    seconds later, and no other test may run in that window.
    """
    client = own_client
    X = rng.normal(size=(400, 4))
    Zr = gpu_hclust.linkage(X, "ward", low_memory=True)
    Xd = da.from_array(X, chunks=(50, 4))
    pids = client.run(os.getpid)
    out = {}

    def run():
        try:
            out["Z"] = gdask.linkage(Xd, "ward", client=client)
        except Exception as exc:  # reported below
            out["error"] = exc

    started = []

    def watch(done, rounds):  # kill once the run is a few rounds in
        if rounds == 3 and not started:
            started.append(True)
            os.kill(next(iter(pids.values())), signal.SIGKILL)

    real_rounds = _engines.reducible_rounds

    def rounds_with_kill(client_, blocks, layout, code, mcode, report, *rest):
        def both(done, rounds):
            report(done, rounds)
            watch(done, rounds)
        return real_rounds(client_, blocks, layout, code, mcode, both, *rest)

    monkeypatch.setattr(_engines, "reducible_rounds", rounds_with_kill)
    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=600)
    assert started, "the run ended before the worker could be killed"
    assert not t.is_alive()
    if "error" in out:  # allowed: a clear error, no partial output
        assert isinstance(out["error"], RuntimeError), out["error"]
        assert "lost workers" in str(out["error"])
        assert "Z" not in out
    else:
        print("worker loss: run completed")
        assert_same(out["Z"], Zr)


def test_workers_read_from_the_scheduler_not_the_cache(client, rng, monkeypatch):
    """``client.scheduler_info()`` is a cache the client's periodic refresh replaces with
    one holding no per-worker entries; reading workers from it gave a flaky "no workers"."""
    monkeypatch.setattr(client, "scheduler_info", lambda *a, **k: {"workers": {}})
    assert len(gdask.running_workers(client)) == WORKERS
    X = rng.normal(size=(50, 3))
    Z = gdask.linkage(da.from_array(X, chunks=(25, 3)), "single", client=client)
    assert_same(Z, gpu_hclust.linkage(X, "single", low_memory=True))


def test_no_running_worker_waits_then_raises(monkeypatch):
    from distributed import Client, LocalCluster

    monkeypatch.setattr(gdask, "WORKER_WAIT_S", 0.5)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as cl:
        with pytest.raises(RuntimeError, match=r"no running workers for 0.5 s; start workers"):
            gdask.linkage(da.zeros((10, 2), chunks=(5, 2)), "single", client=cl)


def test_waits_for_a_worker_to_join(rng):
    """A worker arriving during the wait (a nanny restarting a killed one, an
    adaptive cluster scaling up) is used: the call does not fail at once."""
    from distributed import Client, LocalCluster

    X = rng.normal(size=(40, 2))
    with LocalCluster(n_workers=0, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as cl:
        timer = threading.Timer(1.0, cluster.scale, args=(1,))
        timer.start()
        try:
            Z = gdask.linkage(da.from_array(X, chunks=(20, 2)), "single", client=cl)
        finally:
            timer.cancel()
    assert_same(Z, gpu_hclust.linkage(X, "single", low_memory=True))


@pytest.mark.slow
def test_no_client_starts_and_closes_a_local_cluster(tmp_path):
    """client=None and no current client: a LocalCluster is started, announced, and closed."""
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import warnings, numpy as np, dask.array as da\n"
        "import gpu_hclust\n"
        "from gpu_hclust import dask as gdask\n"
        "if __name__ == '__main__':\n"
        "    X = np.random.default_rng(1).normal(size=(80, 3))\n"
        "    with warnings.catch_warnings(record=True) as w:\n"
        "        warnings.simplefilter('always')\n"
        "        Z = gdask.linkage(da.from_array(X, chunks=(40, 3)), 'single')\n"
        "    assert any('starting a LocalCluster' in str(x.message) for x in w)\n"
        "    from distributed import get_client\n"
        "    try:\n"
        "        get_client(); raise SystemExit('a client is still running')\n"
        "    except ValueError:\n"
        "        pass\n"
        "    Zr = gpu_hclust.linkage(X, 'single', low_memory=True)\n"
        "    # ids exact; heights to 1e-12 (centred by a chunked Dask mean: last-bit differences)\n"
        "    assert np.array_equal(Z[:, [0, 1, 3]], Zr[:, [0, 1, 3]])\n"
        "    assert np.allclose(Z[:, 2], Zr[:, 2], rtol=1e-12, atol=0)\n"
        "    print('OK')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600, env=env, cwd=root)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]


@pytest.mark.gpu
def test_one_gpu_local_cuda_cluster(rng):
    """A one-GPU dask-cuda worker with CuPy chunks: 'auto' runs the CUDA tiles, on
    the device, and gives the single machine's Z; 'cpu' gives the same Z."""
    dask_cuda = pytest.importorskip("dask_cuda")
    cupy = pytest.importorskip("cupy")
    from distributed import Client

    with dask_cuda.LocalCUDACluster(n_workers=1) as cluster, Client(cluster) as cl:
        for method, metric in [("single", "euclidean"), ("ward", "euclidean"),
                               ("average", "cosine")]:
            X = _data(rng, 3000, 8, metric)
            Xd = da.from_array(X, chunks=(750, 8)).map_blocks(cupy.asarray)
            Zr = gpu_hclust.linkage(X, method, metric, low_memory=True)
            Z = gdask.linkage(Xd, method, metric, client=cl)
            assert gdask.last_run_stats["tiles"] == ["cuda"]
            assert_same(Z, Zr)
            Z = gdask.linkage(Xd, method, metric, client=cl, tiles="cpu")
            assert gdask.last_run_stats["tiles"] == ["cpu"]
            assert_same(Z, Zr)


def test_cli_scheduler_flag(client, rng, tmp_path, capsys):
    """``gpu-hclust cluster --scheduler ADDRESS`` runs on that cluster, same Z."""
    from gpu_hclust.cli import main

    X = _data(rng, 300, 4, "euclidean")
    src = tmp_path / "X.npy"
    np.save(src, X)
    zpath = tmp_path / "Z.npy"
    rc = main(["cluster", str(src), "--method", "ward", "--scheduler",
               client.scheduler.address, "-z", str(zpath), "--maxclust", "3", "-q"])
    assert rc == 0, capsys.readouterr().err
    assert_same(np.load(zpath), gpu_hclust.linkage(X, "ward", low_memory=True))


@pytest.mark.parametrize("argv, message", [
    (["--scheduler", "tcp://127.0.0.1:1", "--local-workers", "2"], "not allowed with"),
    (["--local-workers", "2", "--backend", "cuda"], "drop --optimal-ordering, --backend cuda"),
    (["--local-workers", "0"], "--local-workers"),
])
def test_cli_dask_flags_refused(tmp_path, capsys, argv, message):
    from gpu_hclust.cli import main

    src = tmp_path / "X.npy"
    np.save(src, np.arange(20.0).reshape(10, 2))
    rc = main(["cluster", str(src), "-z", str(tmp_path / "Z.npy")] + argv)
    assert rc != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "Z.npy").exists()
