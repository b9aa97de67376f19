"""Dendrogram layout: one iterative walk over the tree, compiled for the CPU.

scipy lays a dendrogram out by recursion (one Python frame per tree level), so
a caterpillar tree of a thousand leaves already raises RecursionError. This
walk keeps its own stack in arrays and visits the nodes in the order scipy's
recursion does: a node's left subtree, then the node's colour decision, then
its right subtree, then its link. Everything the dendrogram returns follows
from that order, so the results are scipy's, at any depth.
"""

import numba
import numpy as np

from ._config import NUMBA_CACHE

# Truncation modes (the public names are resolved by gpu_hclust._dendrogram).
NO_TRUNCATION = 0
LASTP = 1
LEVEL = 2

# Colour code of a link drawn in ``above_threshold_color``; codes >= 0 index
# the link colour palette.
ABOVE = -1


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def _is_leaf(i, level, n, mode, p_last, p_level):
    if i < n:
        return True
    if mode == LASTP:
        # Clusters formed before the last p merges are contracted.
        return i < 2 * n - p_last
    if mode == LEVEL:
        # scipy's test is ``i > n``: cluster n (the first merge) is never
        # contracted; kept so that the layouts agree.
        return i > n and level > p_level
    return False


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def layout(left, right, height, n, mode, p_last, p_level, threshold, n_palette):
    """Leaf order, link coordinates and link colours of a dendrogram.

    Parameters
    ----------
    left, right : int64 arrays, shape (n-1,)
        Children of cluster ``n + k`` in drawing order (left first).
    height : float64 array, shape (n-1,)
        Merge heights, ``Z[:, 2]``.
    n : int
        Number of observations.
    mode : int
        NO_TRUNCATION, LASTP or LEVEL.
    p_last : int
        ``p`` of 'lastp', already clamped to [1, n].
    p_level : float
        ``p`` of 'level' (inf for no limit).
    threshold : float
        Colour threshold: links at or above it (or all, if it is <= 0) get
        colour code ABOVE; each subtree first found below it cycles to the
        next palette entry.
    n_palette : int
        Palette length (0: every below-threshold link gets code 0 and the
        caller reports the empty palette).

    Returns
    -------
    leaves : int64 array
        Node ids of the drawn leaves, left to right.
    link_node : int64 array
        Cluster id of each link, in scipy's (post-order) link order.
    xl, xr, yl, yr : float64 arrays
        Position of each link's left and right leg (x) and the heights of
        the children they reach down to (y, 0 for leaves).
    colour : int64 array
        Colour code of each link.
    """
    root = 2 * n - 2
    leaves = np.empty(n, dtype=np.int64)
    n_links_max = n - 1
    link_node = np.empty(n_links_max, dtype=np.int64)
    xl = np.empty(n_links_max, dtype=np.float64)
    xr = np.empty(n_links_max, dtype=np.float64)
    yl = np.empty(n_links_max, dtype=np.float64)
    yr = np.empty(n_links_max, dtype=np.float64)
    colour = np.empty(n_links_max, dtype=np.int64)
    node_colour = np.empty(n_links_max, dtype=np.int64)
    xpos = np.empty(2 * n - 1, dtype=np.float64)
    ypos = np.empty(2 * n - 1, dtype=np.float64)

    # One frame per ancestor of the node being visited: depth <= n - 1.
    stack_node = np.empty(n + 1, dtype=np.int64)
    stack_state = np.empty(n + 1, dtype=np.int8)
    stack_level = np.empty(n + 1, dtype=np.int64)

    n_leaves = 0
    n_links = 0
    current = 0
    below = False

    sp = 0
    stack_node[0] = root
    stack_state[0] = 0
    stack_level[0] = 0
    while sp >= 0:
        i = stack_node[sp]
        state = stack_state[sp]
        level = stack_level[sp]
        if state == 0:
            if _is_leaf(i, level, n, mode, p_last, p_level):
                leaves[n_leaves] = i
                xpos[i] = 10.0 * n_leaves + 5.0
                ypos[i] = 0.0
                n_leaves += 1
                sp -= 1
            else:
                stack_state[sp] = 1
                sp += 1
                stack_node[sp] = left[i - n]
                stack_state[sp] = 0
                stack_level[sp] = level + 1
        elif state == 1:
            # Between the two subtrees: scipy decides the colour here, so a
            # left subtree's colour changes are seen by its parent.
            h = height[i - n]
            if h >= threshold or threshold <= 0.0:
                code = ABOVE
                if below and n_palette > 0:
                    current = (current + 1) % n_palette
                below = False
            else:
                below = True
                code = current
            node_colour[i - n] = code
            stack_state[sp] = 2
            sp += 1
            stack_node[sp] = right[i - n]
            stack_state[sp] = 0
            stack_level[sp] = level + 1
        else:
            a = left[i - n]
            b = right[i - n]
            link_node[n_links] = i
            xl[n_links] = xpos[a]
            xr[n_links] = xpos[b]
            yl[n_links] = ypos[a]
            yr[n_links] = ypos[b]
            colour[n_links] = node_colour[i - n]
            xpos[i] = (xpos[a] + xpos[b]) / 2.0
            ypos[i] = height[i - n]
            n_links += 1
            sp -= 1
    return (leaves[:n_leaves], link_node[:n_links], xl[:n_links], xr[:n_links],
            yl[:n_links], yr[:n_links], colour[:n_links])


@numba.njit(nogil=True, cache=NUMBA_CACHE)
def contraction_marks(child_a, child_b, height, n, leaves, leaf_x):
    """Heights hidden inside each contracted leaf, for ``show_contracted``.

    Every cluster below a drawn non-singleton leaf gets a mark at that leaf's
    position and its own merge height. Children are walked top-down in id
    order (a parent's id is larger than its children's), so no recursion.

    Parameters
    ----------
    child_a, child_b : int64 arrays, shape (n-1,)
        ``Z[:, 0]`` and ``Z[:, 1]`` as integers.
    height : float64 array, shape (n-1,)
    n : int
    leaves, leaf_x : arrays
        The drawn leaves and their positions.

    Returns
    -------
    x, y : float64 arrays
        Mark positions and heights.
    """
    owner_x = np.full(2 * n - 1, np.nan)
    for k in range(leaves.shape[0]):
        if leaves[k] >= n:
            owner_x[leaves[k]] = leaf_x[k]
    is_mark = np.zeros(n - 1, dtype=np.bool_)
    count = 0
    for k in range(n - 2, -1, -1):
        x = owner_x[n + k]
        if x == x:  # inside (or at) a contracted leaf
            for c in (child_a[k], child_b[k]):
                if c >= n:
                    owner_x[c] = x
                    is_mark[c - n] = True
                    count += 1
    xs = np.empty(count, dtype=np.float64)
    ys = np.empty(count, dtype=np.float64)
    j = 0
    for k in range(n - 1):
        if is_mark[k]:
            xs[j] = owner_x[n + k]
            ys[j] = height[k]
            j += 1
    return xs, ys
