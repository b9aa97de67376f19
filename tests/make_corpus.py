"""Write the output corpus ``tests/data/corpus.npz`` + ``corpus.json`` from the current code.

A fixed set of outputs (linkage matrices on every route through ``linkage``,
the post-processing functions, the data behind dendrogram figures, the
command line's label files and error lines), stored so that a refactor can be
checked to change none of them: ``tests/test_corpus.py`` recomputes each one
and requires bitwise equality (arrays) or exact text.

Run from the repository root, with the simulator on (as the tests run)::

    NUMBA_ENABLE_CUDASIM=1 python tests/make_corpus.py

Regenerate it only when an output is meant to change, and say why in the
commit message.
"""

import contextlib
import io
import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
from scipy.spatial.distance import pdist  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parent / "data"
METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")
# (method, metric) pairs of the memory-saving path exercised here
LOWMEM_PAIRS = (("single", "euclidean"), ("single", "cityblock"), ("single", "cosine"),
                ("ward", "euclidean"), ("centroid", "euclidean"), ("median", "euclidean"),
                ("average", "sqeuclidean"), ("average", "cosine"), ("average", "correlation"))


def _points(seed, n, d):
    return np.random.default_rng(seed).normal(size=(n, d))


def _grid(seed, n, d):
    """Tie-prone data: small integers, many equal distances."""
    return np.random.default_rng(seed).integers(0, 4, size=(n, d)).astype(np.float64)


def _nonconstant(X):
    """Tie-prone rows that are neither all-zero nor constant (cosine, correlation)."""
    X = X.copy()
    X[:, 0] = 0.0
    X[:, 1] += 5.0
    return X


def array_cases():
    """name -> function returning an ndarray (compared bitwise)."""
    import gpu_hclust as h

    cases = {}

    def add(name, fn):
        assert name not in cases, name
        cases[name] = fn

    for m in METHODS:
        y_rand = pdist(_points(1, 40, 3))
        y_tie = pdist(_grid(2, 40, 3), "cityblock")
        add(f"condensed/{m}/random", lambda m=m, y=y_rand: h.linkage(y, m, backend="cpu"))
        add(f"condensed/{m}/ties", lambda m=m, y=y_tie: h.linkage(y, m, backend="cpu"))
        add(f"condensed/{m}/float32",
            lambda m=m, y=y_rand: h.linkage(y, m, backend="cpu", dtype=np.float32))
        add(f"obs/{m}/euclidean",
            lambda m=m: h.linkage(_points(3, 35, 4), m, backend="cpu"))
        add(f"obs/{m}/euclidean-ties",
            lambda m=m: h.linkage(_grid(4, 35, 2), m, backend="cpu"))
        add(f"obs/{m}/float32",
            lambda m=m: h.linkage(_points(3, 35, 4), m, backend="cpu", dtype=np.float32))
        # default options (backend None: the automatic choice)
        add(f"default/{m}", lambda m=m: h.linkage(_points(5, 30, 3), m))
    for m in ("single", "complete", "average", "weighted"):
        for metric in ("cosine", "cityblock"):
            add(f"obs/{m}/{metric}",
                lambda m=m, metric=metric: h.linkage(_points(6, 35, 5), m, metric, backend="cpu"))
    for m, metric in LOWMEM_PAIRS:
        n = 300 if m == "single" else 450
        add(f"lowmem/{m}/{metric}", lambda m=m, metric=metric, n=n: h.linkage(
            _points(7, n, 6), m, metric, backend="cpu", low_memory=True))
        add(f"lowmem/{m}/{metric}/ties", lambda m=m, metric=metric: h.linkage(
            _nonconstant(_grid(8, 320, 3)), m, metric, backend="cpu", low_memory=True))
    add("lowmem/ward/float32", lambda: h.linkage(_points(9, 500, 8), "ward", backend="cpu",
                                                  low_memory=True, dtype=np.float32))
    add("lowmem/single/float32", lambda: h.linkage(_points(9, 600, 8), "single", backend="cpu",
                                                    low_memory=True, dtype=np.float32))
    # low_memory=None: single above the Prim-on-the-fly crossover takes the memory-saving path
    add("auto/single/n300", lambda: h.linkage(_points(10, 300, 3), "single", backend="cpu"))
    # CUDA kernels in the simulator (tiny n)
    for m in ("single", "average", "complete", "ward", "centroid"):
        add(f"cuda/{m}/condensed", lambda m=m: h.linkage(pdist(_points(11, 12, 3)), m,
                                                         backend="cuda"))
    add("cuda/ward/obs/float32", lambda: h.linkage(_points(12, 12, 3), "ward", backend="cuda",
                                                   dtype=np.float32))
    for m, metric in (("single", "euclidean"), ("ward", "euclidean"), ("average", "cosine"),
                      ("median", "euclidean")):
        add(f"cuda/lowmem/{m}/{metric}", lambda m=m, metric=metric: h.linkage(
            _points(13, 12, 3), m, metric, backend="cuda", low_memory=True))
    # optimal leaf ordering
    for m in ("single", "average", "ward"):
        add(f"olo/{m}", lambda m=m: h.linkage(_points(14, 30, 3), m, backend="cpu",
                                              optimal_ordering=True))
    add("olo/average/condensed", lambda: h.linkage(pdist(_points(15, 25, 2)), "average",
                                                   backend="cpu", optimal_ordering=True))
    # post-processing of one Z
    X = _points(16, 40, 3)

    def Z():
        return h.linkage(X, "average", backend="cpu")

    add("post/fcluster/maxclust", lambda: np.asarray(h.fcluster(Z(), 5, "maxclust")))
    add("post/fcluster/distance", lambda: np.asarray(h.fcluster(Z(), 1.2, "distance")))
    add("post/fcluster/inconsistent", lambda: np.asarray(h.fcluster(Z(), 1.0)))
    add("post/cophenet", lambda: np.asarray(h.cophenet(Z())))
    add("post/cophenet/c", lambda: np.asarray(h.cophenet(Z(), pdist(X))[0]))
    add("post/inconsistent", lambda: np.asarray(h.inconsistent(Z())))
    add("post/leaves_list", lambda: np.asarray(h.leaves_list(Z())))
    add("post/dendrogram/icoord", lambda: np.asarray(h.dendrogram(Z(), no_plot=True)["icoord"]))
    add("post/dendrogram/dcoord", lambda: np.asarray(h.dendrogram(Z(), no_plot=True)["dcoord"]))
    add("post/dendrogram/lastp/dcoord", lambda: np.asarray(
        h.dendrogram(Z(), no_plot=True, truncate_mode="lastp", p=8)["dcoord"]))
    return cases


def _set_available(nbytes):
    """Pretend the host has ``nbytes`` free, wherever a module looks it up; returns an undo."""
    from gpu_hclust import _memory

    real = _memory.host_available_bytes
    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("gpu_hclust") and getattr(module, "host_available_bytes", None) is real:
            module.host_available_bytes = lambda: nbytes
            patched.append(module)

    def undo():
        for module in patched:
            module.host_available_bytes = real
    return undo


def _error(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the message is the output under test
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _cli(args, tmp):
    """Exit status, stdout, stderr (timing figures removed) and written label files."""
    from gpu_hclust.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    files = {}
    for p in sorted(pathlib.Path(tmp).glob("labels*")):
        files[p.name] = p.read_text()
        p.unlink()
    text = err.getvalue()
    if " in " in text and " s" in text:  # "... on cpu in 0.01 s: 4 clusters"
        import re

        text = re.sub(r" in \d+\.\d+ s", " in T s", text)
    return json.dumps({"rc": rc, "stdout": out.getvalue(), "stderr": text, "files": files},
                      sort_keys=True)


def text_cases():
    """name -> function returning a str (compared exactly)."""
    import gpu_hclust as h

    cases = {}

    def with_memory(nbytes, fn):
        def run():
            undo = _set_available(nbytes)
            try:
                return fn()
            finally:
                undo()
        return run

    X = _points(20, 40, 3)
    cases["error/lowmem-complete"] = lambda: _error(
        lambda: h.linkage(X, "complete", backend="cpu", low_memory=True))
    cases["error/lowmem-condensed"] = lambda: _error(
        lambda: h.linkage(pdist(X), "single", backend="cpu", low_memory=True))
    cases["error/lowmem-yes"] = lambda: _error(
        lambda: h.linkage(X, "single", backend="cpu", low_memory="yes"))
    cases["error/dtype"] = lambda: _error(
        lambda: h.linkage(X, "single", backend="cpu", dtype=np.int32))
    cases["error/nonfinite"] = lambda: _error(
        lambda: h.linkage(np.array([1.0, np.nan, 2.0]), "single", backend="cpu"))
    cases["error/memory/dense-complete"] = with_memory(20_000, lambda: _error(
        lambda: h.linkage(X, "complete", backend="cpu")))
    cases["error/memory/dense-ward-off"] = with_memory(20_000, lambda: _error(
        lambda: h.linkage(X, "ward", backend="cpu", low_memory=False)))
    cases["error/memory/dense-condensed-f32"] = with_memory(2_000, lambda: _error(
        lambda: h.linkage(pdist(X), "average", backend="cpu", dtype=np.float32)))
    cases["error/memory/lowmem"] = with_memory(1_000, lambda: _error(
        lambda: h.linkage(X, "ward", backend="cpu")))
    cases["error/memory/lowmem-f32"] = with_memory(1_000, lambda: _error(
        lambda: h.linkage(X, "ward", backend="cpu", low_memory=True, dtype=np.float32)))
    cases["error/memory/cuda"] = with_memory(5_000, lambda: _error(
        lambda: h.linkage(X, "average", backend="cuda")))
    cases["auto/ward/fallback-when-full"] = with_memory(20_000, lambda: repr(
        h.linkage(X, "ward", backend="cpu").tolist()))

    def cli(*argv, memory=None):
        def run():
            with tempfile.TemporaryDirectory() as tmp:
                data = pathlib.Path(tmp, "data.csv")
                np.savetxt(data, _points(21, 50, 3), delimiter=",", fmt="%.17g")
                args = [a.replace("{tmp}", tmp) for a in argv]
                args = [str(data) if a == "DATA" else a for a in args]
                if memory is None:
                    return _cli(args, tmp).replace(tmp, "{tmp}")
                return with_memory(memory, lambda: _cli(args, tmp).replace(tmp, "{tmp}"))()
        return run

    cases["cli/ward-maxclust"] = cli("cluster", "DATA", "--maxclust", "4", "--backend", "cpu",
                                     "-o", "{tmp}/labels.txt")
    cases["cli/average-cosine-distance"] = cli("cluster", "DATA", "--method", "average",
                                               "--metric", "cosine", "--distance", "0.3",
                                               "--backend", "cpu", "-o", "{tmp}/labels.csv")
    cases["cli/single-stdout"] = cli("cluster", "DATA", "--method", "single", "--maxclust", "3",
                                     "--backend", "cpu")
    cases["cli/ward-lowmem-f32"] = cli("cluster", "DATA", "--maxclust", "5", "--backend", "cpu",
                                       "--low-memory", "on", "--dtype", "float32",
                                       "-o", "{tmp}/labels.txt")
    cases["cli/centroid-inconsistent-olo"] = cli(
        "cluster", "DATA", "--method", "centroid", "--inconsistent", "1.0", "--depth", "3",
        "--optimal-ordering", "--backend", "cpu", "-o", "{tmp}/labels.tsv")
    cases["cli/error-lowmem-complete"] = cli("cluster", "DATA", "--method", "complete",
                                             "--maxclust", "3", "--backend", "cpu",
                                             "--low-memory", "on")
    cases["cli/error-memory"] = cli("cluster", "DATA", "--method", "complete", "--maxclust",
                                    "3", "--backend", "cpu", memory=10_000)
    cases["cli/error-memory-ward"] = cli("cluster", "DATA", "--maxclust", "3", "--backend",
                                         "cpu", "--low-memory", "off", memory=10_000)

    def dendro_text():
        import gpu_hclust as hh

        R = hh.dendrogram(hh.linkage(_points(16, 40, 3), "average", backend="cpu"),
                          no_plot=True)
        return json.dumps({k: R[k] for k in ("ivl", "leaves", "color_list",
                                             "leaves_color_list")}, sort_keys=True)

    cases["post/dendrogram/labels"] = dendro_text
    return cases


def main():
    DATA.mkdir(exist_ok=True)
    arrays = {name: np.asarray(fn()) for name, fn in array_cases().items()}
    texts = {name: fn() for name, fn in text_cases().items()}
    np.savez_compressed(DATA / "corpus.npz", **arrays)
    (DATA / "corpus.json").write_text(json.dumps(texts, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(arrays)} arrays and {len(texts)} texts to {DATA}")


if __name__ == "__main__":
    # as a script, sys.path[0] is tests/: import the package of this checkout
    sys.path.insert(0, str(DATA.parent.parent))
    main()
