"""The tutorial's hand-written extras (gpu_hclust._analysis)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.cluster import hierarchy as sch  # noqa: E402
from scipy.spatial.distance import cdist  # noqa: E402

import gpu_hclust as hc  # noqa: E402
from gpu_hclust import _analysis  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def blobs(rng):
    """Three separated blobs in 2-D (60 points) and their ward linkage."""
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 12.0]])
    X = np.concatenate([rng.normal(c, 1.0, size=(20, 2)) for c in centres])
    return X, sch.linkage(X, "ward")


def _texts(ax):
    return [t.get_text() for t in ax.texts]


# --------------------------------------------------------------------------
# annotated_dendrogram
# --------------------------------------------------------------------------

def test_annotated_no_plot_is_dendrogram_with_threshold_at_cut(blobs):
    X, Z = blobs
    cut = float(np.mean(Z[-3:-1, 2]))
    R = hc.annotated_dendrogram(Z, max_d=cut, no_plot=True)
    assert R == hc.dendrogram(Z, color_threshold=cut, no_plot=True)
    # an explicit colour threshold wins over the cut
    R = hc.annotated_dendrogram(Z, max_d=cut, color_threshold=1.0, no_plot=True)
    assert R == hc.dendrogram(Z, color_threshold=1.0, no_plot=True)


def test_annotated_colours_follow_the_cut(blobs):
    """Leaves share a colour exactly when fcluster(Z, max_d, 'distance') joins them."""
    X, Z = blobs
    for cut in (Z[-2, 2] - 1e-9, Z[-3, 2] + 1e-9, 0.5 * (Z[-5, 2] + Z[-4, 2])):
        R = hc.annotated_dendrogram(Z, max_d=cut, no_plot=True)
        flat = hc.fcluster(Z, cut, criterion="distance")
        pairs = {}
        for leaf, colour in zip(R["leaves"], R["leaves_color_list"]):
            pairs.setdefault(int(flat[leaf]), set()).add(colour)
        # one colour per flat cluster (singleton clusters hang from C0 links)
        assert all(len(c) == 1 for c in pairs.values())
        multi = [c.pop() for k, c in pairs.items() if np.sum(flat == k) > 1]
        assert len(set(multi)) == len(multi) and "C0" not in multi


def test_annotated_plot_writes_heights_and_cut_line(blobs):
    X, Z = blobs
    fig, ax = plt.subplots()
    above = float(Z[-6, 2])
    R = hc.annotated_dendrogram(Z, max_d=float(Z[-2, 2]) - 0.1, annotate_above=above,
                                ax=ax, truncate_mode="lastp", p=8, show_contracted=True)
    tops = [d[1] for d in R["dcoord"] if d[1] > above]
    assert sorted(_texts(ax)) == sorted("%.3g" % h for h in tops)
    assert len(tops) == 5
    # dots: one per annotation, in its link's colour, at the middle of the bar
    dots = [ln for ln in ax.lines if ln.get_marker() == "o"]
    expected = sorted((0.5 * (i[1] + i[2]), d[1], c)
                      for i, d, c in zip(R["icoord"], R["dcoord"], R["color_list"])
                      if d[1] > above)
    got = sorted((ln.get_xdata()[0], ln.get_ydata()[0], ln.get_color()) for ln in dots)
    assert got == expected
    cut_lines = [ln for ln in ax.lines if list(ln.get_ydata()) == [Z[-2, 2] - 0.1] * 2]
    assert len(cut_lines) == 1
    assert ax.get_title() == "Hierarchical Clustering Dendrogram (truncated)"
    assert ax.get_xlabel() == "sample index or (cluster size)"
    assert ax.get_ylabel() == "distance"


def test_annotated_sideways_and_custom_labels(blobs):
    X, Z = blobs
    fig, ax = plt.subplots()
    hc.annotated_dendrogram(Z, max_d=5.0, orientation="left", ax=ax, title="",
                            annotate_above=float(Z[-3, 2]), fmt="%.1f")
    assert ax.get_title() == ""
    assert ax.get_xlabel() == "distance" and ax.get_ylabel() == "sample index"
    assert sorted(_texts(ax)) == sorted("%.1f" % h for h in Z[-2:, 2])
    vertical = [ln for ln in ax.lines if list(ln.get_xdata()) == [5.0, 5.0]]
    assert len(vertical) == 1
    for ln in ax.lines:
        if ln.get_marker() == "o":  # dots at (height, position)
            assert ln.get_xdata()[0] in set(Z[-2:, 2])


def test_annotated_on_current_axes(blobs):
    X, Z = blobs
    plt.figure()
    hc.annotated_dendrogram(Z)
    ax = plt.gca()
    assert len(ax.texts) == int(np.sum(Z[:, 2] > 0))
    assert ax.get_xlabel() == "sample index"


# --------------------------------------------------------------------------
# elbow
# --------------------------------------------------------------------------

def _tutorial_elbow(Z, last):
    """The tutorial's cell, verbatim in spirit."""
    tail = Z[-last:, 2]
    acceleration_rev = np.diff(tail, 2)[::-1]
    return int(acceleration_rev.argmax() + 2), tail[::-1], acceleration_rev


@pytest.mark.parametrize("last", [3, 5, 10, 59, 500])
def test_elbow_is_the_tutorials_formula(blobs, last):
    X, Z = blobs
    e = hc.elbow(Z, last)
    k, heights, acc = _tutorial_elbow(Z, min(last, Z.shape[0]))
    assert e.k == k
    np.testing.assert_array_equal(e.heights, heights)
    np.testing.assert_array_equal(e.acceleration, acc)
    np.testing.assert_array_equal(e.steps, np.arange(1, heights.size + 1))
    np.testing.assert_array_equal(e.k_values, np.arange(2, heights.size))


def test_elbow_finds_three_blobs(blobs):
    assert hc.elbow(blobs[1]).k == 3


def test_elbow_errors(blobs):
    X, Z = blobs
    with pytest.raises(ValueError, match="at least 3 merge heights"):
        hc.elbow(Z, last=2)
    with pytest.raises(ValueError, match="at least 3 merge heights"):
        hc.elbow(sch.linkage(X[:3], "ward"))  # two merges only
    with pytest.raises(TypeError, match="last must be an int"):
        hc.elbow(Z, last=4.5)
    bad = Z.copy()
    bad[0, 1] = 100  # cluster 100 does not exist yet at row 0
    with pytest.raises(ValueError, match="uses non-singleton cluster before it is formed"):
        hc.elbow(bad)


def test_plot_elbow_draws_both_series(blobs):
    X, Z = blobs
    fig, ax = plt.subplots()
    e = hc.plot_elbow(Z, last=8, ax=ax)
    lines = ax.get_lines()
    np.testing.assert_array_equal(lines[0].get_xdata(), e.steps)
    np.testing.assert_array_equal(lines[0].get_ydata(), e.heights)
    np.testing.assert_array_equal(lines[1].get_xdata(), e.k_values)
    np.testing.assert_array_equal(lines[1].get_ydata(), e.acceleration)
    assert (lines[2].get_xdata()[0], lines[2].get_marker()) == (e.k, "o")
    assert f"k = {e.k}" in ax.get_title()
    fig, ax = plt.subplots()
    assert hc.plot_elbow(e, ax=ax) is e


# --------------------------------------------------------------------------
# inconsistency
# --------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 3, 5])
def test_inconsistency_report_rows_and_counts(blobs, depth):
    X, Z = blobs
    thresholds = [0.8, 1.1, 1.5]
    rep = hc.inconsistency_report(Z, depth=depth, last=10, thresholds=thresholds)
    full = sch.inconsistent(Z, depth)
    np.testing.assert_allclose(rep.R, full[-10:], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rep.rows, np.arange(Z.shape[0] - 10, Z.shape[0]))
    np.testing.assert_array_equal(rep.heights, Z[-10:, 2])
    for t in thresholds:
        flat = sch.fcluster(Z, t, criterion="inconsistent", depth=depth)
        assert rep.n_clusters[t] == np.unique(flat).size
    text = rep.table()
    assert f"depth {depth}" in text and len(text.splitlines()) == 2 + 10 + len(thresholds)
    assert f"{full[-1, 3]:.5f}" in text


def test_inconsistency_report_clamps_and_checks(blobs):
    X, Z = blobs
    assert hc.inconsistency_report(Z, last=1000).R.shape == (Z.shape[0], 4)
    with pytest.raises(ValueError, match="last must be a positive int"):
        hc.inconsistency_report(Z, last=0)
    with pytest.raises(ValueError, match="must have 4 columns"):
        hc.inconsistency_report(Z[:, :3])


# --------------------------------------------------------------------------
# scatter
# --------------------------------------------------------------------------

def test_scatter_clusters_colours_by_label(blobs):
    X, Z = blobs
    labels = hc.fcluster(Z, 3, criterion="maxclust")
    fig, ax = plt.subplots()
    out = hc.scatter_clusters(X, labels, ax=ax, highlight={"r": [0, 1], "y": [40]})
    assert out is ax
    main, red, yellow = ax.collections
    np.testing.assert_array_equal(main.get_offsets(), X)
    np.testing.assert_array_equal(main.get_array(), labels)
    np.testing.assert_array_equal(red.get_offsets(), X[[0, 1]])
    np.testing.assert_array_equal(yellow.get_offsets(), X[[40]])
    assert ax.get_title() == "3 clusters"


def test_scatter_without_labels_and_errors(blobs):
    X, Z = blobs
    fig, ax = plt.subplots()
    hc.scatter_clusters(X, None, ax=ax, highlight=[3, 4], title="data")
    assert len(ax.collections) == 2 and ax.get_title() == "data"
    with pytest.raises(ValueError, match="must have 2 columns"):
        hc.scatter_clusters(np.ones((5, 3)), [1] * 5, ax=ax)
    labels = hc.fcluster(Z, 3, criterion="maxclust")
    # the tutorial reader's mistake: scattering Z instead of X
    with pytest.raises(ValueError, match="not the linkage matrix Z"):
        hc.scatter_clusters(Z[:, :2], labels, ax=ax)


# --------------------------------------------------------------------------
# labels <-> indices
# --------------------------------------------------------------------------

def test_labels_indices_round_trip(blobs):
    X, Z = blobs
    labels = hc.fcluster(Z, 4, criterion="maxclust")
    members = hc.labels_to_indices(labels)
    assert list(members) == sorted(set(labels.tolist()))
    assert all(type(k) is int for k in members)
    for k, idx in members.items():
        np.testing.assert_array_equal(idx, np.flatnonzero(labels == k))
    back = hc.indices_to_labels(members)
    np.testing.assert_array_equal(back, labels)
    assert back.dtype == np.int32


def test_labels_to_indices_with_ids_and_strings():
    ids = np.array(["a", "b", "c", "d"])
    members = hc.labels_to_indices(np.array([2, 1, 2, 1]), ids=ids)
    assert {k: v.tolist() for k, v in members.items()} == {1: ["b", "d"], 2: ["a", "c"]}
    members = hc.labels_to_indices(["x", "y", "x"])
    assert {k: v.tolist() for k, v in members.items()} == {"x": [0, 2], "y": [1]}
    assert hc.labels_to_indices([]) == {}
    with pytest.raises(ValueError, match="ids has 2 entries but labels has 3"):
        hc.labels_to_indices([1, 2, 1], ids=[5, 6])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        hc.labels_to_indices([[1, 2]])


def test_indices_to_labels_errors():
    with pytest.raises(ValueError, match="samples \\[1\\] are in no cluster"):
        hc.indices_to_labels({1: [0, 2]})
    with pytest.raises(ValueError, match="repeats a sample"):
        hc.indices_to_labels({1: [0, 1], 2: [1, 2]})
    with pytest.raises(ValueError, match="repeats a sample"):
        hc.indices_to_labels({1: [0, 0, 1]})
    with pytest.raises(ValueError, match="holds index 7, outside 0..2"):
        hc.indices_to_labels({1: [0, 7], 2: [1]}, n=3)
    with pytest.raises(ValueError, match="holds index -1"):
        hc.indices_to_labels({1: [0, -1]})
    with pytest.raises(TypeError, match="clusters must be a dict"):
        hc.indices_to_labels([[0], [1]])
    np.testing.assert_array_equal(hc.indices_to_labels({3: [1], 5: [0]}, n=2), [5, 3])


# --------------------------------------------------------------------------
# assign_to_clusters
# --------------------------------------------------------------------------

def test_assign_by_centroid_matches_brute_force(blobs, rng):
    X, Z = blobs
    labels = hc.fcluster(Z, 3, criterion="maxclust")
    new = rng.uniform(-5, 15, size=(200, 2))
    keys = np.unique(labels)
    centroids = np.array([X[labels == k].mean(axis=0) for k in keys])
    for metric in ("euclidean", "cityblock"):
        expected = keys[np.argmin(cdist(new, centroids, metric), axis=1)]
        got = hc.assign_to_clusters(new, X, labels, metric=metric)
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == labels.dtype


def test_assign_by_nearest_member_in_blocks(blobs, rng, monkeypatch):
    X, Z = blobs
    labels = hc.fcluster(Z, 3, criterion="maxclust")
    new = rng.uniform(-5, 15, size=(37, 2))
    expected = labels[np.argmin(cdist(new, X), axis=1)]
    monkeypatch.setattr(_analysis, "_BLOCK", 7 * X.shape[0])  # 6 blocks, the last short
    np.testing.assert_array_equal(hc.assign_to_clusters(new, X, labels, "nearest"), expected)
    # the clustered samples themselves land in their own clusters
    np.testing.assert_array_equal(hc.assign_to_clusters(X, X, labels, "nearest"), labels)


def test_assign_single_sample_and_errors(blobs):
    X, Z = blobs
    labels = hc.fcluster(Z, 3, criterion="maxclust")
    assert hc.assign_to_clusters(X[5], X, labels).shape == (1,)
    with pytest.raises(ValueError, match="X_new has 3 features but X has 2"):
        hc.assign_to_clusters(np.ones((2, 3)), X, labels)
    with pytest.raises(ValueError, match="method must be 'centroid' or 'nearest'"):
        hc.assign_to_clusters(X[:2], X, labels, method="medoid")
    with pytest.raises(ValueError, match="labels has 59 entries but X has 60 rows"):
        hc.assign_to_clusters(X[:2], X, labels[:-1])


# --------------------------------------------------------------------------
# cluster_profiles
# --------------------------------------------------------------------------

def test_cluster_profiles_means_scores_top(rng):
    X = rng.normal(size=(90, 4))
    labels = np.repeat([3, 1, 2], 30)
    X[labels == 1, 2] += 6.0  # feature 'c' marks cluster 1
    X[:, 3] = 7.0  # constant: scores 0, never top
    prof = hc.cluster_profiles(X, labels, feature_names=list("abcd"), n_top=2)
    np.testing.assert_array_equal(prof.clusters, [1, 2, 3])
    np.testing.assert_array_equal(prof.sizes, [30, 30, 30])
    for row, k in enumerate([1, 2, 3]):
        np.testing.assert_allclose(prof.means[row], X[labels == k].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(prof.scores[row, :3],
                                   (X[labels == k, :3].mean(0) - X[:, :3].mean(0))
                                   / X[:, :3].std(0), rtol=1e-12)
    assert np.all(prof.scores[:, 3] == 0)
    assert prof.top[1][0][0] == "c" and prof.top[1][0][1] > 1.0
    assert all(len(v) == 2 for v in prof.top.values())
    assert "cluster 1 (30 samples): c (+" in prof.table()


def test_cluster_profiles_errors():
    with pytest.raises(ValueError, match="feature_names has 1 names but X has 2"):
        hc.cluster_profiles(np.ones((3, 2)), [1, 1, 2], feature_names=["a"])
    with pytest.raises(ValueError, match="X must be 2-D"):
        hc.cluster_profiles(np.ones(3), [1, 1, 2])
    with pytest.raises(ValueError, match="labels has 2 entries but X has 3 rows"):
        hc.cluster_profiles(np.ones((3, 2)), [1, 2])
