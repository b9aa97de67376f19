"""The device-side nearest-neighbour chain (``kernels/cuda_chain.py``), emulated in NumPy.

``emulate_chain`` replays ``cuda_chain.finish`` step by step as
``chain_steps`` does it: the tip's distances to every other active cluster
(``metrics.metric_accumulate`` in coordinate order,
``formulas.cluster_distance``), the first (distance, slot), the previous
element preferred on a tie, merges into the smaller slot, the removed slot's
place in the compact active list taken by the last entry, and the chain
started at the list's first entry. Launches and host reads follow
``finish``: one launch and one 4-int64 read per chunk of
``cuda_chain.chunk_merges`` merges. Pair distances: the chain computes
m - 1 per step (m active clusters).

It is the chain half of one emulation: ``count_gpu_work.emulate_rnn`` runs
the memory-saving RNN rounds and, where a round hands over
(``cuda_chain.hands_over``), calls ``emulate_chain`` on the rounds' state;
``count_gpu_work.py --data growing_gap,...`` prints the counts::

    from _chain_emulation import emulate_chain
    res = emulate_chain(CT, size, extra, active, code, mcode)   # a, b, h, steps, launches, ...

Imported by ``count_gpu_work.py`` (which puts the checkout on ``sys.path``)
and by the tests (``benchmarks`` is on pytest's ``pythonpath``).
"""

import numba
import numpy as np

from gpu_hclust.kernels import cuda_chain, formulas, metrics


# formulas.cluster_distance as a ufunc (one source; its clamp is a scalar branch).
_keys = numba.vectorize(["float64(int64, int64, float64, float64, float64, float64, float64)"],
                        cache=False)(formulas.cluster_distance)


def emulate_chain(CT, size, extra, active, code, mcode, rep=None):
    """``cuda_chain.finish`` from the state (CT, size, extra, active), in NumPy.

    Parameters
    ----------
    CT : ndarray, shape (d, n), float64
        Centroids (or mean unit vectors) per slot; not modified.
    size, extra : ndarray of float64, shape (n,)
        Cluster sizes and mean squared deviations (average/sqeuclidean).
    active : ndarray of bool, shape (n,)
        Active slots (at least one).
    code, mcode : int
        ``formulas`` method code and ``metrics`` code of the summaries.
    rep : ndarray of int64, shape (n,), optional
        An observation per slot (default: the slot itself).

    Returns
    -------
    dict
        ``a``, ``b``, ``h`` (the merge log, as the kernel writes it), ``merges``,
        ``steps`` (nearest-neighbour searches), ``pairs`` (distances computed),
        ``launches`` and ``host_syncs`` (one each per chunk).
    """
    d, n = CT.shape
    rep = np.arange(n) if rep is None else rep
    slot = np.flatnonzero(active)  # finish's compact list: ascending
    m = len(slot)
    C = np.array(CT[:, slot], dtype=np.float64, order="C")
    sz = np.array(size[slot], dtype=np.float64)
    ex = np.array(extra[slot], dtype=np.float64)
    pos = np.full(n, -1, dtype=np.int64)
    pos[slot] = np.arange(m)
    cm = formulas.coordinate_metric(code, mcode)
    chain, a, b, h = [], [], [], []
    steps = pairs = launches = done = limit = 0
    while m > 1:
        if done == limit:  # the host launches the next chunk and reads its state
            launches += 1
            limit = done + cuda_chain.chunk_merges(m, d)
        x = chain[-1] if chain else int(slot[0])
        px = pos[x]
        acc = np.zeros(m)
        for k in range(d):
            acc = metrics.metric_accumulate(cm, acc, C[k, px], C[k, :m], 0.0)
        w = _keys(code, mcode, acc, sz[px], sz[:m], ex[px], ex[:m])
        w[px] = np.inf
        steps += 1
        pairs += m - 1
        others = np.arange(m) != px
        best = w[others].min()
        if not best < np.inf:
            raise ValueError("no finite candidate left")
        y = int(slot[:m][others & (w == best)].min())
        prev = chain[-2] if len(chain) >= 2 else -1
        if prev >= 0 and w[pos[prev]] <= best:
            y, best = prev, w[pos[prev]]
        if y != prev:
            if not chain:
                chain.append(x)
            chain.append(y)
            continue
        lo, hi = min(x, y), max(x, y)
        plo, phi = pos[lo], pos[hi]
        sa, sb = sz[plo], sz[phi]
        sq = 0.0
        if code == formulas.AVERAGE and mcode == metrics.SQEUCLIDEAN:
            for k in range(d):
                sq = metrics.metric_accumulate(metrics.SQEUCLIDEAN, sq, C[k, plo], C[k, phi], 0.0)
        ex[plo] = formulas.merged_extra(code, mcode, ex[plo], ex[phi], sa, sb, sq)
        C[:, plo] = formulas.merged_coordinate(code, C[:, plo], C[:, phi], sa, sb)
        sz[plo] = sa + sb
        a.append(rep[lo])
        b.append(rep[hi])
        h.append(best)
        last = m - 1  # the last entry of the list takes hi's place
        C[:, phi], sz[phi], ex[phi], slot[phi] = C[:, last], sz[last], ex[last], slot[last]
        pos[slot[phi]] = phi
        m -= 1
        del chain[-2:]
        done += 1
    return {"a": np.array(a, dtype=np.int64), "b": np.array(b, dtype=np.int64),
            "h": np.array(h, dtype=np.float64), "merges": done, "steps": steps, "pairs": pairs,
            "launches": launches, "host_syncs": launches}
