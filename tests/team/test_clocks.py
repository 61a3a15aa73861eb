"""Machines whose clocks disagree: every time the store keeps, and every silence it judges, is on the database
server's clock, so a machine whose clock is off neither looks silent nor fails others' healthy runs."""

from datetime import UTC, timedelta
from pathlib import Path

import psycopg
import pytest

from core import postgres_store
from core.postgres_store import PostgresStore
from core.settings import get_settings
from core.status import RunStatus
from jobs.reaper import Outages, reap
from tests import postgres
from tests.team.test_two_machines import HEARTBEAT_TIMEOUT, LONG_RUN, Machine, _stop, libfaketime
from tests.waiting import wait_for

# What every reaper asks the store, on a machine's own clock: which running runs have been silent too long.
JUDGE_SILENCE = """
import sys
from core import open_store
print(open_store().fail_stale_runs(float(sys.argv[1])))
"""


@pytest.fixture
def faketime() -> Path:
    found = libfaketime()
    if found is None:
        reason = "Debian's faketime is missing: apt-get install faketime (.ci/run installs it)"
        if postgres.required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


def test_a_worker_whose_clock_is_five_minutes_behind_stamps_the_servers_time_and_is_not_failed_as_lost(
    faketime, postgres_databases, tmp_path
):
    url, shared = postgres_databases.fresh(), tmp_path / "shared"
    a = Machine("a", tmp_path, url, shared)
    b = Machine("b", tmp_path, url, shared, hostname="b", clock_off_by="-5m")
    c = Machine("c", tmp_path, url, shared, hostname="c", clock_off_by="+5m")
    seen, a_reaper = PostgresStore(url, a.data), Outages()
    (run_id,) = a.start_runs(LONG_RUN)
    worker = b.worker("--workers", "1")
    try:
        run = wait_for(
            lambda: (found := seen.get_run(run_id)).heartbeat_at and "loss" in found.metrics and found, 120, "B to train"
        )
        now = seen.now()
        assert abs((now - run.started_at).total_seconds()) < 60  # not five minutes ago
        assert abs((now - run.heartbeat_at).total_seconds()) < HEARTBEAT_TIMEOUT

        settings = get_settings().model_copy(update={"heartbeat_timeout": HEARTBEAT_TIMEOUT})
        wait_for(lambda: a_reaper.silence_counts(HEARTBEAT_TIMEOUT), 60, "A's reaper to judge silence")
        assert reap(seen, settings, outages=a_reaper) == []  # A's reaper: its clock is right, B's heartbeats recent
        # A machine whose clock is five minutes ahead judges B's heartbeats on the server's clock too.
        assert c.run(JUDGE_SILENCE, str(HEARTBEAT_TIMEOUT)).splitlines()[-1] == "[]"
        assert seen.get_run(run_id).status is RunStatus.RUNNING
        seen.cancel_run(run_id)
        wait_for(lambda: seen.get_run(run_id).status is RunStatus.CANCELLED, 60, "the cancel to land")
    finally:
        _stop(worker)
        seen.close()



def test_a_clock_set_after_the_store_read_the_servers_moves_none_of_its_times(postgres_databases, tmp_path, monkeypatch):
    """An NTP step, `date`, a VM resumed: the store counts on from its reading of the server's clock, so its times
    stay the server's and a run is neither stamped in the future nor judged silent for it."""
    url = postgres_databases.fresh()
    store = PostgresStore(url, tmp_path)
    stepped = postgres_store.utcnow() + timedelta(minutes=5)
    monkeypatch.setattr(postgres_store, "utcnow", lambda: stepped)  # this machine's clock, five minutes ahead now
    with psycopg.connect(url) as con:
        (server,) = con.execute("SELECT now()").fetchone()

    assert abs((store.now() - server.astimezone(UTC).replace(tzinfo=None)).total_seconds()) < 5
    store.close()
