"""Progress bars: silent when not interactive or in CI, drawn when forced on."""

import io
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from gpu_hclust import _progress
from gpu_hclust._progress import PROGRESS_MIN_N, phase_bar, progress_enabled
from gpu_hclust.kernels import cancel


class FakeTTY(io.StringIO):
    """A text stream that claims to be a terminal."""

    def isatty(self):
        return True


@pytest.fixture
def no_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def test_default_off_when_stderr_is_not_a_terminal(capsys, no_ci):
    # Under pytest's capture, stderr is a pipe-like object: not a terminal.
    assert not progress_enabled(None, n=10 * PROGRESS_MIN_N)
    assert not progress_enabled("auto", n=10 * PROGRESS_MIN_N)


def test_default_off_when_piped(no_ci):
    assert not progress_enabled(None, n=10 * PROGRESS_MIN_N, stream=io.StringIO())


def test_default_on_for_a_large_run_at_a_terminal(no_ci):
    assert progress_enabled(None, n=PROGRESS_MIN_N, stream=FakeTTY())
    assert progress_enabled(None, stream=FakeTTY())  # n unknown: the caller decided


def test_default_off_for_a_short_run(no_ci):
    assert not progress_enabled(None, n=PROGRESS_MIN_N - 1, stream=FakeTTY())


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_default_off_in_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert not progress_enabled(None, n=10 * PROGRESS_MIN_N, stream=FakeTTY())


def test_ci_false_is_not_ci(monkeypatch):
    monkeypatch.setenv("CI", "false")
    assert progress_enabled(None, n=10 * PROGRESS_MIN_N, stream=FakeTTY())


def test_forced_values_win(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(True, n=3, stream=io.StringIO())
    assert progress_enabled(np.True_, n=3)
    monkeypatch.delenv("CI")
    assert not progress_enabled(False, n=10 * PROGRESS_MIN_N, stream=FakeTTY())


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_bad_progress_value(bad):
    with pytest.raises(ValueError, match="progress must be None, 'auto', True or False"):
        progress_enabled(bad)


def test_bar_drawn_on_stderr_when_forced(capsys):
    with phase_bar(progress_enabled(True), "merges", total=10, unit="merge") as bar:
        for _ in range(10):
            bar.update(1)
    err = capsys.readouterr().err
    assert "merges" in err
    assert "10/10" in err


def test_bar_silent_when_disabled(capsys):
    with phase_bar(False, "merges", total=10) as bar:
        bar.update(10)
        bar.set_postfix_str("x")
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_bar_draws_to_given_stream():
    stream = io.StringIO()
    with phase_bar(True, "distances", total=4, unit="row", stream=stream) as bar:
        bar.update(4)
    assert "distances" in stream.getvalue()
    assert "4/4" in stream.getvalue()


def test_bar_is_a_no_op_without_tqdm(monkeypatch, capsys):
    # None in sys.modules makes `import tqdm` raise ImportError.
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with phase_bar(True, "merges", total=3) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""


def test_track_mirrors_the_counter():
    counter = np.zeros(1, dtype=np.int64)

    def work():
        for i in range(50):
            counter[0] = i + 1
        return 42

    stream = io.StringIO()
    with phase_bar(True, "merges", total=50, stream=stream) as bar:
        assert cancel.run(work, control=counter, bar=bar, interval=0.01) == 42
        assert bar.n == 50


def test_track_reraises_the_workers_error():
    counter = np.zeros(1, dtype=np.int64)

    def work():
        counter[0] = 3
        raise MemoryError("no room for the matrix")

    with phase_bar(False, "merges", total=10) as bar:
        with pytest.raises(MemoryError, match="no room for the matrix"):
            cancel.run(work, control=counter, bar=bar)


class Interrupted(Exception):
    """The test's SIGINT handler raises this: a stray signal cannot end pytest."""


def test_track_stops_the_worker_on_ctrl_c():
    # A real SIGINT while the bar is drawn: the worker is asked to stop through
    # the control array, has stopped when the interrupt reaches the caller,
    # and the bar shows how far it got.
    def handler(signum, frame):
        raise Interrupted("SIGINT")

    previous = signal.signal(signal.SIGINT, handler)
    control = cancel.new_control()
    state = {}

    def work():
        control[0] = 7
        os.kill(os.getpid(), signal.SIGINT)
        while not cancel.requested(control):  # a kernel polling its cancel slot
            time.sleep(0.001)
        state["stopped"] = True
        return "partial"

    base = threading.active_count()
    try:
        with phase_bar(True, "merges", total=10, stream=io.StringIO()) as bar:
            with pytest.raises(Interrupted, match="SIGINT"):
                cancel.run(work, control=control, bar=bar, interval=0.01)
            assert bar.n == 7
    finally:
        signal.signal(signal.SIGINT, previous)
    assert state == {"stopped": True}
    assert threading.active_count() == base


def test_min_n_is_a_positive_int():
    assert isinstance(_progress.PROGRESS_MIN_N, int) and _progress.PROGRESS_MIN_N > 0
