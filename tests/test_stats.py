"""cophenet, inconsistent, maxdists, maxinconsts, maxRstat against scipy 1.17.

The tree statistics copy heights or sum them in scipy's order, so they must
equal scipy's bit for bit; the cophenetic correlation is a reduction and is
compared with rtol 1e-12.
"""

import numpy as np
import pytest
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import pdist

import gpu_hclust as hc

METHODS = ["single", "complete", "average", "weighted", "ward", "centroid", "median"]


def _cases(rng, sizes=(2, 3, 17, 60)):
    """(method, Z, y) for every method on generic and tied data."""
    out = []
    for n in sizes:
        X = rng.random((n, 3))
        for data in (X, np.round(X * 2) / 2):
            y = pdist(data)
            out.extend((m, sch.linkage(y, m), y) for m in METHODS)
    return out


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_cophenet_equals_scipy(rng):
    for m, Z, y in _cases(rng):
        Zc = Z.copy()
        d = hc.cophenet(Z)
        np.testing.assert_array_equal(d, sch.cophenet(Z))
        assert d.dtype == np.float64
        c, d2 = hc.cophenet(Z, y)
        cs, ds = sch.cophenet(Z, y)
        np.testing.assert_array_equal(d2, ds)
        if np.isfinite(cs):
            np.testing.assert_allclose(c, cs, rtol=1e-12, err_msg=m)
        else:  # constant cophenetic distances (n = 2): nan like scipy
            assert not np.isfinite(c)
        np.testing.assert_array_equal(Z, Zc)


def test_cophenet_inputs_and_errors(rng):
    y = pdist(rng.random((9, 2)))
    Z = sch.linkage(y, "average")
    # lists and F-ordered / integer-castable inputs are accepted as scipy does
    np.testing.assert_array_equal(hc.cophenet(Z.tolist()), sch.cophenet(Z))
    np.testing.assert_array_equal(hc.cophenet(np.asfortranarray(Z)), sch.cophenet(Z))
    with pytest.raises(ValueError, match="'Y' has 10 distances but 'Z' describes 9"):
        hc.cophenet(Z, np.ones(10))
    with pytest.raises(ValueError, match="Length n of condensed distance matrix 'Y'"):
        hc.cophenet(Z, np.ones(7))
    bad = Z.copy()
    bad[0, 2] = -1
    with pytest.raises(ValueError, match="Linkage 'Z' contains negative distances"):
        hc.cophenet(bad)
    with pytest.raises(ValueError, match="must have 4 columns"):
        hc.cophenet(Z[:, :3])


def test_cophenet_rejects_non_tree_single_row():
    # scipy checks nothing in a single row and then reads out of bounds
    with pytest.raises(ValueError, match="does not describe a tree"):
        hc.cophenet(np.array([[3.0, 7.0, 1.0, 2.0]]))


@pytest.mark.parametrize("d", [0, 1, 2, 3, 5, 100, 2.0])
def test_inconsistent_equals_scipy(rng, d):
    for m, Z, _ in _cases(rng):
        R = hc.inconsistent(Z, d)
        np.testing.assert_array_equal(R, sch.inconsistent(Z, d), err_msg=m)
        assert R.dtype == np.float64 and R.shape == (Z.shape[0], 4)
    Z = _cases(rng, sizes=(12,))[4][1]
    np.testing.assert_array_equal(hc.inconsistent(Z), sch.inconsistent(Z))


def test_inconsistent_errors(rng):
    Z = sch.linkage(pdist(rng.random((6, 2))))
    for d in (-1, 1.5):
        with pytest.raises(ValueError, match="The second argument d must be a nonnegative "
                                             "integer value"):
            hc.inconsistent(Z, d)
    with pytest.raises(ValueError, match="uses the same cluster more than once"):
        hc.inconsistent(np.zeros((2, 4), dtype=int))  # cast to float64 first, as scipy


def test_max_statistics_equal_scipy(rng):
    for m, Z, _ in _cases(rng):
        R = sch.inconsistent(Z)
        np.testing.assert_array_equal(hc.maxdists(Z), sch.maxdists(Z), err_msg=m)
        np.testing.assert_array_equal(hc.maxinconsts(Z, R), sch.maxinconsts(Z, R))
        for i in range(4):
            np.testing.assert_array_equal(hc.maxRstat(Z, R, i), sch.maxRstat(Z, R, i))
    # non-monotone trees: maxdists differs from the heights somewhere
    X = rng.random((40, 2))
    Z = sch.linkage(X, "centroid")
    assert not sch.is_monotonic(Z)
    assert np.any(hc.maxdists(Z) != Z[:, 2])


def test_max_statistics_errors(rng):
    Z = sch.linkage(pdist(rng.random((8, 2))), "complete")
    R = sch.inconsistent(Z)
    with pytest.raises(ValueError, match="different number of rows"):
        hc.maxinconsts(Z, R[:-1])
    with pytest.raises(ValueError, match="different number of rows"):
        hc.maxRstat(Z, R[:-1], 0)
    with pytest.raises(TypeError, match="The third argument must be an integer"):
        hc.maxRstat(Z, R, np.int64(1))
    with pytest.raises(TypeError, match="The third argument must be an integer"):
        hc.maxRstat(Z, R, 1.0)
    for i in (-1, 4):
        with pytest.raises(ValueError, match="i must be an integer between 0 and 3"):
            hc.maxRstat(Z, R, i)
    bad = R.copy()
    bad[0, 1] = -1
    with pytest.raises(ValueError, match="negative link height standard deviations"):
        hc.maxinconsts(Z, bad)
    with pytest.raises(ValueError, match="Inconsistency matrix 'R' must have 4 columns"):
        hc.maxRstat(Z, R[:, :3], 0)
    with pytest.raises(ValueError, match="negative indices"):
        badZ = Z.copy()
        badZ[0, 0] = -1
        hc.maxdists(badZ)
