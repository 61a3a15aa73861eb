"""Run starts and ends answered by the store's owner before they are applied (core.lifecycle): what a user sees is the
same as if each were its own transaction, and nothing answered is lost when the owner is killed."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

import core.database
import core.errors
import core.lifecycle
from core.duckdb_store import DuckDBStore
from core.errors import InvalidTransitionError, StoreError
from core.lifecycle import Begin, End, EventLog
from core.status import ExperimentStatus, RunStatus
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def points(run_id: int, loss: float, steps: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run_id": [run_id] * steps,
            "key": ["loss"] * steps,
            "step": list(range(steps)),
            "value": [loss + step for step in reversed(range(steps))],
            "wall_time": [datetime(2026, 1, 1)] * steps,
        }
    )


@pytest.fixture
def batching(monkeypatch):
    """Answered events wait to be applied until something reads or writes: a test sees them batched."""
    monkeypatch.setattr(core.database, "APPLY_AFTER", 3600)


def test_a_run_started_and_ended_is_answered_from_memory_and_seen_by_the_next_read(backing: DuckDBStore, batching):
    run_id = backing.begin_run("sentiment", {"lr": 0.1}, worker="host:1")  # creates the experiment: the ordinary path
    second = backing.begin_run("sentiment", {"lr": 0.2}, worker="host:1")
    backing.end_run(second, RunStatus.COMPLETED, points=points(second, 0.3))

    assert backing.db.lane.pending  # answered, not applied yet

    run = backing.get_run(second)
    assert run.status is RunStatus.COMPLETED and run.name == "run-2" and run.config == {"lr": 0.2}
    assert backing.get_metric_series([second], ["loss"], max_points=None)["value"].to_list() == [2.3, 1.3, 0.3]
    experiment = backing.get_experiment(backing.get_run(run_id).experiment_id)
    assert experiment.run_count == 2 and experiment.status is ExperimentStatus.RUNNING
    assert [(best.key, best.value, best.run_id) for best in experiment.best_metrics] == [("loss", 0.3, second)]


def test_a_batch_of_outcomes_counts_names_and_keeps_the_best_as_one_at_a_time_would(backing: DuckDBStore, batching):
    experiment_id = backing.create_experiment({"name": "sweep", "dataset": "data/sample/sentiment.csv"})
    outcomes = [
        (RunStatus.COMPLETED, 0.5, None),
        (RunStatus.FAILED, None, "CUDA out of memory"),
        (RunStatus.COMPLETED, 0.5, None),  # a tie: the lower run ID keeps the best (core.directions.rank)
        (RunStatus.COMPLETED, 0.4, None),
        (RunStatus.CANCELLED, None, None),
        (RunStatus.FAILED, None, "diverged"),
    ]
    ids = [backing.begin_run(experiment_id, worker="host:1") for _ in outcomes]
    for run_id, (status, loss, error) in zip(ids, outcomes, strict=True):
        backing.end_run(run_id, status, points=points(run_id, loss) if loss else None, error=error)
    assert backing.db.lane.pending

    runs = {run.id: run for run in backing.list_runs(experiment_id)}
    assert [runs[run_id].name for run_id in ids] == [f"run-{n}" for n in range(1, 7)]
    assert [runs[run_id].status for run_id in ids] == [status for status, _, _ in outcomes]
    assert runs[ids[1]].error == "CUDA out of memory" and runs[ids[4]].error == "cancelled by the user"
    experiment = backing.get_experiment(experiment_id)
    assert experiment.run_count == 6 and experiment.status is ExperimentStatus.COMPLETED
    assert experiment.last_error == "diverged"
    assert [(best.value, best.run_id) for best in experiment.best_metrics] == [(0.4, ids[3])]
    assert backing.verify_integrity() == []


def test_an_end_for_a_run_cancelled_meanwhile_is_refused_as_before(backing: DuckDBStore, batching):
    run_id = backing.begin_run("sentiment", worker="host:1")
    backing.cancel_run(run_id)  # another write: it applies what was answered first, then cancels
    with pytest.raises(InvalidTransitionError, match="cancelled"):
        backing.end_run(run_id, RunStatus.COMPLETED)
    assert backing.get_run(run_id).status is RunStatus.CANCELLED


def test_run_ids_follow_on_without_gaps_across_both_paths_and_a_reopened_store(store_path, migrated_file, batching):
    import shutil

    shutil.copyfile(migrated_file, store_path)
    first = DuckDBStore(store_path)
    experiment_id = first.create_experiment({"name": "ids", "dataset": "data/sample/sentiment.csv"})
    answered = [first.begin_run(experiment_id, worker="host:1") for _ in range(3)]
    queued = first.create_run(experiment_id, {"learning_rate": 0.001})  # the ordinary path, after the answered ones
    answered.append(first.begin_run(experiment_id, worker="host:1"))
    first.close()  # applies what was answered before the file closes
    again = DuckDBStore(store_path)
    later = again.begin_run(experiment_id, worker="host:1")
    assert answered[:3] == [1, 2, 3] and queued == 4 and answered[3] == 5 and later == 6
    assert [run.id for run in again.list_runs(experiment_id)] == [6, 5, 4, 3, 2, 1]
    again.close()


def test_applying_a_log_twice_changes_nothing(store_path, migrated_file):
    import shutil

    shutil.copyfile(migrated_file, store_path)
    store = DuckDBStore(store_path)
    experiment_id = store.create_experiment({"name": "twice", "dataset": "data/sample/sentiment.csv"})
    store.close()
    moment = datetime(2026, 1, 1)
    events = [
        Begin(1, experiment_id, None, "{}", "host:1", moment),
        End(1, RunStatus.COMPLETED, None, None, moment, points(1, 0.2)),
        Begin(2, experiment_id, "named", "{}", "host:1", moment),
        End(2, RunStatus.FAILED, "boom", "Traceback ...", moment, None),
    ]
    for _ in range(2):  # an owner killed after committing and before deleting its log replays it on the next open
        log = EventLog(store_path.resolve())
        for event in events:
            log.append(event)
        log.close()
        store = DuckDBStore(store_path)
        experiment = store.get_experiment(experiment_id)
        assert (experiment.run_count, experiment.status, experiment.last_error) == (2, ExperimentStatus.COMPLETED, "boom")
        assert [run.name for run in store.list_runs(experiment_id)] == ["named", "run-1"]
        assert store.get_metric_series([1], max_points=None).height == 3
        assert store.verify_integrity() == []
        store.close()
        assert not EventLog(store_path.resolve()).segments()  # applied and committed: the log is gone


def test_the_owner_killed_after_answering_loses_nothing(store_path, migrated_file):
    """A real process answers a run's start and end, is killed before applying them, and the next owner applies them."""
    import shutil

    shutil.copyfile(migrated_file, store_path)
    script = textwrap.dedent(
        f"""
        import sys, time
        from datetime import datetime
        import polars as pl
        import core.database
        core.database.APPLY_AFTER = 3600
        from core.duckdb_store import DuckDBStore
        store = DuckDBStore({str(store_path)!r})
        store.create_experiment({{"name": "killed", "dataset": "data/sample/sentiment.csv"}})
        run_id = store.begin_run("killed", {{"lr": 0.1}}, worker="host:1")
        frame = pl.DataFrame({{"run_id": [run_id] * 500, "key": ["loss"] * 500, "step": list(range(500)),
                              "value": [1.0 / (step + 1) for step in range(500)], "wall_time": [datetime(2026, 1, 1)] * 500}})
        store.end_run(run_id, "completed", points=frame)
        assert store.db.lane.pending
        print(run_id, flush=True)
        time.sleep(60)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        run_id = int(owner.stdout.readline())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert EventLog(store_path.resolve()).segments()  # the answers are in the log, not in the store

    store = DuckDBStore(store_path)
    run = store.get_run(run_id)
    assert run.status is RunStatus.COMPLETED and run.config == {"lr": 0.1}
    assert store.get_metric_series([run_id], max_points=None).height == 500
    assert store.get_experiment(run.experiment_id).best_metrics[0].value == pytest.approx(1 / 500)
    store.close()


def test_a_second_end_checked_before_the_first_was_applied_is_refused(backing: DuckDBStore, batching, monkeypatch):
    """B reads the run as running from the store; A's end is answered and applied; B must then be refused, as one
    transaction after another would refuse it, and its points must not land on the completed run."""
    import threading

    import core.duckdb_store as duckdb_store

    run_id = backing.begin_run("sentiment", worker="host:1")
    backing.set_tags("run", run_id, {"x": "1"})  # another write: the owner forgets what it knew of the run
    checked, go_on, outcome = threading.Event(), threading.Event(), {}
    real_first = duckdb_store.first

    def pausing_first(con, sql, params=None):
        found = real_first(con, sql, params)
        if sql == "SELECT status FROM runs WHERE id = ?" and threading.current_thread().name == "B":
            checked.set()
            go_on.wait()
        return found

    monkeypatch.setattr(duckdb_store, "first", pausing_first)

    def second() -> None:
        try:
            backing.end_run(run_id, RunStatus.FAILED, error="from B", points=points(run_id, 9.0))
            outcome["B"] = "answered"
        except InvalidTransitionError as error:
            outcome["B"] = str(error)

    thread = threading.Thread(target=second, name="B")
    thread.start()
    checked.wait()
    backing.end_run(run_id, RunStatus.COMPLETED, points=points(run_id, 0.5))
    backing.get_run(run_id)  # applies A
    go_on.set()
    thread.join()

    assert outcome["B"] == f"run {run_id} is completed; it cannot become failed"
    assert backing.get_run(run_id).status is RunStatus.COMPLETED
    assert backing.get_metric_series([run_id], max_points=None)["value"].to_list() == [2.5, 1.5, 0.5]


def test_a_damaged_log_keeps_what_reads_and_a_copy_for_a_person(store_path, migrated_file):
    import shutil

    shutil.copyfile(migrated_file, store_path)
    store = DuckDBStore(store_path)
    experiment_id = store.create_experiment({"name": "damaged", "dataset": "data/sample/sentiment.csv"})
    store.close()
    log = EventLog(store_path.resolve())
    log.append(Begin(1, experiment_id, "readable", "{}", "host:1", datetime(2026, 1, 1)))
    log.close()
    with open(log.segments()[0], "ab") as segment:
        segment.write(b"e\x05\x00\x00\x00garbage")  # a whole frame that does not read: damage, not a cut-short write

    store = DuckDBStore(store_path)
    assert [run.name for run in store.list_runs(experiment_id)] == ["readable"]
    assert not EventLog(store_path.resolve()).segments()
    assert [path.name for path in store_path.parent.glob("*.events.damaged-*")]
    store.close()


def test_a_write_failing_beside_answered_starts_leaves_no_run_id_to_hand_out_twice(store_path, migrated_file):
    """The group carrying answered starts fails (a bad rename), the starts go in by themselves, the owner is killed
    before any checkpoint: the next owner must not hand out an ID a stored run has."""
    import shutil

    shutil.copyfile(migrated_file, store_path)
    script = textwrap.dedent(
        f"""
        import os, signal
        import core.database
        core.database.APPLY_AFTER = 3600
        from core.duckdb_store import DuckDBStore
        store = DuckDBStore({str(store_path)!r})
        experiment = store.create_experiment({{"name": "ids", "dataset": "data/sample/sentiment.csv"}})
        ids = [store.begin_run(experiment, worker="host:1") for _ in range(3)]
        try:
            store.rename_experiment(987654, "other")  # fails, in the group that applies the starts
        except Exception:
            pass
        print(ids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    answered = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert answered.stdout.strip() == "[1, 2, 3]", answered.stderr[-2000:]

    store = DuckDBStore(store_path)
    assert sorted(run.id for run in store.list_runs(1)) == [1, 2, 3]
    assert store.begin_run(1, worker="host:2") not in (1, 2, 3)
    assert store.create_run(1, {"learning_rate": 0.001}) not in (1, 2, 3)
    store.close()


def test_a_log_disk_that_fails_when_sealed_holds_up_no_write_and_no_read(backing: DuckDBStore, batching, monkeypatch):
    run_id = backing.begin_run("sentiment", worker="host:1")  # answered from memory, in the log
    second = backing.begin_run("sentiment", worker="host:1")

    def failing_seal(log: EventLog) -> int:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(EventLog, "seal", failing_seal)
    backing.set_tags("run", run_id, {"a": "1"})  # the group that applies the starts cannot seal their log

    assert backing.get_run(second).status is RunStatus.RUNNING
    assert backing.get_run(run_id).tags == {"a": "1"}


def test_a_second_store_object_on_the_same_file_in_one_process_is_refused(backing: DuckDBStore):
    from core.errors import StoreBusyError

    backing.list_experiments()  # opens the file
    with pytest.raises(StoreBusyError, match="open in this process already"):
        DuckDBStore(backing.path).list_experiments()
    backing.list_experiments()  # the first goes on


def test_a_log_whose_close_fails_never_writes_on_into_another_file(tmp_path, monkeypatch):
    """Linux lets a descriptor go even when close() reports an error; a log that kept the number would write the
    next answered event into whatever file is opened next under it."""
    log = EventLog(tmp_path / "t.duckdb")
    log.append(Begin(1, 1, None, "{}", "w", datetime(2026, 1, 1)))
    close = os.close

    def closed_but_failed(fd):
        close(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(core.lifecycle.os, "close", closed_but_failed)
    with pytest.raises(OSError):
        log.seal()
    monkeypatch.setattr(core.lifecycle.os, "close", close)
    other = tmp_path / "another file"
    other.write_bytes(b"kept")
    opened = os.open(other, os.O_RDWR)  # likely under the number the log let go
    try:
        log.append(Begin(2, 1, None, "{}", "w", datetime(2026, 1, 1)))
    finally:
        os.close(opened)

    assert other.read_bytes() == b"kept"
    assert len(log.segments()) == 2


def test_a_write_racing_close_is_answered_not_stranded(tmp_path):
    """A write that passed the closed check as close() began was queued behind the committer's stop: it waited forever."""
    db = core.database.Database(tmp_path / "t.duckdb")
    queued = db._queue

    checked = threading.Event()

    class SlowToQueue:  # widens the moment between the write's check and its put
        def put(self, item):
            if isinstance(item, tuple):
                checked.set()  # the write passed the closed check: close() begins now
                time.sleep(0.3)
            queued.put(item)

        def __getattr__(self, name):
            return getattr(queued, name)

    db._queue = SlowToQueue()
    outcome = []
    writer = threading.Thread(target=lambda: outcome.append(_answer(db)), daemon=True)
    writer.start()
    assert checked.wait(5)
    db.close()
    writer.join(5)

    assert not writer.is_alive()
    assert outcome == [(1,)]


def _answer(db):
    try:
        return db.write(lambda con: con.execute("SELECT 1").fetchone())
    except core.errors.StoreError as error:
        return str(error)


def test_an_answered_end_whose_start_the_store_refused_is_set_aside_after_it_not_dropped(store_path, migrated_file, monkeypatch):
    """The start cannot be applied (the disk failing) and is set aside; its end, answered too, ended nothing and its
    log went: the run stayed `running` for good. Now the end follows its start, and the next owner applies both."""
    import shutil

    shutil.copyfile(migrated_file, store_path)
    store = DuckDBStore(store_path)
    experiment = store.create_experiment({"name": "refused start", "dataset": "data/sample/sentiment.csv"})
    store.end_run(store.begin_run(experiment, worker="host:1"), RunStatus.COMPLETED)  # the early path is warm
    store.get_runs([1])
    insert = DuckDBStore._insert_begun
    failing = {"on": True}

    def disk_failing(con, begins):
        if failing["on"]:
            raise StoreError("No space left on device")
        return insert(con, begins)

    monkeypatch.setattr(DuckDBStore, "_insert_begun", staticmethod(disk_failing))
    run_id = store.begin_run(experiment, worker="host:1")
    store.end_run(run_id, RunStatus.COMPLETED, points=points(run_id, 0.4))
    store.db.settle()  # applied, or set aside
    failing["on"] = False
    store.close()

    reopened = DuckDBStore(store_path)  # the next owner tries what was set aside again, in order
    run = reopened.get_run(run_id)
    assert run.status is RunStatus.COMPLETED and run.metrics["loss"].count == 3
    reopened.close()


def test_a_torn_frame_that_cannot_be_cut_off_hides_no_later_event(tmp_path, monkeypatch):
    """A write that stops part-way is cut back off the segment; where even that fails, the torn frame stays, and an event
    written after it would be read as part of it and lost at replay. The log goes on in a new segment instead."""
    log = EventLog(tmp_path / "t.duckdb")
    log.append(Begin(1, 1, None, "{}", "w", datetime(2026, 1, 1)))
    write, ftruncate = os.write, os.ftruncate
    ours = log._fd  # os is every thread's: other descriptors (pytest's, a worker's channel) go on as usual

    def part_of_it(fd, data):
        return write(fd, data[: core.lifecycle.FRAME.size] if fd == ours else data)

    def cannot_cut(fd, size):
        if fd == ours:
            raise OSError(errno.EIO, "Input/output error")
        return ftruncate(fd, size)

    monkeypatch.setattr(core.lifecycle.os, "write", part_of_it)
    monkeypatch.setattr(core.lifecycle.os, "ftruncate", cannot_cut)
    with pytest.raises(StoreError, match="cannot keep the run's outcome on disk"):
        log.append(Begin(2, 1, None, "{}", "w", datetime(2026, 1, 1)))
    monkeypatch.undo()
    log.append(Begin(3, 1, None, "{}", "w", datetime(2026, 1, 1)))
    log.close()

    replayed = EventLog(tmp_path / "t.duckdb").left_behind()
    assert [event.run_id for event in replayed] == [1, 3]


def test_events_set_aside_are_on_disk_before_their_segment_goes_when_the_log_syncs(tmp_path, monkeypatch):
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(core.lifecycle.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), fsync(fd)))
    log = EventLog(tmp_path / "t.duckdb", fsync=True)

    kept = log.set_aside([Begin(1, 1, None, "{}", "w", datetime(2026, 1, 1))])

    assert str(kept) in synced  # other threads' fsyncs (os is every thread's) may be there too


def test_a_closed_store_is_not_opened_again_by_a_late_request(backing: DuckDBStore):
    """The store server closes its store once its requests have drained; one that outlived the drain must not take
    the file back, which the next owner is waiting to open."""
    backing.list_experiments()
    backing.close()

    with pytest.raises(StoreError, match="was closed"):
        backing.list_experiments()
    reopened = DuckDBStore(backing.path)
    assert reopened.list_experiments().total == 0
    reopened.close()


def test_an_end_with_points_waits_behind_writes_already_queued(backing: DuckDBStore):
    """Answered events are applied ahead of the writes queued: a batch of points its client gave up on and sent again
    with the run's end would land after the end and overwrite the newer values. Such an end takes the ordinary path,
    behind them."""
    run_id = backing.begin_run("queued", {}, worker="host:1")
    backing.end_run(backing.begin_run("queued", {}, worker="host:1"), RunStatus.COMPLETED)  # the early path is warm
    started, release = threading.Event(), threading.Event()

    def slow(con):
        started.set()
        release.wait(10)

    holder = threading.Thread(target=lambda: backing._write(slow, quiet=True))
    holder.start()
    started.wait(5)
    stale = threading.Thread(target=lambda: backing.log_metrics(points(run_id, 9.0)))  # queued behind `slow`
    stale.start()
    wait_for(lambda: backing.db._queued == 1, what="the stale write to queue")
    ended = threading.Thread(target=lambda: backing.end_run(run_id, RunStatus.COMPLETED, points=points(run_id, 0.4)))
    ended.start()
    wait_for(lambda: backing.db._queued == 2 or not ended.is_alive(), what="the end to queue")  # answered early: the old bug
    release.set()
    for thread in (holder, stale, ended):
        thread.join(10)

    assert backing.get_run_metrics(run_id).of("loss")["value"].to_list() == [2.4, 1.4, 0.4]  # the end's, not 11, 10, 9

