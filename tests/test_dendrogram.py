"""dendrogram and set_link_color_palette against scipy 1.17.

Image-free: the returned dictionaries must equal scipy's, and plots are
compared through the artists both put on Agg axes (segments, colours, limits,
tick labels, contraction marks).
"""

import subprocess
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.cluster import hierarchy as sch  # noqa: E402

import gpu_hclust as hc  # noqa: E402

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]
YTDIST = np.array([662., 877., 255., 412., 996., 295., 468., 268.,
                   400., 754., 564., 138., 219., 869., 669.])


@pytest.fixture(autouse=True)
def _default_palettes():
    """Both libraries' palettes are global: leave them at their defaults."""
    yield
    hc.set_link_color_palette(None)
    sch.set_link_color_palette(None)
    plt.close("all")


def caterpillar(n, chain_right=True):
    """Each merge adds one leaf: the deepest possible tree (depth n - 1)."""
    Z = np.empty((n - 1, 4))
    Z[0] = [0, 1, 1.0, 2]
    k = np.arange(1, n - 1)
    Z[1:, 0] = k + 1
    Z[1:, 1] = n + k - 1
    if not chain_right:  # the chain drawn as the left child (larger id first: still valid)
        Z[1:, 0], Z[1:, 1] = n + k - 1, k + 1
    Z[1:, 2] = k + 1.0
    Z[1:, 3] = k + 2
    return Z


def random_tree(n, rng):
    """A valid Z merging random pairs of clusters at increasing heights."""
    Z = np.empty((n - 1, 4))
    active = list(range(n))
    size = np.ones(2 * n - 1)
    u = rng.random((n - 1, 2))
    heights = np.cumsum(rng.random(n - 1))
    for k in range(n - 1):
        m = n - k
        i = int(u[k, 0] * m)
        j = int(u[k, 1] * (m - 1))
        j += j >= i
        a, b = active[i], active[j]
        size[n + k] = size[a] + size[b]
        Z[k] = [min(a, b), max(a, b), heights[k], size[n + k]]
        active[i] = n + k
        active[j] = active[-1]
        active.pop()
    return Z


def random_kwargs(rng, n, Z):
    """A random combination of every layout parameter."""
    kw = {}
    if rng.random() < 0.6:
        kw["truncate_mode"] = ["lastp", "level", "mtica", "none", None][rng.integers(5)]
        kw["p"] = int(rng.integers(-2, n + 3))
    if rng.random() < 0.3:
        kw["count_sort"] = [True, "ascending", "descending"][rng.integers(3)]
    if rng.random() < 0.3:
        kw["distance_sort"] = [True, "ascending", "descending"][rng.integers(3)]
    r = rng.random()
    if r < 0.2:
        kw["color_threshold"] = float(rng.choice(Z[:, 2]))  # exactly on a merge
    elif r < 0.4:
        kw["color_threshold"] = float(rng.uniform(-0.5, 1.2) * Z[:, 2].max())
    elif r < 0.45:
        kw["color_threshold"] = "default"
    if rng.random() < 0.3:
        kw["show_leaf_counts"] = False
    r = rng.random()
    if r < 0.15:
        kw["labels"] = [f"s{i}" for i in range(n)]
    elif r < 0.3:
        kw["labels"] = np.arange(n) * 10
    if rng.random() < 0.15:
        kw["leaf_label_func"] = lambda i: f"<{i}>"
    if rng.random() < 0.15:
        kw["link_color_func"] = lambda i: "C%d" % (i % 4)
    if rng.random() < 0.2:
        kw["above_threshold_color"] = "k"
    if rng.random() < 0.2:
        kw["orientation"] = ["top", "left", "bottom", "right"][rng.integers(4)]
    return kw


def assert_same_dict(R, S):
    assert list(R) == list(S)
    for key in S:
        assert R[key] == S[key], key


# --------------------------------------------------------------------------
# layout equals scipy's
# --------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_random_linkages_every_parameter(method, rng):
    """Generic data, tied data (rounded: zero-height merges, equal heights) and
    the non-monotone centroid/median trees, with random parameter mixes."""
    for trial in range(30):
        n = int(rng.integers(2, 40))
        X = rng.normal(size=(n, 2))
        if trial % 2:
            X = np.round(X * 2)  # ties and duplicates
        Z = sch.linkage(X, method)
        kw = random_kwargs(rng, n, Z)
        R = hc.dendrogram(Z, no_plot=True, **kw)
        S = sch.dendrogram(Z, no_plot=True, **kw)
        assert_same_dict(R, S)


def test_non_monotone_tree_is_drawn_as_scipy_does():
    # centroid linkage with an inversion: a merge lower than its child
    X = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.8]])
    Z = sch.linkage(X, "centroid")
    assert Z[1, 2] < Z[0, 2]
    for kw in ({}, {"distance_sort": True}, {"color_threshold": Z[1, 2]}):
        assert_same_dict(hc.dendrogram(Z, no_plot=True, **kw),
                         sch.dendrogram(Z, no_plot=True, **kw))


def test_ytdist_documented_values():
    Z = sch.linkage(YTDIST, "single")
    R = hc.dendrogram(Z, no_plot=True)
    assert R == {
        "icoord": [[5.0, 5.0, 15.0, 15.0], [45.0, 45.0, 55.0, 55.0],
                   [35.0, 35.0, 50.0, 50.0], [25.0, 25.0, 42.5, 42.5],
                   [10.0, 10.0, 33.75, 33.75]],
        "dcoord": [[0.0, 138.0, 138.0, 0.0], [0.0, 219.0, 219.0, 0.0],
                   [0.0, 255.0, 255.0, 219.0], [0.0, 268.0, 268.0, 255.0],
                   [138.0, 295.0, 295.0, 268.0]],
        "ivl": ["2", "5", "1", "0", "3", "4"],
        "leaves": [2, 5, 1, 0, 3, 4],
        "color_list": ["C1", "C0", "C0", "C0", "C0"],
        "leaves_color_list": ["C1", "C1", "C0", "C0", "C0", "C0"],
    }
    R = hc.dendrogram(Z, 2, "lastp", no_plot=True)
    assert (R["ivl"], R["leaves"], R["icoord"]) == (["(2)", "(4)"], [6, 9],
                                                    [[5.0, 5.0, 15.0, 15.0]])
    R = hc.dendrogram(Z, 2, "mtica", no_plot=True)
    assert R["ivl"] == ["2", "5", "1", "0", "(2)"]
    assert R["leaves"] == [2, 5, 1, 0, 7]


def test_zero_height_cluster_colours_a_leaf_as_scipy_does():
    """scipy finds leaves by coordinates (x = 10k+5, y = 0): a zero-height
    cluster centred on a leaf position colours that leaf too."""
    X = np.array([[1, 0, 0], [0, 0, 1], [0, 2, 0], [0, 0, 1], [0, 1, 0], [0, 1, 0]],
                 dtype=float)
    Z = sch.linkage(X, "single")
    R = hc.dendrogram(Z, no_plot=True)
    assert R["leaves_color_list"] == ["C0", "C1", "C1", "C0", "C2", "C2"]
    # Binary data: many zero-height clusters, some centred on leaf positions.
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(3, 12))
        X = rng.integers(0, 2, size=(n, 1)).astype(float)
        Z = sch.linkage(X, "single")
        for t in (0.5, 0.0, 2.0):
            assert_same_dict(hc.dendrogram(Z, no_plot=True, color_threshold=t),
                             sch.dendrogram(Z, no_plot=True, color_threshold=t))


def test_labels_sequence_types_and_ids(rng):
    Z = sch.linkage(rng.normal(size=(12, 2)), "average")
    arr = np.arange(12) * 3
    for labels in (arr, list(arr), tuple(arr), [f"x{i}" for i in range(12)]):
        R = hc.dendrogram(Z, labels=labels, no_plot=True)
        S = sch.dendrogram(Z, labels=labels, no_plot=True)
        assert R == S
        assert [type(v) for v in R["ivl"]] == [type(v) for v in S["ivl"]]


def test_label_funcs_get_python_ints(rng):
    Z = sch.linkage(rng.normal(size=(15, 2)), "ward")
    seen = []

    def llf(i):
        seen.append(type(i))
        return str(i)

    colours = []

    def lcf(i):
        colours.append(type(i))
        return "r"

    R = hc.dendrogram(Z, truncate_mode="lastp", p=5, leaf_label_func=llf,
                      link_color_func=lcf, no_plot=True)
    assert set(seen) == {int} and set(colours) == {int}
    assert R["color_list"] == ["r"] * 4


def test_get_leaves_false():
    """scipy 1.17 raises TypeError here (len(None) building leaves_color_list);
    we return everything but the leaf ids."""
    Z = sch.linkage(YTDIST, "single")
    R = hc.dendrogram(Z, no_plot=True, get_leaves=False)
    S = sch.dendrogram(Z, no_plot=True)
    assert R["leaves"] is None
    for key in ("icoord", "dcoord", "ivl", "color_list", "leaves_color_list"):
        assert R[key] == S[key]


def test_two_observations_and_whole_tree_contracted():
    Z = np.array([[0.0, 1.0, 1.0, 2.0]])
    assert hc.dendrogram(Z, no_plot=True) == sch.dendrogram(Z, no_plot=True)
    Z = sch.linkage(YTDIST, "single")
    for p in (1, -3):  # lastp with p <= 1 contracts the root itself
        R = hc.dendrogram(Z, p=p, truncate_mode="lastp", no_plot=True)
        assert R == sch.dendrogram(Z, p=p, truncate_mode="lastp", no_plot=True)
        assert R["ivl"] == ["(6)"] and R["icoord"] == [] and R["leaves_color_list"] == [None]


def test_input_forms_and_not_mutated(rng):
    Z = sch.linkage(rng.normal(size=(20, 3)), "complete")
    keep = Z.copy()
    S = sch.dendrogram(Z, no_plot=True)
    assert hc.dendrogram(Z.tolist(), no_plot=True) == S
    assert hc.dendrogram(np.asfortranarray(Z), no_plot=True) == S
    assert hc.dendrogram(Z, p=4.0, truncate_mode="level", no_plot=True) == \
        sch.dendrogram(Z, p=4, truncate_mode="level", no_plot=True)
    np.testing.assert_array_equal(Z, keep)


# --------------------------------------------------------------------------
# set_link_color_palette
# --------------------------------------------------------------------------

def test_palette_is_used_and_reset():
    Z = sch.linkage(YTDIST, "single")
    hc.set_link_color_palette(["c", "m", "y", "k"])
    R = hc.dendrogram(Z, no_plot=True, above_threshold_color="g", color_threshold=250)
    assert R["color_list"] == ["c", "m", "g", "g", "g"]
    R = hc.dendrogram(Z, no_plot=True, color_threshold=267, above_threshold_color="k")
    assert R["color_list"] == ["c", "m", "m", "k", "k"]
    # the palette cycles: a 1-colour palette repeats
    hc.set_link_color_palette(("r",))
    assert hc.dendrogram(Z, no_plot=True, color_threshold=250)["color_list"][:2] == ["r", "r"]
    hc.set_link_color_palette(None)
    assert hc.dendrogram(Z, no_plot=True)["color_list"] == ["C1", "C0", "C0", "C0", "C0"]
    # independent of scipy's global palette
    sch.set_link_color_palette(["y"])
    assert hc.dendrogram(Z, no_plot=True)["color_list"][0] == "C1"


def test_palette_cycles_like_scipy(rng):
    hc.set_link_color_palette(["a", "b", "c"])
    sch.set_link_color_palette(["a", "b", "c"])
    for _ in range(10):
        Z = sch.linkage(rng.normal(size=(40, 2)), "average")
        for t in np.quantile(Z[:, 2], [0.3, 0.6, 0.9]):
            assert hc.dendrogram(Z, no_plot=True, color_threshold=t)["color_list"] == \
                sch.dendrogram(Z, no_plot=True, color_threshold=t)["color_list"]


def test_palette_errors():
    with pytest.raises(TypeError, match="palette must be a list or tuple"):
        hc.set_link_color_palette("C1")
    with pytest.raises(TypeError, match="all palette list elements must be color strings"):
        hc.set_link_color_palette(["C1", 2])
    hc.set_link_color_palette([])
    Z = sch.linkage(YTDIST, "single")
    with pytest.raises(IndexError, match="palette is empty"):
        hc.dendrogram(Z, no_plot=True)
    # nothing below the threshold: an empty palette is never read
    assert hc.dendrogram(Z, no_plot=True, color_threshold=0)["color_list"] == ["C0"] * 5


# --------------------------------------------------------------------------
# errors: scipy's types, scipy's words first
# --------------------------------------------------------------------------

def _both_raise(exc, match, *args, **kwargs):
    with pytest.raises(exc, match=match):
        hc.dendrogram(*args, **kwargs)
    with pytest.raises(exc, match=match):
        sch.dendrogram(*args, **kwargs)


def test_errors_match_scipy():
    Z = sch.linkage(YTDIST, "single")
    _both_raise(ValueError, "orientation must be one of 'top', 'left'", Z,
                orientation="up", no_plot=True)
    _both_raise(ValueError, "Dimensions of Z and labels must be consistent", Z,
                labels=["a", "b"], no_plot=True)
    _both_raise(TypeError, "The second argument must be a number", Z, p=np.int64(3),
                no_plot=True)
    _both_raise(TypeError, "The second argument must be a number", Z, p="3", no_plot=True)
    _both_raise(ValueError, "Invalid truncation mode", Z, truncate_mode="top",
                no_plot=True)
    _both_raise(TypeError, "must contain doubles", Z.astype(np.int64), no_plot=True)
    _both_raise(ValueError, "must have 4 columns", Z[:, :3], no_plot=True)
    bad = Z.copy()
    bad[0, 1] = 9  # uses cluster 9 before row 3 forms it
    _both_raise(ValueError, "uses non-singleton cluster before it is formed", bad,
                no_plot=True)
    bad = Z.copy()
    bad[1, 2] = -1.0
    _both_raise(ValueError, "contains negative distances", bad, no_plot=True)
    _both_raise(TypeError, "link_color_func must return a matplotlib color string", Z,
                link_color_func=lambda k: 3, no_plot=True)
    with pytest.raises(TypeError, match="color_threshold must be a number"):
        hc.dendrogram(Z, color_threshold="high", no_plot=True)


def test_plot_without_matplotlib_says_no_plot(monkeypatch):
    Z = sch.linkage(YTDIST, "single")
    monkeypatch.setitem(sys.modules, "matplotlib.collections", None)
    with pytest.raises(ImportError, match="no_plot=True"):
        hc.dendrogram(Z)
    assert hc.dendrogram(Z, no_plot=True)["leaves"] == [2, 5, 1, 0, 3, 4]


def test_no_plot_never_imports_matplotlib():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import gpu_hclust as hc
        Z = np.array([[0, 1, 1.0, 2], [2, 3, 2.0, 3]])
        hc.dendrogram(Z, no_plot=True, show_contracted=True, truncate_mode='lastp', p=1)
        print('matplotlib' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------
# deep and large trees (no recursion)
# --------------------------------------------------------------------------

@pytest.fixture
def deep_recursion():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(12_000)  # lets scipy's recursive layout reach depth 3000
    yield
    sys.setrecursionlimit(old)


def test_caterpillar_scipy_cannot_lay_out():
    Z = caterpillar(1500)
    with pytest.raises(RecursionError):
        sch.dendrogram(Z, no_plot=True)
    R = hc.dendrogram(Z, no_plot=True)
    assert R["leaves"] == list(range(1499, 1, -1)) + [0, 1]


@pytest.mark.parametrize("kw", [{}, {"count_sort": "descending"},
                                {"truncate_mode": "level", "p": 7},
                                {"truncate_mode": "lastp", "p": 2000},
                                {"distance_sort": True, "color_threshold": 2500}])
def test_deep_trees_equal_scipy_with_raised_limit(kw, deep_recursion):
    for Z in (caterpillar(3000), caterpillar(3000, chain_right=False)):
        assert_same_dict(hc.dendrogram(Z, no_plot=True, **kw),
                         sch.dendrogram(Z, no_plot=True, **kw))


def test_large_random_tree_equals_scipy(rng):
    Z = random_tree(5_000, rng)
    for kw in ({}, {"truncate_mode": "lastp", "p": 300, "count_sort": True}):
        assert_same_dict(hc.dendrogram(Z, no_plot=True, **kw),
                         sch.dendrogram(Z, no_plot=True, **kw))


def _reference_layout(Z):
    """Leaf order and link corners by an explicit-stack walk in Python."""
    n = Z.shape[0] + 1
    kids = Z[:, :2].astype(np.int64)
    order, links = [], []
    x, y = np.zeros(2 * n - 1), np.zeros(2 * n - 1)
    y[n:] = Z[:, 2]
    stack = [(2 * n - 2, False)]
    while stack:
        i, done = stack.pop()
        if i < n:
            x[i] = 10.0 * len(order) + 5.0
            order.append(i)
        elif done:
            a, b = kids[i - n]
            x[i] = (x[a] + x[b]) / 2.0
            links.append(([x[a], x[a], x[b], x[b]], [y[a], y[i], y[i], y[b]]))
        else:
            stack += [(i, True), (kids[i - n, 1], False), (kids[i - n, 0], False)]
    return order, links


def _check_at_scale(n, rng):
    for Z in (caterpillar(n), random_tree(n, rng)):
        R = hc.dendrogram(Z, no_plot=True)
        order, links = _reference_layout(Z)
        assert R["leaves"] == order
        assert R["ivl"] == [str(i) for i in order]
        assert R["icoord"] == [xs for xs, _ in links]
        assert R["dcoord"] == [ys for _, ys in links]
        assert len(R["color_list"]) == n - 1
        assert set(R["color_list"]) <= {"C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7",
                                         "C8", "C9"}
        assert len(R["leaves_color_list"]) == n and None not in R["leaves_color_list"]
        small = hc.dendrogram(Z, truncate_mode="lastp", p=12, no_plot=True,
                              show_contracted=True)
        assert len(small["leaves"]) == 12
        assert sum(int(s.strip("()")) for s in small["ivl"] if s.startswith("(")) + \
            sum(1 for s in small["ivl"] if not s.startswith("(")) == n


def test_scale_100k(rng):
    _check_at_scale(100_000, rng)


@pytest.mark.slow
def test_scale_1m(rng):
    _check_at_scale(1_000_000, rng)


# --------------------------------------------------------------------------
# plotting: the same artists as scipy's
# --------------------------------------------------------------------------

def _describe(ax):
    """Everything a dendrogram draws, as plain data."""
    d = {
        "xlim": ax.get_xlim(), "ylim": ax.get_ylim(),
        "xticks": list(ax.get_xticks()), "yticks": list(ax.get_yticks()),
        "xlabels": [(t.get_text(), t.get_rotation(), t.get_fontsize())
                    for t in ax.get_xticklabels()],
        "ylabels": [(t.get_text(), t.get_rotation(), t.get_fontsize())
                    for t in ax.get_yticklabels()],
        "tickline_visible": [ln.get_visible() for ln in ax.get_xticklines()]
        + [ln.get_visible() for ln in ax.get_yticklines()],
        "collections": [([s.tolist() for s in c.get_segments()], c.get_colors().tolist())
                        for c in ax.collections],
        "marks": sorted((p.center[0], p.center[1], p.width, p.height, p.get_alpha(),
                         tuple(p.get_facecolor())) for p in ax.patches),
    }
    return d


@pytest.mark.parametrize("orientation", ["top", "bottom", "left", "right"])
@pytest.mark.parametrize("kw", [
    {},
    {"truncate_mode": "lastp", "p": 6, "show_contracted": True},
    {"truncate_mode": "level", "p": 2, "show_contracted": True, "no_labels": True},
    {"leaf_rotation": 30.0, "leaf_font_size": 7, "labels": [f"obs{i}" for i in range(25)],
     "color_threshold": 1.0, "above_threshold_color": "grey"},
])
def test_plot_draws_what_scipy_draws(orientation, kw, rng):
    Z = sch.linkage(rng.normal(size=(25, 2)), "ward")
    fig, (ax1, ax2) = plt.subplots(1, 2)
    R = hc.dendrogram(Z, ax=ax1, orientation=orientation, **kw)
    S = sch.dendrogram(Z, ax=ax2, orientation=orientation, **kw)
    assert_same_dict(R, S)
    assert _describe(ax1) == _describe(ax2)


def test_plot_on_current_axes_and_many_leaves(rng):
    Z = sch.linkage(rng.normal(size=(120, 2)), "average")  # small default font, 90 deg
    plt.figure()
    hc.dendrogram(Z)
    ours = _describe(plt.gca())
    plt.figure()
    sch.dendrogram(Z)
    assert ours == _describe(plt.gca())


@pytest.mark.gpu
def test_cupy_linkage_matrix(rng):
    import cupy

    Z = sch.linkage(rng.normal(size=(30, 2)), "ward")
    assert hc.dendrogram(cupy.asarray(Z), no_plot=True) == sch.dendrogram(Z, no_plot=True)
