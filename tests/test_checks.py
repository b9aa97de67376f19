"""Validity checks and MATLAB conversions against scipy 1.17: results, exception
types, messages and warnings, on valid and corrupted linkage matrices."""

import re
import warnings

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.cluster.hierarchy import ClusterWarning
from scipy.spatial.distance import pdist

import gpu_hclust as hc

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]


def _linkages(rng, n=14):
    """scipy linkages for every method, on generic and on tied (rounded) data."""
    X = rng.random((n, 3))
    Xt = np.round(X * 3) / 3
    return [(m, sch.linkage(pdist(data), m)) for data in (X, Xt) for m in METHODS]


def _corrupted(Z):
    """Named corruptions, each failing one (or more) of scipy's checks."""
    cases = {}

    def edit(name, idx, value):
        bad = Z.copy()
        bad[idx] = value
        cases[name] = bad

    edit("negative index", (3, 0), -2)
    edit("negative index right", (3, 1), -1)
    edit("negative distance", (4, 2), -0.5)
    edit("negative count", (2, 3), -1)
    edit("excessive count", (2, 3), Z.shape[0] + 5)
    edit("used before formed", (1, 1), Z.shape[0] + 10)
    edit("used twice", (5, 0), Z[4, 0])
    cases["int dtype"] = Z.astype(np.int64)
    cases["float32"] = Z.astype(np.float32)
    cases["3-d"] = Z[None]
    cases["1-d"] = Z[0]
    cases["5 columns"] = np.c_[Z, Z[:, :1]]
    cases["3 columns"] = Z[:, :3]
    cases["empty"] = np.zeros((0, 4))
    return cases


def _outcome(fn, *args, **kwargs):
    """(result, exception type, message, warning messages) of a call."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            res = fn(*args, **kwargs)
            exc = None
        except Exception as e:  # noqa: BLE001 - compared with scipy's below
            res, exc = None, e
    msgs = [str(w.message) for w in rec if issubclass(w.category, ClusterWarning)]
    return res, exc, msgs


def _scipy_words(msg):
    """scipy's message text, without its 'scipy.cluster: ' warning prefix."""
    return msg.replace("scipy.cluster: ", "")


@pytest.mark.parametrize("name", list(_corrupted(np.zeros((13, 4)))))
def test_is_valid_linkage_matches_scipy_on_corrupted(rng, name):
    Z = sch.linkage(pdist(rng.random((14, 2))), "average")
    bad = _corrupted(Z)[name]
    before = bad.copy()
    assert hc.is_valid_linkage(bad) is sch.is_valid_linkage(bad) is False
    for kwargs in ({}, {"name": "Q"}):
        ours = _outcome(hc.is_valid_linkage, bad, throw=True, **kwargs)[1]
        ref = _outcome(sch.is_valid_linkage, bad, throw=True, **kwargs)[1]
        assert type(ours) is type(ref)
        with pytest.raises(type(ref), match=re.escape(_scipy_words(str(ref)))):
            hc.is_valid_linkage(bad, throw=True, **kwargs)
    ours_w = _outcome(hc.is_valid_linkage, bad, warning=True)[2]
    ref_w = _outcome(sch.is_valid_linkage, bad, warning=True)[2]
    assert len(ours_w) == len(ref_w) >= 1
    for o, r in zip(ours_w, ref_w):
        assert _scipy_words(r) in o or _scipy_words(r).rstrip(".") in o
    np.testing.assert_array_equal(bad, before)  # input untouched


def test_is_valid_linkage_valid_and_quirks(rng):
    for _, Z in _linkages(rng):
        assert hc.is_valid_linkage(Z) is True
        assert hc.is_valid_linkage(Z.tolist()) is True
        assert hc.is_valid_linkage(np.asfortranarray(Z), throw=True, warning=True)
    # scipy checks a single row for its shape and dtype only
    one = np.array([[5.0, 7.0, -1.0, -3.0]])
    assert hc.is_valid_linkage(one) is sch.is_valid_linkage(one) is True
    with pytest.raises(TypeError, match="Linkage matrix 'Z' must contain doubles"):
        hc.is_valid_linkage(one.astype(int), throw=True, name="Z")
    with pytest.raises(ValueError, match="at least two observations"):
        hc.is_valid_linkage(np.zeros((0, 4)), throw=True)


def test_is_valid_linkage_warns_at_caller(rng):
    Z = sch.linkage(pdist(rng.random((6, 2))))
    Z[1, 2] = -1
    with pytest.warns(ClusterWarning, match="contains negative distances") as rec:
        assert hc.is_valid_linkage(Z, warning=True) is False
    assert rec[0].filename == __file__


def _inconsistency_cases(R):
    cases = {"ok": R}
    for name, col in (("mean", 0), ("std", 1), ("count", 2)):
        bad = R.copy()
        bad[1, col] = -1
        cases[name] = bad
    allbad = R.copy()
    allbad[1, :3] = -1
    cases["all three"] = allbad
    cases["int"] = R.astype(int)
    cases["3-d"] = R[None]
    cases["3 columns"] = R[:, :3]
    cases["empty"] = np.zeros((0, 4))
    return cases


@pytest.mark.parametrize("name", ["ok", "mean", "std", "count", "all three", "int", "3-d",
                                  "3 columns", "empty"])
def test_is_valid_im_matches_scipy(rng, name):
    Z = sch.linkage(pdist(rng.random((12, 2))), "ward")
    R = _inconsistency_cases(sch.inconsistent(Z))[name]
    assert hc.is_valid_im(R) is sch.is_valid_im(R)
    ours = _outcome(hc.is_valid_im, R, throw=True, name="R")[1]
    ref = _outcome(sch.is_valid_im, R, throw=True, name="R")[1]
    assert type(ours) is type(ref)
    if ref is not None:
        assert _scipy_words(str(ref)) in str(ours)
    ours_w = _outcome(hc.is_valid_im, R, warning=True)[2]
    ref_w = _outcome(sch.is_valid_im, R, warning=True)[2]
    assert len(ours_w) == len(ref_w)
    for o, r in zip(ours_w, ref_w):
        assert _scipy_words(r) in o


def test_is_valid_im_messages():
    with pytest.raises(TypeError, match="Inconsistency matrix 'R' must contain doubles"):
        hc.is_valid_im(np.zeros((2, 4), dtype=int), throw=True, name="R")
    with pytest.raises(ValueError, match="contains negative link counts"):
        hc.is_valid_im(np.array([[1.0, 0.0, -1.0, 0.0]]), throw=True)


def test_is_monotonic_matches_scipy(rng):
    seen = set()
    for _, Z in _linkages(rng, n=30):
        ours = hc.is_monotonic(Z)
        assert type(ours) is np.bool_
        assert ours == sch.is_monotonic(Z)
        seen.add(bool(ours))
    assert seen == {True, False}  # centroid/median inversions occur
    with pytest.raises(TypeError, match="must contain doubles"):
        hc.is_monotonic(np.zeros((3, 4), dtype=int))
    bad = sch.linkage(rng.random(10))
    bad[0, 3] = -1
    with pytest.raises(ValueError, match="contains negative counts"):
        hc.is_monotonic(bad)


def test_num_obs_and_correspond(rng):
    for n in (2, 3, 9):
        y = pdist(rng.random((n, 2)))
        Z = sch.linkage(y)
        assert hc.num_obs_linkage(Z) == n
        assert type(hc.num_obs_linkage(Z)) is int
        assert hc.correspond(Z, y) is True
        assert hc.correspond(Z, pdist(rng.random((n + 1, 2)))) is False
    Z = sch.linkage(pdist(rng.random((5, 2))))
    with pytest.raises(ValueError, match="must have 4 columns"):
        hc.num_obs_linkage(Z[:, :3])
    with pytest.raises(ValueError, match="Length n of condensed distance matrix"):
        hc.correspond(Z, np.ones(7))
    with pytest.raises(ValueError, match="negative indices"):
        bad = Z.copy()
        bad[1, 0] = -3
        hc.correspond(bad, pdist(rng.random((5, 2))))


def test_is_isomorphic_matches_scipy(rng):
    for _ in range(40):
        n = int(rng.integers(1, 30))
        T1 = rng.integers(0, 5, size=n)
        perm = rng.permutation(10)
        T2 = perm[T1]
        assert hc.is_isomorphic(T1, T2) == sch.is_isomorphic(T1, T2) == True  # noqa: E712
        T3 = T2.copy()
        T3[rng.integers(0, n)] = 99
        assert hc.is_isomorphic(T1, T3) == sch.is_isomorphic(T1, T3)
        T4 = rng.integers(0, 3, size=n)
        assert hc.is_isomorphic(T1, T4) == sch.is_isomorphic(T1, T4)
    # scipy's adjacency test, kept: two clusters sharing a label but not
    # neighbours in T1's order are not detected
    assert hc.is_isomorphic([1, 2, 3, 4], [5, 6, 5, 7]) == sch.is_isomorphic(
        [1, 2, 3, 4], [5, 6, 5, 7])
    assert type(hc.is_isomorphic([1], [2])) is np.bool_
    with pytest.raises(ValueError, match="T1 must be one-dimensional"):
        hc.is_isomorphic(np.zeros((2, 2)), [1, 2])
    with pytest.raises(ValueError, match="T2 must be one-dimensional"):
        hc.is_isomorphic([1, 2], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="T1 and T2 must have the same number of elements"):
        hc.is_isomorphic([1, 2, 3], [1, 2])


def test_mlab_round_trip_matches_scipy(rng):
    for _, Z in _linkages(rng):
        mZ = hc.to_mlab_linkage(Z)
        np.testing.assert_array_equal(mZ, sch.to_mlab_linkage(Z))
        back = hc.from_mlab_linkage(mZ)
        np.testing.assert_array_equal(back, sch.from_mlab_linkage(mZ))
        np.testing.assert_array_equal(back, Z)
    for empty in (np.zeros(0), np.zeros(())):
        np.testing.assert_array_equal(hc.from_mlab_linkage(empty), sch.from_mlab_linkage(empty))
        np.testing.assert_array_equal(hc.to_mlab_linkage(empty), sch.to_mlab_linkage(empty))
    # a single MATLAB row
    np.testing.assert_array_equal(hc.from_mlab_linkage([[1, 2, 0.5]]),
                                  sch.from_mlab_linkage([[1, 2, 0.5]]))
    # integer input is cast, as scipy does
    np.testing.assert_array_equal(hc.to_mlab_linkage(Z.astype(np.float32)),
                                  sch.to_mlab_linkage(Z.astype(np.float32)))


def test_mlab_errors(rng):
    Z = sch.linkage(pdist(rng.random((6, 2))))
    with pytest.raises(ValueError, match="The format of the indices is not 1..N"):
        hc.from_mlab_linkage(Z[:, :3] + 5)
    with pytest.raises(ValueError, match="The linkage array must be rectangular"):
        hc.from_mlab_linkage(np.ones((2, 2, 3)))
    with pytest.raises(ValueError, match="refers to a cluster that does not exist"):
        mZ = sch.to_mlab_linkage(Z)
        mZ[0, 1] = 40
        hc.from_mlab_linkage(mZ)
    with pytest.raises(ValueError, match="negative indices"):
        bad = Z.copy()
        bad[2, 1] = -1
        hc.to_mlab_linkage(bad)
