"""The tutorial reproduced: every number it publishes, to its printed precision
(np.set_printoptions(precision=5)), and every figure written.

The expected values below are copied from the tutorial's printed output
(shared/seed/scipy_hierarchical_clustering_tutorial.txt).
"""

import importlib.util
import os

import numpy as np
import pytest

from gpu_hclust._demo import run_demo, tutorial_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIRST_20 = np.array([
    [52, 53, 0.04151, 2], [14, 79, 0.05914, 2], [33, 68, 0.07107, 2],
    [17, 73, 0.07137, 2], [1, 8, 0.07543, 2], [85, 95, 0.10928, 2],
    [108, 131, 0.11007, 2], [9, 66, 0.11302, 2], [15, 69, 0.11429, 2],
    [63, 98, 0.1212, 2], [107, 115, 0.12167, 2], [65, 74, 0.1249, 2],
    [58, 61, 0.14028, 2], [62, 152, 0.1726, 3], [41, 158, 0.1779, 3],
    [10, 83, 0.18635, 2], [114, 139, 0.20419, 2], [39, 88, 0.20628, 2],
    [70, 96, 0.21931, 2], [46, 50, 0.22049, 2]])
X_33_68_62 = np.array([[9.83913, -0.4873], [9.89349, -0.44152], [9.97793, -0.56383]])
LAST_4 = np.array([15.11533, 17.11527, 23.12199, 180.27043])
INCONSISTENT_5 = np.array([
    [1.80875, 2.17062, 10., 2.44277], [2.31732, 2.19649, 16., 2.52742],
    [2.24512, 2.44225, 9., 2.37659], [2.30462, 2.44191, 21., 2.63875],
    [2.20673, 2.68378, 17., 2.84582], [1.95309, 2.581, 29., 4.05821],
    [3.46173, 3.53736, 28., 3.29444], [3.15857, 3.54836, 28., 3.93328],
    [4.9021, 5.10302, 28., 3.57042], [12.122, 32.15468, 30., 5.22936]])
INCONSISTENT_3 = np.array([
    [3.63778, 2.55561, 4., 1.35908], [3.89767, 2.57216, 7., 1.54388],
    [3.05886, 2.66707, 6., 1.87115], [4.92746, 2.7326, 7., 1.39822],
    [4.76943, 3.16277, 6., 1.60456], [5.27288, 3.56605, 7., 2.00627],
    [8.22057, 4.07583, 7., 1.69162], [7.83287, 4.46681, 7., 2.07808],
    [11.38091, 6.2943, 7., 1.86535], [37.25845, 63.31539, 7., 2.25872]])
INCONSISTENT_X2_5 = np.array([
    [13.99222, 15.56656, 30., 3.86585], [16.73941, 18.5639, 30., 3.45983],
    [19.05945, 20.53211, 31., 3.49953], [19.25574, 20.82658, 29., 3.51907],
    [21.36116, 26.7766, 30., 4.50256], [36.58101, 37.08602, 31., 3.50761],
    [12.122, 32.15468, 30., 5.22936], [42.6137, 111.38577, 31., 5.13038],
    [81.75199, 208.31582, 31., 5.30448], [147.25602, 307.95701, 31., 3.6215]])
# fcluster's answer for every criterion the tutorial tries: the first 100
# samples (blob a) in cluster 2, the 50 of blob b in cluster 1.
TWO_BLOBS = np.array([2] * 100 + [1] * 50, dtype=np.int32)


def published(x):
    """A value as the tutorial prints it (precision=5)."""
    return np.round(np.asarray(x, dtype=np.float64), 5)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    lines = []
    numbers = run_demo(str(out), backend="cpu", echo=lines.append)
    return numbers, "\n".join(lines), out


def test_data_is_the_tutorials():
    X, X2 = tutorial_data()
    assert X.shape == (150, 2) and X2.shape == (750, 2)
    np.testing.assert_array_equal(published(X[[33, 68, 62]]), X_33_68_62)
    np.testing.assert_array_equal(X2[:150], X)


def test_first_merges(demo):
    numbers, _, _ = demo
    np.testing.assert_array_equal(published(numbers["first_merges"]), FIRST_20)
    np.testing.assert_array_equal(published(numbers["Z"][0]), [52, 53, 0.04151, 2])
    np.testing.assert_array_equal(published(numbers["Z"][1]), [14, 79, 0.05914, 2])
    np.testing.assert_array_equal(published(numbers["X_33_68_62"]), X_33_68_62)


def test_cophenetic_correlation(demo):
    # "pretty close" to 1: 0.98001483875742679 in the original post's output
    assert round(demo[0]["cophenetic_correlation"], 5) == 0.98001


def test_last_merge_heights(demo):
    np.testing.assert_array_equal(published(demo[0]["last_4_heights"]), LAST_4)


def test_truncated_dendrogram_leaves(demo):
    ivl = demo[0]["truncated_leaf_labels"]
    # "except for X[40] all other samples were already merged into clusters"
    assert len(ivl) == 12 and [s for s in ivl if not s.startswith("(")] == ["40"]
    # "the right most cluster already consisted of 33 samples"
    assert ivl[-1] == "(33)"


def test_cut_offs(demo):
    numbers = demo[0]
    assert numbers["n_clusters_at_50"] == 2  # "we have two clusters at this cut-off"
    assert numbers["n_clusters_at_16"] == 4  # "max_d = 16, we'd get 4 final clusters"


def test_inconsistency_tables(demo):
    numbers = demo[0]
    np.testing.assert_array_equal(published(numbers["inconsistent_depth5"]), INCONSISTENT_5)
    np.testing.assert_array_equal(published(numbers["inconsistent_depth3"]), INCONSISTENT_3)
    np.testing.assert_array_equal(published(numbers["inconsistent_x2_depth5"]),
                                  INCONSISTENT_X2_5)


def test_elbow(demo):
    numbers = demo[0]
    assert numbers["elbow_k"] == 2  # "clusters: 2"
    assert numbers["elbow_k_x2"] == 4  # "clusters: 4", though there are 5
    # "the jump from 167 to 180 as minimal"
    assert [round(h) for h in numbers["last_10_heights_x2"][5:7]] == [167, 180]


def test_flat_clusters_by_every_criterion(demo):
    numbers = demo[0]
    for key in ("clusters_distance", "clusters_maxclust", "clusters_inconsistent"):
        np.testing.assert_array_equal(numbers[key], TWO_BLOBS)
        assert numbers[key].dtype == np.int32
    assert numbers["cluster_sizes"] == {1: 50, 2: 100}
    np.testing.assert_array_equal(numbers["new_samples_assigned"], [2, 1])


def test_printed_walk_through(demo):
    _, text, _ = demo
    for snippet in ("(150, 2)", "0.98001", "[52.      53.       0.04151  2.     ]",
                    "[ 15.11533  17.11527  23.12199 180.27043]",
                    "[12.122   32.15468 30.       5.22936]",
                    "elbow method: clusters: 2", "second data set, elbow method: clusters: 4",
                    "clusters below the cut at max_d = 16: 4"):
        assert snippet in text, snippet


EXPECTED_FIGURES = [
    "01_data.png", "02_early_merges.png", "03_dendrogram_full.png",
    "04_dendrogram_truncated.png", "05_dendrogram_truncated_counts.png",
    "06_dendrogram_annotated.png", "07_cut_at_50.png", "08_cut_at_16.png", "09_elbow.png",
    "10_data_x2.png", "11_dendrogram_x2.png", "12_elbow_x2.png", "13_clusters.png",
]


def test_figures_written(demo):
    numbers, _, out = demo
    assert sorted(os.listdir(out)) == EXPECTED_FIGURES
    assert [os.path.basename(p) for p in numbers["figures"]] == EXPECTED_FIGURES
    for name in EXPECTED_FIGURES:
        with open(os.path.join(out, name), "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    # the full dendrogram is drawn wide, as in the tutorial (figsize 25 x 10)
    import matplotlib.image

    h, w = matplotlib.image.imread(os.path.join(out, "03_dendrogram_full.png")).shape[:2]
    assert w / h == pytest.approx(2.5, rel=0.01)


def test_example_script_is_a_thin_wrapper(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "tutorial_example", os.path.join(ROOT, "examples", "tutorial.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    monkeypatch.setattr(module, "run_demo", lambda *a, **k: calls.append((a, k)) or {})
    assert module.main(["--out", str(tmp_path), "--backend", "cpu"]) == 0
    assert calls == [((str(tmp_path),), {"backend": "cpu", "echo": print})]
    calls.clear()
    module.main([])
    assert calls == [(("figures",), {"backend": None, "echo": print})]
