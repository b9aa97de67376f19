"""The ``cluster``, ``plot``, ``demo`` and ``bench`` subcommands: read, call the library, write."""

import os
import sys
import time

import numpy as np

from .._io import (InputError, check_writable, first_non_finite, labels_text, linkage_problem,
                   non_finite_error, read_data, read_linkage, save_labels, save_linkage,
                   shaped_like_linkage, write_atomic)
from ._parser import MAX_PNG_PIXELS, PLOT_AUTO_TRUNCATE_N, PLOT_AUTO_TRUNCATE_P, PROG, UsageError


# -- helpers ---------------------------------------------------------------------
def _say(*parts, quiet=False):
    if not quiet:
        print(*parts, file=sys.stderr)


def _check_output_path(path, what, exts):
    """Fail before a long run, not after it, when an output cannot be written."""
    if os.path.splitext(path)[1].lower() not in exts:
        raise InputError(f"{path}: {what} are written as {', '.join(exts)}; "
                         "choose one of these extensions")
    check_writable(path)


def _tristate(choice):
    """The value of an auto/on/off option for linkage's None/True/False keywords."""
    return {"auto": None, "on": True, "off": False}[choice]


def _run_linkage(data, args):
    """``linkage`` with the command line's options; a NaN or inf in ``data`` is located."""
    import gpu_hclust
    from .._backend import to_host

    try:
        if getattr(args, "scheduler", None) is not None or getattr(args, "local_workers", None):
            Z = _run_dask_linkage(data, args)
        else:
            Z = gpu_hclust.linkage(data, method=args.method, metric=args.metric,
                                   optimal_ordering=args.optimal_ordering, backend=args.backend,
                                   dtype=np.dtype(args.dtype),
                                   low_memory=_tristate(args.low_memory),
                                   progress=_tristate(args.progress))
    except ValueError:
        # read_data left the scan to linkage (one pass over a large file): say where.
        where = first_non_finite(data)
        if where is not None:
            raise non_finite_error(args.input, data, where) from None
        raise
    return np.asarray(to_host(Z), dtype=np.float64)


def _run_dask_linkage(data, args):
    """``--scheduler`` / ``--local-workers``: the same linkage on a Dask cluster."""
    if data.ndim != 2:
        raise InputError("--scheduler/--local-workers need observations (one per row), "
                         "not condensed distances")
    if args.optimal_ordering or args.backend == "cuda" or args.low_memory == "off":
        raise InputError("--scheduler/--local-workers run the memory-saving engine on CPU "
                         "workers: drop --optimal-ordering, --backend cuda and --low-memory off")
    from .. import dask as gdask

    client, close = gdask.cluster_client(scheduler=args.scheduler,
                                         local_workers=args.local_workers)
    try:
        return gdask.linkage_from_array(data, args.method, args.metric, client=client,
                                        dtype=np.dtype(args.dtype),
                                        progress=_tristate(args.progress))
    finally:
        close()


def _n_obs(data):
    return data.shape[0] if data.ndim == 2 else int(np.ceil(np.sqrt(2.0 * data.shape[0])))


# -- cluster ---------------------------------------------------------------------
def cmd_cluster(args):
    """``gpu-hclust cluster``: labels and/or Z from a data file."""
    import gpu_hclust
    from .._backend import resolve_backend

    criteria = {"maxclust": args.maxclust, "distance": args.distance,
                "inconsistent": args.inconsistent}
    criterion = next((c for c, t in criteria.items() if t is not None), None)
    if args.depth is not None and args.inconsistent is None:
        raise UsageError(f"{PROG} cluster: error: --depth goes with --inconsistent")
    if args.labels is not None and criterion is None:
        raise UsageError(f"{PROG} cluster: error: --labels needs --maxclust, --distance or "
                         "--inconsistent")
    if criterion is None and args.linkage is None:
        raise UsageError(f"{PROG} cluster: error: nothing to write; give --maxclust K, "
                         "--distance T or --inconsistent T for labels, and/or --linkage Z.npy")
    if args.labels is not None:
        _check_output_path(args.labels, "labels", (".csv", ".tsv", ".txt", ".npy"))
    if args.linkage is not None:
        _check_output_path(args.linkage, "linkage matrices", (".npy", ".csv", ".tsv", ".txt"))
    if args.labels is not None and args.linkage is not None and \
            os.path.abspath(args.labels) == os.path.abspath(args.linkage):
        raise UsageError(f"{PROG} cluster: error: --labels and --linkage name the same file")

    data = read_data(args.input, key=args.key, header=args.header, check_finite=False)
    n = _n_obs(data)
    start = time.perf_counter()
    Z = _run_linkage(data, args)
    elapsed = time.perf_counter() - start

    labels = None
    if criterion is not None:
        extra = {"depth": args.depth or 2} if criterion == "inconsistent" else {}
        labels = np.asarray(gpu_hclust.fcluster(Z, criteria[criterion], criterion=criterion,
                                                **extra))
        if args.labels is not None:
            save_labels(args.labels, labels)
        else:
            sys.stdout.write(labels_text(labels))
            sys.stdout.flush()
    if args.linkage is not None:
        save_linkage(args.linkage, Z)

    try:
        where = resolve_backend(args.backend, n)
    except (ValueError, RuntimeError):
        where = args.backend
    summary = f"{n} observations, {args.method} linkage ({args.metric}) on {where} in " \
              f"{elapsed:.2f} s"
    if labels is not None:
        summary += f": {len(np.unique(labels))} clusters"
    written = [p for p in (args.labels, args.linkage) if p is not None]
    if written:
        summary += f"; wrote {', '.join(written)}"
    _say(summary, quiet=args.quiet)
    return 0


# -- plot ------------------------------------------------------------------------
def _load_for_plot(args):
    if args.input_kind == "linkage":
        return read_linkage(args.input)
    data = read_data(args.input, key=args.key, header=args.header, check_finite=False)
    if args.input_kind == "auto" and shaped_like_linkage(data):
        problem = linkage_problem(data)
        if problem is not None:
            raise InputError(f"{args.input}: has the form of a linkage matrix but is not a valid "
                             f"one: {problem} (--input-kind data clusters its rows instead)")
        return np.asarray(data, dtype=np.float64)
    return _run_linkage(data, args)


def draw_dendrogram(Z, ax, *, truncate=None, truncate_mode="lastp", cut=None,
                    annotate_above=None, orientation="top", title=None):
    """Draw ``Z`` on ``ax`` as ``plot`` does: truncated, cut line, merge heights labelled.

    ``truncate``: the last P merges (``truncate_mode='lastp'``) or P levels
    (``'level'``), None or 0 for every leaf; ``cut``: a cut line whose clusters
    are coloured; ``annotate_above``: label merges above this height. Returns
    what :func:`gpu_hclust.annotated_dendrogram` returns.

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> Z = np.array([[0, 1, 1.0, 2], [2, 3, 6.4, 3]])
    >>> draw_dendrogram(Z, Figure().subplots(), cut=3.0, annotate_above=0.5)["ivl"]
    ['2', '0', '1']
    """
    from .._analysis import annotated_dendrogram

    kwargs = dict(orientation=orientation)
    if truncate:
        kwargs.update(truncate_mode=truncate_mode, p=truncate, show_contracted=True)
    if not truncate and Z.shape[0] + 1 > 60:
        kwargs["no_labels"] = True  # thousands of overlapping tick labels help nobody
    else:
        kwargs["leaf_rotation"] = 90.0 if orientation in ("top", "bottom") else 0.0
    return annotated_dendrogram(
        Z, ax=ax, max_d=cut, title=title,
        annotate_above=np.inf if annotate_above is None else annotate_above, **kwargs)


def cmd_plot(args):
    """``gpu-hclust plot``: a dendrogram image from Z or from data."""
    ext = os.path.splitext(args.out)[1].lower().lstrip(".")
    if ext not in ("png", "svg", "pdf"):
        raise InputError(f"{args.out}: the image is written as .png, .svg or .pdf; "
                         "choose one of these extensions")
    pixels = [round(side * args.dpi) for side in args.size]
    if ext == "png" and max(pixels) > MAX_PNG_PIXELS:
        raise UsageError(f"{PROG} plot: error: --size {args.size[0]:g} {args.size[1]:g} at "
                         f"--dpi {args.dpi} is {pixels[0]} x {pixels[1]} pixels; a PNG has at "
                         f"most {MAX_PNG_PIXELS} per side: lower --dpi or --size")
    check_writable(args.out)
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('plotting needs matplotlib: pip install "gpu-hclust[plot]"') from None

    Z = _load_for_plot(args)
    n = Z.shape[0] + 1
    truncate = args.truncate
    if truncate is None and n > PLOT_AUTO_TRUNCATE_N:
        truncate = PLOT_AUTO_TRUNCATE_P
        _say(f"{n} leaves: showing the last {truncate} merges (--truncate 0 shows all)")
    fig = Figure(figsize=tuple(args.size), layout="constrained")
    title = args.title
    if title is None:
        shown = (f", last {truncate} merges" if truncate and args.truncate_mode == "lastp"
                 else f", {truncate} levels" if truncate else "")
        title = f"Hierarchical clustering dendrogram ({n} observations{shown})"
    draw_dendrogram(Z, fig.subplots(), truncate=truncate, truncate_mode=args.truncate_mode,
                    cut=args.cut, annotate_above=args.annotate_above,
                    orientation=args.orientation, title=title)
    write_atomic(args.out, lambda f: fig.savefig(f, format=ext, dpi=args.dpi))
    _say(f"wrote {args.out}")
    return 0


# -- demo ------------------------------------------------------------------------
def cmd_demo(args):
    """``gpu-hclust demo``: the tutorial's figures into a folder."""
    # run_demo creates the folder; a file in the way gets a one-line error here.
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"{args.out}: exists and is not a folder")
    from .._demo import run_demo

    result = run_demo(args.out, backend=None if args.backend == "auto" else args.backend,
                      echo=None if args.quiet else print)
    _say(f"wrote {len(result['figures'])} figures into {args.out}:")
    for path in result["figures"]:  # the paths run_demo wrote, in order
        _say(f"  {path}")
    return 0


# -- bench -----------------------------------------------------------------------
def _source_root():
    """The folder holding the gpu_hclust package (a checkout when installed with -e)."""
    import gpu_hclust

    return os.path.dirname(os.path.dirname(os.path.abspath(gpu_hclust.__file__)))


def _bench_script():
    path = os.path.join(_source_root(), "benchmarks", "bench_linkage.py")
    return path if os.path.isfile(path) else None


def cmd_bench(args):
    """``gpu-hclust bench``: ``benchmarks/bench_linkage.py --quick --out DIR`` of the checkout."""
    import subprocess

    script = _bench_script()
    if script is None:
        raise RuntimeError(
            f"bench runs benchmarks/bench_linkage.py from a source checkout, and this "
            f"installation ({_source_root()}) has none: clone the repository, `pip install -e .` "
            "in it and run `gpu-hclust bench` again")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"{args.out}: is not a folder; give a folder for the results")
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, script, "--quick", "--out", out]
    if args.sizes:
        cmd += ["--sizes", ",".join(map(str, args.sizes))]
    if args.methods:
        cmd += ["--methods", ",".join(args.methods)]
    # The script imports gpu_hclust: this one, not another installed copy.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (_source_root(), os.environ.get("PYTHONPATH")) if p))
    _say(f"running {' '.join(cmd[1:])}")
    return subprocess.call(cmd, env=env)
