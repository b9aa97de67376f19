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

from ._config import NUMBA_CACHE
from .cpu_common import find, row_base

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
        base = row_base(n, i)  # out[base + j] is pair (i, j)
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

@_jit_inline
def _pass_down(x, g, c, n, under, T):
    """Hand child ``x`` of a row under cluster ``g`` (0: none) its number:
    a row records ``g``; a leaf takes ``g``, or the next number ``c - 1``
    when it lies under no cluster top. Returns the last number used."""
    if x >= n:
        under[x - n] = g
    elif g == 0:
        c -= 1
        T[x] = c
    else:
        T[x] = g
    return c


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
        c = _pass_down(right[r], g, c, n, under, T)
        c = _pass_down(left[r], g, c, n, under, T)
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
            # each child that is one whole cluster leads it (left first)
            for child in (left[r], right[r]):
                cc = cid[child]
                if cc != -1:
                    if li >= nc:
                        return L, M, n + r
                    L[li] = child
                    M[li] = cc
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
            a = find(parent, left[r])
            b = find(parent, right[r])
            parent[a] = n + r
            parent[b] = n + r
            done += 1
        nxt = 0
        for leaf in range(n):
            root = find(parent, leaf)
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
