"""The buffered metric writer: batching by size and time, no duplicate points, clear errors."""

import math
import os
import signal
from pathlib import Path

import pytest

from core import remote
from core.errors import NotFoundError, StoreBusyError, ValidationError
from core.remote import RemoteStore
from core.writer import MetricWriter
from tests.waiting import wait_for


@pytest.fixture
def run_id(store, make_experiment, make_run):
    return make_run(make_experiment(), status="running")


def stored_points(store, run_id) -> int:
    return store.get_run_metrics(run_id).series.height


def test_writer_buffers_until_the_size_threshold(store, run_id):
    writer = MetricWriter(store, flush_points=10, flush_seconds=0)

    for step in range(1, 5):
        writer.log(run_id, step, {"loss": 1.0 / step, "learning_rate": 0.1})
    assert stored_points(store, run_id) == 0

    writer.log(run_id, 5, {"loss": 0.2, "learning_rate": 0.1})
    assert stored_points(store, run_id) == 10
    writer.close()


def test_writer_flushes_by_time_in_the_background(store, run_id):
    with MetricWriter(store, flush_points=1_000_000, flush_seconds=0.2) as writer:
        writer.log(run_id, 1, {"loss": 1.0})
        wait_for(lambda: stored_points(store, run_id), timeout=10, what="the timed flush", every=0.05)
        assert stored_points(store, run_id) == 1


def test_close_flushes_the_tail(store, run_id):
    with MetricWriter(store, flush_points=1_000, flush_seconds=0) as writer:
        writer.log_series(run_id, "loss", [1, 2, 3], [3.0, 2.0, 1.0])

    assert stored_points(store, run_id) == 3
    assert writer.points_written == 3


def test_logging_the_same_step_twice_does_not_duplicate_a_point(store, run_id):
    with MetricWriter(store, flush_seconds=0) as writer:
        writer.log(run_id, 1, {"loss": 5.0})
        writer.log(run_id, 1, {"loss": 4.0})
    with MetricWriter(store, flush_seconds=0) as writer:
        writer.log(run_id, 1, {"loss": 3.0})
        writer.log(run_id, 2, {"loss": 2.0})

    series = store.get_run_metrics(run_id).of("loss")
    assert series["step"].to_list() == [1, 2]
    assert series["value"].to_list() == [3.0, 2.0]
    summary = store.get_run(run_id).metrics["loss"]
    assert (summary.count, summary.min, summary.max, summary.last) == (2, 2.0, 3.0, 2.0)


def test_the_last_logged_value_wins_whichever_way_it_was_logged(store, run_id):
    with MetricWriter(store, flush_seconds=0) as writer:
        writer.log(run_id, 1, {"loss": 5.0, "accuracy": 0.1})
        writer.log_series(run_id, "loss", [1, 2], [4.0, 3.0])
        writer.log(run_id, 2, {"loss": 2.0})
        writer.log_series(run_id, "accuracy", [1], [0.2])
        writer.log_series(run_id, "accuracy", [1], [0.3])

    metrics = store.get_run_metrics(run_id)
    assert metrics.of("loss")["value"].to_list() == [4.0, 2.0]
    assert metrics.of("accuracy")["value"].to_list() == [0.3]


def test_summaries_stay_exact_when_old_steps_are_rewritten(store, run_id):
    with MetricWriter(store, flush_seconds=0) as writer:
        writer.log_series(run_id, "loss", [1, 2, 3], [9.0, 1.0, 5.0])
    with MetricWriter(store, flush_seconds=0) as writer:
        writer.log_series(run_id, "loss", [2], [7.0])

    summary = store.get_run(run_id).metrics["loss"]
    assert (summary.count, summary.min, summary.max, summary.last, summary.last_step) == (3, 5.0, 9.0, 5.0, 3)


def test_summaries_merge_incrementally_across_flushes(store, run_id):
    with MetricWriter(store, flush_points=2, flush_seconds=0) as writer:
        for step, value in enumerate([4.0, 1.0, 3.0, 8.0, 2.0], start=1):
            writer.log(run_id, step, {"loss": value})

    summary = store.get_run(run_id).metrics["loss"]
    assert (summary.count, summary.min, summary.max, summary.last, summary.last_step) == (5, 1.0, 8.0, 2.0, 5)


@pytest.mark.parametrize(
    ("step", "values", "message"),
    [
        (1, {"loss": math.nan}, "only finite numbers"),
        (1, {"loss": math.inf}, "only finite numbers"),
        (1, {"loss": "0.5"}, "must be a number"),
        (1, {"loss": True}, "must be a number"),
        (1, {"loss": None}, "must be a number"),
        (-1, {"loss": 0.5}, "step must be a whole number"),
        (1.5, {"loss": 0.5}, "step must be a whole number"),
        (2**63, {"loss": 0.5}, "step must be a whole number from 0 to 2\\^63 - 1"),
        (1, {"": 0.5}, "metric key '' is not allowed"),
        (1, {"loss'; DROP TABLE metrics; --": 0.5}, "is not allowed"),
        (1, {"x" * 251: 0.5}, "is not allowed"),
        (1, {"<script>": 0.5}, "is not allowed"),
    ],
)
def test_bad_points_are_rejected_when_logged_and_nothing_is_buffered(store, run_id, step, values, message):
    writer = MetricWriter(store, flush_seconds=0)

    with pytest.raises(ValidationError, match=message):
        writer.log(run_id, step, values)

    assert writer.flush() == 0


def test_nan_in_a_series_is_rejected(store, run_id):
    with pytest.raises(ValidationError, match="NaN or infinite"):
        MetricWriter(store).log_series(run_id, "loss", [1, 2], [0.5, math.nan])


def test_points_for_an_unknown_run_are_a_clear_error_and_store_nothing(store, unchanged):
    writer = MetricWriter(store, flush_seconds=0)
    writer.log(424242, 1, {"loss": 1.0})

    with pytest.raises(NotFoundError, match="unknown run ID 424242"):
        writer.flush()
    unchanged()


def test_points_stay_buffered_while_the_store_is_busy_and_are_written_later(tmp_path):
    """The store server stops answering (paused here) past the timeout: the flush fails, the points wait, in order."""
    store = RemoteStore(tmp_path / "tunedeck.duckdb", timeout=0.5, idle_exit=30)
    run_id = store.begin_run("busy", {}, worker="test")
    server = int(Path(f"{store.address}.lock").read_text())
    writer = MetricWriter(store, flush_seconds=0)
    try:
        os.kill(server, signal.SIGSTOP)
        writer.log(run_id, 1, {"loss": 5.0})
        writer.log_series(run_id, "loss", [1, 2], [4.0, 3.0])
        with pytest.raises(StoreBusyError):
            writer.flush()
        writer.log(run_id, 2, {"loss": 2.0})  # logged after the failed flush: still the last word on step 2
    finally:
        os.kill(server, signal.SIGCONT)

    writer.close()

    assert store.get_run_metrics(run_id).of("loss")["value"].to_list() == [4.0, 2.0]
    assert writer.points_written == 4  # four logged, two distinct steps stored
    assert remote.stop(store.path)


# An alarm that fires while the garbage collector runs a weakref callback is printed and dropped by Python, not
# raised: that step is then logged whole, which the test allows; pytest reports the dropped interrupt as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_inside_a_huge_log_call_leaves_its_step_whole_or_out(store, run_id):
    """The step's points went into five column lists one by one: an interrupt there stored part of a step, or left
    the columns of different lengths, and every later flush failed on them."""
    wide = {f"layer{index}/grad_norm": float(index) for index in range(100_000)}
    writer = MetricWriter(store, flush_points=10_000_000)

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        for step, delay in enumerate(0.05 * tick for tick in range(1, 15)):  # a call takes ~0.6 s here, half in checks
            signal.setitimer(signal.ITIMER_REAL, delay)
            try:
                writer.log(run_id, step, wide)
                signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                pass
        writer.log(run_id, 99, {"loss": 0.5})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    writer.close()

    counts = store.get_metric_series([run_id], max_points=None).group_by("step").len()
    assert all(count in (len(wide), 1) for count in counts["len"]), counts.sort("step")
    assert 99 in counts["step"].to_list()
