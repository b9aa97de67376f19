"""Post-processing of a linkage matrix on the CPU: tree walks compiled by Numba.

Everything here is O(n) or O(output) and iterative (explicit stacks or passes
over the rows), so a caterpillar tree of a million leaves costs no more than a
balanced one and never recurses.

Conventions: ``left``/``right`` are int64 arrays of length n-1 holding the child
ids of each row (``check_tree`` makes them from Z's first two columns); row
``r`` is node ``n + r``; a valid tree has every child's row before its parent's,
so a pass over rows in index order is bottom-up and in reverse order top-down.

Traversal orders that decide scipy's outputs (flat cluster numbers, leader
order, accumulation order of the inconsistency sums) follow scipy's depth-first
walks: left child first, leaves handled when their parent is finished. They
all use one explicit-stack walk, ``_subtree_reverse_postorder``, read backwards
(post-order) or forwards (parents before children).
"""

import numba
import numpy as np

from . import cancel, formulas
from ._config import NUMBA_CACHE
from .cpu_common import cancelled

_jit = numba.njit(nogil=True, cache=NUMBA_CACHE)
_pjit = numba.njit(nogil=True, cache=NUMBA_CACHE, parallel=True)
# Inlined at the IR level: helpers on arrays called in inner loops would
# otherwise pay a reference-count round trip per argument per call.
_jit_inline = numba.njit(nogil=True, cache=NUMBA_CACHE, inline="always")


# --------------------------------------------------------------------------
# tree structure
# --------------------------------------------------------------------------

@_jit
def check_tree(Z, n):
    """Child ids as int64 and the first row that does not make a tree.

    Ids are truncated toward zero (as scipy's C code casts them). Returns
    ``(left, right, bad)`` with ``bad = -1`` when every row joins two existing,
    not yet used clusters (ids in ``0 .. n+r-1``), else the first offending row.
    """
    m = n - 1
    left = np.empty(m, dtype=np.int64)
    right = np.empty(m, dtype=np.int64)
    used = np.zeros(2 * n - 1, dtype=np.bool_)
    for r in range(m):
        a = Z[r, 0]
        b = Z[r, 1]
        # reject NaN and out-of-range values before the integer cast
        if not (a >= 0.0 and a < n + r) or not (b >= 0.0 and b < n + r):
            return left, right, r
        ia = np.int64(a)
        ib = np.int64(b)
        if ia == ib or used[ia] or used[ib]:
            return left, right, r
        used[ia] = True
        used[ib] = True
        left[r] = ia
        right[r] = ib
    return left, right, -1


@_jit
def subtree_sizes(left, right, n):
    """Number of leaves under every node (length 2n-1; leaves have 1)."""
    size = np.ones(2 * n - 1, dtype=np.int64)
    for r in range(n - 1):
        size[n + r] = size[left[r]] + size[right[r]]
    return size


@_jit
def first_bad_count(left, right, n, counts):
    """First row whose count column differs from its true leaf count, or -1."""
    size = subtree_sizes(left, right, n)
    for r in range(n - 1):
        if counts[r] != size[n + r]:
            return r
    return -1


@_jit
def leaf_layout(left, right, n):
    """Left-to-right leaf order and where each node's leaves start in it.

    Returns ``(order, start, size)``: ``order`` (int32, length n) is scipy's
    ``leaves_list``; node ``v``'s leaves are ``order[start[v]:start[v]+size[v]]``.
    Two linear passes (sizes bottom-up, starts top-down), no stack.
    """
    size = subtree_sizes(left, right, n)
    start = np.zeros(2 * n - 1, dtype=np.int64)
    for r in range(n - 2, -1, -1):
        s = start[n + r]
        start[left[r]] = s
        start[right[r]] = s + size[left[r]]
    order = np.empty(n, dtype=np.int32)
    for leaf in range(n):
        order[start[leaf]] = leaf
    return order, start, size


@_jit
def parents(left, right, n):
    """Parent node id of every node (the root's is -1)."""
    parent = np.full(2 * n - 1, -1, dtype=np.int64)
    for r in range(n - 1):
        parent[left[r]] = n + r
        parent[right[r]] = n + r
    return parent


@_jit_inline
def _subtree_reverse_postorder(left, right, n, root, depth, stack, level, out):
    """The one depth-first walk of the merge tree: rows of ``root``'s subtree
    fewer than ``depth`` levels below it, written to ``out`` in the reverse of
    scipy's post-order (node, right subtree, left subtree); returns their count.

    ``out[count-1], ..., out[0]`` is scipy's post-order (left subtree, right
    subtree, node); read forwards, every row comes before its descendants. An
    explicit stack (capacity ``min(max(depth, 1), n - 1)``) and one pass:
    popping a row emits it and pushes its left then its right child, so the
    right subtree is emitted first. ``level`` (same capacity) is used only
    when ``depth < n - 1`` limits the walk; with ``depth >= n - 1`` it may be
    empty.
    """
    limited = depth < n - 1
    count = 0
    top = 1
    stack[0] = root
    if limited:
        level[0] = 0
    while top > 0:
        top -= 1
        r = stack[top]
        out[count] = r
        count += 1
        lv = 0
        if limited:
            lv = level[top] + 1
            if lv >= depth:
                continue
        a = left[r]
        b = right[r]
        if a >= n:
            stack[top] = a - n
            if limited:
                level[top] = lv
            top += 1
        if b >= n:
            stack[top] = b - n
            if limited:
                level[top] = lv
            top += 1
    return count


@_jit
def reverse_postorder(left, right, n):
    """All n-1 rows in the reverse of scipy's depth-first post-order.

    Read backwards: left subtree, right subtree, node (scipy's order for
    leaders and flat cluster numbers); read forwards: parents before children.
    """
    m = n - 1
    stack = np.empty(m, dtype=np.int64)
    out = np.empty(m, dtype=np.int64)
    _subtree_reverse_postorder(left, right, n, m - 1, n, stack,
                               np.empty(0, dtype=np.int64), out)
    return out


# --------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------

@_jit
def max_over_subtree(left, right, n, values):
    """``out[r]`` = max of ``values`` over row r and all rows below it.

    Comparisons are scipy's (own value first, then left, then right, with
    ``>``), so NaN propagates exactly as there.
    """
    m = n - 1
    out = np.empty(m, dtype=np.float64)
    for r in range(m):
        best = values[r]
        if left[r] >= n:
            v = out[left[r] - n]
            if v > best:
                best = v
        if right[r] >= n:
            v = out[right[r] - n]
            if v > best:
                best = v
        out[r] = best
    return out


@_jit
def inconsistency(left, right, n, heights, d):
    """scipy's inconsistency matrix: link-height statistics ``d`` levels deep.

    For each row, the heights of the row and its descendants fewer than ``d``
    levels below are summed in scipy's order (depth-first, left subtree, right
    subtree, then the node), so the results equal scipy's bit for bit.
    """
    m = n - 1
    R = np.zeros((m, 4), dtype=np.float64)
    dd = d if d > 1 else 1
    stack_cap = dd if dd < m else m
    # at most 2^d - 1 rows lie fewer than d levels down (and never more than m)
    rows_cap = m
    if dd < 62 and (np.int64(1) << dd) - 1 < m:
        rows_cap = (np.int64(1) << dd) - 1
    stack = np.empty(stack_cap, dtype=np.int64)
    level = np.empty(stack_cap, dtype=np.int64)
    rows = np.empty(rows_cap, dtype=np.int64)
    for i in range(m):
        count = _subtree_reverse_postorder(left, right, n, i, d, stack, level, rows)
        total = 0.0
        total_sq = 0.0
        for p in range(count - 1, -1, -1):
            h = heights[rows[p]]
            total += h
            total_sq += h * h
        mean = total / count
        R[i, 0] = mean
        R[i, 2] = count
        if count < 2:
            var = (total_sq - total * total) / count
        else:
            var = (total_sq - (total * total) / count) / (count - 1)
        if var > 0:
            std = np.sqrt(var)
            R[i, 1] = std
            R[i, 3] = (heights[i] - mean) / std
    return R


@_pjit
def cophenetic_fill(left, right, n, heights, out):
    """Write the condensed cophenetic matrix into ``out`` (length n(n-1)/2).

    Row by row of the condensed matrix, in parallel: for leaf i, walk up its
    ancestors; every leaf j > i first reached under ancestor a gets a's height.
    Each row touches n leaf slots plus i's ancestors; no extra O(n^2) memory.
    """
    order, start, size = leaf_layout(left, right, n)
    parent = parents(left, right, n)
    for i in numba.prange(n - 1):
        base = np.int64(n) * i - (np.int64(i) * (i + 1)) // 2 - i - 1
        child = np.int64(i)
        node = parent[i]
        while node >= 0:
            h = heights[node - n]
            lo = start[node]
            hi = lo + size[node]
            clo = start[child]
            chi = clo + size[child]
            for p in range(lo, clo):
                j = order[p]
                if j > i:
                    out[base + j] = h
            for p in range(chi, hi):
                j = order[p]
                if j > i:
                    out[base + j] = h
            child = node
            node = parent[node]


# --------------------------------------------------------------------------
# flat clusters
# --------------------------------------------------------------------------

@_jit
def monocrit_labels(left, right, n, mc, cutoff):
    """Flat cluster numbers: a node with ``mc <= cutoff`` (and no such ancestor)
    forms one cluster; other leaves are singletons.

    Numbers follow scipy's depth-first walk: a cluster is numbered when its top
    node is first reached, a singleton leaf when its parent is finished (left
    leaf before right leaf). int32, starting at 1.

    Nothing inside a cluster's top node is numbered, so numbering that node
    when it is finished gives the same numbers; every number is then taken at
    a finished node, in post-order. The walk runs that order backwards
    (parents first, so whether a row lies under a cluster top passes down),
    counting -1, -2, ... from the last number; one pass shifts them at the end.
    """
    m = n - 1
    rows = reverse_postorder(left, right, n)
    T = np.empty(n, dtype=np.int32)
    # per row: the (negative) number of the cluster whose top is above it, or 0
    under = np.empty(m, dtype=np.int32)
    under[m - 1] = 0
    c = 0
    for p in range(m):
        r = rows[p]
        g = under[r]
        if g == 0 and mc[r] <= cutoff:
            c -= 1
            g = c
        # right before left: the post-order numbers the left leaf first
        b = right[r]
        if b >= n:
            under[b - n] = g
        elif g == 0:
            c -= 1
            T[b] = c
        else:
            T[b] = g
        a = left[r]
        if a >= n:
            under[a - n] = g
        elif g == 0:
            c -= 1
            T[a] = c
        else:
            T[a] = g
    shift = 1 - c  # -1 (the last number) becomes -c, the number of clusters
    for i in range(n):
        T[i] += shift
    return T


@_jit
def _count_clusters(left, right, n, mc, thresh, limit, blocked):
    """Flat clusters formed at ``thresh`` (stops counting past ``limit``).

    Top-down over rows: a node with ``mc <= thresh`` and no such ancestor is
    one cluster; leaves with no such ancestor are one each.
    """
    blocked[:] = False
    nc = 0
    for r in range(n - 2, -1, -1):
        b = blocked[n + r]
        if not b and mc[r] <= thresh:
            nc += 1
            b = True
        if b:
            blocked[left[r]] = True
            blocked[right[r]] = True
        else:
            if left[r] < n:
                nc += 1
            if right[r] < n:
                nc += 1
        if nc > limit:
            return nc
    return nc


@_jit
def maxclust_index(left, right, n, mc, max_nc):
    """scipy's bisection for the 'maxclust' criteria.

    Bisects over row indices ``i`` (not over sorted values: for a monotone
    ``mc`` that is the smallest threshold giving at most ``max_nc`` clusters)
    and returns the index whose ``mc`` is the cut-off, or ``n - 1`` when no
    probed threshold qualifies (possible only for ``max_nc < 1``).
    """
    blocked = np.zeros(2 * n - 1, dtype=np.bool_)
    lower = -1
    upper = n - 1
    while upper - lower > 1:
        i = (lower + upper) >> 1
        nc = _count_clusters(left, right, n, mc, mc[i], max_nc, blocked)
        if nc > max_nc:
            lower = i
        else:
            upper = i
    return upper


@_jit
def leaders(left, right, n, T, nc):
    """Leader node of each flat cluster, in scipy's post-order.

    Returns ``(L, M, err)``: ``err`` is -1 on success, else the node id at
    which ``T`` was found not to be a valid assignment.
    """
    m = n - 1
    cid = np.empty(2 * n - 1, dtype=np.int64)
    for i in range(n):
        cid[i] = T[i]
    for i in range(n, 2 * n - 1):
        cid[i] = -1
    L = np.zeros(nc, dtype=np.int32)
    M = np.zeros(nc, dtype=np.int32)
    rows = reverse_postorder(left, right, n)
    li = 0
    for p in range(m - 1, -1, -1):
        r = rows[p]
        cl = cid[left[r]]
        cr = cid[right[r]]
        if cl == cr:
            cid[n + r] = cl
        else:
            if cl != -1:
                if li >= nc:
                    return L, M, n + r
                L[li] = left[r]
                M[li] = cl
                li += 1
            if cr != -1:
                if li >= nc:
                    return L, M, n + r
                L[li] = right[r]
                M[li] = cr
                li += 1
            cid[n + r] = -1
    cl = cid[left[m - 1]]
    cr = cid[right[m - 1]]
    if cl == cr and cl != -1:
        if li >= nc:
            return L, M, 2 * n - 2
        L[li] = 2 * n - 2
        M[li] = cl
    return L, M, -1


# --------------------------------------------------------------------------
# cut_tree
# --------------------------------------------------------------------------

@_jit
def bfs_rank(left, right, n):
    """Rank of each row in scipy's breadth-first walk (root, then right child
    before left child at every level)."""
    m = n - 1
    rank = np.empty(m, dtype=np.int64)
    queue = np.empty(m, dtype=np.int64)
    queue[0] = m - 1
    head = 0
    tail = 1
    while head < tail:
        r = queue[head]
        rank[r] = head
        head += 1
        if right[r] >= n:
            queue[tail] = right[r] - n
            tail += 1
        if left[r] >= n:
            queue[tail] = left[r] - n
            tail += 1
    return rank


@_jit
def children_first(left, right, n, rows):
    """True when every row appears in ``rows`` after its child rows."""
    m = n - 1
    pos = np.empty(m, dtype=np.int64)
    for p in range(m):
        pos[rows[p]] = p
    for r in range(m):
        if left[r] >= n and pos[left[r] - n] > pos[r]:
            return False
        if right[r] >= n and pos[right[r] - n] > pos[r]:
            return False
    return True


@_jit
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@_jit
def cut_labels_union_find(left, right, n, rows, steps):
    """Group labels after ``steps[c]`` merges (``steps`` ascending), merges
    taken in the order ``rows``; children must come before parents.

    A cluster's label is the rank of its smallest leaf among the current
    clusters (what scipy's relabelling produces in that case). One union-find
    pass for all columns: O(n α(n) + n · len(steps)).
    """
    out = np.empty((steps.shape[0], n), dtype=np.int64)
    parent = np.arange(2 * n - 1)
    seen = np.full(2 * n - 1, -1, dtype=np.int64)
    label = np.empty(2 * n - 1, dtype=np.int64)
    done = 0
    for c in range(steps.shape[0]):
        while done < steps[c]:
            r = rows[done]
            a = _find(parent, left[r])
            b = _find(parent, right[r])
            parent[a] = n + r
            parent[b] = n + r
            done += 1
        nxt = 0
        for leaf in range(n):
            root = _find(parent, leaf)
            if seen[root] != c:
                seen[root] = c
                label[root] = nxt
                nxt += 1
            out[c, leaf] = label[root]
    return out


@_jit
def cut_labels_literal(left, right, n, rows, steps):
    """scipy's relabelling replayed step by step, for merge orders where a
    parent comes before a child (inversions in centroid/median trees).

    Each step sets the node's leaves to their smallest label and shifts every
    label above their largest down by one, exactly as scipy does; O(n) per step.
    """
    order, start, size = leaf_layout(left, right, n)
    out = np.empty((steps.shape[0], n), dtype=np.int64)
    group = np.arange(n).astype(np.int64)
    c = 0
    while c < steps.shape[0] and steps[c] == 0:
        out[c, :] = group
        c += 1
    for s in range(n - 1):
        if c >= steps.shape[0]:
            break
        r = rows[s]
        lo = start[n + r]
        hi = lo + size[n + r]
        gmin = group[order[lo]]
        gmax = gmin
        for p in range(lo, hi):
            g = group[order[p]]
            if g < gmin:
                gmin = g
            if g > gmax:
                gmax = g
        for p in range(lo, hi):
            group[order[p]] = gmin
        for leaf in range(n):
            if group[leaf] > gmax:
                group[leaf] -= 1
        while c < steps.shape[0] and steps[c] == s + 1:
            out[c, :] = group
            c += 1
    return out


# --------------------------------------------------------------------------
# MATLAB conversion
# --------------------------------------------------------------------------

@_jit
def mlab_sizes_bad_row(child, n):
    """First row naming a cluster id beyond the matrix (or -1)."""
    m = n - 1
    for r in range(m):
        for c in range(2):
            v = child[r, c]
            if v >= n and v - n >= m:
                return r
    return -1


@_jit
def mlab_sizes(child, n):
    """Cluster sizes accumulated row by row as scipy does (ids < n count as
    one observation; a later row's size still reads 0)."""
    m = n - 1
    cs = np.zeros(m, dtype=np.float64)
    for r in range(m):
        a = child[r, 0]
        b = child[r, 1]
        if a >= n:
            cs[r] += cs[a - n]
        else:
            cs[r] += 1.0
        if b >= n:
            cs[r] += cs[b - n]
        else:
            cs[r] += 1.0
    return cs


# --------------------------------------------------------------------------
# optimal leaf ordering
# --------------------------------------------------------------------------
#
# Bar-Joseph et al.'s dynamic programme with scipy's arithmetic and choices, so
# the result equals scipy's: M[u, w], the cost of the best ordering of a node's
# leaves from end leaf u to end leaf w, is float32, each candidate being
# float32(float32(M[u, m] + M[w, k]) + D[m, k]) for an inner pair (m, k); every
# node orients its children by its own best (u, w), the first in (u, w) order.
#
# Leaves are addressed by position in the current leaf order, so each node's
# leaves form a range; M and a float32 copy of D are condensed matrices over
# positions. Per merge and per choice of grandchildren (U, Ms | K, W):
#   stage 1: T[u, k] = min_m M[u, m] + D[m, k]   (m by increasing M[u, m],
#            stopped once M[u, m] + min_m' D[m', k] exceeds the best)
#   stage 2: V[u, w] = min_k T[u, k] + M[k, w]   (k by increasing M[k, w],
#            sorted once per w, stopped once M[k, w] + min_k' T[u, k'] exceeds it)
# in float64, then the float32 value scipy would get is the minimum of the
# exact candidate expression over the pairs (m, k) within a relative window
# _WINDOW of V (which covers float32 rounding and the float32 copy of D). Every
# stop is a valid lower bound, so the minimum is exact, not heuristic.

_condensed_index = numba.njit(inline="always")(formulas.condensed_index)

_WINDOW = 2.0 ** -20
_MAXCAND = 8
_KCHUNK = 256
_NEAR = 32
_PREFIX = 128


@_jit
def _ci(n, i, j):
    return _condensed_index(np.int64(n), np.int64(i), np.int64(j))


@_jit_inline
def _mval(M, n, p, q):
    """M at positions (p, q); 0 on the diagonal (a leaf alone)."""
    if p == q:
        return np.float32(0.0)
    return M[_ci(n, p, q)]


@_jit
def _permuted_row(y, n, order, i, out):
    base = _ci(n, i, i + 1) - i - 1
    oi = order[i]
    for j in range(i + 1, n):
        out[base + j] = y[_ci(n, oi, order[j])]


@_pjit
def permuted_distances(y, n, order):
    """float32 condensed distances between leaf positions. Row t is paired
    with row n-2-t so every parallel task does the same work."""
    out = np.empty(n * (n - 1) // 2, dtype=np.float32)
    for t in numba.prange(n // 2):
        _permuted_row(y, n, order, t, out)
        if n - 2 - t != t:
            _permuted_row(y, n, order, n - 2 - t, out)
    return out


@_jit
def _exact_value(a32, b32, d):
    """scipy's candidate: float32(float32(M[u, m] + M[w, k]) + D[m, k])."""
    s = a32 + b32
    return np.float32(np.float64(s) + d)


@_jit
def _select_smallest(vals, count, p, out_val, out_idx):
    """The p smallest of vals[:count] and their indices, ascending, in
    out_val/out_idx[:p]: a bounded max-heap, then heapsort. O(count + p log p)
    for typical inputs; every value left out is >= out_val[p - 1]."""
    for i in range(count):
        v = vals[i]
        if i < p:
            pos = i
            while pos > 0:
                up = (pos - 1) // 2
                if out_val[up] >= v:
                    break
                out_val[pos] = out_val[up]
                out_idx[pos] = out_idx[up]
                pos = up
        elif v < out_val[0]:
            pos = 0
            while True:
                ch = 2 * pos + 1
                if ch >= p:
                    break
                if ch + 1 < p and out_val[ch + 1] > out_val[ch]:
                    ch += 1
                if out_val[ch] <= v:
                    break
                out_val[pos] = out_val[ch]
                out_idx[pos] = out_idx[ch]
                pos = ch
        else:
            continue
        out_val[pos] = v
        out_idx[pos] = i
    for end in range(p - 1, 0, -1):
        top_v = out_val[0]
        top_i = out_idx[0]
        v = out_val[end]
        iv = out_idx[end]
        pos = 0
        while True:
            ch = 2 * pos + 1
            if ch >= end:
                break
            if ch + 1 < end and out_val[ch + 1] > out_val[ch]:
                ch += 1
            if out_val[ch] <= v:
                break
            out_val[pos] = out_val[ch]
            out_idx[pos] = out_idx[ch]
            pos = ch
        out_val[pos] = v
        out_idx[pos] = iv
        out_val[end] = top_v
        out_idx[end] = top_i


@_jit
def _window_min(Dp, y, n, order, m0, nm, k0, k, b, limit, T, targ, t2, arow):
    """Smallest exact candidate with inner leaf k (M[k, w] = b) whose total
    stays within ``limit``; +inf if none."""
    best = np.float32(np.inf)
    if T[k] + b > limit:
        return best
    if t2[k] + b > limit:
        # no other m comes within the window
        m = targ[k]
        d = y[_ci(n, order[m0 + m], order[k0 + k])]
        return _exact_value(np.float32(arow[m]), np.float32(b), d)
    for m in range(nm):  # near-ties (rare): every m
        a = arow[m]
        if a + np.float64(Dp[_ci(n, m0 + m, k0 + k)]) + b <= limit:
            d = y[_ci(n, order[m0 + m], order[k0 + k])]
            v = _exact_value(np.float32(a), np.float32(b), d)
            if v < best:
                best = v
    return best


def _olo_block_impl(M, Dp, y, n, order, u0, u1, m0, m1, w0, w1, k0, k1, chunk, control):
    """Fill M[u, w] for u in [u0, u1), w in [w0, w1) (all u < w): the best
    over m in [m0, m1), k in [k0, k1) of M[u, m] + D[m, k] + M[k, w].

    Sorted lists are prefixes (the _PREFIX smallest) with a bound for the
    rest; a search that runs past both prefixes falls back to a linear scan.
    """
    nm = m1 - m0
    nk = k1 - k0
    nw = w1 - w0
    nu = u1 - u0
    # The _NEAR nearest inner leaves m of every k (ascending D[m, k]) and the
    # bound D[m, k] >= drest[k] for every m not among them.
    npre = min(_NEAR, nm)
    dval = np.empty((nk, npre), dtype=np.float64)
    didx = np.empty((nk, npre), dtype=np.int64)
    drest = np.full(nk, np.inf)
    for c in numba.prange((nk + _KCHUNK - 1) // _KCHUNK):
        ka = c * _KCHUNK
        kb = min(nk, ka + _KCHUNK)
        # a max-heap of the npre smallest per k, fed row by row of D
        for i in range(nm):
            base = _ci(n, m0 + i, k0)
            for j in range(ka, kb):
                d = np.float64(Dp[base + j])
                if i < npre:
                    pos = i
                    while pos > 0:
                        up = (pos - 1) // 2
                        if dval[j, up] >= d:
                            break
                        dval[j, pos] = dval[j, up]
                        didx[j, pos] = didx[j, up]
                        pos = up
                elif d < dval[j, 0]:
                    pos = 0
                    while True:
                        ch = 2 * pos + 1
                        if ch >= npre:
                            break
                        if ch + 1 < npre and dval[j, ch + 1] > dval[j, ch]:
                            ch += 1
                        if dval[j, ch] <= d:
                            break
                        dval[j, pos] = dval[j, ch]
                        didx[j, pos] = didx[j, ch]
                        pos = ch
                else:
                    continue
                dval[j, pos] = d
                didx[j, pos] = i
        for j in range(ka, kb):
            if npre < nm:
                drest[j] = dval[j, 0]
            srt = np.argsort(dval[j])
            sv = dval[j][srt]
            si = didx[j][srt]
            dval[j, :] = sv
            didx[j, :] = si
    # M[k, w] for every w as a row, and its _PREFIX smallest (shared by all u).
    pb = min(_PREFIX, nk)
    bdense = np.empty((nw, nk), dtype=np.float64)
    bval = np.empty((nw, pb), dtype=np.float64)
    bidx = np.empty((nw, pb), dtype=np.int64)
    brest = np.full(nw, np.inf)
    for wi in numba.prange(nw):
        for j in range(nk):
            bdense[wi, j] = _mval(M, n, w0 + wi, k0 + j)
        _select_smallest(bdense[wi], nk, pb, bval[wi], bidx[wi])
        if pb < nk:
            brest[wi] = bval[wi, pb - 1]
    bmax = 0.0
    for wi in range(nw):
        for j in range(nk):
            if bdense[wi, j] > bmax:
                bmax = bdense[wi, j]
    # Stage 2 follows both lists (threshold algorithm) when there are enough
    # w to pay for ordering each u's T.
    two_lists = nw >= 8
    u_before = u0 < m0
    pa = min(_PREFIX, nm)
    pt = min(_PREFIX, nk)
    for c in numba.prange((nu + chunk - 1) // chunk):
        if cancelled(control):  # Ctrl-C (cancel.py): M is discarded
            continue
        ua = u0 + c * chunk
        ub = min(u1, ua + chunk)
        tile = np.empty((ub - ua, nm), dtype=np.float64)
        if u_before or nm == 1:
            for u in range(ua, ub):
                for i in range(nm):
                    tile[u - ua, i] = _mval(M, n, u, m0 + i)
        else:
            # u after m: M[m, u] is contiguous over consecutive u
            for i in range(nm):
                base = _ci(n, m0 + i, ua)
                for u in range(ua, ub):
                    tile[u - ua, i] = M[base + u - ua]
        # the _PREFIX smallest first; the full order only when a search needs it
        a_val = np.empty(nm, dtype=np.float64)
        a_idx = np.empty(nm, dtype=np.int64)
        T = np.empty(nk, dtype=np.float64)
        targ = np.empty(nk, dtype=np.int64)
        t2 = np.empty(nk, dtype=np.float64)
        stamped = np.full(nm, -1, dtype=np.int64)
        tval = np.empty(nk, dtype=np.float64)
        tidx = np.empty(nk, dtype=np.int64)
        cand = np.empty(_MAXCAND, dtype=np.int64)
        for u in range(ua, ub):
            arow = tile[u - ua]
            _select_smallest(arow, nm, pa, a_val, a_idx)
            alen = pa
            arest = a_val[pa - 1] if pa < nm else np.inf
            # Stage 1 by the threshold algorithm over m by increasing M[u, m]
            # and m by increasing D[m, k], remembering whether a second m comes
            # within the window. When both lists run out, the A list is
            # extended to the full order and walked again (seen m are skipped).
            tmin = np.inf
            for j in range(nk):
                stamp = (u - ua) * nk + j
                best = np.inf
                second = np.inf
                rest = np.inf
                arg = 0
                d = 0
                while True:
                    for side in range(2):
                        if side == 0:
                            if d >= alen:
                                continue
                            m = a_idx[d]
                            v = a_val[d] + np.float64(Dp[_ci(n, m0 + m, k0 + j)])
                        else:
                            if d >= npre:
                                continue
                            m = didx[j, d]
                            v = arow[m] + dval[j, d]
                        if stamped[m] == stamp:
                            continue
                        stamped[m] = stamp
                        if v < best:
                            second = best
                            best = v
                            arg = m
                        elif v < second:
                            second = v
                    # every m not yet seen lies past position d in both lists
                    a_next = a_val[d + 1] if d + 1 < alen else arest
                    d_next = dval[j, d + 1] if d + 1 < npre else drest[j]
                    rest = a_next + d_next
                    if rest > best + (best + bmax) * _WINDOW:
                        break
                    d += 1
                    if d >= alen and d >= npre:
                        srt = np.argsort(arow)
                        for i in range(nm):
                            a_idx[i] = srt[i]
                            a_val[i] = arow[srt[i]]
                        alen = nm
                        arest = np.inf
                        d = 0
                T[j] = best
                targ[j] = arg
                # no m but targ[j] costs less than this (seen or bounded)
                t2[j] = second if second < rest else rest
                if best < tmin:
                    tmin = best
            tlen = 0
            trest = np.inf
            if two_lists:
                _select_smallest(T, nk, pt, tval, tidx)
                tlen = pt
                trest = tval[pt - 1] if pt < nk else np.inf
            row = _ci(n, u, w0)
            for wi in range(nw):
                brow = bdense[wi]
                best = np.inf
                nc = 0
                # Threshold algorithm over k by increasing M[k, w] and k by
                # increasing T[u, k] (or M[k, w] alone, bounded by min T): an
                # unseen k costs at least the values reached, so stop once
                # that exceeds the window of the best. Inner leaves within the
                # window are kept in `cand`; nc past _MAXCAND flags more
                # near-ties than it holds. When both lists run out, the T list
                # is extended to the full order (with one list only: every k).
                d = 0
                while True:
                    for side in range(2 if two_lists else 1):
                        if side == 0:
                            if d >= pb:
                                continue
                            k = bidx[wi, d]
                        else:
                            if d >= tlen:
                                continue
                            k = tidx[d]
                        v = T[k] + brow[k]
                        if v > best * (1.0 + _WINDOW):
                            continue
                        seen = False
                        for q in range(min(nc, _MAXCAND)):
                            if cand[q] == k:
                                seen = True
                        if seen:
                            continue
                        if v < best:
                            best = v
                            if nc <= _MAXCAND:
                                keep = 0
                                for q in range(nc):
                                    kq = cand[q]
                                    if T[kq] + brow[kq] <= best * (1.0 + _WINDOW):
                                        cand[keep] = kq
                                        keep += 1
                                nc = keep
                        if nc < _MAXCAND:
                            cand[nc] = k
                            nc += 1
                        else:
                            nc = _MAXCAND + 1
                    b_next = bval[wi, d + 1] if d + 1 < pb else brest[wi]
                    if two_lists:
                        t_next = tval[d + 1] if d + 1 < tlen else trest
                    else:
                        t_next = tmin
                    if b_next + t_next > best * (1.0 + _WINDOW):
                        break
                    d += 1
                    if d >= pb and d >= tlen:
                        if two_lists:
                            tsrt = np.argsort(T)
                            for i in range(nk):
                                tidx[i] = tsrt[i]
                                tval[i] = T[tsrt[i]]
                            tlen = nk
                            trest = np.inf
                            d = 0
                        else:
                            # the exact minimum over every k; the window is
                            # then searched in full below
                            for k in range(nk):
                                v = T[k] + brow[k]
                                if v < best:
                                    best = v
                            nc = _MAXCAND + 1
                            break
                limit = best * (1.0 + _WINDOW)
                res = np.float32(np.inf)
                if nc <= _MAXCAND:
                    for q in range(nc):
                        k = cand[q]
                        v32 = _window_min(Dp, y, n, order, m0, nm, k0, k, brow[k], limit,
                                          T, targ, t2, arow)
                        if v32 < res:
                            res = v32
                else:
                    for k in range(nk):
                        if T[k] + brow[k] <= limit:
                            v32 = _window_min(Dp, y, n, order, m0, nm, k0, k, brow[k],
                                              limit, T, targ, t2, arow)
                            if v32 < res:
                                res = v32
                M[row + wi] = res


_olo_block_parallel = _pjit(_olo_block_impl)
_olo_block_serial = _jit(_olo_block_impl)

# Blocks with less work than this run on the calling thread: starting the
# thread pool costs microseconds, and most merges are small.
_PARALLEL_WORK = 1 << 14


@_jit
def _olo_argmin(M, n, u0, u1, w0, w1):
    """First (u, w) in row-major order with the smallest M[u, w]."""
    best = np.float32(np.inf)
    bu = u0
    bw = w0
    for u in range(u0, u1):
        row = _ci(n, u, w0)
        for j in range(w1 - w0):
            v = M[row + j]
            if v < best:
                best = v
                bu = u
                bw = w0 + j
    return bu, bw


def optimal_swaps(left, right, n, y, chunk):
    """Rows of Z whose two children scipy's optimal leaf ordering swaps.

    ``y`` is the condensed distance matrix (float64). Returns a bool array of
    length n-1. Memory: two float32 condensed matrices (4·n(n-1) bytes).
    Minutes at large n: runs where Ctrl-C stops it (``cancel.run``).
    """
    return cancel.run(lambda: _optimal_swaps(left, right, n, y, chunk, cancel.current()), n=n)


@_jit
def _optimal_swaps(left, right, n, y, chunk, control):
    m = n - 1
    order, start, size = leaf_layout(left, right, n)
    Dp = permuted_distances(y, n, order)
    M = np.zeros(n * (n - 1) // 2, dtype=np.float32)
    must = np.zeros(m, dtype=np.bool_)
    for r in range(m):
        if cancelled(control):  # Ctrl-C (cancel.py): the result is discarded
            break
        lc = left[r]
        rc = right[r]
        for sl in range(1 if lc < n else 2):
            # u from the left child's left part (sl = 0) or right part (sl = 1)
            if lc < n:
                ucl = lc
                mcl = lc
            elif sl == 0:
                ucl = left[lc - n]
                mcl = right[lc - n]
            else:
                ucl = right[lc - n]
                mcl = left[lc - n]
            for sr in range(1 if rc < n else 2):
                # w from the right child's right part (sr = 0) or left part (sr = 1)
                if rc < n:
                    wcl = rc
                    kcl = rc
                elif sr == 0:
                    wcl = right[rc - n]
                    kcl = left[rc - n]
                else:
                    wcl = left[rc - n]
                    kcl = right[rc - n]
                args = (M, Dp, y, n, order,
                        start[ucl], start[ucl] + size[ucl],
                        start[mcl], start[mcl] + size[mcl],
                        start[wcl], start[wcl] + size[wcl],
                        start[kcl], start[kcl] + size[kcl], chunk, control)
                work = size[ucl] * (size[wcl] + size[kcl]) + size[mcl] * size[kcl]
                if work >= _PARALLEL_WORK:
                    _olo_block_parallel(*args)
                else:
                    _olo_block_serial(*args)
        bu, bw = _olo_argmin(M, n, start[lc], start[lc] + size[lc],
                             start[rc], start[rc] + size[rc])
        if lc >= n:
            rl = right[lc - n]
            must[lc - n] = start[rl] <= bu and bu < start[rl] + size[rl]
        if rc >= n:
            lr = left[rc - n]
            must[rc - n] = start[lr] <= bw and bw < start[lr] + size[lr]
    # A row is swapped when an odd number of it and its ancestors must swap.
    swap = np.zeros(m, dtype=np.bool_)
    for r in range(m - 1, -1, -1):
        swap[r] = swap[r] ^ must[r]
        if left[r] >= n:
            swap[left[r] - n] = swap[r]
        if right[r] >= n:
            swap[right[r] - n] = swap[r]
    return swap
