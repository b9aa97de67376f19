"""``launch.run_chunks``: the one driver of the persistent (cooperative) kernels' chunks."""

import numpy as np
import pytest

from gpu_hclust.kernels import launch

NLOG, STATUS = 0, 1


def _fake(per_launch, fail_at=None):
    """A 'kernel' logging ``per_launch`` merges per launch, up to its limit."""
    state = np.zeros(2, dtype=np.int64)
    limits = []

    def launch_chunk(limit):
        limits.append(limit)
        if fail_at is not None and state[NLOG] >= fail_at:
            state[STATUS] = 1
            return
        state[NLOG] = min(limit, state[NLOG] + per_launch)
    return state, launch_chunk, limits


def _run(state, launch_chunk, total=10, step=4, counter=None):
    counter = np.zeros(1, dtype=np.int64) if counter is None else counter
    return launch.run_chunks(launch_chunk, state, NLOG, STATUS, 0, total, lambda done: step,
                             counter, lambda left: f"stalled, {left} left",
                             lambda left: f"no candidate, {left} left")


def test_chunks_until_done_with_the_counter_after_each():
    state, launch_chunk, limits = _fake(per_launch=100)
    counter = np.zeros(1, dtype=np.int64)
    assert _run(state, launch_chunk, counter=counter) == 10
    assert limits == [4, 8, 10] and counter[0] == 10


def test_a_chunk_that_logs_nothing_raises_instead_of_spinning():
    state, launch_chunk, _ = _fake(per_launch=0)
    with pytest.raises(RuntimeError, match="stalled, 11 left"):
        _run(state, launch_chunk)


def test_the_kernels_no_candidate_status_raises_value_error():
    state, launch_chunk, _ = _fake(per_launch=3, fail_at=6)
    with pytest.raises(ValueError, match="no candidate, 5 left"):
        _run(state, launch_chunk)
