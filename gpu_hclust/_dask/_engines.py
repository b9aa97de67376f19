"""Client-side drivers: the round state lives here, the distance work on the workers.

``single_rounds``: Borůvka. Each round every row's nearest point in another
component is read from its candidate list (the K nearest points outside its
component when it was last scanned; a task per row block); rows whose list
holds no outside point any more are rescanned against every block (block-pair
tasks, each pair of blocks once, both directions). The client reduces per
component under the key (w, min(u, v), max(u, v)) (a strict total order, so
the chosen edges never close a cycle), hooks, and relabels. Every component
gains an edge per round: at most ceil(log2 n) rounds. State on the client:
component labels, union-find parents, the MST edges (O(n)).

``reducible_rounds``: reciprocal nearest neighbours over cluster summaries.
Per slot a list of its K nearest active slots under (distance, slot) and a
bound, kept exact by the workers: a round (1) rescans the needy slots (block
pairs), (2) gathers every slot's (nn, nnd), the head of its list (O(n)), (3)
merges every reciprocal pair: the children's summaries go from their
blocks to one merge task on the workers (O(pairs * d), never through the
client, which only submits), (4) every block reads the new summaries; each block
deactivates the absorbed slots, drops merged slots from its lists, offers
every new cluster to its other slots, and marks needy the new clusters and
the slots whose list ran empty. For reducible linkages, merging all
reciprocal pairs of a round gives the sequential hierarchy (no ties). Chain
guard: when a round merges under ``CHAIN_GUARD_FRACTION`` of the clusters, or
few clusters are left, the client gathers the remaining summaries and
finishes with the memory-saving engine's nearest-neighbour chain.
"""

import numpy as np

from . import _kernels, _tasks

# Candidate list length per row (single linkage): longer lists need rescans
# less often, at K * 16 bytes per row on the workers.
CANDIDATES = 8
# The same for cluster slots (ward/average): a slot whose nearest neighbour
# merged rescans only once its K nearest have all merged away.
CLUSTER_CANDIDATES = 8
# A round that merges fewer than this fraction of the clusters hands the rest
# to the client's sequential chain (chain-like data would otherwise take one
# round per merge).
CHAIN_GUARD_FRACTION = 0.01
# With this few clusters left the client finishes alone: a round trip to the
# workers costs more than the whole chain on m <= 1024 summaries.
CLIENT_FINISH_CLUSTERS = 1024
# Largest summary table (bytes) the chain guard may gather on the client.
CLIENT_GATHER_BYTES = 1 << 30


class Layout:
    """Row blocks: offsets and sizes, and the block owning a global index."""

    def __init__(self, sizes):
        self.sizes = [int(s) for s in sizes]
        self.offs = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.n = int(self.offs[-1])

    def __len__(self):
        return len(self.sizes)

    def part(self, x, i):
        return x[self.offs[i]:self.offs[i + 1]]

    def owner(self, idx):
        return np.searchsorted(self.offs, idx, side="right") - 1


def new_stats():
    """Work and traffic counters of one run (for the cost model in benchmarks/bench_dask.py).

    tasks: tasks submitted; pairs: distances evaluated by block-pair scans; offers: distances from new
    clusters to existing ones; client_chain: clusters the client finished
    with; to_client / from_client: bytes of arrays gathered by / sent from the
    client; block_reads: bytes of the other block read by pair tasks (an upper
    bound on block copies between workers). round_pairs: per round, the
    distances of each pair task (how the round's scan work is split, for the
    model's per-round makespan); round_offers: per round, the offers each
    block's ``apply_merges`` evaluates.
    """
    return dict(rounds=0, tasks=0, pairs=0, offers=0, client_chain=0, to_client=0,
                from_client=0, block_reads=0, round_pairs=[], round_offers=[])


class _Counting:
    """The client, counting the tasks submitted (the per-task overhead of the cost model)."""

    def __init__(self, client, stats):
        self._client = client
        self._stats = stats

    def submit(self, *args, **kwargs):
        self._stats["tasks"] += 1
        return self._client.submit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def _count_pairs(stats, layout, need, itemsize_d, live=None):
    """Distances a round's pair scans evaluate, and the block bytes they read.

    ``need``: per block, the rows scanned; ``live``: per block, the slots that
    take part (active clusters; None: every row). A needy row is scanned
    against the live slots of the other block, a live row that is not needy
    against its needy ones; on the diagonal each pair once.
    """
    if live is None:
        cnt = [int(x.sum()) for x in need]
        size = list(layout.sizes)
    else:
        cnt = [int((x & a).sum()) for x, a in zip(need, live)]
        size = [int(a.sum()) for a in live]
    _count_scan(stats, layout, cnt, size, itemsize_d)


def _pair_tasks(client, layout, need, submit_pair):
    """Submit a task per block pair (i <= j) where either block has needy rows;
    return, per needy block, the (sides, futures) to fold."""
    nb = len(layout)
    has = [bool(x.any()) for x in need]
    parts = {i: ([], []) for i in range(nb) if has[i]}
    for i in range(nb):
        for j in range(i, nb):
            if not (has[i] or has[j]):
                continue
            fut = submit_pair(i, j)
            if has[i]:
                parts[i][0].append(0)
                parts[i][1].append(fut)
            if has[j] and j != i:
                parts[j][0].append(1)
                parts[j][1].append(fut)
    return parts


def single_rounds(client, blocks, layout, p, report, stats, itemsize_d):
    """MST edges (u, v, w) of single linkage by distributed Borůvka.

    ``report(merges_done, rounds)`` is called after each round.
    """
    client = _Counting(client, stats)
    n = layout.n
    k = CANDIDATES
    comp = np.arange(n, dtype=np.int64)
    parent = np.arange(n, dtype=np.int64)
    lists = [None] * len(layout)
    eu, ev, ew = [], [], []
    done = 0
    rounds = 0
    while done < n - 1:
        comp_f = client.scatter(comp, broadcast=True, hash=False)
        stats["from_client"] += comp.nbytes
        w = np.full(n, np.inf)
        v = np.full(n, -1, dtype=np.int64)
        if lists[0] is None:
            stale = np.ones(n, dtype=np.bool_)
        else:
            res = client.gather([client.submit(_tasks.best_points, lists[i], int(layout.offs[i]),
                                               comp_f, pure=False) for i in range(len(layout))])
            w = np.concatenate([r[0] for r in res])
            v = np.concatenate([r[1] for r in res])
            stale = np.concatenate([r[2] for r in res])
            stats["to_client"] += w.nbytes + v.nbytes + stale.nbytes
        if stale.any():
            need = [layout.part(stale, i) for i in range(len(layout))]
            _count_pairs(stats, layout, need, itemsize_d)
            stats["from_client"] += stale.nbytes
            parts = _pair_tasks(client, layout, need, lambda i, j: client.submit(
                _tasks.scan_points_pair, blocks[i], blocks[j], comp_f, need[i], need[j], k, p,
                pure=False))
            best = {}
            for i, (sides, futs) in parts.items():
                lists[i] = client.submit(_tasks.merge_lists, lists[i], need[i], k,
                                         layout.sizes[i], sides, *futs, pure=False)
                best[i] = client.submit(_tasks.best_points, lists[i], int(layout.offs[i]), comp_f,
                                        pure=False)
            for i, r in zip(best, client.gather(list(best.values()))):
                layout.part(w, i)[:] = r[0]
                layout.part(v, i)[:] = r[1]
                stats["to_client"] += r[0].nbytes + r[1].nbytes + r[2].nbytes
        u, vv, ww = _component_edges(comp, w, v)
        if u.size == 0:
            raise RuntimeError(f"single linkage round {rounds}: no component has an outgoing "
                               "edge before the tree is complete (a lost candidate list?)")
        if not _kernels.hook_edges(parent, u, vv):
            raise RuntimeError("single linkage: the chosen edges close a cycle (tie rule broken)")
        _kernels.flatten(parent, comp)
        eu.append(u)
        ev.append(vv)
        ew.append(ww)
        done += u.size
        rounds += 1
        stats["rounds"] = rounds
        report(done, rounds)
    return np.concatenate(eu), np.concatenate(ev), np.concatenate(ew), rounds


def _component_edges(comp, w, v):
    """Each component's lightest outgoing edge under (w, min(u, v), max(u, v)), deduplicated."""
    u = np.flatnonzero(v >= 0)
    vv = v[u]
    ww = w[u]
    lo = np.minimum(u, vv)
    hi = np.maximum(u, vv)
    order = np.lexsort((hi, lo, ww))
    _, first = np.unique(comp[u[order]], return_index=True)
    sel = order[first]
    lo, hi, ww = lo[sel], hi[sel], ww[sel]
    # two components choosing the same edge: keep it once (order: (lo, hi))
    order = np.lexsort((hi, lo))
    lo, hi, ww = lo[order], hi[order], ww[order]
    keep = np.ones(lo.size, dtype=np.bool_)
    keep[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[keep], hi[keep], ww[keep]


def _count_scan(stats, layout, scanned, live, itemsize_d):
    """Distances a round's scans evaluate, from each block's (scanned, live) counts:
    a scanned row against the live rows of the other block, a live row that is
    not scanned against its scanned ones; on the diagonal each pair once."""
    nb = len(layout)
    per_task = []
    for i in range(nb):
        for j in range(i, nb):
            if not (scanned[i] or scanned[j]):
                continue
            if i == j:
                pairs = scanned[i] * live[i] - scanned[i] * (scanned[i] + 1) // 2
            else:
                pairs = scanned[i] * live[j] + (live[i] - scanned[i]) * scanned[j]
                stats["block_reads"] += min(layout.sizes[i], layout.sizes[j]) * itemsize_d
            stats["pairs"] += pairs
            per_task.append(int(pairs))
    stats["round_pairs"].append(per_task)


def reducible_rounds(client, blocks, layout, code, mcode, report, stats, itemsize_d):
    """Merge log (a, b, h) of ward / average by reciprocal-nearest-neighbour rounds.

    The block states keep, per slot, a list of its ``CLUSTER_CANDIDATES``
    nearest active slots and the bound behind them (``_tasks.Summaries``):
    a slot whose nearest neighbour merged takes the next entry of its list
    (or the new cluster, offered to every slot) instead of a rescan, so a
    round rescans the new clusters and the few slots whose list ran empty.
    Which slots those are is decided on the workers, so the client submits
    every block pair each round (a pair without needy slots returns at once).
    """
    from ..kernels import cpu_vector

    client = _Counting(client, stats)
    n = layout.n
    nb = len(layout)
    k = CLUSTER_CANDIDATES
    states = [client.submit(_tasks.init_summaries, blk, k, pure=False) for blk in blocks]
    active = np.ones(n, dtype=np.bool_)
    la, lb, lh = [], [], []
    m = n
    done = 0
    rounds = 0
    while m > 1:
        pair = {}
        for i in range(nb):
            for j in range(i, nb):
                pair[i, j] = client.submit(_tasks.scan_clusters_pair, code, mcode, states[i],
                                           states[j], pure=False)
        for i in range(nb):
            sides = [0] * (nb - i) + [1] * i
            futs = [pair[i, j] for j in range(i, nb)] + [pair[j, i] for j in range(i)]
            states[i] = client.submit(_tasks.finish_scan, states[i], sides, *futs, pure=False)
        res = client.gather([client.submit(_tasks.neighbours, s, pure=False) for s in states])
        nn = np.concatenate([r[0] for r in res])
        nnd = np.concatenate([r[1] for r in res])
        _count_scan(stats, layout, [r[2] for r in res], [r[3] for r in res], itemsize_d)
        stats["to_client"] += nn.nbytes + nnd.nbytes
        act = np.flatnonzero(active)
        partner = nn[act]
        if (partner < 0).any():
            raise RuntimeError("reciprocal-nearest-neighbour round: an active cluster has no "
                               "neighbour (a lost block state?)")
        recip = (nn[partner] == act) & (act < partner)
        lo = act[recip]
        hi = partner[recip]
        h = nnd[lo]
        if lo.size == 0:
            raise RuntimeError("reciprocal-nearest-neighbour round found no reciprocal pair "
                               "(inconsistent distances)")
        few = lo.size < CHAIN_GUARD_FRACTION * m
        if m <= CLIENT_FINISH_CLUSTERS or (few and _fits_on_client(client, states, m)):
            a, b, hh = _finish_on_client(client, states, code, mcode, cpu_vector)
            stats["client_chain"] = m
            stats["to_client"] += m * (itemsize_d + 24)
            la.append(a)
            lb.append(b)
            lh.append(hh)
            done += a.size
            rounds += 1
            stats["rounds"] = rounds
            report(done, rounds)
            break
        merged = _merge_children(client, states, layout, code, mcode, lo, hi)
        la.append(lo)
        lb.append(hi)
        lh.append(h)
        active[hi] = False
        for i in range(nb):
            states[i] = client.submit(_tasks.apply_merges, code, mcode, states[i], n, lo, hi,
                                      merged, pure=False)
        stats["offers"] += lo.size * (m - 2 * lo.size)
        # per block: every new cluster x the block's surviving slots that are not new
        keep = active.copy()
        keep[lo] = False
        stats["round_offers"].append([int(lo.size * layout.part(keep, i).sum())
                                      for i in range(nb)])
        # the merged summaries go worker to worker (counted with the block reads)
        stats["block_reads"] += nb * lo.size * (itemsize_d + 16)
        stats["from_client"] += nb * (lo.nbytes + hi.nbytes)
        m -= lo.size
        done += lo.size
        rounds += 1
        stats["rounds"] = rounds
        report(done, rounds)
    if not la:
        return (np.empty(0, dtype=np.int64),) * 2 + (np.empty(0),), rounds
    return (np.concatenate(la), np.concatenate(lb), np.concatenate(lh)), rounds


def _fits_on_client(client, states, m):
    """The chain guard gathers m summaries: only if they are small."""
    d_bytes = client.submit(lambda s: s.CT.shape[0] * s.CT.itemsize, states[0],
                            pure=False).result()
    return m * (d_bytes + 64) <= CLIENT_GATHER_BYTES


def _merge_children(client, states, layout, code, mcode, lo, hi):
    """A future of the round's merged summaries (CTn, sn, en), built on the workers.

    The owners of the merging slots send their summaries to one merge task
    whose result every block's ``apply_merges`` reads: the client only
    submits, so a round waits on one gather (the neighbours), not two.
    """
    slots = np.empty(2 * lo.size, dtype=np.int64)
    slots[0::2] = lo
    slots[1::2] = hi
    owner = layout.owner(slots)
    futs, where = [], []
    for i in np.unique(owner):
        pos = np.flatnonzero(owner == i)
        futs.append(client.submit(_tasks.take_summaries, states[i], slots[pos], pure=False))
        where.append(pos)
    return client.submit(_tasks.merge_children, code, mcode, slots.size, where, *futs,
                         pure=False)


def _finish_on_client(client, states, code, mcode, cpu_vector):
    """Gather the active summaries and finish with the sequential chain (exact)."""
    got = client.gather([client.submit(_tasks.active_summaries, s, pure=False) for s in states])
    CT = np.ascontiguousarray(np.concatenate([g[0] for g in got], axis=1))
    size = np.concatenate([g[1] for g in got])
    extra = np.concatenate([g[2] for g in got])
    slots = np.concatenate([g[3] for g in got])
    m = slots.size
    a = np.empty(m - 1, dtype=np.int64)
    b = np.empty(m - 1, dtype=np.int64)
    h = np.empty(m - 1)
    counter = np.zeros(1, dtype=np.int64)
    cpu_vector.reducible(code, mcode, CT, size, extra, a, b, h, counter)
    return slots[a], slots[b], h
