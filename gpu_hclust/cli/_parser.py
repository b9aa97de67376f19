"""The argument parser of ``gpu-hclust``: subcommands, options, their bounds."""

import argparse
import re

import numpy as np

from .._plan import _PRIM_ON_THE_FLY_MIN_N, _SUMMARY_CHAIN_MIN_N, _SUMMARY_CHAIN_REF_D
from .._methods import METHODS

PROG = "gpu-hclust"

# Above this many leaves an untruncated dendrogram is an unreadable black band
# (and slow to draw), so `plot` shows the last merges unless told otherwise.
PLOT_AUTO_TRUNCATE_N = 200
PLOT_AUTO_TRUNCATE_P = 30
# Figure bounds, checked before drawing: a 10 000 px square PNG is a 400 MB
# canvas; far beyond it Agg fails with std::bad_alloc. 200 in is PDF's page limit.
DPI_RANGE = (10, 2400)
MAX_INCHES = 200.0
MAX_PNG_PIXELS = 10_000

# linkage's automatic choice of the memory-saving path (--low-memory auto).
AUTO_LOW_MEMORY = (
    f"on the CPU for single from n > {_PRIM_ON_THE_FLY_MIN_N} and for ward and average "
    f"(sqeuclidean/cosine/correlation) from n >= {_SUMMARY_CHAIN_MIN_N} * "
    f"max(1, d/{_SUMMARY_CHAIN_REF_D}), and anywhere when the distance matrix would not fit"
)


# Library words -> command-line words, in the order they are tried.
_CLI_WORDS = (
    (r"low_memory=False \(or None\)", "--low-memory off (or auto)"),
    (r"low_memory=True", "--low-memory on"),
    (r"low_memory=False", "--low-memory off"),
    (r"low_memory=None", "--low-memory auto"),
    (r"dtype=(?:np\.)?['\"]?float32['\"]?", "--dtype float32"),
    (r"`?\b(backend|method|metric)=['\"]?([\w-]+)['\"]?`?", r"--\1 \2"),
    (r"`y`", "INPUT"),
)


class UsageError(Exception):
    """A malformed command line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr, not usage + error."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


def cli_words(text, one_line=True):
    """``text`` with the library's keyword words replaced by the command line's.

    ``one_line``: also join its lines and runs of spaces into one line.

    Examples
    --------
    >>> cli_words("Pass low_memory=False (or None), or dtype=np.float32;\\n backend='cuda'")
    'Pass --low-memory off (or auto), or --dtype float32; --backend cuda'
    """
    text = " ".join(str(text).split()) if one_line else str(text)
    for pattern, words in _CLI_WORDS:
        text = re.sub(pattern, words, text)
    return text


# -- argument types ---------------------------------------------------------------
def _number(text, kind, low=None, high=None, low_open=False):
    try:
        value = kind(text)
    except ValueError:
        value = None
    ok = value is not None and np.isfinite(value) and (
        low is None or value > low or (value == low and not low_open)) and (
        high is None or value <= high)
    if not ok:
        what = "a whole number" if kind is int else "a finite number"
        if low is not None:
            what += f" {'>' if low_open else '>='} {low}"
        if high is not None:
            what += f" and <= {high}"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _positive_int(text):
    return _number(text, int, 1)


def _nonneg_int(text):
    return _number(text, int, 0)


def _finite_float(text):
    return _number(text, float)


def _dpi(text):
    return _number(text, int, *DPI_RANGE)


def _inches(text):
    return _number(text, float, 0, MAX_INCHES, low_open=True)


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
                   help="memory-saving path without the distance matrix, O(n d) memory, exact "
                        "for single, ward, centroid, median and average with sqeuclidean/"
                        f"cosine/correlation (default: auto = {AUTO_LOW_MEMORY})")
    g.add_argument("--optimal-ordering", action="store_true",
                   help="reorder leaves so neighbours are close (slow for large inputs)")
    g.add_argument("--progress", default="auto", choices=["auto", "on", "off"],
                   help="progress bars on stderr (default: auto = on a terminal, long runs)")
    dask = g.add_mutually_exclusive_group()
    dask.add_argument("--scheduler", metavar="ADDRESS", default=None,
                      help="cluster on a running Dask scheduler (tcp://host:8786): single, "
                           "ward, average with sqeuclidean/cosine/correlation; needs the "
                           "'dask' extra")
    dask.add_argument("--local-workers", metavar="N", type=_positive_int, default=None,
                      help="cluster on a local Dask cluster of N single-threaded worker "
                           "processes (same methods as --scheduler)")


def _add_input_options(p):
    g = p.add_argument_group("input file")
    g.add_argument("--key", help="array name inside an .npz file (default: its only array, or X)")
    g.add_argument("--header", default="auto", choices=["auto", "yes", "no"],
                   help="whether a text file's first line holds column names "
                        "(default: auto = when it is not all numbers)")


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
    from .._version import __version__

    parser = _Parser(prog=PROG, epilog=f"Run `{PROG} COMMAND --help` for a command's options.",
                     description="Exact hierarchical clustering on NVIDIA GPUs and fast CPUs "
                                 "(scipy.cluster.hierarchy compatible).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # Subcommands accept --debug too; SUPPRESS keeps them from resetting the main flag.
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, help, description):
        return sub.add_parser(name, parents=[debug], help=help, description=description)

    p = command("cluster", "cluster a data file: flat labels and/or Z",
                "Cluster the rows of INPUT (.npy, .npz, .csv, .tsv or whitespace text; a 1-D "
                ".npy is read as condensed distances). Writes flat cluster labels (1..k, as "
                "scipy's fcluster numbers them) and/or the linkage matrix Z. Files are written "
                "atomically: complete or not at all.")
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
                   help="depth of the inconsistency calculation (with --inconsistent; default 2)")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--labels", metavar="PATH",
                     help="write labels to PATH (.csv, .tsv, .txt or .npy); default: stdout; "
                          "text has a 'label' header line, then one label per line")
    out.add_argument("-z", "--linkage", metavar="PATH",
                     help="write the linkage matrix Z to PATH (.npy; or .csv/.tsv/.txt)")
    out.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    _add_input_options(p)

    p = command("plot", "draw a dendrogram (PNG, SVG, PDF)",
                "Draw the dendrogram of a linkage matrix (Z.npy, as written by `cluster "
                "--linkage`) or of a data file (clustered first).")
    p.add_argument("input", metavar="INPUT", help="Z.npy, or a data file as for `cluster`")
    p.add_argument("-o", "--out", required=True, metavar="PATH",
                   help="image file; the format follows the extension (.png, .svg, .pdf)")
    p.add_argument("--input-kind", default="auto", choices=["auto", "linkage", "data"],
                   help="read INPUT as Z or as data (default: auto = as Z when it has Z's form: "
                        "4 columns, whole-number ids and counts; an invalid Z is an error)")
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
    look.add_argument("--size", type=_inches, nargs=2, default=(12.0, 6.0), metavar=("W", "H"),
                      help=f"figure size in inches, each in (0, {MAX_INCHES:g}] (default: 12 6)")
    look.add_argument("--dpi", type=_dpi, default=150,
                      help=f"resolution of PNG output, {DPI_RANGE[0]}..{DPI_RANGE[1]}; a PNG has "
                           f"at most {MAX_PNG_PIXELS} pixels per side (default: 150)")
    _add_linkage_options(p)
    _add_input_options(p)

    p = command("demo", "the tutorial's walk-through, figures into --out",
                "Run the scipy hierarchical clustering tutorial's walk-through on its embedded "
                "data and save its figures (PNG) into a folder.")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the figures (created if missing)")
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where linkage runs (default: auto)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="do not print the walk-through's numbers")

    p = command("info", "versions, CUDA devices, usable backends, size limits",
                "Report package versions, CUDA devices and their memory, which backends can run "
                "here (and why not), and the largest n that fits: the same prediction linkage "
                "makes before it refuses with MemoryError.")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("bench", "quick benchmark against scipy (from a source checkout)",
                "Run benchmarks/bench_linkage.py --quick of the source checkout this package "
                "was installed from (`pip install -e .`): gpu_hclust against scipy (and "
                "fastcluster when installed), every result checked against a reference.")
    p.add_argument("--out", default=".", metavar="DIR",
                   help="folder for the results (created if missing; default: the current folder)")
    p.add_argument("--sizes", type=_positive_int, nargs="+", metavar="N",
                   help="numbers of observations (default: the script's --quick sizes)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), metavar="METHOD",
                   help="methods (default: all)")
    return parser
