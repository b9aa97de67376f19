"""The ``gpu-hclust`` command line (also ``python -m gpu_hclust``).

Subcommands: ``cluster`` (file in, labels and Z out), ``plot`` (dendrogram
image), ``demo`` (the tutorial walk-through), ``info`` (versions, devices,
usable backends, size limits) and ``bench`` (a quick timing against scipy).

Errors a user can fix (missing file, ragged CSV, NaN, wrong shape, unknown
method, no GPU) end the run with exit status 1 (2 for a malformed command
line) and ONE line on stderr; ``--debug`` shows the traceback instead.
Heavy modules (matplotlib, CuPy, the engines) are imported only by the
subcommand that needs them.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from ._io import InputError, read_data, read_linkage, looks_like_linkage, save_labels, \
    save_linkage, write_atomic
from ._methods import METHODS

PROG = "gpu-hclust"

# Above this many leaves an untruncated dendrogram is an unreadable black band
# (and slow to draw), so `plot` shows the last merges unless told otherwise.
PLOT_AUTO_TRUNCATE_N = 200
PLOT_AUTO_TRUNCATE_P = 30

# Error types whose message is meant for the user as is; anything else is
# reported with its type and a hint to rerun with --debug.
_USER_ERRORS = (InputError, ValueError, TypeError, FileNotFoundError, PermissionError,
                IsADirectoryError, MemoryError, RuntimeError, NotImplementedError, ImportError)


class UsageError(Exception):
    """A malformed command line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr, not usage + error."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


# -- argument types ---------------------------------------------------------------
def _whole_number(text, low):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
    return value


def _positive_int(text):
    return _whole_number(text, 1)


def _nonneg_int(text):
    return _whole_number(text, 0)


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _add_linkage_options(p):
    g = p.add_argument_group("linkage")
    g.add_argument("--method", default="ward", choices=list(METHODS),
                   help="linkage method (default: ward)")
    g.add_argument("--metric", default="euclidean",
                   help="any scipy.spatial.distance metric name (default: euclidean); "
                        "ward, centroid and median need euclidean")
    g.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to compute (default: auto = GPU when usable and worthwhile)")
    g.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="precision of the distance matrix; float32 halves its memory "
                        "(default: float64)")
    g.add_argument("--low-memory", default="auto", choices=["auto", "on", "off"],
                   help="memory-saving path without the distance matrix, O(n d) memory, for "
                        "single, ward, centroid, median and average with sqeuclidean/cosine/"
                        "correlation (default: auto = when the matrix would not fit)")
    g.add_argument("--optimal-ordering", action="store_true",
                   help="reorder leaves so neighbours are close (slow for large inputs)")
    g.add_argument("--progress", default="auto", choices=["auto", "on", "off"],
                   help="progress bars on stderr (default: auto = on a terminal, long runs)")


def _add_input_options(p):
    g = p.add_argument_group("input file")
    g.add_argument("--key", help="array name inside an .npz file (default: its only array, or X)")
    g.add_argument("--header", default="auto", choices=["auto", "yes", "no"],
                   help="whether a text file's first line holds column names "
                        "(default: auto = when it is not all numbers)")


def _add_command(sub, debug, name, func, *, help, description):
    """A subcommand that accepts --debug and runs ``func(args)``."""
    p = sub.add_parser(name, parents=[debug], help=help, description=description)
    p.set_defaults(func=func)
    return p


def build_parser():
    """The argument parser of ``gpu-hclust`` (all subcommands).

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> args = build_parser().parse_args(["cluster", "data.csv", "--maxclust", "3"])
    >>> args.command, args.maxclust, args.method
    ('cluster', 3, 'ward')
    """
    from ._version import __version__

    parser = _Parser(
        prog=PROG,
        description="Exact hierarchical clustering on NVIDIA GPUs and fast CPUs "
                    "(scipy.cluster.hierarchy compatible).",
        epilog=f"Run `{PROG} COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # Subcommands accept --debug too; SUPPRESS keeps them from resetting the main flag.
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _add_command(
        sub, debug, "cluster", cmd_cluster, help="cluster a data file: flat labels and/or Z",
        description="Cluster the rows of INPUT (.npy, .npz, .csv, .tsv or whitespace text; "
                    "a 1-D .npy is read as condensed distances). Writes flat cluster labels "
                    "(1..k, as scipy's fcluster numbers them) and/or the linkage matrix Z. "
                    "Files are written atomically: complete or not at all.",
    )
    p.add_argument("input", metavar="INPUT", help="data file, one observation per row")
    _add_linkage_options(p)
    cut = p.add_argument_group("flat clusters (choose one)").add_mutually_exclusive_group()
    cut.add_argument("--maxclust", type=_positive_int, metavar="K",
                     help="at most K clusters (fcluster criterion 'maxclust')")
    cut.add_argument("--distance", type=_finite_float, metavar="T",
                     help="clusters whose merge heights are <= T (criterion 'distance')")
    cut.add_argument("--inconsistent", type=_finite_float, metavar="T",
                     help="inconsistency coefficient <= T (criterion 'inconsistent')")
    p.add_argument("--depth", type=_positive_int, metavar="D",
                   help="depth of the inconsistency calculation (with --inconsistent; "
                        "default 2)")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--labels", metavar="PATH",
                     help="write labels to PATH (.csv, .tsv, .txt or .npy); default: stdout, "
                          "one per line")
    out.add_argument("-z", "--linkage", metavar="PATH",
                     help="write the linkage matrix Z to PATH (.npy; or .csv/.tsv/.txt)")
    out.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    _add_input_options(p)

    p = _add_command(
        sub, debug, "plot", cmd_plot, help="draw a dendrogram (PNG, SVG, PDF)",
        description="Draw the dendrogram of a linkage matrix (Z.npy, as written by "
                    "`cluster --linkage`) or of a data file (clustered first).",
    )
    p.add_argument("input", metavar="INPUT", help="Z.npy, or a data file as for `cluster`")
    p.add_argument("-o", "--out", required=True, metavar="PATH",
                   help="image file; the format follows the extension (.png, .svg, .pdf)")
    p.add_argument("--input-kind", default="auto", choices=["auto", "linkage", "data"],
                   help="read INPUT as Z or as data (default: auto = Z when it is a valid "
                        "linkage matrix)")
    look = p.add_argument_group("dendrogram")
    look.add_argument("--truncate", type=_nonneg_int, metavar="P",
                      help=f"show only the last P merges (0: all leaves; default: all up to "
                           f"{PLOT_AUTO_TRUNCATE_N} leaves, else {PLOT_AUTO_TRUNCATE_P})")
    look.add_argument("--truncate-mode", default="lastp", choices=["lastp", "level"],
                      help="with --truncate: last P merged clusters, or P levels from the top")
    look.add_argument("--cut", type=_finite_float, metavar="T",
                      help="draw a cut line at height T and colour the clusters below it")
    look.add_argument("--annotate-above", type=_finite_float, metavar="H",
                      help="print the height of each merge above H")
    look.add_argument("--orientation", default="top", choices=["top", "bottom", "left", "right"])
    look.add_argument("--title", default=None, help="figure title")
    look.add_argument("--size", type=float, nargs=2, default=(12.0, 6.0), metavar=("W", "H"),
                      help="figure size in inches (default: 12 6)")
    look.add_argument("--dpi", type=_positive_int, default=150, help="resolution of PNG output")
    _add_linkage_options(p)
    _add_input_options(p)

    p = _add_command(
        sub, debug, "demo", cmd_demo, help="the tutorial's walk-through, figures into --out",
        description="Run the scipy hierarchical clustering tutorial's walk-through on its "
                    "embedded data and save its figures (PNG) into a folder.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the figures "
                   "(created if missing)")
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where linkage runs (default: auto)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="do not print the walk-through's numbers")

    p = _add_command(
        sub, debug, "info", cmd_info, help="versions, CUDA devices, usable backends, size limits",
        description="Report package versions, CUDA devices and their memory, which backends "
                    "can run here (and why not), and the largest n that fits per method and "
                    "dtype.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _add_command(
        sub, debug, "bench", cmd_bench, help="quick benchmark against scipy",
        description="Run the repository's benchmark in --quick mode when it is available "
                    "(a source checkout), else a small built-in timing of gpu_hclust.linkage "
                    "against scipy, checking the results agree.",
    )
    p.add_argument("--builtin", action="store_true",
                   help="use the built-in timing even when benchmarks/ is available")
    p.add_argument("--sizes", type=_positive_int, nargs="+", metavar="N",
                   help="built-in: numbers of observations (default: 1000 4000)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), metavar="METHOD",
                   help="built-in: methods (default: single average ward)")
    p.add_argument("--dim", type=_positive_int, default=16, help="built-in: features (default 16)")
    p.add_argument("--repeat", type=_positive_int, default=3,
                   help="built-in: warm runs per case, median reported (default 3)")
    p.add_argument("--backend", default="all", choices=["all", "cpu", "cuda"],
                   help="built-in: backends to time (default: every usable one)")
    return parser


# -- helpers ---------------------------------------------------------------------
def _say(*parts, quiet=False):
    if not quiet:
        print(*parts, file=sys.stderr)


def _check_output_path(path, what, exts):
    """Fail before a long run, not after it, when an output cannot be written."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in exts:
        raise InputError(f"{path}: {what} are written as {', '.join(exts)}; "
                         "choose one of these extensions")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{path}: folder {folder} is not writable")


def _tristate(choice):
    """The value of an auto/on/off option for linkage's None/True/False keywords."""
    return {"auto": None, "on": True, "off": False}[choice]


def _run_linkage(data, args):
    import gpu_hclust

    Z = gpu_hclust.linkage(data, method=args.method, metric=args.metric,
                           optimal_ordering=args.optimal_ordering, backend=args.backend,
                           dtype=np.dtype(args.dtype), low_memory=_tristate(args.low_memory),
                           progress=_tristate(args.progress))
    from ._backend import to_host

    return np.asarray(to_host(Z), dtype=np.float64)


def _chosen_backend(backend, n):
    from ._backend import resolve_backend

    try:
        return resolve_backend(backend, n)
    except (ValueError, RuntimeError):
        return backend


def _n_obs(data):
    if data.ndim == 2:
        return data.shape[0]
    return int(np.ceil(np.sqrt(2.0 * data.shape[0])))


# -- cluster ---------------------------------------------------------------------
def cmd_cluster(args):
    """``gpu-hclust cluster``: labels and/or Z from a data file."""
    import gpu_hclust

    cut = args.maxclust is not None or args.distance is not None or args.inconsistent is not None
    if args.depth is not None and args.inconsistent is None:
        raise UsageError(f"{PROG} cluster: error: --depth goes with --inconsistent")
    if args.labels is not None and not cut:
        raise UsageError(f"{PROG} cluster: error: --labels needs --maxclust, --distance or "
                         "--inconsistent")
    if not cut and args.linkage is None:
        raise UsageError(
            f"{PROG} cluster: error: nothing to write; give --maxclust K, --distance T or "
            "--inconsistent T for labels, and/or --linkage Z.npy"
        )
    if args.labels is not None:
        _check_output_path(args.labels, "labels", (".csv", ".tsv", ".txt", ".npy"))
    if args.linkage is not None:
        _check_output_path(args.linkage, "linkage matrices", (".npy", ".csv", ".tsv", ".txt"))
    if args.labels is not None and args.linkage is not None and \
            os.path.abspath(args.labels) == os.path.abspath(args.linkage):
        raise UsageError(f"{PROG} cluster: error: --labels and --linkage name the same file")

    data = read_data(args.input, key=args.key, header=args.header)
    n = _n_obs(data)
    start = time.perf_counter()
    Z = _run_linkage(data, args)
    elapsed = time.perf_counter() - start

    labels = None
    if args.maxclust is not None:
        labels = gpu_hclust.fcluster(Z, args.maxclust, criterion="maxclust")
    elif args.distance is not None:
        labels = gpu_hclust.fcluster(Z, args.distance, criterion="distance")
    elif args.inconsistent is not None:
        depth = 2 if args.depth is None else args.depth
        labels = gpu_hclust.fcluster(Z, args.inconsistent, criterion="inconsistent", depth=depth)

    if labels is not None:
        labels = np.asarray(labels)
        if args.labels is not None:
            save_labels(args.labels, labels)
        else:
            sys.stdout.write("".join(f"{int(v)}\n" for v in labels))
            sys.stdout.flush()
    if args.linkage is not None:
        save_linkage(args.linkage, Z)

    summary = (f"{n} observations, {args.method} linkage ({args.metric}) on "
               f"{_chosen_backend(args.backend, n)} in {elapsed:.2f} s")
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
    data = read_data(args.input, key=args.key, header=args.header)
    if args.input_kind == "auto" and looks_like_linkage(data):
        return data
    return _run_linkage(data, args)


def draw_dendrogram(Z, ax, *, truncate=None, truncate_mode="lastp", cut=None,
                    annotate_above=None, orientation="top", title=None):
    """Draw a dendrogram of ``Z`` on ``ax`` with an optional cut line and height labels.

    Parameters
    ----------
    Z : ndarray, shape (n-1, 4)
        Linkage matrix.
    ax : matplotlib.axes.Axes
        Where to draw.
    truncate : int, optional
        Show only the last ``truncate`` merges (``truncate_mode='lastp'``) or
        that many levels (``'level'``); None or 0 shows every leaf.
    truncate_mode : {'lastp', 'level'}
    cut : float, optional
        Height of a horizontal cut line; clusters below it are coloured.
    annotate_above : float, optional
        Label each merge higher than this with its height.
    orientation : {'top', 'bottom', 'left', 'right'}
    title : str, optional
        Default: "Hierarchical Clustering Dendrogram" (plus " (truncated)").

    Returns
    -------
    dict
        What :func:`gpu_hclust.dendrogram` returns.

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> Z = np.array([[0, 1, 1.0, 2], [2, 3, 6.4, 3]])
    >>> ax = Figure().subplots()
    >>> info = draw_dendrogram(Z, ax, cut=3.0, annotate_above=0.5)
    >>> info["ivl"]
    ['2', '0', '1']
    """
    from ._analysis import annotated_dendrogram

    kwargs = dict(orientation=orientation)
    if truncate:
        kwargs.update(truncate_mode=truncate_mode, p=truncate, show_contracted=True)
    n = Z.shape[0] + 1
    if not truncate and n > 60:
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
    _check_output_path(args.out, "images", (".png", ".svg", ".pdf"))
    if args.size[0] <= 0 or args.size[1] <= 0:
        raise UsageError(f"{PROG} plot: error: --size needs two positive numbers")
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
    ax = fig.subplots()
    title = args.title
    if title is None:
        title = (f"Hierarchical clustering dendrogram ({n} observations"
                 + (f", last {truncate} merges" if truncate and args.truncate_mode == "lastp"
                    else f", {truncate} levels" if truncate else "") + ")")
    draw_dendrogram(Z, ax, truncate=truncate, truncate_mode=args.truncate_mode, cut=args.cut,
                    annotate_above=args.annotate_above, orientation=args.orientation,
                    title=title)
    write_atomic(args.out, lambda f: fig.savefig(f, format=ext, dpi=args.dpi))
    _say(f"wrote {args.out}")
    return 0


# -- demo ------------------------------------------------------------------------
def cmd_demo(args):
    """``gpu-hclust demo``: the tutorial's figures into a folder."""
    # run_demo creates the folder; a file in the way gets a one-line error here.
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"{args.out}: exists and is not a folder")
    from ._demo import run_demo

    result = run_demo(args.out, backend=None if args.backend == "auto" else args.backend,
                      echo=None if args.quiet else print)
    figures = result["figures"]  # the paths run_demo wrote, in order
    _say(f"wrote {len(figures)} figures into {args.out}:")
    for path in figures:
        _say(f"  {path}")
    return 0


# -- info ------------------------------------------------------------------------
_PACKAGES = [  # (what to show, import name)
    ("numpy", "numpy"), ("scipy", "scipy"), ("numba", "numba"),
    ("numba-cuda", "numba_cuda"), ("cupy", "cupy"), ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"), ("scikit-learn", "sklearn"), ("fastcluster", "fastcluster"),
]


def _package_versions():
    from importlib import metadata

    dists = metadata.packages_distributions()
    out = {}
    for shown, module in _PACKAGES:
        version = None
        for dist in dists.get(module, ()):
            try:
                version = metadata.version(dist)
                if dist != shown:
                    version = f"{version} ({dist})"
                break
            except metadata.PackageNotFoundError:
                continue
        out[shown] = version
    return out


def _cuda_devices():
    """Name, compute capability and memory of each CUDA device CuPy sees ([] if none)."""
    try:
        import cupy
    except ImportError:
        return [], None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        versions = {"driver": cupy.cuda.runtime.driverGetVersion(),
                    "runtime": cupy.cuda.runtime.runtimeGetVersion()}
    except Exception:  # no driver: cuda_unavailable_reason explains
        return [], None
    devices = []
    for i in range(count):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        with cupy.cuda.Device(i):
            free, total = cupy.cuda.runtime.memGetInfo()
        name = props["name"]
        devices.append({
            "index": i,
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "memory_total": int(total),
            "memory_free": int(free),
        })
    return devices, versions


def run_bytes(n, method, dtype):
    """Bytes ``linkage`` needs for n observations: the check it makes before allocating.

    The same for every method today: one condensed matrix (the engines work in
    place); kept per method so the table follows if that changes.

    Examples
    --------
    >>> run_bytes(20_000, "ward", np.float64) / 1e9
    1.59992
    """
    from ._memory import condensed_bytes

    return condensed_bytes(n, dtype)


# Feature counts for which `info` reports the memory-saving path's largest n.
MEMORY_SAVING_DIMS = (32, 384, 1024)


def largest_n(available, method, dtype):
    """Largest n whose run fits in ``available`` bytes (None when unknown).

    Examples
    --------
    >>> largest_n(80 * 10**9, "single", np.float64)
    141421
    """
    if available is None:
        return None
    lo, hi = 1, 2
    while run_bytes(hi, method, dtype) <= available:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: lo fits, hi does not
        mid = (lo + hi) // 2
        if run_bytes(mid, method, dtype) <= available:
            lo = mid
        else:
            hi = mid
    return lo


def _gib(nbytes):
    return f"{nbytes / 2**30:.1f} GiB" if nbytes is not None else "unknown"


def collect_info():
    """Everything ``gpu-hclust info`` reports, as a dict.

    Returns
    -------
    dict
        Keys: 'gpu_hclust', 'python', 'platform', 'packages', 'cpu', 'cuda',
        'backends', 'largest_n'.
    """
    from . import _backend
    from ._memory import host_available_bytes
    from ._version import __version__

    devices, cuda_versions = _cuda_devices()
    reason = _backend.cuda_unavailable_reason()
    host_free = host_available_bytes()
    try:
        import numba

        threads = int(numba.config.NUMBA_NUM_THREADS)
    except Exception:  # numba is a dependency; a broken install still gets a report
        threads = None
    from . import _lowmem

    limits = {"cpu": {}, "cuda": {}}
    saving = {"cpu": {}, "cuda": {}}
    for d in MEMORY_SAVING_DIMS:
        saving["cpu"][str(d)] = _lowmem.largest_n(host_free, d)
        if devices and reason is None:
            saving["cuda"][str(d)] = _lowmem.largest_n(devices[0]["memory_free"], d)
    for method in METHODS:
        for dt in ("float64", "float32"):
            limits["cpu"].setdefault(method, {})[dt] = largest_n(host_free, method, dt)
            if devices and reason is None:
                free = devices[0]["memory_free"]
                limits["cuda"].setdefault(method, {})[dt] = largest_n(free, method, dt)
    return {
        "gpu_hclust": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "cpu": {"cores": os.cpu_count(), "numba_threads": threads,
                "memory_available": host_free},
        "cuda": {"devices": devices, "versions": cuda_versions},
        "backends": {
            "cpu": {"usable": True, "reason": None},
            "cuda": {"usable": reason is None, "reason": reason},
            "auto_cuda_min_n": _backend.AUTO_CUDA_MIN_N,
        },
        "largest_n": limits,
        "largest_n_memory_saving": saving,
    }


def cmd_info(args):
    """``gpu-hclust info``: what this machine can run."""
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lines = [f"gpu-hclust {info['gpu_hclust']} on Python {info['python']} ({info['platform']})",
             "packages:"]
    for name, version in info["packages"].items():
        lines.append(f"  {name:<13} {version or 'not installed'}")
    cpu = info["cpu"]
    lines.append(f"CPU: {cpu['cores']} cores, {cpu['numba_threads']} numba threads, "
                 f"{_gib(cpu['memory_available'])} memory available")
    devices = info["cuda"]["devices"]
    if devices:
        v = info["cuda"]["versions"]
        lines.append(f"CUDA devices (driver {v['driver']}, runtime {v['runtime']}):")
        for d in devices:
            lines.append(f"  [{d['index']}] {d['name']} (compute {d['compute_capability']}): "
                         f"{_gib(d['memory_free'])} free of {_gib(d['memory_total'])}")
    else:
        lines.append("CUDA devices: none found")
    lines.append("backends:")
    lines.append("  cpu   usable")
    cuda = info["backends"]["cuda"]
    lines.append("  cuda  usable" if cuda["usable"] else f"  cuda  not usable: {cuda['reason']}")
    lines.append(f"  auto  -> cuda for n >= {info['backends']['auto_cuda_min_n']} when cuda is "
                 "usable, else cpu")
    lines.append("largest n that fits (one condensed distance matrix, free memory now):")
    header = f"  {'method':<9}"
    columns = [("cpu", "float64"), ("cpu", "float32")]
    if info["largest_n"]["cuda"]:
        columns += [("cuda", "float64"), ("cuda", "float32")]
    header += "".join(f"{b + ' ' + dt:>15}" for b, dt in columns)
    lines.append(header)
    for method in METHODS:
        row = f"  {method:<9}"
        for b, dt in columns:
            value = info["largest_n"][b][method][dt]
            row += f"{value:>15,}" if value is not None else f"{'unknown':>15}"
        lines.append(row)
    lines.append("largest n, memory-saving path (low_memory=True; float64; single, ward, centroid, "
                 "median, average with sqeuclidean/cosine/correlation):")
    for where, per_d in info["largest_n_memory_saving"].items():
        if per_d:
            lines.append(f"  {where:<5} " + ", ".join(
                f"d = {d}: {n:,}" if n is not None else f"d = {d}: unknown"
                for d, n in per_d.items()))
    print("\n".join(lines))
    return 0


# -- bench -----------------------------------------------------------------------
def _bench_script():
    import gpu_hclust

    root = os.path.dirname(os.path.dirname(os.path.abspath(gpu_hclust.__file__)))
    path = os.path.join(root, "benchmarks", "bench_linkage.py")
    return path if os.path.isfile(path) else None


def _time(func, repeat):
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def builtin_bench(sizes, methods, backends, dim=16, repeat=3, out=None):
    """Time ``gpu_hclust.linkage`` against scipy and check the results agree.

    Parameters
    ----------
    sizes : list of int
        Numbers of observations.
    methods : list of str
    backends : list of str
        'cpu' and/or 'cuda'.
    dim : int
        Features per observation (seeded normal data).
    repeat : int
        Warm runs per case; the median is reported.
    out : file-like, optional
        Where the table goes (default: stdout).

    Returns
    -------
    list of dict
        One row per (n, method, backend): first-call and warm seconds, scipy's
        seconds, speed-up and whether Z agreed with scipy (rtol 1e-10).
    """
    import scipy.cluster.hierarchy as sch

    import gpu_hclust

    out = sys.stdout if out is None else out
    rows = []
    print(f"{'n':>7} {'method':<9} {'backend':<7} {'first s':>9} {'warm s':>9} {'scipy s':>9} "
          f"{'speed-up':>9}  check", file=out)
    for n in sizes:
        X = np.random.default_rng(n).normal(size=(n, dim))
        for method in methods:
            scipy_s, Zs = _time(lambda: sch.linkage(X, method), repeat)
            for backend in backends:
                def run():
                    return np.asarray(gpu_hclust._backend.to_host(
                        gpu_hclust.linkage(X, method, backend=backend)))
                first_s, _ = _time(run, 1)  # includes JIT compilation
                warm_s, Z = _time(run, repeat)
                ok = bool(np.array_equal(Z[:, [0, 1, 3]], Zs[:, [0, 1, 3]])
                          and np.allclose(Z[:, 2], Zs[:, 2], rtol=1e-10, atol=0))
                row = dict(n=n, method=method, backend=backend, first_s=first_s,
                           warm_s=warm_s, scipy_s=scipy_s, speedup=scipy_s / warm_s, ok=ok)
                rows.append(row)
                print(f"{n:>7} {method:<9} {backend:<7} {first_s:>9.3f} {warm_s:>9.3f} "
                      f"{scipy_s:>9.3f} {row['speedup']:>8.1f}x  {'ok' if ok else 'MISMATCH'}",
                      file=out, flush=True)
    return rows


def cmd_bench(args):
    """``gpu-hclust bench``: the quick benchmark."""
    custom = args.sizes or args.methods or args.backend != "all"
    script = None if (args.builtin or custom) else _bench_script()
    if script is not None:
        import subprocess

        _say(f"running {script} --quick")
        return subprocess.call([sys.executable, script, "--quick"])
    from ._backend import cuda_unavailable_reason

    if args.backend == "all":
        backends = ["cpu"] + (["cuda"] if cuda_unavailable_reason() is None else [])
    else:
        backends = [args.backend]
    rows = builtin_bench(args.sizes or [1000, 4000], args.methods or ["single", "average", "ward"],
                         backends, dim=args.dim, repeat=args.repeat)
    bad = [r for r in rows if not r["ok"]]
    if bad:
        raise RuntimeError(f"{len(bad)} case(s) disagree with scipy (see MISMATCH rows)")
    return 0


# -- entry point -----------------------------------------------------------------
def _one_line(exc):
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    return text


def main(argv=None):
    """Run ``gpu-hclust`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        0 on success, 1 for an error in the run (bad input file, no GPU, ...),
        2 for a malformed command line, 130 when interrupted.

    Examples
    --------
    >>> main(["demo"])  # doctest: +SKIP
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version print, then exit 0
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        if args.debug:
            raise
        print(_one_line(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = _one_line(exc)
        if not isinstance(exc, _USER_ERRORS):
            message = f"{type(exc).__name__}: {message} (rerun with --debug for the traceback)"
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1
