"""A client paused in the middle of a change (SIGSTOP, Ctrl-Z) holds its rows' locks in PostgreSQL: the server ends
its session once it has sat STALLED_TRANSACTION seconds, so other machines' writes to the same experiment go on, and
nothing of the paused change is kept."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import polars as pl
import psycopg
import pytest

from core import postgres_store
from core.errors import StoreBusyError
from core.postgres_store import STALLED_TRANSACTION, PostgresStore
from core.sql_store import SqlStore
from core.status import RunStatus
from tests.jobs.conftest import ROOT

# The child stops itself just after its run's status row is changed and locked, before the transaction commits.
PAUSED_MID_CHANGE = textwrap.dedent(
    """
    import os, signal, sys
    from core.postgres_store import PostgresStore
    from core.sql_store import SqlStore

    transition = SqlStore._transition

    def paused(self, con, run_id, new, **fields):
        changed = transition(self, con, run_id, new, **fields)
        print("paused", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        return changed

    SqlStore._transition = paused
    PostgresStore(sys.argv[1], sys.argv[2]).complete_run(int(sys.argv[3]))
    """
)


def test_a_client_paused_mid_change_blocks_the_experiment_only_until_postgresql_ends_its_session(
    postgres_databases, tmp_path
):
    store = PostgresStore(postgres_databases.fresh(), tmp_path / "a", timeout=30)
    experiment_id = store.create_experiment({"name": "paused", "dataset": "data/sample/sentiment.csv"})
    paused_run, healthy_run = (store.create_run(experiment_id, {}) for _ in range(2))
    for run_id in (paused_run, healthy_run):
        store.mark_running(run_id, f"w:{run_id}")
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSED_MID_CHANGE, store.url, str(tmp_path / "b"), str(paused_run)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "paused", child.stderr.read()
        started = time.monotonic()

        store.complete_run(healthy_run)  # the experiment's row and counters: what the paused change had locked
        another = store.create_run(experiment_id, {})
        waited = time.monotonic() - started

        assert waited < STALLED_TRANSACTION + 5
        assert store.get_run(healthy_run).status is RunStatus.COMPLETED
        assert store.get_run(paused_run).status is RunStatus.RUNNING  # the paused change was rolled back
        os.kill(child.pid, signal.SIGCONT)
        _, said = child.communicate(timeout=60)
        assert child.returncode != 0
        assert "stalled" in said and "nothing of it was saved" in said, said
        assert store.get_run(paused_run).status is RunStatus.RUNNING
        assert store.get_run(another).status is RunStatus.QUEUED
    finally:
        child.kill()
        child.wait()
        store.close()


def test_a_change_that_waits_on_another_clients_lock_gives_up_after_the_lock_timeout(postgres_databases, tmp_path):
    """Whatever holds a row (a long statement, a session of someone else's): the waiter says so instead of hanging."""
    store = PostgresStore(postgres_databases.fresh(), tmp_path, timeout=1)
    experiment_id = store.create_experiment({"name": "held", "dataset": "data/sample/sentiment.csv"})
    with psycopg.connect(store.url) as other:  # a transaction, not ours, holding the experiment's row
        other.execute("SELECT 1 FROM experiments WHERE id = %s FOR UPDATE", [experiment_id])
        started = time.monotonic()

        with pytest.raises(StoreBusyError, match=r"another client held what this operation needed for 1 s"):
            store.create_run(experiment_id, {})

        assert time.monotonic() - started < 10
    assert store.list_runs(experiment_id) == []
    store.close()


def test_a_read_waiting_on_another_clients_lock_gives_up_as_busy_too(postgres_databases, tmp_path):
    store = PostgresStore(postgres_databases.fresh(), tmp_path, timeout=1)
    experiment_id = store.create_experiment({"name": "locked out", "dataset": "data/sample/sentiment.csv"})
    with psycopg.connect(store.url) as other:  # a schema change, say, holds the whole table
        other.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")

        with pytest.raises(StoreBusyError, match=r"another client held what this operation needed for 1 s"):
            store.list_runs(experiment_id)
        with pytest.raises(StoreBusyError), store.reading():
            store.list_runs(experiment_id)
    store.close()


def test_a_read_snapshot_and_a_large_batch_may_take_longer_than_a_stalled_change(postgres_databases, tmp_path, monkeypatch):
    """Only a change's idle wait is cut short: a page builds what it shows between the reads of one snapshot, and a
    batch of millions of points is sorted and encoded between the statements that store it."""
    monkeypatch.setattr(postgres_store, "STALLED_TRANSACTION", 0.5)
    monkeypatch.setattr(postgres_store, "ENCODED_PER_SECOND", 1_000)  # 2,000 points: as long as millions take
    store = PostgresStore(postgres_databases.fresh(), tmp_path)
    experiment_id = store.create_experiment({"name": "patient", "dataset": "data/sample/sentiment.csv"})
    run_id = store.create_run(experiment_id, {})
    with store.reading():
        store.list_runs(experiment_id)
        time.sleep(1.0)  # twice what a change may idle
        assert store.get_experiment(experiment_id).name == "patient"

    encoding = SqlStore._store_points

    def slowly(self, con, points):
        time.sleep(1.0)  # as a busy machine encodes a large batch, inside the transaction
        return encoding(self, con, points)

    monkeypatch.setattr(SqlStore, "_store_points", slowly)
    points = pl.DataFrame({"run_id": run_id, "key": "loss", "step": range(2_000), "value": 0.5, "wall_time": None})
    assert store.log_metrics(points) == 2_000
    store.close()


def test_a_lock_timeout_longer_than_postgresql_takes_still_opens_the_store(postgres_databases, tmp_path):
    """PostgreSQL's timeouts stop at 2^31 - 1 ms (about 25 days); TUNEDECK_LOCK_TIMEOUT may say more."""
    store = PostgresStore(postgres_databases.fresh(), tmp_path, timeout=3_000_000)
    assert store.list_experiments().total == 0
    store.close()
