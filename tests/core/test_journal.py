"""The metric journal: what a writer logged is on disk until the store has it, and a dead writer's is replayed."""

import os
import time

import numpy as np
import polars as pl

from core import journal
from core.journal import Journal, read_segment
from core.writer import MetricWriter


def died(written: Journal) -> None:
    """The writer's process ended without deleting its segment: its lock is gone, the file stays."""
    written.seal()
    for segment in written._sealed:
        os.close(segment.fd)


def test_a_segment_reads_back_every_call_in_order(tmp_path):
    written = Journal(tmp_path)
    written.append_step(7, 1, 1_000_000, {"loss": 0.5, "accuracy": 0.25})
    written.append_series(7, "eval_loss", np.array([10, 20]), np.array([0.9, 0.8]), np.array([2_000_000, 3_000_000]))

    (segment,) = tmp_path.glob("*.points")
    points = read_segment(segment)

    assert points.select("run_id", "key", "step", "value").rows() == [
        (7, "loss", 1, 0.5),
        (7, "accuracy", 1, 0.25),
        (7, "eval_loss", 10, 0.9),
        (7, "eval_loss", 20, 0.8),
    ]
    assert points["wall_time"].dt.epoch("us").to_list() == [1_000_000, 1_000_000, 2_000_000, 3_000_000]


def test_a_frame_cut_short_by_a_kill_is_left_out(tmp_path):
    written = Journal(tmp_path)
    written.append_step(7, 1, 0, {"loss": 0.5})
    written.append_step(7, 2, 0, {"loss": 0.4})
    (segment,) = tmp_path.glob("*.points")
    segment.write_bytes(segment.read_bytes()[:-3])

    assert read_segment(segment)["step"].to_list() == [1]


def test_a_live_writers_segments_are_left_alone_and_a_dead_ones_are_replayed_once(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), status="running")
    folder = store.data_dir / "journal"
    live = Journal(folder)
    live.append_step(run_id, 1, 0, {"loss": 1.0})

    assert journal.recover(store, folder) == 0  # its writer holds the lock
    (live_segment,) = folder.glob("*.points")
    dead = Journal(folder)
    dead.append_step(run_id, 1, 0, {"loss": 2.0})
    died(dead)

    assert journal.recover(store, folder) == 1
    assert list(folder.glob("*.points")) == [live_segment]
    assert store.get_run_metrics(run_id).of("loss")["value"].to_list() == [2.0]
    assert journal.recover(store, folder) == 0


def test_points_of_a_run_the_store_does_not_have_are_dropped_on_replay(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), status="running")
    folder = store.data_dir / "journal"
    orphan = Journal(folder)
    orphan.append_step(98765, 1, 0, {"loss": 1.0})
    orphan.append_step(run_id, 1, 0, {"loss": 1.0})
    died(orphan)

    assert journal.recover(store, folder) == 1  # the known run's point; the other run's is dropped
    assert list(folder.glob("*.points")) == []


def test_a_writer_removes_its_journal_once_the_store_has_the_points(store, make_experiment, make_run):
    run_id = make_run(make_experiment(), status="running")
    with MetricWriter(store, flush_seconds=0) as writer:
        writer.log(run_id, 1, {"loss": 1.0})
        writer.log_series(run_id, "eval_loss", [1, 2], [0.5, 0.4])
        assert len(list((store.data_dir / "journal").glob("*.points"))) == 1
        writer.flush()
        assert list((store.data_dir / "journal").glob("*.points")) == []
        writer.log(run_id, 2, {"loss": 0.5})

    assert list((store.data_dir / "journal").glob("*.points")) == []
    assert store.get_run_metrics(run_id).series.filter(pl.col("key") == "loss").height == 2


def test_a_segment_the_store_refuses_is_set_aside_and_the_segments_after_it_are_still_replayed(
    store, make_experiment, make_run
):
    run_id = make_run(make_experiment(), status="running")
    folder = store.data_dir / "journal"
    refused = Journal(folder)
    refused.append_step(run_id, 2**64, 0, {"loss": 1.0})  # written past the SDK's checks, by an older writer say
    died(refused)
    later = Journal(folder)
    later.append_step(run_id, 1, 0, {"loss": 0.5})
    died(later)

    assert journal.recover(store, folder) == 1
    assert store.get_run_metrics(run_id).of("loss")["step"].to_list() == [1]
    assert list(folder.glob("*.points")) == []
    assert len(list(folder.glob("*.refused"))) == 1  # kept for a person, and passed by from now on
    assert journal.recover(store, folder) == 0


def test_a_segment_file_still_being_created_is_left_alone_until_it_is_old(store):
    """A writer creates its segment file, then locks it: recovery must not take a fresh unlocked one away
    (that failed the writer's log() with "No such file or directory")."""
    folder = store.data_dir / "journal"
    folder.mkdir()
    creating = folder / ".host-1-0-abcd.new"
    creating.touch()

    assert journal.recover(store, folder) == 0
    assert creating.exists()
    left = time.time() - journal.NEW_GRACE_S - 1  # its writer died between creating and locking it, long ago
    os.utime(creating, (left, left))
    journal.recover(store, folder)
    assert not creating.exists()


def test_a_writer_whose_new_segment_file_was_taken_away_starts_another(tmp_path, monkeypatch):
    lock = journal.fcntl.flock
    taken = []

    def taken_before_the_lock(fd, operation):  # a recovery removes the unlocked file the writer has just created
        if not taken:
            taken.extend(tmp_path.glob(".*.new"))
            for path in taken:
                path.unlink()
        return lock(fd, operation)

    monkeypatch.setattr(journal.fcntl, "flock", taken_before_the_lock)
    written = Journal(tmp_path)
    written.append_step(7, 1, 0, {"loss": 0.5})

    assert len(taken) == 1
    (segment,) = tmp_path.glob("*.points")
    assert read_segment(segment)["value"].to_list() == [0.5]


def test_a_segment_its_writer_deletes_while_recovery_looks_is_passed_by(store, make_experiment, make_run, monkeypatch):
    """The writer's flush lands (its segment deleted, its lock let go) between recovery opening the file and locking
    it: recovery then holds a deleted file, which it must neither replay nor set aside as refused."""
    run_id = make_run(make_experiment(), status="running")
    folder = store.data_dir / "journal"
    written = Journal(folder)
    written.append_step(run_id, 1, 0, {"loss": 1.0})
    lock = journal.fcntl.flock

    def flushed_meanwhile(fd, operation):
        if operation & journal.fcntl.LOCK_NB and written._current is not None:
            written.seal()
            written.stored(1)
        return lock(fd, operation)

    monkeypatch.setattr(journal.fcntl, "flock", flushed_meanwhile)
    assert journal.recover(store, folder) == 0
    assert list(folder.iterdir()) == []  # nothing set aside as refused
