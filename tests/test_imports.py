"""What importing the package and running linkage pull in.

The memory-saving path is judged by the process's peak resident memory, so
the package must not import scipy.cluster / scipy.spatial (~35 MiB together),
CuPy or numba.cuda until something needs them. The scipy classes the package
re-exports must still be scipy's own (warning filters and isinstance checks
written for scipy have to match).
"""

import ast
import json
import os
import pathlib
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


# --- no import circle -------------------------------------------------------------

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _package_modules(folders):
    """{module name: (path, is_package)} for each (package name, folder) in ``folders``."""
    out = {}
    for pkg, folder in folders.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if len(parts) > 1 and f"{pkg}.{parts[0]}" in folders:
                continue  # a subpackage listed on its own (gpu_hclust/kernels -> ../kernels)
            is_pkg = parts[-1] == "__init__"
            out[".".join([pkg] + parts[:-1 if is_pkg else None])] = (path, is_pkg)
    return out


def _import_graph(modules, top):
    """Module -> modules of the same packages it imports anywhere (top level or lazily
    inside a function: a lazy import is still a dependency, and a circle of them is one
    step from an ImportError)."""
    graph = {}
    for name, (path, is_pkg) in modules.items():
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                # `from pkg import mod` depends on the submodule, `from mod import f` on mod
                deps.update(f"{src}.{a.name}" if f"{src}.{a.name}" in modules else src
                            for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name and d.startswith(top)}
    return graph


def _circles(graph):
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_in_the_package_or_its_kernels():
    modules = _package_modules({"gpu_hclust": _ROOT / "gpu_hclust",
                                "gpu_hclust.kernels": _ROOT / "kernels"})
    assert "gpu_hclust._linkage" in modules and "gpu_hclust.kernels.cpu_mst" in modules
    assert "gpu_hclust.cli._info" in modules
    assert _circles(_import_graph(modules, "gpu_hclust")) == []


def test_the_circle_check_finds_circles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")  # lazy: still a dependency
    (pkg / "c.py").write_text("import pkg.a\n")
    (pkg / "sub" / "__init__.py").write_text("from ..d import g\n")
    (pkg / "d.py").write_text("from .sub import e\n")
    (pkg / "sub" / "e.py").write_text("")
    graph = _import_graph(_package_modules({"pkg": pkg}), "pkg")
    assert graph["pkg.d"] == {"pkg.sub.e"}
    assert _circles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


# --------------------------------------------------------------------------
# Kernel layering: each target's modules import only their own target and the
# shared layers (circles: test_no_import_circle_in_the_package_or_its_kernels).
# --------------------------------------------------------------------------

# Modules both targets may import: formulas and metrics (compiled for both),
# launch (CUDA launch helpers), cpu_common (CPU primitives), and the small
# settings/host/cancel layers.
SHARED_KERNEL_LAYERS = {"formulas", "metrics", "launch", "cpu_common", "cancel", "_config",
                        "_cuda_rounding", "host"}


def _kernel_graph():
    """Kernel module -> kernel modules it imports, by short name (same parser as above)."""
    graph = _import_graph(_package_modules({"kernels": _ROOT / "kernels"}), "kernels")
    short = {name: name.split(".")[-1] for name in graph}
    return {short[m]: {short[d] for d in deps} for m, deps in graph.items()
            if m != "kernels"}


def _cross_target_imports(graph):
    bad = []
    for module, deps in graph.items():
        for other, mine in (("cuda_", "cpu_"), ("cpu_", "cuda_")):
            if module.startswith(mine):
                bad += [f"{module} imports {d}" for d in sorted(deps)
                        if d.startswith(other) and d not in SHARED_KERNEL_LAYERS]
    return bad


def test_kernel_modules_import_only_their_target_and_shared_layers():
    graph = _kernel_graph()
    assert {"cpu_vector", "cuda_vector", "cuda_generic", "launch"} <= set(graph)
    assert _cross_target_imports(graph) == []


def test_kernel_layer_check_can_fail():
    graph = {"cpu_a": {"cuda_b", "formulas", "cpu_common"}, "cuda_b": {"cpu_common", "launch"},
             "cuda_c": {"cpu_a"}, "formulas": set(), "cpu_common": set(), "launch": {"formulas"}}
    assert _cross_target_imports(graph) == ["cpu_a imports cuda_b", "cuda_c imports cpu_a"]
