"""gpu_hclust._io: memory-mapped input, chunked scans, output paths, hints, Z checks."""

import os
import tempfile
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from gpu_hclust import _io
from gpu_hclust._io import (InputError, check_writable, first_non_finite, labels_text,
                            linkage_problem, read_data, read_linkage, save_labels,
                            shaped_like_linkage, write_atomic)


def sparse_condensed_npy(path, n):
    """A float64 condensed .npy of n points, all zeros, without writing its bytes (sparse)."""
    m = n * (n - 1) // 2
    header = np.lib.format.header_data_from_array_1_0(np.zeros(0))
    header["shape"] = (m,)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.truncate(f.tell() + 8 * m)
    return m


def test_npy_is_memory_mapped_not_read(tmp_path):
    path = tmp_path / "big.npy"
    m = sparse_condensed_npy(path, 6000)  # 144 MB on paper
    tracemalloc.start()
    try:
        arr = read_data(path)  # the finiteness scan included
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert arr.shape == (m,) and arr.dtype == np.float64
    assert isinstance(arr.base, np.memmap) or isinstance(arr, np.memmap)
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB traced for a {8 * m / 2**20:.0f} MiB file"


def test_first_non_finite_in_pieces(monkeypatch):
    monkeypatch.setattr(_io, "_SCAN_CHUNK", 7)  # many pieces, a bad value in a late one
    X = np.zeros((40, 3))
    assert first_non_finite(X) is None
    X[33, 2] = np.inf
    X[35, 0] = np.nan
    assert first_non_finite(X) == (33, 2)
    y = np.zeros(100)
    y[71] = np.nan
    assert first_non_finite(y) == (71,)
    assert first_non_finite(np.arange(10)) is None  # integers are finite


def test_read_data_check_finite_false_leaves_the_scan(tmp_path):
    path = tmp_path / "nan.npy"
    np.save(path, np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(InputError, match=r"row 1, column 2 is nan \(counting from 1\)"):
        read_data(path)
    assert np.isnan(read_data(path, check_finite=False)[0, 1])


@pytest.mark.parametrize("name, text, hint", [
    ("semi.csv", "x;y\n1;2\n3;4\n", "seems to use ';' between fields"),
    ("decimal.csv", "x;y\n1,5;2,25\n3,0;4,5\n", "seems to use ';' between fields"),
    ("tabs.csv", "1\t2\n3\t4\n", "seems to use tabs between fields; name it .tsv"),
    ("spaces.csv", "1 2\n3 4\n", "seems to use spaces between fields; name it .txt"),
    ("commas.tsv", "1,2\n3,4\n", "seems to use commas between fields; name it .csv"),
])
def test_wrong_separator_gets_a_hint(tmp_path, name, text, hint):
    path = tmp_path / name
    path.write_text(text)
    # the first problem found (a field that is not a number, or a ragged row) carries the hint
    with pytest.raises(InputError, match="(is not a number|same number of columns); the file "
                                         + hint.replace(".", r"\.")):
        read_data(path)


def test_no_hint_for_plain_text_in_a_field(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2\n3,abc\n")
    with pytest.raises(InputError, match=r"'abc' is not a number$"):
        read_data(path)


def test_check_writable_names_the_users_path(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(InputError, match=r"notes\.txt/labels\.csv: .*notes\.txt is not a folder"):
        check_writable(notes / "labels.csv")
    with pytest.raises(InputError, match=r"notes\.txt/a/b\.csv: .*notes\.txt is not a folder"):
        check_writable(notes / "a" / "b.csv")
    with pytest.raises(InputError, match=r"no/such/b\.csv: folder .*no/such does not exist"):
        check_writable(tmp_path / "no" / "such" / "b.csv")
    with pytest.raises(InputError, match="is a folder; give a file name"):
        check_writable(tmp_path)
    check_writable(tmp_path / "fine.csv")


def test_write_atomic_errors_name_the_users_path_not_the_part_file(tmp_path, monkeypatch):
    target = tmp_path / "out.npy"

    def no_room(dir, prefix, suffix):
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "x1" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", no_room)
    with pytest.raises(PermissionError, match=r"Permission denied: '.*out\.npy'") as info:
        write_atomic(target, lambda f: f.write(b"x"))
    assert ".part" not in str(info.value)
    monkeypatch.undo()

    def replaced_by_a_folder(src, dst):
        raise IsADirectoryError(21, "Is a directory", src, dst)

    monkeypatch.setattr(os, "replace", replaced_by_a_folder)
    with pytest.raises(IsADirectoryError, match=r"Is a directory: '.*out\.npy'") as info:
        write_atomic(target, lambda f: f.write(b"x"))
    assert ".part" not in str(info.value)
    assert os.listdir(tmp_path) == []  # the temporary file is gone


def test_write_atomic_removes_the_part_file_on_ctrl_c(tmp_path):
    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "Z.npy", interrupted)
    assert os.listdir(tmp_path) == []


def test_labels_text_is_the_file_format(tmp_path):
    save_labels(tmp_path / "l.txt", [3, 1, 2])
    assert (tmp_path / "l.txt").read_text() == labels_text(np.array([3, 1, 2]))
    assert labels_text([3, 1]) == "label\n3\n1\n"


VALID_Z = np.array([[0.0, 1.0, 0.5, 2.0], [2.0, 3.0, 1.5, 3.0]])


@pytest.mark.parametrize("damage, message", [
    (lambda Z: Z.__setitem__((1, 1), 0.0), "uses the same cluster more than once"),
    (lambda Z: Z.__setitem__((1, 0), 7.0), "uses non-singleton cluster before it is formed"),
    (lambda Z: Z.__setitem__((0, 2), -1.0), "contains negative distances"),
    (lambda Z: Z.__setitem__((1, 3), 9.0), "excessive observations in a cluster"),
    (lambda Z: Z.__setitem__((0, 2), np.nan), r"row 1, column 3 is nan"),
])
def test_linkage_problem_names_what_is_wrong(damage, message):
    Z = VALID_Z.copy()
    damage(Z)
    assert shaped_like_linkage(Z) or np.isnan(Z).any()
    problem = linkage_problem(Z)
    assert problem is not None and "\n" not in problem
    assert pytest.importorskip("re").search(message, problem), problem
    assert linkage_problem(VALID_Z) is None


def test_shaped_like_linkage():
    assert shaped_like_linkage(VALID_Z)
    assert not shaped_like_linkage(VALID_Z[:, :3])
    assert not shaped_like_linkage(VALID_Z + 0.25)  # ids not whole numbers: data
    assert not shaped_like_linkage(np.ones((3, 4)))  # counts of 1: not merges


def test_read_linkage_reports_the_reason(tmp_path):
    path = tmp_path / "Z.npy"
    Z = VALID_Z.copy()
    Z[1, 1] = 0.0
    np.save(path, Z)
    with pytest.raises(InputError, match="not a linkage matrix: .*same cluster more than once"):
        read_linkage(path)
    np.save(path, VALID_Z)
    assert_array_equal(read_linkage(path), VALID_Z)


def test_observations_are_read_in_condensed_stays_mapped(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, np.arange(12.0).reshape(6, 2))
    X = read_data(path)
    assert not isinstance(X, np.memmap) and X.base is None and X.flags.writeable
    np.save(path, np.arange(15.0))
    y = read_data(path)
    assert not y.flags.writeable  # a read-only view of the mapped file
