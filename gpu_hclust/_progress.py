"""Progress bars for long runs: on for people at a terminal, silent for scripts.

``linkage`` runs in three phases (distances, merges, canonicalisation). A run
shows a tqdm bar per phase only when :func:`progress_enabled` says so; the
default (``progress=None``) is on only when stderr is a terminal, the process
is not under CI, and the run is large enough to take more than a couple of
seconds. tqdm is an optional dependency, imported on first use; without it the
bars are silent no-ops.

Numba kernels cannot call Python, so a CPU engine reports merges through the
first element of its control array (``kernels.cancel``), written as it goes;
``kernels.cancel.run(..., bar=bar)`` runs the engine in a worker thread (the
kernels release the GIL) and copies the count into the bar until the engine
returns.
"""

import contextlib
import os
import sys

import numpy as np

# Below this many observations a run finishes in about two seconds or less on a
# laptop CPU (O(n^2) distances and merges), so a bar would only flicker.
PROGRESS_MIN_N = 5000

# Values of the CI variable that mean "not CI" (some tools export CI=false).
_NOT_CI = {"", "0", "false", "no", "off"}


def _in_ci():
    return os.environ.get("CI", "").strip().lower() not in _NOT_CI


def _is_tty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_enabled(progress=None, n=None, stream=None):
    """Decide whether a run shows progress bars.

    Parameters
    ----------
    progress : {None, 'auto', True, False}
        The user's choice. True or False force the bars on or off. None and
        'auto' turn them on only when ``stream`` is a terminal, the environment
        variable ``CI`` is unset (or false), and ``n`` is at least
        ``PROGRESS_MIN_N`` (or unknown).
    n : int, optional
        Number of observations of the run, used to skip bars on short runs.
    stream : file-like, optional
        Where the bars would be drawn; defaults to the current ``sys.stderr``.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        ``progress`` is not None, 'auto' or a bool.

    Examples
    --------
    >>> import io
    >>> progress_enabled(True)
    True
    >>> progress_enabled(None, n=100_000, stream=io.StringIO())  # not a terminal
    False
    """
    if progress is None or (isinstance(progress, str) and progress == "auto"):
        if n is not None and n < PROGRESS_MIN_N:
            return False
        if _in_ci():
            return False
        return _is_tty(sys.stderr if stream is None else stream)
    if isinstance(progress, (bool, np.bool_)):
        return bool(progress)
    raise ValueError(
        f"progress must be None, 'auto', True or False; got {progress!r}"
    )


class _NullBar:
    """Stands in for a tqdm bar when progress is off: every call does nothing."""

    n = 0

    def update(self, k=1):
        return None

    def set_postfix_str(self, s="", refresh=True):
        return None


@contextlib.contextmanager
def phase_bar(enabled, desc, total, *, unit="it", stream=None):
    """A progress bar for one phase of a run, as a context manager.

    Parameters
    ----------
    enabled : bool
        Usually the result of :func:`progress_enabled`. When False, or when
        tqdm is not installed, the bar is a silent no-op.
    desc : str
        Phase name shown at the left of the bar ('distances', 'merges', ...).
    total : int
        Number of steps in the phase.
    unit : str, optional
        What one step is ('row', 'merge', ...).
    stream : file-like, optional
        Where to draw; defaults to the current ``sys.stderr``.

    Yields
    ------
    bar
        An object with ``update(k)`` (advance by k steps) and
        ``set_postfix_str(s)``.

    Examples
    --------
    >>> with phase_bar(False, "merges", total=10, unit="merge") as bar:
    ...     for _ in range(10):
    ...         bar.update(1)
    """
    if not enabled:
        yield _NullBar()
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # optional dependency: run silently without it
        yield _NullBar()
        return
    bar = tqdm(
        total=int(total),
        desc=desc,
        unit=unit,
        file=sys.stderr if stream is None else stream,
        dynamic_ncols=True,
        leave=True,  # the finished phase stays on screen with its time
        mininterval=0.2,
    )
    try:
        yield bar
    finally:
        bar.close()
