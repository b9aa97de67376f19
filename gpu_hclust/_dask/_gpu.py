"""GPU tiles on a Dask worker: which tiles a block uses, and the CUDA scans.

``tiles`` (the user's choice, ``gpu_hclust.dask.linkage(..., tiles=...)``) is
resolved on the worker, per block, when the block is prepared:

* ``"cpu"``: the Numba CPU tiles (``_kernels``); CuPy chunks come to the host.
* ``"cuda"``: the block's coordinates stay on the worker's device and the
  block-pair scans run as CUDA kernels (``kernels.cuda_dask_tiles``). A worker
  without a usable GPU raises RuntimeError: never a silent fallback. Under
  numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1`` in the worker's
  environment) the kernels run on NumPy arrays, which is how the tests run it.
* ``"auto"``: ``"cuda"`` for CuPy chunks (a dask-cuda worker), ``"cpu"`` for
  NumPy chunks (never the simulator).

Only the scans move to the device: the candidate lists, bounds and the other
per-row state (O(block) each) stay NumPy on the worker's host, and each scan
sends back O(rows * K) candidates. The lists are the CPU tiles' lists: the
same candidates are offered under the same strict (distance, index) key, and a
distance differs from the CPU's at most in the last bit (a GPU fuses
multiply-adds; the simulator does not, so there it is the same float).
"""

import numpy as np

from .._backend import cuda_unavailable_reason, device_namespace, simulator_enabled
from ..kernels.host import is_cupy_array, to_host

TILES = ("auto", "cpu", "cuda")


def check_tiles(tiles):
    """The user's ``tiles`` argument, checked on the client (ValueError otherwise)."""
    if not isinstance(tiles, str) or tiles not in TILES:
        raise ValueError(f"tiles must be one of 'auto', 'cpu', 'cuda'; got {tiles!r}")
    return tiles


def resolve_tiles(tiles, chunk):
    """'cpu' or 'cuda' for one block on this worker (see the module docstring)."""
    if tiles == "auto":
        tiles = "cuda" if is_cupy_array(chunk) else "cpu"
    if tiles == "cuda" and not simulator_enabled():
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise RuntimeError(
                f"tiles='cuda' cannot run on this Dask worker: {reason}. Start GPU workers "
                "(dask-cuda: LocalCUDACluster or dask-cuda-worker) or pass tiles='cpu'."
            )
    return tiles


def to_device(x):
    """``x`` in the namespace the CUDA tiles run on (CuPy on a GPU, NumPy in the simulator)."""
    xp = device_namespace()
    return xp.ascontiguousarray(xp.asarray(x))


def _launch_setup():
    from ..kernels import cuda_dask_tiles as tk
    from ..kernels import launch

    xp = device_namespace()
    tpb = launch.check_tpb(None, tk.MAX_TPB)
    return tk, launch, xp, tpb, launch.stream_for(xp)


def _check_k(k, tk):
    if not 1 <= k <= tk.MAX_K:
        raise ValueError(f"candidate list length must be between 1 and {tk.MAX_K}; got {k}")


def point_lists(Q, rows, C, comp, k, p):
    """(rows, W, J): the k nearest points of block C in another component for
    block Q's local rows ``rows`` (NumPy, on the host)."""
    rows = np.asarray(rows, dtype=np.int64)
    nq = rows.size
    W = np.full((nq, k), np.inf)
    J = np.full((nq, k), -1, dtype=np.int64)
    if nq == 0 or C.size == 0:
        return rows, W, J
    tk, launch, xp, tpb, stream = _launch_setup()
    _check_k(k, tk)
    rows_d = xp.asarray(rows)
    QT = xp.ascontiguousarray(Q.CT[:, rows_d])
    qn = xp.ascontiguousarray(Q.norms[rows_d])
    qid = xp.asarray(rows + Q.off)
    comp_d = xp.asarray(np.ascontiguousarray(comp, dtype=np.int64))
    out_w = xp.empty((nq, k), dtype=np.float64)
    out_j = xp.empty((nq, k), dtype=np.int64)
    dv = launch.as_device
    tk.point_pairs[tk.grid(nq, tpb), tpb, stream](
        dv(QT), dv(qn), dv(qid), np.int64(nq), dv(C.CT), dv(C.norms), np.int64(C.off),
        np.int64(C.size), dv(comp_d), np.int64(Q.mcode), np.float64(p), np.int64(k),
        dv(out_w), dv(out_j))
    return rows, to_host(out_w), to_host(out_j)


def cluster_lists(code, metric, CTq, sq, eq, qslots, CTc, sc, ec, cslots, k):
    """(W, J): per query summary (columns of ``CTq``, device; sizes/extras and
    global slots on the host) its k nearest column summaries (``CTc``, the
    same), its own slot excluded, under (distance, slot)."""
    nq = int(qslots.size)
    nc = int(cslots.size)
    W = np.full((nq, k), np.inf)
    J = np.full((nq, k), -1, dtype=np.int64)
    if nq == 0 or nc == 0:
        return W, J
    tk, launch, xp, tpb, stream = _launch_setup()
    _check_k(k, tk)
    out_w = xp.empty((nq, k), dtype=np.float64)
    out_j = xp.empty((nq, k), dtype=np.int64)
    dv = launch.as_device

    def host(a, dtype):
        return dv(xp.asarray(np.ascontiguousarray(a, dtype=dtype)))

    tk.cluster_pairs[tk.grid(nq, tpb), tpb, stream](
        dv(xp.ascontiguousarray(CTq)), host(sq, np.float64), host(eq, np.float64),
        host(qslots, np.int64), np.int64(nq), dv(xp.ascontiguousarray(CTc)),
        host(sc, np.float64), host(ec, np.float64), host(cslots, np.int64), np.int64(nc),
        np.int64(code), np.int64(metric), np.int64(k), dv(out_w), dv(out_j))
    return to_host(out_w), to_host(out_j)


def block_cluster_lists(code, metric, Q, rows, C, k):
    """(rows, W, J): the k nearest active slots of block state C for block state
    Q's local slots ``rows``."""
    xp = device_namespace()
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.flatnonzero(C.active)
    W, J = cluster_lists(code, metric, Q.CT[:, xp.asarray(rows)], Q.size[rows], Q.extra[rows],
                         rows + Q.off, C.CT[:, xp.asarray(cols)], C.size[cols], C.extra[cols],
                         cols + C.off, k)
    return rows, W, J
