"""What importing the package and running linkage pull in.

The memory-saving path is judged by the process's peak resident memory, so
the package must not import scipy.cluster / scipy.spatial (~35 MiB together),
CuPy or numba.cuda until something needs them. The scipy classes the package
re-exports must still be scipy's own (warning filters and isinstance checks
written for scipy have to match).
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch

import gpu_hclust

HEAVY = ("scipy.cluster", "scipy.spatial", "cupy", "numba.cuda", "matplotlib", "sklearn")


def _modules_after(code):
    script = (
        "import json, sys\n" + code + "\n"
        f"print(json.dumps(sorted({{h for h in {HEAVY!r} if h in sys.modules}})))\n"
    )
    # The simulator (set by conftest when there is no GPU) is not what users run.
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_pulls_in_nothing_heavy():
    assert _modules_after("import gpu_hclust") == []


@pytest.mark.parametrize("method,metric", [("single", "euclidean"), ("ward", "euclidean"),
                                           ("average", "cosine"), ("average", "Cosine")])
def test_memory_saving_linkage_needs_no_scipy_cluster_or_spatial(method, metric):
    code = ("import numpy as np, gpu_hclust\n"
            "X = np.random.default_rng(0).standard_normal((60, 3))\n"
            f"gpu_hclust.linkage(X, {method!r}, metric={metric!r}, backend='cpu', low_memory=True)")
    assert _modules_after(code) == []


def test_reexported_classes_are_scipys():
    assert gpu_hclust.ClusterWarning is sch.ClusterWarning
    assert gpu_hclust.DisjointSet is sch.DisjointSet
    from gpu_hclust import ClusterWarning  # noqa: F401  (from-import goes through __getattr__)

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        gpu_hclust.no_such_name  # noqa: B018


def test_our_warnings_are_caught_by_scipy_filters():
    bad = np.ones((2, 3))  # a linkage matrix has 4 columns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sch.ClusterWarning)
        assert gpu_hclust.is_valid_linkage(bad, warning=True) is False
    assert any(issubclass(w.category, sch.ClusterWarning) for w in caught)


def test_every_scipy_name_is_importable_from_the_package():
    for name in sch.__all__:
        obj = getattr(gpu_hclust, name)  # the drop-in contract: scipy code runs unchanged
        assert obj is not None, name
    namespace = {}
    exec(f"from gpu_hclust import {', '.join(sch.__all__)}", namespace)  # noqa: S102
    assert set(sch.__all__) <= set(namespace)


def test_all_is_scipys_names_plus_ours():
    scipy_names = set(gpu_hclust._SCIPY_NAMES)
    ours = set(gpu_hclust._OUR_NAMES)
    # scipy's group is exactly scipy's public API (its __all__ and its warning class)
    assert scipy_names == set(sch.__all__) | {"ClusterWarning"}
    assert not scipy_names & ours
    assert sorted(gpu_hclust.__all__) == sorted(scipy_names | ours)
    assert len(gpu_hclust.__all__) == len(set(gpu_hclust.__all__))
    for name in gpu_hclust.__all__:  # every advertised name resolves (lazy ones included)
        getattr(gpu_hclust, name)


# --------------------------------------------------------------------------
# Kernel layering: each target's modules import only their own target and the
# shared layers, and the kernel modules import each other without a circle.
# --------------------------------------------------------------------------

KERNELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
# Modules both targets may import: formulas and metrics (compiled for both),
# launch (CUDA launch helpers), cpu_common (CPU primitives), and the small
# settings/host/cancel layers.
SHARED_KERNEL_LAYERS = {"formulas", "metrics", "launch", "cpu_common", "cancel", "_config",
                        "_cuda_rounding", "host"}


def _kernel_imports(path):
    """Sibling kernel modules that the module at ``path`` imports (relative imports)."""
    import ast

    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            else:  # from . import x, y
                found.update(alias.name for alias in node.names)
    return found


def _kernel_graph(folder=KERNELS_DIR):
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and f != "__init__.py")
    return {m: _kernel_imports(os.path.join(folder, m + ".py")) & set(names) for m in names}


def _cross_target_imports(graph):
    bad = []
    for module, deps in graph.items():
        for other, mine in (("cuda_", "cpu_"), ("cpu_", "cuda_")):
            if module.startswith(mine):
                bad += [f"{module} imports {d}" for d in sorted(deps)
                        if d.startswith(other) and d not in SHARED_KERNEL_LAYERS]
    return bad


def _import_cycles(graph):
    cycles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])
    return cycles


def test_kernel_modules_import_only_their_target_and_shared_layers():
    graph = _kernel_graph()
    assert {"cpu_vector", "cuda_vector", "cuda_generic", "launch"} <= set(graph)
    assert _cross_target_imports(graph) == []


def test_kernel_modules_import_no_circle():
    assert _import_cycles(_kernel_graph()) == []


def test_kernel_layer_checks_can_fail():
    graph = {"cpu_a": {"cuda_b", "formulas", "cpu_common"}, "cuda_b": {"cpu_common", "launch"},
             "cuda_c": {"cpu_a"}, "formulas": set(), "cpu_common": set(), "launch": {"formulas"}}
    assert _cross_target_imports(graph) == ["cpu_a imports cuda_b", "cuda_c imports cpu_a"]
    assert _import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
