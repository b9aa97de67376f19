"""The ``gpu-hclust`` command line (also ``python -m gpu_hclust``).

Subcommands: ``cluster`` (file in, labels and Z out), ``plot`` (dendrogram
image), ``demo`` (the tutorial walk-through), ``info`` (versions, devices,
usable backends, size limits) and ``bench`` (``benchmarks/bench_linkage.py
--quick`` of a source checkout).

Parsing, files and printing only; the library computes, probes devices
(``gpu_hclust._backend``) and predicts memory (``_memory``):

* ``_parser``   the argument parser: subcommands, options and their bounds
* ``_commands`` cluster, plot, demo, bench (files via ``gpu_hclust._io``)
* ``_info``     the info report
* this module   ``main``: dispatch, exit status and one-line errors

Errors a user can fix end the run with exit status 1 (2 for a malformed
command line, 130 for Ctrl-C) and ONE line on stderr, in the command line's
words (``--low-memory on``, not ``low_memory=True``); ``--debug`` shows the
traceback instead. matplotlib, CuPy and the engines are imported only by the
subcommand that needs them.
"""

import sys

from .._io import InputError
from . import _commands, _info
from ._parser import PROG, UsageError, build_parser, cli_words

__all__ = ["main", "build_parser", "cli_words", "UsageError"]

COMMANDS = {"cluster": _commands.cmd_cluster, "plot": _commands.cmd_plot,
            "demo": _commands.cmd_demo, "info": _info.cmd_info, "bench": _commands.cmd_bench}

# Error types whose message is meant for the user as is; anything else is
# reported with its type and a hint to rerun with --debug.
_USER_ERRORS = (InputError, ValueError, TypeError, OSError, MemoryError, RuntimeError,
                NotImplementedError, ImportError)

# -- entry point -----------------------------------------------------------------
def main(argv=None):
    """Run ``gpu-hclust`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        0 on success, 1 for an error in the run (bad input file, no GPU, ...),
        2 for a malformed command line, 130 when interrupted (Ctrl-C; files
        are written atomically, so no partial file is left).

    Examples
    --------
    >>> main(["demo"])  # doctest: +SKIP
    2
    """
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version print, then exit 0
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return int(COMMANDS[args.command](args) or 0)
    except UsageError as exc:
        if args.debug:
            raise
        print(cli_words(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = cli_words(exc) or type(exc).__name__
        if not isinstance(exc, _USER_ERRORS):
            message = f"{type(exc).__name__}: {message} (rerun with --debug for the traceback)"
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 1
