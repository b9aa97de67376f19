"""Outputs are bitwise what they were when the corpus was written (``tests/make_corpus.py``).

Every route through ``linkage`` (7 methods, condensed and observation input,
float32, the memory-saving path, the CUDA kernels in the simulator, optimal
ordering), the post-processing functions, the data behind dendrogram figures
and the command line's outputs, recomputed and compared with the stored
corpus: arrays with ``np.array_equal`` (bitwise for finite values), text exactly.
A refactor that claims "behaviour unchanged" must keep this test green.
"""

import json

import numpy as np
import pytest

import make_corpus

_ARRAYS = make_corpus.array_cases()
_TEXTS = make_corpus.text_cases()


@pytest.fixture(scope="module")
def stored():
    with np.load(make_corpus.DATA / "corpus.npz") as f:
        arrays = {k: f[k] for k in f.files}
    texts = json.loads((make_corpus.DATA / "corpus.json").read_text())
    return arrays, texts


def test_corpus_names_match(stored):
    arrays, texts = stored
    assert sorted(arrays) == sorted(_ARRAYS)
    assert sorted(texts) == sorted(_TEXTS)


@pytest.mark.parametrize("name", sorted(_ARRAYS))
def test_array_is_bitwise_unchanged(stored, name):
    got = np.asarray(_ARRAYS[name]())
    want = stored[0][name]
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want), name


@pytest.mark.parametrize("name", sorted(_TEXTS))
def test_text_is_unchanged(stored, name):
    assert _TEXTS[name]() == stored[1][name]
