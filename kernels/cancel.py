"""Ctrl-C for long kernels: run them where SIGINT cannot hurt, stop them on request.

Two facts shape this module:

* Python runs signal handlers only in the main thread, between bytecodes. A
  Numba kernel running in the main thread delays Ctrl-C until it returns, and
  then the handler runs inside Numba's boxing of the result (it calls a Python
  helper), where the KeyboardInterrupt is mishandled: ``SystemError`` or a
  segmentation fault (gpu_hclust issue 11).
* A kernel in another thread cannot be stopped from outside; it has to stop
  itself.

So every long phase runs in a worker thread (:func:`run`). The main thread
waits in ``join(timeout)``, where Ctrl-C raises KeyboardInterrupt at once; it
then sets the cancel slot of the phase's *control* array, waits for the worker
(which sees the slot within one merge or row, and returns or raises
:class:`Cancelled`), discards the partial result and re-raises. Short phases
(small n) run in the main thread with SIGINT deferred until they return: a
thread costs ~0.1-0.3 ms, more than a whole linkage of 10 points.

The control array is int64 ``[merges_done, cancel_requested]`` (slots
``DONE`` and ``CANCEL``): compiled kernels write progress into the first and
poll the second (``cpu_common.cancelled``); Python drivers (CUDA launch
loops, chunked CPU drivers) call :func:`check`. Code that has no control
argument finds the current phase's array with :func:`current` (a thread-local,
set by the worker).

This module imports only the standard library and NumPy.
"""

import contextlib
import signal
import threading

import numpy as np

DONE = 0
CANCEL = 1

# Below this many observations a phase runs in the calling thread with SIGINT
# deferred (it lasts milliseconds); from here on, in a worker thread.
WORKER_MIN_N = 1000

_local = threading.local()


class Cancelled(KeyboardInterrupt):
    """A phase stopped because its control's cancel slot was set (Ctrl-C)."""


def new_control():
    """A fresh control array: ``[merges_done, cancel_requested] = [0, 0]`` (int64)."""
    return np.zeros(2, dtype=np.int64)


def current():
    """The control array of the phase running in this thread, or a fresh one.

    Kernels called without a control (direct calls, tests) get a fresh array
    that nobody cancels, so every kernel has one compiled signature.
    """
    control = getattr(_local, "control", None)
    return new_control() if control is None else control


def requested(control=None):
    """True when ``control`` (default: :func:`current`) asks the phase to stop.

    A one-element array (an old-style progress counter) never asks.
    """
    control = getattr(_local, "control", None) if control is None else control
    return control is not None and control.shape[0] > CANCEL and bool(control[CANCEL])


def check(control=None):
    """Raise :class:`Cancelled` when :func:`requested`; for Python drivers' loops."""
    if requested(control):
        raise Cancelled("gpu_hclust: run interrupted")


def _python_sigint_handler():
    """The main thread's SIGINT handler when Python code runs it, else None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    handler = signal.getsignal(signal.SIGINT)
    return handler if callable(handler) else None  # SIG_IGN, SIG_DFL, None: nothing runs


def run(func, *, control=None, n=None, bar=None, interval=0.1):
    """Call ``func()`` so that Ctrl-C stops it promptly and safely.

    The one way the package runs a long phase: ``linkage``'s phases (with
    their progress bars) and the kernels' own drivers (``cpu_olo``) call it.

    Parameters
    ----------
    func : callable
        No arguments. Code inside reaches the control array with
        :func:`current` (compiled kernels take it as their counter).
    control : ndarray of int64, optional
        The phase's control array (``new_control()``). Default: the
        enclosing phase's (nested calls), else a fresh one. A one-element
        progress counter is accepted but cannot be cancelled: Ctrl-C then
        waits for ``func`` to finish.
    n : int, optional
        Size of the problem: below ``WORKER_MIN_N`` (and without ``bar``)
        ``func`` runs in the calling thread with SIGINT deferred until it
        returns. None means large.
    bar : object, optional
        A progress bar (``update(k)``, e.g. ``gpu_hclust._progress.phase_bar``'s):
        the merges done, ``control[DONE]``, are mirrored into it every
        ``interval`` seconds while ``func`` runs, and once after (also after
        Ctrl-C: the bar shows where the run stopped). Forces a worker thread.
    interval : float, optional
        Seconds between looks at the bar's count (and the longest wait before
        a worker's result is noticed).

    Returns
    -------
    object
        What ``func()`` returned.

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C while ``func`` ran (after the worker has stopped); the
        partial result is discarded.
    BaseException
        Whatever ``func`` raised, re-raised in the calling thread.

    Examples
    --------
    >>> run(lambda: 6 * 7)
    42
    """
    handler = _python_sigint_handler()
    if handler is None and bar is None:
        # Not the main thread (signals never interrupt it) or no Python handler.
        return func()
    if control is None:
        control = current()  # nested in a phase: its control; else a fresh one
    if bar is None and n is not None and n < WORKER_MIN_N:
        return _run_deferred(func, control)
    return _run_worker(func, control, _mirror(bar), interval)


def _mirror(bar):
    """``poll(control)``: advance ``bar`` to ``control[DONE]`` (None without a bar)."""
    if bar is None:
        return None
    shown = [0]

    def poll(control):
        done = int(control[DONE])
        if done > shown[0]:
            bar.update(done - shown[0])
            shown[0] = done

    return poll


def _run_worker(func, control, poll, interval):
    box = {}
    done = threading.Event()

    def target():
        _local.control = control
        try:
            value = func()
            check(control)  # stopped early: the value is partial
            box["value"] = value
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc
        finally:
            _local.control = None
            done.set()

    # Not a daemon: the interpreter never exits under a kernel still using arrays.
    worker = threading.Thread(target=target, name="gpu_hclust-worker")
    # Waits use an Event, not Thread.join: on Python 3.11 a join interrupted by
    # Ctrl-C can mark a running thread as stopped (its lock released early).
    try:
        with _sigint_deferred():  # start() waits too: Ctrl-C there would orphan the thread
            worker.start()
        while not done.wait(interval):  # interruptible: Ctrl-C raises here at once
            if poll is not None:
                poll(control)
    except BaseException:
        if worker.ident is not None:  # started (else start() itself failed)
            if control.shape[0] > CANCEL:
                control[CANCEL] = 1
            done.wait()  # the kernel sees the flag within one step (a second Ctrl-C leaves)
            worker.join()
            if poll is not None:
                with contextlib.suppress(Exception):  # never mask the interrupt
                    poll(control)  # a bar shows where the run stopped
        box.clear()  # drop the partial result and the worker's frames now
        raise
    worker.join()  # its last bytecodes: returns at once
    if poll is not None:
        poll(control)
    if "error" in box:
        raise box.pop("error")
    return box.pop("value")


class _sigint_deferred:
    """Context manager: a SIGINT inside the block is replayed when it ends.

    The replacement handler only records the signal, so nothing raises inside
    the block (e.g. in compiled code's return path); the original handler then
    runs in plain Python, through ``signal.raise_signal``. A no-op off the main
    thread, where Python runs no signal handlers.
    """

    def __enter__(self):
        self.caught = []
        self.handler = _python_sigint_handler()
        if self.handler is not None:
            try:
                signal.signal(signal.SIGINT, lambda signum, frame: self.caught.append(signum))
            except (ValueError, TypeError):  # not the main interpreter
                self.handler = None
        return self

    def __exit__(self, *exc):
        if self.handler is not None:
            signal.signal(signal.SIGINT, self.handler)
            if self.caught:
                signal.raise_signal(signal.SIGINT)  # the user's handler; default: KeyboardInterrupt
        return False


def _run_deferred(func, control):
    """Run ``func`` in the calling (main) thread, SIGINT deferred until it returns."""
    outer = getattr(_local, "control", None)
    with _sigint_deferred():
        _local.control = control
        try:
            return func()
        finally:
            _local.control = outer
