"""The gpu-hclust command line: every subcommand, file formats, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import pdist

from gpu_hclust import _backend
from gpu_hclust.cli import main
from gpu_hclust._demo import tutorial_data
from gpu_hclust._io import InputError, read_data, write_atomic
from gpu_hclust._methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tut(tmp_path):
    X = tutorial_data()[0]  # the tutorial's 150 x 2 blobs
    path = tmp_path / "tutorial.csv"
    np.savetxt(path, X, delimiter=",", header="x,y", comments="", fmt="%.17g")
    return X, path


@pytest.fixture
def small(tmp_path, rng):
    X = rng.normal(size=(60, 5))
    path = tmp_path / "small.npy"
    np.save(path, X)
    return X, path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_labels_csv(path):
    return labels_from_text(Path(path).read_text())


def labels_from_text(text):
    """Labels from a file's or stdout's text: a 'label' header line, then one per line."""
    lines = text.splitlines()
    assert lines[0] == "label"
    return np.array([int(v) for v in lines[1:]])


# -- cluster ---------------------------------------------------------------------
def test_cluster_tutorial_csv(tut, tmp_path, capsys):
    X, path = tut
    labels_path, z_path = tmp_path / "labels.csv", tmp_path / "Z.npy"
    code, out, err = run(["cluster", path, "--maxclust", 2, "-o", labels_path,
                          "-z", z_path], capsys)
    assert code == 0, err
    Zs = sch.linkage(X, "ward")
    Z = np.load(z_path)
    assert_array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
    assert_allclose(Z[:, 2], Zs[:, 2], rtol=1e-10)
    assert_array_equal(read_labels_csv(labels_path), sch.fcluster(Zs, 2, "maxclust"))
    assert out == ""
    assert "150 observations" in err and "2 clusters" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_cluster_tutorial_distance_cut_to_stdout(tut, capsys):
    X, path = tut
    code, out, err = run(["cluster", path, "--distance", 50, "--quiet"], capsys)
    assert code == 0, err
    assert err == ""
    labels = labels_from_text(out)
    assert_array_equal(labels, sch.fcluster(sch.linkage(X, "ward"), 50, "distance"))
    assert len(np.unique(labels)) == 2  # the tutorial's answer


def test_cluster_inconsistent_with_depth(tut, tmp_path, capsys):
    X, path = tut
    code, out, err = run(["cluster", path, "--inconsistent", 1.5, "--depth", 5, "-q"], capsys)
    assert code == 0, err
    expected = sch.fcluster(sch.linkage(X, "ward"), 1.5, "inconsistent", depth=5)
    assert_array_equal(labels_from_text(out), expected)


def test_cluster_npy_method_metric_to_npy(small, tmp_path, capsys):
    X, path = small
    out_path = tmp_path / "labels.npy"
    code, _, err = run(["cluster", path, "--method", "average", "--metric", "cityblock",
                        "--maxclust", 4, "-o", out_path, "--backend", "cpu"], capsys)
    assert code == 0, err
    labels = np.load(out_path)
    assert labels.dtype.kind == "i"
    assert_array_equal(labels, sch.fcluster(sch.linkage(X, "average", "cityblock"), 4,
                                            "maxclust"))


@pytest.mark.parametrize("method", list(METHODS))
def test_cluster_every_method_writes_z(small, tmp_path, capsys, method):
    X, path = small
    z_path = tmp_path / "Z.npy"
    code, _, err = run(["cluster", path, "--method", method, "-z", z_path, "-q"], capsys)
    assert code == 0, err
    assert_allclose(np.load(z_path), sch.linkage(X, method), rtol=1e-10)


def test_cluster_float32_and_optimal_ordering(tut, tmp_path, capsys):
    X, path = tut
    z_path = tmp_path / "Z.npy"
    code, out, err = run(["cluster", path, "--dtype", "float32", "--maxclust", 2, "-q"], capsys)
    assert code == 0, err
    assert_array_equal(labels_from_text(out),
                       sch.fcluster(sch.linkage(X, "ward"), 2, "maxclust"))
    code, _, err = run(["cluster", path, "--method", "single", "--optimal-ordering",
                        "-z", z_path, "-q"], capsys)
    assert code == 0, err
    assert_allclose(np.load(z_path), sch.linkage(X, "single", optimal_ordering=True),
                    rtol=1e-10)


def test_cluster_condensed_npy(small, tmp_path, capsys):
    X, _ = small
    path = tmp_path / "condensed.npy"
    np.save(path, pdist(X, "cosine"))
    code, out, err = run(["cluster", path, "--method", "complete", "--maxclust", 3, "-q"],
                         capsys)
    assert code == 0, err
    expected = sch.fcluster(sch.linkage(pdist(X, "cosine"), "complete"), 3, "maxclust")
    assert_array_equal(labels_from_text(out), expected)


@pytest.mark.parametrize("name, writer", [
    ("data.tsv", lambda p, X: np.savetxt(p, X, delimiter="\t", fmt="%.17g")),
    ("data.txt", lambda p, X: np.savetxt(p, X, fmt="%.17g", header="a b c d e")),
    ("data.dat", lambda p, X: np.savetxt(p, X, fmt="%.17g")),
    ("noheader.csv", lambda p, X: np.savetxt(p, X, delimiter=",", fmt="%.17g")),
    ("header.csv", lambda p, X: np.savetxt(p, X, delimiter=",", fmt="%.17g",
                                           header="a,b,c,d,e", comments="")),
    ("data.npz", lambda p, X: np.savez(p, X=X, other=np.zeros(3))),
    ("one.npz", lambda p, X: np.savez(p, points=X)),
])
def test_input_formats(small, tmp_path, name, writer):
    X, _ = small
    path = tmp_path / name
    writer(path, X)
    assert_array_equal(read_data(path), X)


def test_input_formats_keyed_npz_and_forced_header(small, tmp_path):
    X, _ = small
    path = tmp_path / "many.npz"
    np.savez(path, a=X, b=X + 1)
    assert_array_equal(read_data(path, key="b"), X + 1)
    csv = tmp_path / "numbers_as_header.csv"
    np.savetxt(csv, X, delimiter=",", fmt="%.17g")
    assert_array_equal(read_data(csv, header="yes"), X[1:])


# -- bad input: one line, non-zero exit ---------------------------------------------
def _write(path, text):
    Path(path).write_text(text)
    return path


BAD_INPUTS = {
    "missing file": (lambda d: d / "nope.csv", [], 1, "nope.csv: no such file"),
    "ragged csv": (lambda d: _write(d / "r.csv", "1,2\n3,4\n5\n"), [], 1,
                   "line 3 has 1 field but the lines before have 2"),
    "nan csv": (lambda d: _write(d / "n.csv", "x,y\n1,2\n3,nan\n5,6\n"), [], 1,
                "line 3, column 2 is 'nan'"),
    "empty field": (lambda d: _write(d / "e.csv", "1,2\n3,\n5,6\n"), [], 1,
                    "line 2, column 2 is empty"),
    "text in data": (lambda d: _write(d / "t.csv", "1,2\n3,abc\n5,6\n"), [], 1,
                     "line 2, column 2: 'abc' is not a number"),
    "nan npy": (lambda d: (np.save(d / "n.npy", np.array([[1.0, 2.0], [np.nan, 1.0]])),
                           d / "n.npy")[1], [], 1, "row 2, column 1 is nan"),
    "inf npy": (lambda d: (np.save(d / "i.npy", np.array([[1.0, np.inf], [0.0, 1.0]])),
                           d / "i.npy")[1], [], 1, "row 1, column 2 is inf"),
    "3-d npy": (lambda d: (np.save(d / "c.npy", np.zeros((2, 3, 4))), d / "c.npy")[1], [], 1,
                "expected a 2-D (n, d) observation matrix or a 1-D condensed distance vector; "
                "got shape (2, 3, 4)"),
    "one row": (lambda d: _write(d / "o.csv", "1,2\n"), [], 1, "at least 2 observations"),
    "empty file": (lambda d: _write(d / "z.csv", "x,y\n"), [], 1, "no data rows"),
    "bad condensed": (lambda d: (np.save(d / "k.npy", np.ones(4)), d / "k.npy")[1], [], 1,
                      "binomial coefficient"),
    "ambiguous npz": (lambda d: (np.savez(d / "m.npz", a=np.ones((3, 2)), b=np.ones((3, 2))),
                                 d / "m.npz")[1], [], 1, "choose one with --key NAME"),
    "unknown method": (lambda d: _write(d / "ok.csv", "1,2\n3,4\n5,7\n"),
                       ["--method", "wardd"], 2, "invalid choice: 'wardd'"),
    "unknown metric": (lambda d: _write(d / "ok.csv", "1,2\n3,4\n5,7\n"),
                       ["--method", "average", "--metric", "nosuch"], 1, "nosuch"),
    "ward needs euclidean": (lambda d: _write(d / "ok.csv", "1,2\n3,4\n5,7\n"),
                             ["--metric", "cityblock"], 1, "Euclidean"),
    "bad maxclust": (lambda d: _write(d / "ok.csv", "1,2\n3,4\n5,7\n"),
                     ["--maxclust", "0", "--distance", None], 2, "expected a whole number >= 1"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_one_line_nonzero_exit(case, tmp_path, capsys):
    make, extra, want_code, message = BAD_INPUTS[case]
    path = make(tmp_path)
    argv = ["cluster", path] + [a for a in extra if a is not None]
    if "--maxclust" not in argv:
        argv += ["--maxclust", "2"]
    code, out, err = run(argv, capsys)
    assert code == want_code
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    assert "Traceback" not in err
    assert message in err


@pytest.mark.parametrize("command, argv, message", [
    ("cluster", ["--maxclust", "2", "--distance", "3"], "not allowed with argument"),
    ("cluster", ["--depth", "3", "--maxclust", "2"], "--depth goes with --inconsistent"),
    ("cluster", [], "nothing to write"),
    ("cluster", ["-o", "labels.csv"], "--labels needs --maxclust"),
    ("cluster", ["--maxclust", "2", "-o", "labels.xlsx"], "choose one of these extensions"),
    ("cluster", ["--maxclust", "2", "-o", "no/such/folder/labels.csv"], "does not exist"),
    ("cluster", ["--distance", "nan"], "expected a finite number"),
    ("plot", ["-o", "out.gif"], "written as .png, .svg or .pdf"),
    ("plot", ["-o", "out.png", "--input-kind", "linkage"], "not a linkage matrix"),
    ("plot", ["-o", "out.png", "--size", "0", "4"], "expected a finite number > 0 and <= 200"),
    ("plot", ["-o", "out.png", "--dpi", "100000"], "expected a whole number >= 10 and <= 2400"),
    ("plot", ["-o", "out.png", "--dpi", "2000"], "24000 x 12000 pixels; a PNG has at most 10000"),
    ("cluster", ["--maxclust", "2", "-o", "tutorial.csv/labels.csv"],
     "tutorial.csv is not a folder"),
])
def test_bad_command_lines(tut, tmp_path, capsys, monkeypatch, command, argv, message):
    _, path = tut
    monkeypatch.chdir(tmp_path)
    code, out, err = run([command, path] + argv, capsys)
    assert code != 0
    assert err.count("\n") == 1 and message in err, err
    assert os.listdir(tmp_path) == [path.name]  # nothing written next to the input


def test_cuda_backend_without_gpu_is_one_line(tut, capsys, monkeypatch):
    if _backend.cuda_unavailable_reason() is None:
        pytest.skip("a GPU is usable here")
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)  # as a user's shell would be
    _backend.cuda_unavailable_reason.cache_clear()
    try:
        code, _, err = run(["cluster", tut[1], "--backend", "cuda", "--maxclust", "2"], capsys)
    finally:
        _backend.cuda_unavailable_reason.cache_clear()
    assert code == 1
    assert err.count("\n") == 1 and "--backend cuda cannot run" in err
    assert "or pass --backend cpu" in err and "backend=" not in err  # the command line's words


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        main(["--debug", "cluster", str(tmp_path / "nope.csv"), "--maxclust", "2"])
    with pytest.raises(InputError, match="no such file"):
        main(["cluster", str(tmp_path / "nope.csv"), "--maxclust", "2", "--debug"])


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")

    def fails_half_way(f):
        f.write(b"half of the data")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, fails_half_way)
    assert target.read_bytes() == b"old"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]  # temp file removed
    write_atomic(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"


# -- plot ------------------------------------------------------------------------
def test_plot_from_z_png(tut, tmp_path, capsys):
    X, path = tut
    z_path, png = tmp_path / "Z.npy", tmp_path / "dendro.png"
    assert run(["cluster", path, "-z", z_path, "-q"], capsys)[0] == 0
    code, _, err = run(["plot", z_path, "-o", png, "--truncate", 12, "--cut", 50,
                        "--annotate-above", 10], capsys)
    assert code == 0, err
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_plot_from_data_svg_and_orientations(tut, tmp_path, capsys):
    _, path = tut
    svg = tmp_path / "dendro.svg"
    code, _, err = run(["plot", path, "-o", svg, "--method", "average", "--cut", 5,
                        "--title", "tutorial"], capsys)
    assert code == 0, err
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "tutorial" in text
    for orientation in ("left", "bottom"):
        out = tmp_path / f"{orientation}.png"
        code, _, err = run(["plot", path, "-o", out, "--orientation", orientation,
                            "--truncate", 5, "--truncate-mode", "level",
                            "--annotate-above", 1], capsys)
        assert code == 0, err
        assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_large_input_is_truncated_automatically(rng, tmp_path, capsys):
    path, png = tmp_path / "big.npy", tmp_path / "big.png"
    np.save(path, rng.normal(size=(300, 3)))
    code, _, err = run(["plot", path, "-o", png, "--method", "single"], capsys)
    assert code == 0, err
    assert "showing the last 30 merges" in err


def test_plot_input_kind_data_on_a_four_column_z(tut, tmp_path, capsys):
    # A valid Z read as data is clustered (150 x 4 -> 149 merges), not drawn as Z.
    X, _ = tut
    z_path = tmp_path / "Z.npy"
    np.save(z_path, sch.linkage(X, "ward"))
    code, _, err = run(["plot", z_path, "-o", tmp_path / "d.png", "--input-kind", "data"],
                       capsys)
    assert code == 0, err


@pytest.mark.parametrize("damage, reason", [
    ((5, 1, 3.0), "uses the same cluster more than once"),
    ((5, 0, 400.0), "uses non-singleton cluster before it is formed"),
    ((5, 2, -1.0), "contains negative distances"),
])
def test_plot_refuses_a_damaged_z(tut, tmp_path, capsys, damage, reason):
    """A damaged Z is an error naming scipy's reason, not data to cluster and draw."""
    X, _ = tut
    Z = sch.linkage(X, "ward")
    row, col, value = damage
    Z[row, col] = value
    if col == 1:
        Z[row, 0] = Z[row - 1, 0] if Z[row - 1, 0] != value else Z[row - 1, 1]
        Z[row, 1] = value = Z[row, 0]
    z_path, png = tmp_path / "Z.npy", tmp_path / "d.png"
    np.save(z_path, Z)
    assert not sch.is_valid_linkage(Z)
    code, out, err = run(["plot", z_path, "-o", png], capsys)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "has the form of a linkage matrix but is not a valid one" in err
    assert reason in err and "--input-kind data" in err
    assert not png.exists()
    code, _, err = run(["plot", z_path, "-o", png, "--input-kind", "linkage"], capsys)
    assert code == 1 and reason in err and "not a linkage matrix" in err
    code, _, err = run(["plot", z_path, "-o", png, "--input-kind", "data"], capsys)
    assert code == 0, err  # clustered as 149 observations of 4 features, as asked


def test_plot_dpi_and_size_bounds_in_help(capsys):
    code, out, _ = run(["plot", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "10..2400" in text and "at most 10000 pixels per side" in text


def test_huge_condensed_memmap_meets_the_memory_check_first(tmp_path, capsys, monkeypatch):
    """No temporary the size of the input before linkage's memory prediction refuses."""
    import tracemalloc

    from test_io import sparse_condensed_npy

    path = tmp_path / "huge.npy"
    m = sparse_condensed_npy(path, 8000)  # 256 MB on paper, zeros, no disk blocks
    _set_available(monkeypatch, 64 * 2**20)
    tracemalloc.start()
    try:
        code, out, err = run(["cluster", path, "--method", "single", "-z", tmp_path / "Z.npy"],
                             capsys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert "linkage needs" in err and "MiB of host memory" in err
    assert "--dtype float32" in err and "dtype=np.float32" not in err  # the CLI's words
    # a bool mask of the input alone would be m bytes (32 MB); a float64 copy 8 m
    assert peak < m // 4, f"{peak / 2**20:.0f} MiB traced for {8 * m / 2**20:.0f} MiB of input"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.npy"]


def test_cluster_ctrl_c_exits_130_without_a_partial_file(small, tmp_path, capsys, monkeypatch):
    _, path = small
    real_save = np.save

    def interrupted(f, arr, *a, **k):
        f.write(b"\x93NUMPY half a header")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    code, out, err = run(["cluster", path, "-z", tmp_path / "Z.npy", "-q"], capsys)
    monkeypatch.setattr(np, "save", real_save)
    assert code == 130 and err == "gpu-hclust: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_output_path_that_is_a_folder(tut, tmp_path, capsys):
    _, path = tut
    (tmp_path / "labels.csv").mkdir()
    code, _, err = run(["cluster", path, "--maxclust", 2, "-o", tmp_path / "labels.csv"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert f"{tmp_path / 'labels.csv'}: is a folder; give a file name" in err
    assert ".part" not in err


def test_semicolon_csv_gets_a_delimiter_hint(tmp_path, capsys):
    path = _write(tmp_path / "excel.csv", "x;y\n1;2\n3;4\n5;7\n")
    code, _, err = run(["cluster", path, "--maxclust", 2], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "'1;2' is not a number; the file seems to use ';' between fields" in err


def test_low_memory_help_describes_the_automatic_choice(capsys):
    from gpu_hclust import _plan

    code, out, _ = run(["cluster", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert f"single from n > {_plan._PRIM_ON_THE_FLY_MIN_N}" in text
    assert (f"from n >= {_plan._SUMMARY_CHAIN_MIN_N} * "
            f"max(1, d/{_plan._SUMMARY_CHAIN_REF_D})") in text
    assert "when the distance matrix would not fit" in text


@pytest.mark.parametrize("library, cli", [
    ("low_memory=True cannot compute method='complete' with metric='euclidean'",
     "--low-memory on cannot compute --method complete with --metric euclidean"),
    ("Pass low_memory=False (or None) to use the dense path.",
     "Pass --low-memory off (or auto) to use the dense path."),
    ("Ways out: low_memory=True (no distance matrix); dtype=np.float32 (halves the matrix); "
     'backend="cpu".', "Ways out: --low-memory on (no distance matrix); --dtype float32 "
     "(halves the matrix); --backend cpu."),
    ("`method=ward` requires the distance metric to be Euclidean (metric='euclidean')",
     "--method ward requires the distance metric to be Euclidean (--metric euclidean)"),
])
def test_cli_words(library, cli):
    from gpu_hclust.cli import cli_words

    assert cli_words(library) == cli


# -- demo ------------------------------------------------------------------------
def test_demo_writes_png_figures(tmp_path, capsys):
    out_dir = tmp_path / "figures"
    code, out, err = run(["demo", "--out", out_dir, "--backend", "cpu"], capsys)
    assert code == 0, err
    pngs = sorted(out_dir.glob("*.png"))
    assert pngs
    assert f"wrote {len(pngs)} figures" in err
    assert "180.27" in out  # the walk-through's last merge height, printed
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC


def test_demo_quiet_passes_no_echo(tmp_path, capsys, monkeypatch):
    from gpu_hclust import _demo

    seen = {}

    def fake_run_demo(out_dir, backend=None, echo=None):
        seen.update(out_dir=out_dir, backend=backend, echo=echo)
        return {"figures": [os.path.join(out_dir, "01_data.png")]}

    monkeypatch.setattr(_demo, "run_demo", fake_run_demo)
    code, out, err = run(["demo", "--out", tmp_path / "figs", "--quiet"], capsys)
    assert code == 0 and out == ""
    assert seen == {"out_dir": str(tmp_path / "figs"), "backend": None, "echo": None}
    assert "wrote 1 figures" in err and "01_data.png" in err


def test_demo_out_must_be_a_folder(tmp_path, capsys):
    path = _write(tmp_path / "file.txt", "x")
    code, _, err = run(["demo", "--out", path], capsys)
    assert code == 1 and err.count("\n") == 1 and "not a folder" in err


# -- info ------------------------------------------------------------------------
def test_info_text(capsys):
    code, out, err = run(["info"], capsys)
    assert code == 0, err
    assert "numpy" in out and "scipy" in out
    assert "cpu   usable" in out
    reason = _backend.cuda_unavailable_reason()
    if reason is None:
        assert "cuda  usable" in out
    else:
        assert f"cuda  not usable: {reason}" in out
    dense = out[out.index("largest n, dense path"):].splitlines()
    assert dense[1].split() == ["float64", "float32"]
    assert dense[2].split()[0] == "cpu"


def _set_available(monkeypatch, nbytes):
    """Make every gpu_hclust module that reads the host's free memory see ``nbytes``."""
    from gpu_hclust import _memory

    real = _memory.host_available_bytes
    for name, module in list(sys.modules.items()):
        if name.startswith("gpu_hclust") and getattr(module, "host_available_bytes", None) is real:
            monkeypatch.setattr(module, "host_available_bytes", lambda: nbytes)


def test_info_json_and_largest_n(capsys):
    from gpu_hclust import _memory

    code, out, _ = run(["info", "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["backends"]["cpu"]["usable"] is True
    assert info["backends"]["cuda"]["reason"] == _backend.cuda_unavailable_reason()
    avail = info["cpu"]["memory_available"]
    for dt in ("float64", "float32"):
        n = info["largest_n"]["cpu"][dt]
        assert _memory.dense_bytes(n, dt) <= avail < _memory.dense_bytes(n + 1, dt)
    saving = info["largest_n_memory_saving"]["cpu"]
    assert list(saving) == ["32", "384", "1024"]
    for d, n in saving.items():
        assert _memory.memory_saving_bytes(n, int(d)) <= avail
        assert _memory.memory_saving_bytes(n + 1, int(d)) > avail
    assert saving["32"] > 100 * info["largest_n"]["cpu"]["float64"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["observations", "condensed"])
def test_info_largest_n_is_where_linkage_refuses(monkeypatch, rng, lowmem_calls, dtype, kind):
    """One memory model: info's n passes linkage's check, one more raises MemoryError."""
    import gpu_hclust
    from gpu_hclust.cli._info import collect_info

    _set_available(monkeypatch, 2_000_000)
    n = collect_info()["largest_n"]["cpu"][dtype]
    assert 400 < n < 1000  # 2 MB: a float64 condensed matrix of ~600 points, float32 ~800

    def data(m):
        X = rng.normal(size=(m, 3))
        return X if kind == "observations" else pdist(X)

    def ward(y, **options):
        return gpu_hclust.linkage(y, "ward", backend="cpu", dtype=np.dtype(dtype), **options)

    # ward on the CPU from observations: dense below the automatic memory-saving size
    assert ward(data(n)).shape == (n - 1, 4)
    with pytest.raises(MemoryError, match="linkage needs"):
        ward(data(n + 1), low_memory=False)
    assert lowmem_calls == []
    if kind == "observations":  # the same boundary switches --low-memory auto
        assert ward(data(n + 1)).shape == (n, 4)
        assert lowmem_calls == ["ward"]
    else:
        with pytest.raises(MemoryError, match="linkage needs"):
            ward(data(n + 1))


def test_info_memory_saving_largest_n_is_where_linkage_refuses(monkeypatch, rng):
    import gpu_hclust
    from gpu_hclust.cli._info import collect_info

    _set_available(monkeypatch, 1_000_000)
    n = collect_info()["largest_n_memory_saving"]["cpu"]["384"]
    assert 200 < n < 400
    X = rng.normal(size=(n + 1, 384))
    Z = gpu_hclust.linkage(X[:n], "ward", backend="cpu", low_memory=True)
    assert Z.shape == (n - 1, 4)
    with pytest.raises(MemoryError, match="memory-saving path"):
        gpu_hclust.linkage(X, "ward", backend="cpu", low_memory=True)


def test_memory_largest_n():
    from gpu_hclust._memory import dense_bytes, largest_n

    # 80 GB holds a float64 condensed matrix of about 141k points (4 n (n-1) bytes + working).
    n = largest_n(80 * 10**9, "float64")
    assert dense_bytes(n, "float64") <= 80 * 10**9 < dense_bytes(n + 1, "float64")
    assert 141_000 < n < 141_422
    assert largest_n(None, "float64") is None
    assert largest_n(80 * 10**9, "float32") > n
    # on the GPU, observations are copied there too: fewer of them fit
    gpu = largest_n(80 * 10**9, "float64", on_gpu=True, d=1024)
    assert gpu < n
    assert dense_bytes(gpu, "float64", on_gpu=True, d=1024) <= 80 * 10**9
    assert largest_n(10, "float64") == 0


def test_info_text_single_needs_no_matrix_on_the_cpu(capsys):
    code, out, err = run(["info"], capsys)
    assert code == 0, err
    assert "single on the CPU never needs the matrix" in out
    dense = out[out.index("largest n, dense path"):out.index("largest n, memory-saving")]
    assert not any(line.strip().startswith("single") for line in dense.splitlines())
    assert "--low-memory on" in out and "low_memory=True" not in out


# -- bench -----------------------------------------------------------------------
FAKE_BENCH = """
import json, os, sys
out = sys.argv[sys.argv.index("--out") + 1]
with open(os.path.join(out, "argv.json"), "w") as f:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd()}, f)
print("  n method   check")
"""


@pytest.fixture
def fake_bench(tmp_path, monkeypatch):
    from gpu_hclust.cli import _commands

    script = tmp_path / "checkout" / "benchmarks" / "bench_linkage.py"
    script.parent.mkdir(parents=True)
    script.write_text(FAKE_BENCH)
    monkeypatch.setattr(_commands, "_bench_script", lambda: str(script))
    return script


def test_bench_runs_the_quick_script_into_the_current_folder(fake_bench, tmp_path, capsys,
                                                             monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = run(["bench"], capsys)
    assert code == 0, err
    got = json.loads((work / "argv.json").read_text())
    assert got["argv"] == ["--quick", "--out", str(work)]
    assert sorted(p.name for p in fake_bench.parent.iterdir()) == ["bench_linkage.py"]


def test_bench_out_sizes_methods(fake_bench, tmp_path, capsys):
    out = tmp_path / "results" / "today"
    code, _, err = run(["bench", "--out", out, "--sizes", 300, 1000,
                        "--methods", "single", "ward"], capsys)
    assert code == 0, err
    got = json.loads((out / "argv.json").read_text())
    assert got["argv"] == ["--quick", "--out", str(out), "--sizes", "300,1000",
                           "--methods", "single,ward"]
    code, _, err = run(["bench", "--out", fake_bench], capsys)
    assert code == 1 and err.count("\n") == 1 and "is not a folder" in err


def test_bench_without_a_checkout_says_what_to_do(tmp_path, capsys, monkeypatch):
    from gpu_hclust.cli import _commands

    monkeypatch.setattr(_commands, "_source_root", lambda: str(tmp_path / "site-packages"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["bench"], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert "from a source checkout" in err and "pip install -e ." in err
    assert os.listdir(tmp_path) == []


def test_bench_script_is_this_checkouts():
    from gpu_hclust.cli import _commands

    assert _commands._bench_script() == str(ROOT / "benchmarks" / "bench_linkage.py")


# -- help and entry points ---------------------------------------------------------
@pytest.mark.parametrize("command", [[], ["cluster"], ["plot"], ["demo"], ["info"], ["bench"]])
def test_help_everywhere(command, capsys):
    code, out, _ = run(command + ["--help"], capsys)
    assert code == 0
    assert out.startswith("usage: gpu-hclust")


def test_version(capsys):
    import gpu_hclust

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and gpu_hclust.__version__ in out


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run([], capsys)
    assert code == 2 and err.count("\n") == 1


def _python_m(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "gpu_hclust"] + [str(a) for a in args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_python_m_cluster_subprocess(tut, tmp_path):
    X, path = tut
    labels = tmp_path / "labels.csv"
    proc = _python_m(["cluster", path, "--maxclust", "2", "-o", labels], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_array_equal(read_labels_csv(labels), sch.fcluster(sch.linkage(X, "ward"), 2,
                                                             "maxclust"))


def test_python_m_bad_input_subprocess(tmp_path):
    proc = _python_m(["cluster", tmp_path / "missing.csv", "--maxclust", "2"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "missing.csv: no such file" in proc.stderr


@pytest.mark.slow
def test_cluster_20000_by_32(tmp_path, rng, capsys):
    """The issue's size: 20 000 x 32 .npy through cluster and plot (minutes on 2 cores)."""
    path = tmp_path / "big.npy"
    np.save(path, rng.normal(size=(20_000, 32)).astype(np.float32))
    z_path, labels = tmp_path / "Z.npy", tmp_path / "labels.npy"
    code, _, err = run(["cluster", path, "--maxclust", 10, "-o", labels, "-z", z_path], capsys)
    assert code == 0, err
    assert np.load(labels).shape == (20_000,)
    code, _, err = run(["plot", z_path, "-o", tmp_path / "big.png", "--cut", 100], capsys)
    assert code == 0, err


def test_info_lists_cuda_devices_from_cupy(monkeypatch):
    """The device table, from a stand-in CuPy (the real one needs a GPU)."""
    import types

    from gpu_hclust._memory import largest_n

    runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        driverGetVersion=lambda: 13000,
        runtimeGetVersion=lambda: 13000,
        getDeviceProperties=lambda i: {"name": b"NVIDIA H100 80GB HBM3", "major": 9, "minor": 0,
                                       "totalGlobalMem": 85 * 2**30},
        memGetInfo=lambda: (80 * 2**30, 85 * 2**30),
    )

    class Device:
        def __init__(self, i):
            self.i = i

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=Device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    devices, versions = _backend.cuda_devices()
    assert devices == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                        "memory_total": 85 * 2**30, "memory_free": 80 * 2**30}]
    assert versions == {"driver": 13000, "runtime": 13000}
    assert largest_n(devices[0]["memory_free"], "float32", on_gpu=True, d=32) > 200_000


def test_cluster_progress_flag(tut, capsys):
    _, path = tut
    code, _, err = run(["cluster", path, "--maxclust", 2, "--progress", "on", "-q"], capsys)
    assert code == 0
    assert "merges" in err
    code, _, err = run(["cluster", path, "--maxclust", 2, "--progress", "off", "-q"], capsys)
    assert code == 0 and err == ""


def test_cluster_low_memory_flag(small, tmp_path, capsys, lowmem_calls):
    X, path = small
    calls = lowmem_calls
    z_path = tmp_path / "Z.npy"
    code, _, err = run(["cluster", path, "--method", "average", "--metric", "cosine",
                        "--low-memory", "on", "--backend", "cpu", "-z", z_path, "-q"], capsys)
    assert code == 0, err
    assert calls == ["average"]
    assert_allclose(np.load(z_path), sch.linkage(X, "average", "cosine"), rtol=1e-10)
    code, _, err = run(["cluster", path, "--method", "ward", "--low-memory", "off",
                        "--backend", "cpu", "--maxclust", 2, "-q"], capsys)
    assert code == 0, err
    assert calls == ["average"]
    code, out, err = run(["cluster", path, "--method", "complete", "--low-memory", "on",
                          "--backend", "cpu", "--maxclust", 2, "-q"], capsys)
    assert code != 0 and out == ""
    assert "--low-memory on cannot compute --method complete with --metric euclidean" in err
    assert "low_memory=" not in err and "method=" not in err
    assert len(err.strip().splitlines()) == 1
