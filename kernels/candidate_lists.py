"""Per-row candidate lists of the GPU memory-saving rounds: device functions.

Shared by the tile kernels (``cuda_vector``), the GEMM scans (``cuda_gemm_scan``)
and the Dask GPU tiles (``cuda_dask_tiles``). A list holds the first entries
under the key (distance, slot) of ``launch.precedes``, ascending; slot -1
marks an empty entry. See ``cuda_vector`` (``_rnn_rounds``) for the bound
that goes with a row's list.
"""

from numba import cuda

from . import launch
from ._config import NUMBA_CACHE

# Longest list a kernel may keep (``cuda_vector.RNN_TOP_K`` is at most this):
# local arrays are sized by it, plus one entry for the bound.
RNN_TOP_K_MAX = 32
_KLIST = RNN_TOP_K_MAX + 1  # a scan keeps K + 1 entries: the list and its bound


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _klist_insert(kw, kj, m, w, j):
    """Insert (w, j) into the ascending (distance, index) list kw/kj of m
    entries if it precedes the last one (j < 0 marks an empty entry)."""
    if not launch.precedes(w, j, kw[m - 1], kj[m - 1]):
        return
    pos = m - 1
    while pos > 0 and launch.precedes(w, j, kw[pos - 1], kj[pos - 1]):
        kw[pos] = kw[pos - 1]
        kj[pos] = kj[pos - 1]
        pos -= 1
    kw[pos] = w
    kj[pos] = j


@cuda.jit(device=True, cache=NUMBA_CACHE)
def _offer(LW, LJ, BW, BJ, k, kk, w, u):
    """Offer (w, u) to row k's list (one thread per row at a time).

    Ignored unless it precedes the bound; else inserted, and when the list was
    full the entry pushed out (the last one, or the offer itself) becomes the
    bound. The final list and bound are the same in any offer order.
    """
    if not launch.precedes(w, u, BW[k], BJ[k]):
        return
    last = kk - 1
    if LJ[last, k] >= 0:
        if not launch.precedes(w, u, LW[last, k], LJ[last, k]):
            BW[k] = w
            BJ[k] = u
            return
        BW[k] = LW[last, k]
        BJ[k] = LJ[last, k]
    pos = last
    while pos > 0 and launch.precedes(w, u, LW[pos - 1, k], LJ[pos - 1, k]):
        LW[pos, k] = LW[pos - 1, k]
        LJ[pos, k] = LJ[pos - 1, k]
        pos -= 1
    LW[pos, k] = w
    LJ[pos, k] = u
