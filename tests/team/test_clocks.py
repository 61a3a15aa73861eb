"""Machines whose clocks disagree: every time the store keeps, and every silence it judges, is on the database
server's clock, so a machine whose clock is off neither looks silent nor fails others' healthy runs."""

import shutil

import pytest

from core.postgres_store import PostgresStore
from core.settings import get_settings
from core.status import RunStatus
from jobs.reaper import Outages, reap
from tests import postgres
from tests.team.test_two_machines import HEARTBEAT_TIMEOUT, LONG_RUN, Machine, _stop
from tests.waiting import wait_for


@pytest.fixture
def faketime() -> str:
    found = shutil.which("faketime")
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
    seen = PostgresStore(url, a.data)
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
        assert reap(seen, settings, outages=Outages()) == []  # A's reaper: its clock is right, B's heartbeats recent
        assert seen.get_run(run_id).status is RunStatus.RUNNING
        seen.cancel_run(run_id)
        wait_for(lambda: seen.get_run(run_id).status is RunStatus.CANCELLED, 60, "the cancel to land")
    finally:
        _stop(worker)
        seen.close()

