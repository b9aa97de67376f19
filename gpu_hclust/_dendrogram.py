"""Dendrogram layout and plotting: scipy's ``dendrogram`` without recursion.

The layout is one compiled walk over the tree (``kernels.cpu_dendrogram``), so
the deepest trees (a caterpillar of a million leaves) lay out in about a second
where scipy's recursive layout raises RecursionError from n = 1000. Everything
else (argument checks, labels, colours, the plot) follows scipy 1.17, so the
returned dictionary equals scipy's. matplotlib is imported only to plot.
"""

import contextlib
import gc

import numpy as np

from ._backend import to_host
from .kernels import cpu_dendrogram

# C0 is kept for links above the colour threshold (matplotlib's default cycle).
_LINK_COLORS_DEFAULT = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9")
_link_colors = list(_LINK_COLORS_DEFAULT)

_ORIENTATIONS = ("top", "left", "bottom", "right")
_TRUNCATE_MODES = ("lastp", "mtica", "level", "none", None)

# Leaf label size and rotation by number of drawn leaves (scipy's defaults):
# the first bound that is >= the count wins.
_TEXT_SIZES = ((20, 12), (30, 10), (50, 8), (85, 6), (np.inf, 5))
_ROTATIONS = ((20, 0), (40, 45), (np.inf, 90))


def set_link_color_palette(palette):
    """Set the matplotlib colours that `dendrogram` cycles through below the threshold.

    The palette is global: it changes the colours of every later
    `dendrogram` call (``link_color_func`` is the per-call alternative). It
    affects only links below ``color_threshold``.

    Parameters
    ----------
    palette : list or tuple of str, or None
        matplotlib colour codes, in the order they are used. None restores the
        default, matplotlib's colours ``'C1'`` to ``'C9'``.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        ``palette`` is not a list or tuple, or holds something other than strings.

    See Also
    --------
    dendrogram

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hierarchy
    >>> ytdist = np.array([662., 877., 255., 412., 996., 295., 468., 268.,
    ...                    400., 754., 564., 138., 219., 869., 669.])
    >>> Z = hierarchy.linkage(ytdist, 'single', backend='cpu')
    >>> hierarchy.dendrogram(Z, no_plot=True)['color_list']
    ['C1', 'C0', 'C0', 'C0', 'C0']
    >>> hierarchy.set_link_color_palette(['c', 'm', 'y', 'k'])
    >>> hierarchy.dendrogram(Z, no_plot=True, color_threshold=267,
    ...                      above_threshold_color='k')['color_list']
    ['c', 'm', 'm', 'k', 'k']
    >>> hierarchy.set_link_color_palette(None)  # back to the default
    """
    global _link_colors
    if palette is None:
        palette = _LINK_COLORS_DEFAULT
    elif not isinstance(palette, (list, tuple)):
        raise TypeError(
            f"palette must be a list or tuple of matplotlib colour strings (or None "
            f"for the default); got {type(palette).__name__}"
        )
    if not all(isinstance(c, str) for c in palette):
        raise TypeError(
            "all palette list elements must be color strings such as 'C1', 'r' or "
            "'#1f77b4'"
        )
    # Keep the caller's list itself, as scipy does (later edits to it show).
    _link_colors = palette


def _check_args(Z, p, truncate_mode, orientation, labels):
    """scipy's checks, in scipy's order. Returns (Z as float64 host array, n, p)."""
    Z = np.asarray(to_host(Z), order="C")
    if orientation not in _ORIENTATIONS:
        raise ValueError(
            "orientation must be one of 'top', 'left', 'bottom', or 'right'; "
            f"got {orientation!r}"
        )
    if labels is not None:
        try:
            n_labels = len(labels)
        except (TypeError, AttributeError):
            n_labels = labels.shape[0]
        if Z.shape[0] + 1 != n_labels:
            raise ValueError(
                "Dimensions of Z and labels must be consistent. labels needs one "
                f"entry per observation ({Z.shape[0] + 1}); got {n_labels}."
            )
    from ._checks import is_valid_linkage

    is_valid_linkage(Z, throw=True, name="Z")
    n = Z.shape[0] + 1
    if isinstance(p, (int, float)):
        p = int(p)
    else:
        raise TypeError(
            f"The second argument must be a number: p is {type(p).__name__}; pass "
            "an int (Python int, not a NumPy integer)"
        )
    if truncate_mode not in _TRUNCATE_MODES:
        raise ValueError(
            "Invalid truncation mode. truncate_mode must be None, 'lastp' or "
            f"'level'; got {truncate_mode!r}"
        )
    return Z, n, p


def _truncation(truncate_mode, p, n):
    """Kernel mode and its two p values (see kernels.cpu_dendrogram.layout)."""
    if truncate_mode == "lastp":
        if p > n or p == 0:
            p = n
        # Every p <= 1 contracts the root alike; clamping keeps 2n - p in int64.
        return cpu_dendrogram.LASTP, max(p, 1), 0.0
    if truncate_mode in ("level", "mtica"):
        return cpu_dendrogram.LEVEL, 0, float(p) if p > 0 else np.inf
    return cpu_dendrogram.NO_TRUNCATION, 0, 0.0


def _threshold(color_threshold, Z):
    if color_threshold is None or (
        isinstance(color_threshold, str) and color_threshold == "default"
    ):
        return float(np.max(Z[:, 2]) * 0.7)
    try:
        if isinstance(color_threshold, str):
            raise TypeError
        return float(color_threshold)
    except (TypeError, ValueError):
        raise TypeError(
            "color_threshold must be a number, None or 'default' (0.7 * the "
            f"largest merge height); got {color_threshold!r}"
        ) from None


def _drawing_order(Z, n, count_sort, distance_sort):
    """Children of each cluster as drawn: (left, right) int64 arrays."""
    a = Z[:, 0].astype(np.int64)
    b = Z[:, 1].astype(np.int64)
    # Same comparisons as scipy's, in its order of precedence (count_sort first).
    if count_sort == "ascending" or count_sort is True:
        col, swap_if_greater = 3, True
    elif count_sort == "descending":
        col, swap_if_greater = 3, False
    elif distance_sort == "ascending" or distance_sort is True:
        col, swap_if_greater = 2, True
    elif distance_sort == "descending":
        col, swap_if_greater = 2, False
    else:
        return a, b
    singleton = 1.0 if col == 3 else 0.0
    va = np.where(a >= n, Z[np.maximum(a - n, 0), col], singleton)
    vb = np.where(b >= n, Z[np.maximum(b - n, 0), col], singleton)
    greater = va > vb
    swap = greater if swap_if_greater else ~greater
    return np.where(swap, b, a), np.where(swap, a, b)


def _leaf_labels(leaves, Z, n, labels, leaf_label_func, show_leaf_counts):
    ids = leaves.tolist()
    if leaf_label_func:
        return [leaf_label_func(i) for i in ids]
    if leaves.shape[0] == 0 or leaves.max() < n:  # no contracted leaves
        return list(map(str, ids)) if labels is None else [labels[i] for i in ids]
    counts = Z[:, 3].astype(np.int64).tolist()
    ivl = []
    for i in ids:
        if i < n:
            ivl.append(str(i) if labels is None else labels[i])
        elif show_leaf_counts:
            ivl.append("(" + str(counts[i - n]) + ")")
        else:
            ivl.append("")
    return ivl


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building million-item lists.

    Each new list would count towards a collection, and the collections walk
    every object built so far: 4x slower at n = 1e6. Lists of floats hold no
    cycles, so nothing is left for the collector to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _leaves_color_list(x, y, color_list, n_leaves):
    """Colour of each leaf: that of the last link with a point (10k+5, 0).

    ``x``, ``y``: (links, 4) corner coordinates. scipy finds leaves by that
    coordinate test, so a zero-height cluster whose centre falls on a leaf
    position also colours that leaf; kept for equality.
    """
    if not color_list:
        return [None] * n_leaves
    x = x.ravel()
    y = y.ravel()
    hit = np.flatnonzero((y == 0.0) & (np.remainder(x, 5.0) == 0.0)
                         & (np.remainder(x, 2.0) == 1.0))
    last = np.full(n_leaves, -1, dtype=np.int64)
    np.maximum.at(last, ((x[hit] - 5.0) // 10.0).astype(np.int64), hit)
    colours = list(color_list) + [None]  # index -1: a leaf no link reaches
    return [colours[j] for j in (last // 4).tolist()]


def dendrogram(Z, p=30, truncate_mode=None, color_threshold=None,
               get_leaves=True, orientation="top", labels=None,
               count_sort=False, distance_sort=False, show_leaf_counts=True,
               no_plot=False, no_labels=False, leaf_font_size=None,
               leaf_rotation=None, leaf_label_func=None,
               show_contracted=False, link_color_func=None, ax=None,
               above_threshold_color="C0"):
    """Plot the hierarchical clustering as a dendrogram.

    Same signature, checks and return value as
    :func:`scipy.cluster.hierarchy.dendrogram`; the layout is iterative, so it
    works on trees of any depth (scipy's recursion fails from about a thousand
    levels) and lays out a million leaves in about a second.

    Each merge is drawn as a U-shaped link whose top is at the merge height
    (the cophenetic distance between the two children's observations).

    Parameters
    ----------
    Z : ndarray
        Linkage matrix (NumPy, CuPy or nested lists), as returned by `linkage`.
    p : int, optional
        The ``p`` of ``truncate_mode``.
    truncate_mode : {None, 'lastp', 'level'}, optional
        None (or 'none'): draw the whole tree. 'lastp': draw only the last
        ``p`` merges; earlier clusters become leaves (``p`` of 0 or above n
        means no truncation). 'level' (alias 'mtica'): draw at most ``p``
        levels below the root (``p <= 0``: no limit).
    color_threshold : float, optional
        Links below it get one palette colour per subtree that is first below
        it; links at or above it (all, if it is <= 0) get
        ``above_threshold_color``. None or 'default': 0.7 * ``max(Z[:, 2])``.
    get_leaves : bool, optional
        Include the leaf order in ``R['leaves']`` (else it is None).
    orientation : {'top', 'bottom', 'left', 'right'}, optional
        Where the root is drawn.
    labels : sequence, optional
        One label per observation (length n), used for singleton leaves.
    count_sort : {False, True, 'ascending', 'descending'}, optional
        Draw the child with fewer (ascending/True) or more (descending)
        observations first. Takes precedence over ``distance_sort``.
    distance_sort : {False, True, 'ascending', 'descending'}, optional
        Draw the child with the smaller (ascending/True) or larger
        (descending) merge height first.
    show_leaf_counts : bool, optional
        Label contracted leaves with their size in parentheses.
    no_plot : bool, optional
        Only compute the layout; matplotlib is not imported.
    no_labels : bool, optional
        Draw no leaf labels.
    leaf_font_size : float, optional
        Leaf label font size; by default it shrinks with the number of leaves.
    leaf_rotation : float, optional
        Leaf label rotation in degrees; by default it grows with the number of
        leaves (top/bottom orientation).
    leaf_label_func : callable, optional
        ``f(node_id) -> str`` labels every leaf (ids >= n are contracted
        clusters); overrides ``labels`` and ``show_leaf_counts``.
    show_contracted : bool, optional
        Mark the heights hidden inside contracted leaves with dots.
    link_color_func : callable, optional
        ``f(cluster_id) -> str``: the colour of each drawn link; overrides the
        threshold colouring.
    ax : matplotlib Axes, optional
        Axes to draw on (default: the current axes).
    above_threshold_color : str, optional
        Colour of links at or above ``color_threshold``; default 'C0'.

    Returns
    -------
    R : dict
        ``'icoord'``, ``'dcoord'``: per link, the x and y of its four corners
        (leaves sit at x = 5, 15, 25, ...); ``'ivl'``: leaf labels;
        ``'leaves'``: leaf node ids left to right; ``'color_list'``: link
        colours; ``'leaves_color_list'``: leaf colours.

    Raises
    ------
    ValueError
        Bad orientation, truncate_mode, labels length, or an invalid Z.
    TypeError
        ``p`` is not a Python number, Z is not float64, a ``link_color_func``
        result is not a string, or ``color_threshold`` is not a number.
    ImportError
        Plotting without matplotlib (use ``no_plot=True``).

    See Also
    --------
    linkage, set_link_color_palette, gpu_hclust.annotated_dendrogram

    Notes
    -----
    Heights should be monotonic (not so for centroid/median linkages), else
    links cross. With ``get_leaves=False`` scipy 1.17 raises TypeError while
    building ``leaves_color_list``; here ``R['leaves']`` is None and the rest
    is returned. Runs on the host: a CuPy ``Z`` is copied once.

    Examples
    --------
    >>> import numpy as np
    >>> import gpu_hclust as hierarchy
    >>> ytdist = np.array([662., 877., 255., 412., 996., 295., 468., 268.,
    ...                    400., 754., 564., 138., 219., 869., 669.])
    >>> Z = hierarchy.linkage(ytdist, 'single', backend='cpu')
    >>> R = hierarchy.dendrogram(Z, no_plot=True)
    >>> R['leaves']
    [2, 5, 1, 0, 3, 4]
    >>> R['icoord'][0], R['dcoord'][0]
    ([5.0, 5.0, 15.0, 15.0], [0.0, 138.0, 138.0, 0.0])
    >>> hierarchy.dendrogram(Z, 2, 'lastp', no_plot=True)['ivl']
    ['(2)', '(4)']
    """
    Z, n, p = _check_args(Z, p, truncate_mode, orientation, labels)
    mode, p_last, p_level = _truncation(truncate_mode, p, n)
    threshold = _threshold(color_threshold, Z)
    left, right = _drawing_order(Z, n, count_sort, distance_sort)
    height = np.ascontiguousarray(Z[:, 2], dtype=np.float64)
    palette = _link_colors
    leaves, link_node, xl, xr, yl, yr, code = cpu_dendrogram.layout(
        left, right, height, n, mode, p_last, p_level, threshold, len(palette))

    h = height[link_node - n]
    x = np.stack([xl, xl, xr, xr], axis=1)
    y = np.stack([yl, h, h, yr], axis=1)
    with _gc_paused():
        icoord = x.tolist()
        dcoord = y.tolist()
    if link_color_func is not None:
        color_list = []
        for i in link_node.tolist():
            v = link_color_func(i)
            if not isinstance(v, str):
                raise TypeError(
                    "link_color_func must return a matplotlib color string! "
                    f"It returned {v!r} for cluster {i}."
                )
            color_list.append(v)
    else:
        if len(palette) == 0 and bool(np.any(code >= 0)):
            raise IndexError(
                "list index out of range: the link colour palette is empty; call "
                "set_link_color_palette(None) or pass color_threshold=0"
            )
        names = np.empty(len(palette) + 1, dtype=object)
        for k, c in enumerate(palette):
            names[k] = c
        names[-1] = above_threshold_color  # code -1
        color_list = names[code].tolist()
    with _gc_paused():
        ivl = _leaf_labels(leaves, Z, n, labels, leaf_label_func, show_leaf_counts)

    R = {"icoord": icoord, "dcoord": dcoord, "ivl": ivl,
         "leaves": leaves.tolist() if get_leaves else None,
         "color_list": color_list}
    if not no_plot:
        marks = None
        if show_contracted:
            marks = cpu_dendrogram.contraction_marks(
                Z[:, 0].astype(np.int64), Z[:, 1].astype(np.int64), height, n,
                leaves, 10.0 * np.arange(leaves.shape[0]) + 5.0)
        _plot(icoord, dcoord, ivl, float(np.max(Z[:, 2])), orientation, no_labels,
              color_list, leaf_font_size, leaf_rotation, marks, ax,
              above_threshold_color)
    R["leaves_color_list"] = _leaves_color_list(x, y, color_list, leaves.shape[0])
    return R


def _first_at_least(table, count):
    for bound, value in table:
        if count <= bound:
            return value
    return table[-1][1]


def _label_leaves(axis, ticks, ivl, no_labels, font, rotation, position):
    """Ticks and labels of the leaf axis (``ax.xaxis`` or ``ax.yaxis``)."""
    if no_labels:
        axis.set_ticks([])
        axis.set_ticklabels([])
        return
    axis.set_ticks(ticks)
    axis.set_ticks_position(position)
    for line in axis.get_ticklines():  # tick marks would cover the links
        line.set_visible(False)
    rotated = {} if rotation is None else {"rotation": rotation}
    axis.set_ticklabels(ivl, size=font, **rotated)


def _plot(icoord, dcoord, ivl, max_height, orientation, no_labels, color_list,
          leaf_font_size, leaf_rotation, marks, ax, above_threshold_color):
    """Draw the layout as scipy does: one LineCollection per colour."""
    try:
        import matplotlib.collections
        import matplotlib.patches

        if ax is None:
            import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "You must install the matplotlib library to plot the dendrogram "
            "(pip install matplotlib). Use no_plot=True to calculate the "
            "dendrogram without plotting."
        ) from e
    redraw = ax is None
    if ax is None:
        ax = plt.gca()

    width = len(ivl) * 10  # leaf axis extent
    top = max_height + max_height * 0.05  # height axis extent
    ticks = np.arange(5, len(ivl) * 10 + 5, 10)
    font = float(_first_at_least(_TEXT_SIZES, len(ivl))) if leaf_font_size is None \
        else leaf_font_size
    vertical = orientation in ("top", "bottom")
    if vertical:
        ax.set_ylim([0, top] if orientation == "top" else [top, 0])
        ax.set_xlim([0, width])
        if leaf_rotation is None:  # scipy's default rotation is for the x axis only
            leaf_rotation = float(_first_at_least(_ROTATIONS, len(ivl)))
        _label_leaves(ax.xaxis, ticks, ivl, no_labels, font, leaf_rotation,
                      "bottom" if orientation == "top" else "top")
    else:
        ax.set_xlim([top, 0] if orientation == "left" else [0, top])
        ax.set_ylim([0, width])
        _label_leaves(ax.yaxis, ticks, ivl, no_labels, font, leaf_rotation,
                      "right" if orientation == "left" else "left")

    # One collection per colour (one legend entry per group, not per link);
    # the above-threshold group is added last so it draws on top.
    segments = {}
    for xs, ys, c in zip(icoord, dcoord, color_list):
        segments.setdefault(c, []).append(list(zip(xs, ys) if vertical else zip(ys, xs)))
    for c in sorted(segments, key=lambda c: c == above_threshold_color):
        ax.add_collection(matplotlib.collections.LineCollection(segments[c], colors=(c,)))

    if marks is not None:
        for x, y in zip(*marks):
            if vertical:
                e = matplotlib.patches.Ellipse((x, y), width=1.0, height=top / 100)
            else:
                e = matplotlib.patches.Ellipse((y, x), width=top / 100, height=1.0)
            ax.add_artist(e)
            e.set_clip_box(ax.bbox)
            e.set_alpha(0.5)
            e.set_facecolor("k")
    if redraw:
        plt.draw_if_interactive()
