"""Single linkage on the GPU: Borůvka's minimum spanning tree on the condensed matrix.

Single linkage is the MST sorted by edge weight. Each Borůvka round finds, for
every component, its lightest edge to another component and merges along those
edges, so at most ceil(log2 n) rounds are needed, each a few kernel launches
reading the matrix twice, and the host reads one counter per round (no per-merge
launches or synchronisation).

Edges are totally ordered by (w, min(u, v), max(u, v)); with that order every
component picks a distinct minimum edge except pairs of components that pick
the same edge, so the picked edges form a forest and no cycle appears even
with tied or negative weights. For a fixed vertex i the order of its edges
(i, j) is simply (w, j), which is what the per-vertex passes use.

One round:

1. ``row_best``: block per row i, threads scan j > i (contiguous part of the
   condensed row, coalesced), block reduction -> lightest (w, j) with j > i
   leaving i's component.
2. ``col_best``: block per (column tile, row chunk), thread per column i scans
   rows j < i of its chunk (entries D[j, i]: consecutive threads read
   consecutive addresses) -> one partial per (chunk, i); at most MAX_CHUNKS
   chunks so the scratch stays O(n).
3. ``vertex_best``: per vertex, combine the partials; float atomic-min of the
   weight into the vertex's component.
4. ``vertex_code``: vertices whose weight equals their component's minimum
   atomic-min the edge code min(u, v) * n + max(u, v): the component's edge.
5. ``hook``: every root points at the component across its edge and logs the
   edge in slot ``root`` (each root is hooked at most once over the whole run,
   so slots are deterministic); of a mutual pair the smaller root stays a root.
6. ``jump`` (ceil(log2 components) launches): pointer jumping over roots.
7. ``relabel``: every vertex takes its root's new root; reset per-component state.

Heights are the input distances. Index arithmetic is int64; vertex indices and
labels are int32 (n < 2**31).
"""

import math

import numpy as np
from numba import cuda

from . import cancel, formulas, launch
from ._config import NUMBA_CACHE
from .cpu_common import NO_FINITE_CANDIDATE
from .launch import block_min, condensed_index, precedes, row_base

# Threads per block at most (sizes the reduction's shared arrays).
MAX_TPB = 1024
# At most this many row chunks in ``col_best``: partials take MAX_CHUNKS * n
# * 12 bytes of scratch.
MAX_CHUNKS = 32
# Edge code meaning "no edge" (larger than any min(u,v) * n + max(u,v)).
NO_EDGE = np.iinfo(np.int64).max

@cuda.jit(cache=NUMBA_CACHE)
def init_state(comp, hook, comp_w, comp_code, edge_u, n):
    """Every vertex its own component; no edges logged."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        comp[i] = i
        hook[i] = i
        comp_w[i] = math.inf
        comp_code[i] = NO_EDGE
        edge_u[i] = -1


@cuda.jit(cache=NUMBA_CACHE)
def row_best(D, comp, best_w, best_j, n):
    """Lightest edge (i, j), j > i, leaving i's component, for each row i.

    One block per row (grid-stride over rows: long early rows pair with short
    late ones); ties go to the smallest j.
    """
    sw = cuda.shared.array(MAX_TPB, np.float64)
    sj = cuda.shared.array(MAX_TPB, np.int32)
    t = cuda.threadIdx.x
    bd = cuda.blockDim.x
    for i in range(np.int64(cuda.blockIdx.x), n, cuda.gridDim.x):
        ci = comp[i]
        base = row_base(n, i)  # D[base + j] is d(i, j)
        bw = math.inf
        bj = -1
        for j in range(i + 1 + t, n, bd):
            if comp[j] != ci:
                w = D[base + j]
                if bj < 0 or w < bw:  # j grows per thread: strict < keeps the smallest
                    bw = w
                    bj = j
        bw, bj = block_min(sw, sj, bw, bj)  # ends with a syncthreads: sw/sj reusable
        if t == 0:
            best_w[i] = bw
            best_j[i] = bj


@cuda.jit(cache=NUMBA_CACHE)
def col_best(D, comp, part_w, part_j, n, chunk):
    """Lightest edge (j, i), j < i, per column i and chunk of ``chunk`` rows.

    Grid: (ceil(n / blockDim.x), number of chunks). Writes ``part_*[c, i]``
    only where chunk c holds rows below i (``vertex_best`` reads exactly those).
    """
    i = np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x
    c = cuda.blockIdx.y
    j0 = np.int64(c) * chunk
    if i >= n or j0 >= i:
        return
    ci = comp[i]
    j1 = min(j0 + chunk, i)
    bw = math.inf
    bj = -1
    pos = condensed_index(n, j0, i)
    for j in range(j0, j1):
        if comp[j] != ci:
            w = D[pos]
            if bj < 0 or w < bw:
                bw = w
                bj = j
        pos += n - j - 2  # position of d(j + 1, i) minus that of d(j, i)
    part_w[c, i] = bw
    part_j[c, i] = bj


@cuda.jit(cache=NUMBA_CACHE)
def vertex_best(comp, row_w, row_j, part_w, part_j, comp_w, best_w, best_j, n, chunk, nchunks):
    """Combine each vertex's candidates; atomic-min its weight into its component."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        bw = row_w[i]
        bj = row_j[i]
        for c in range(nchunks):
            if np.int64(c) * chunk >= i:
                break
            if precedes(part_w[c, i], part_j[c, i], bw, bj):
                bw = part_w[c, i]
                bj = part_j[c, i]
        best_w[i] = bw
        best_j[i] = bj
        if bj >= 0:
            cuda.atomic.min(comp_w, comp[i], bw)


@cuda.jit(cache=NUMBA_CACHE)
def vertex_code(comp, best_w, best_j, comp_w, comp_code, n):
    """Vertices holding their component's lightest weight bid with the edge code."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        j = best_j[i]
        r = comp[i]
        if j >= 0 and best_w[i] == comp_w[r]:
            u = min(i, np.int64(j))
            v = max(i, np.int64(j))
            cuda.atomic.min(comp_code, r, u * n + v)


@cuda.jit(cache=NUMBA_CACHE)
def hook(comp, comp_w, comp_code, hook_to, edge_u, edge_v, edge_w, count, n):
    """Each root hooks onto the component across its lightest edge and logs it."""
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        if comp[r] != r:
            continue
        code = comp_code[r]
        if code == NO_EDGE:
            hook_to[r] = r
            continue
        u = code // n
        v = code - u * n
        cu = comp[u]
        s = comp[v] if cu == r else cu
        if comp_code[s] == code and r < s:  # both picked this edge: r stays the root
            hook_to[r] = r
        else:
            hook_to[r] = s
            edge_u[r] = u
            edge_v[r] = v
            edge_w[r] = comp_w[r]
            cuda.atomic.add(count, 0, 1)


@cuda.jit(cache=NUMBA_CACHE)
def jump(comp, hook_to, n):
    """One pointer-jumping pass over the roots' hook forest."""
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        if comp[r] == r:
            hook_to[r] = hook_to[hook_to[r]]


@cuda.jit(cache=NUMBA_CACHE)
def relabel(comp, hook_to, comp_w, comp_code, n):
    """Move every vertex to its new root; clear per-component minima."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        comp[i] = hook_to[comp[i]]
        comp_w[i] = math.inf
        comp_code[i] = NO_EDGE


_I32 = "int32[::1]"
_I64 = "int64[::1]"
_F64 = "float64[::1]"
PTX_SIGNATURES = {
    "init_state": [f"void({_I32}, {_I32}, {_F64}, {_I64}, {_I32}, int64)"],
    "row_best": [f"void({dt}[::1], {_I32}, {_F64}, {_I32}, int64)" for dt in ("float32", "float64")],
    "col_best": [
        f"void({dt}[::1], {_I32}, float64[:, ::1], int32[:, ::1], int64, int64)"
        for dt in ("float32", "float64")
    ],
    "vertex_best": [
        f"void({_I32}, {_F64}, {_I32}, float64[:, ::1], int32[:, ::1], {_F64}, {_F64}, {_I32}, "
        "int64, int64, int64)"
    ],
    "vertex_code": [f"void({_I32}, {_F64}, {_I32}, {_F64}, {_I64}, int64)"],
    "hook": [f"void({_I32}, {_F64}, {_I64}, {_I32}, {_I32}, {_I32}, {_F64}, {_I64}, int64)"],
    "jump": [f"void({_I32}, {_I32}, int64)"],
    "relabel": [f"void({_I32}, {_I32}, {_F64}, {_I64}, int64)"],
}


def run(D, n, code, xp=np, tpb=None):
    """Single linkage merge log from a condensed matrix on the device.

    Parameters
    ----------
    D : device array, float32 or float64, length n(n-1)/2
        Condensed distances (CuPy on a GPU, NumPy in the simulator). Not modified.
    n : int
        Number of observations.
    code : int
        Must be ``formulas.SINGLE``.
    xp : module
        Namespace of ``D``.
    tpb : int, optional
        Threads per block (power of two, 32..MAX_TPB); default ``launch.default_tpb()``.

    Returns
    -------
    a, b : ndarray of int64, shape (n-1,)
        Endpoints of the MST edges, ordered by (weight, min, max).
    h : ndarray of float64, shape (n-1,)
        Edge weights (input distances).

    Raises
    ------
    ValueError
        ``code`` is not single linkage; or no finite candidate was left
        (``cpu_common.NO_FINITE_CANDIDATE``): a round made no progress (NaN
        distances) or joined components at a non-finite distance; read once,
        with the edge log.
    """
    if code != formulas.SINGLE:
        raise ValueError(f"cuda_mst runs single linkage only (code {formulas.SINGLE}); got code {code}")
    n = int(n)
    tpb = launch.check_tpb(tpb, MAX_TPB)
    stream = launch.stream_for(xp)
    chunk = max(tpb, -(-n // MAX_CHUNKS))
    nchunks = -(-n // chunk)

    # Component state as in cuda_vector._single, which drives this module's
    # component kernels from points (`duplicates` pairs the allocations).
    i32, i64, f64 = np.int32, np.int64, np.float64
    comp = xp.empty(n, i32)
    hook_to = xp.empty(n, i32)
    comp_w = xp.empty(n, f64)
    comp_code = xp.empty(n, i64)
    row_w = xp.empty(n, f64)
    row_j = xp.empty(n, i32)
    best_w = xp.empty(n, f64)
    best_j = xp.empty(n, i32)
    part_w = xp.empty((nchunks, n), f64)
    part_j = xp.empty((nchunks, n), i32)
    edge_u = xp.empty(n, i32)
    edge_v = xp.empty(n, i32)
    edge_w = xp.empty(n, f64)
    count = xp.zeros(1, i64)
    dv = {name: launch.as_device(arr) for name, arr in (
        ("D", D), ("comp", comp), ("hook_to", hook_to), ("comp_w", comp_w),
        ("comp_code", comp_code), ("row_w", row_w), ("row_j", row_j), ("best_w", best_w),
        ("best_j", best_j), ("part_w", part_w), ("part_j", part_j), ("edge_u", edge_u),
        ("edge_v", edge_v), ("edge_w", edge_w), ("count", count))}
    N = np.int64(n)
    per_vertex = (launch.blocks(n, tpb), tpb, stream)
    per_row = (launch.blocks(n, 1), tpb, stream)
    tiles = ((-(-n // tpb), nchunks), tpb, stream)

    init_state[per_vertex](dv["comp"], dv["hook_to"], dv["comp_w"], dv["comp_code"], dv["edge_u"], N)
    components = n
    while components > 1:
        cancel.check()  # Ctrl-C between rounds
        row_best[per_row](dv["D"], dv["comp"], dv["row_w"], dv["row_j"], N)
        col_best[tiles](dv["D"], dv["comp"], dv["part_w"], dv["part_j"], N, np.int64(chunk))
        vertex_best[per_vertex](dv["comp"], dv["row_w"], dv["row_j"], dv["part_w"], dv["part_j"],
                                dv["comp_w"], dv["best_w"], dv["best_j"], N, np.int64(chunk),
                                np.int64(nchunks))
        vertex_code[per_vertex](dv["comp"], dv["best_w"], dv["best_j"], dv["comp_w"],
                                dv["comp_code"], N)
        hook[per_vertex](dv["comp"], dv["comp_w"], dv["comp_code"], dv["hook_to"], dv["edge_u"],
                         dv["edge_v"], dv["edge_w"], dv["count"], N)
        # The hook forest over `components` roots is at most components - 1 deep.
        for _ in range(max(1, math.ceil(math.log2(components)))):
            jump[per_vertex](dv["comp"], dv["hook_to"], N)
        relabel[per_vertex](dv["comp"], dv["hook_to"], dv["comp_w"], dv["comp_code"], N)
        remaining = n - int(launch.to_host(count)[0])  # the round's one host sync
        if remaining >= components:
            break  # no progress (NaN rows): the log below is short, reported there
        components = remaining

    eu, ev, ew = (launch.to_host(x) for x in (edge_u, edge_v, edge_w))
    logged = eu >= 0
    a = eu[logged].astype(np.int64)
    b = ev[logged].astype(np.int64)
    h = ew[logged].astype(np.float64)
    # The one check, with the log: a round without progress (NaN) left it
    # short, an edge at inf or NaN means no finite candidate was left.
    if a.shape[0] < n - 1 or not np.isfinite(h).all():
        raise ValueError(f"{NO_FINITE_CANDIDATE} (single linkage on the GPU: "
                         f"{int(np.isfinite(h).sum())} finite edges of {n - 1})")
    order = np.lexsort((b, a, h))  # the edge order: (weight, min, max)
    return a[order], b[order], h[order]
