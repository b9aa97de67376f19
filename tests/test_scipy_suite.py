"""scipy's own ``test_hierarchy.py`` (the installed copy, unmodified) run against gpu_hclust.

The installed test module starts with ``from scipy.cluster.hierarchy import
linkage, fcluster, ...``. A child Python process imports that module while
``scipy.cluster.hierarchy``'s public functions are temporarily replaced by
gpu_hclust's, so the names the module binds are ours; scipy's attributes are
restored right after the import, so scipy-internal helpers the tests use as
oracles (``_hierarchy.linkage``, ``_order_cluster_tree``, ``Heap``) stay
scipy's. pytest then collects that already-imported module with scipy's own
``conftest.py`` (its ``xp`` fixture: NumPy only, as ``SCIPY_ARRAY_API`` is unset).

Before any test runs, a collection hook checks that every name the module
imported from ``scipy.cluster.hierarchy`` which gpu_hclust provides is
gpu_hclust's object, and aborts the run otherwise: a pass here cannot come
from scipy's code.

Run by hand (prints pytest's report)::

    python tests/test_scipy_suite.py [extra pytest args]
"""

import ast
import contextlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SUITE = "scipy.cluster.tests.test_hierarchy"
REPO = Path(__file__).resolve().parent.parent
# scipy's classes, which gpu_hclust re-exports unchanged: nothing to redirect.
SCIPY_OWN = {"ClusterWarning", "DisjointSet"}


def suite_path():
    """Path of the installed scipy test module (never copied into this repository)."""
    spec = importlib.util.find_spec(SUITE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{SUITE} is not installed with this scipy")
    return Path(spec.origin)


def imported_names():
    """Names the suite imports from ``scipy.cluster.hierarchy``, read from its source."""
    tree = ast.parse(suite_path().read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "scipy.cluster.hierarchy":
            names.extend(alias.name for alias in node.names)
    return names


def redirected_names():
    """The imported names gpu_hclust provides (its public API minus scipy's own classes)."""
    import gpu_hclust

    public = set(gpu_hclust.__all__) - SCIPY_OWN
    return [name for name in imported_names() if name in public]


@contextlib.contextmanager
def _scipy_names_replaced():
    """Within the block, ``scipy.cluster.hierarchy.<name>`` is gpu_hclust's ``<name>``.

    scipy's ``make_xp_test_case`` looks each tested function up in its
    capabilities table (which array backends to skip); ours get the entries of
    the scipy functions they replace, so the same tests are selected.
    """
    import scipy.cluster.hierarchy as sch
    from scipy._lib._array_api import xp_capabilities_table

    import gpu_hclust

    saved = {}
    try:
        for name in redirected_names():
            ours = getattr(gpu_hclust, name)
            saved[name] = getattr(sch, name)
            if saved[name] in xp_capabilities_table:
                xp_capabilities_table[ours] = xp_capabilities_table[saved[name]]
            setattr(sch, name, ours)
        yield
    finally:
        for name, original in saved.items():
            setattr(sch, name, original)


class _CheckRedirected:
    """pytest plugin: refuse to run unless the collected suite module holds our functions."""

    def __init__(self, report_path):
        self.report_path = report_path

    def pytest_collection_finish(self, session):
        import gpu_hclust

        module = sys.modules[SUITE]
        names = redirected_names()
        wrong = [n for n in names if getattr(module, n) is not getattr(gpu_hclust, n)]
        collected = {item.module for item in session.items if hasattr(item, "module")}
        with open(self.report_path, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "redirected": names,
                    "not_ours": wrong,
                    "module_file": module.__file__,
                    "gpu_hclust_file": gpu_hclust.__file__,
                    "collected_from_redirected_module": collected == {module},
                },
                fh,
            )
        if wrong or collected != {module}:
            raise pytest.UsageError(
                f"scipy's suite does not exercise gpu_hclust: {wrong or 'other modules collected'}"
            )


def main(argv):
    """Import scipy's suite with gpu_hclust's names, then run it with pytest.

    ``argv[0]`` is the path of the JSON file the redirection check writes;
    the rest goes to pytest.
    """
    sys.path.insert(0, str(REPO))
    with _scipy_names_replaced():
        importlib.import_module(SUITE)
    args = ["-p", "no:cacheprovider", "--pyargs", SUITE, *argv[1:]]
    return pytest.main(args, plugins=[_CheckRedirected(argv[0])])


def run_suite(tmp_path, *pytest_args):
    """Run the suite in a child process; return (redirection report, results by test id, output)."""
    env = {k: v for k, v in os.environ.items() if k != "SCIPY_ARRAY_API"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    report = tmp_path / "redirected.json"
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [sys.executable, __file__, str(report), f"--junitxml={junit}", "-q", *pytest_args],
        cwd=tmp_path,  # keeps this repository's pytest configuration out of scipy's run
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert report.exists(), f"the suite was never collected:\n{output[-4000:]}"
    results = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            # classname is "<module path relative to the run folder>.<Class>"; the
            # run folder is a temporary one, so keep only the class part.
            last = (case.get("classname") or "").rsplit(".", 1)[-1]
            cls = last if last.startswith("Test") else ""
            test_id = "::".join(filter(None, ["test_hierarchy.py", cls, case.get("name")]))
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                    results.setdefault("_messages", {})[test_id] = child.get("message", "")
                elif child.tag == "skipped":
                    outcome = "skipped"
            results[test_id] = outcome
    return json.loads(report.read_text()), results, output


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    return run_suite(tmp_path_factory.mktemp("scipy_suite"))


def test_suite_runs_our_functions(suite_run):
    report, results, output = suite_run
    assert report["not_ours"] == []
    assert report["collected_from_redirected_module"]
    # The core of the API is among the redirected names: linkage, fcluster, ...
    assert {"linkage", "fcluster", "cophenet", "dendrogram", "to_tree"} <= set(report["redirected"])
    assert Path(report["gpu_hclust_file"]).resolve().is_relative_to(REPO)
    assert Path(report["module_file"]).resolve() == suite_path().resolve()


def test_scipy_hierarchy_suite_passes(suite_run):
    report, results, output = suite_run
    messages = results.pop("_messages", {})
    outcomes = list(results.values())
    # scipy 1.17.1 with NumPy only: 163 tests, none skipped.
    assert outcomes.count("passed") > 100, output[-4000:]
    failed = {tid: messages.get(tid, "") for tid, o in results.items() if o == "failed"}
    lines = "\n".join(f"  {tid}: {msg[:200]}" for tid, msg in sorted(failed.items()))
    assert not failed, f"{len(failed)} of scipy's hierarchy tests fail against gpu_hclust:\n{lines}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
