"""The database server stopping under a running app: each call then ends in a store error that says what to
check, within the store's timeout: a connection the pool held says it was lost, and then none can be made."""

import pytest

from core.errors import StoreBusyError, TuneDeckError
from core.postgres_store import PostgresStore
from tests.postgres import Cluster, skip_or_fail_without_binaries


def test_when_the_database_server_stops_calls_say_it_may_be_down_and_what_tells(tmp_path):
    cluster = Cluster(skip_or_fail_without_binaries()).start()
    try:
        store = PostgresStore(cluster.url, tmp_path, timeout=1)
        experiment_id = store.create_experiment({"name": "before the outage", "dataset": "d.csv"})
    finally:
        cluster.stop()

    failures = []
    for _ in range(3):  # the pooled connection breaks first; then no new one can be made within the timeout
        with pytest.raises(TuneDeckError) as raised:
            store.get_experiment(experiment_id)
        failures.append(raised.value)
    store.close()

    assert all("psycopg" not in str(error) for error in failures)
    broken = [error for error in failures if not isinstance(error, StoreBusyError)]  # calls on a pooled connection
    assert broken and broken[0] is failures[0]
    assert all("lost the connection to the PostgreSQL store" in str(error) for error in broken)
    assert all("may have stopped or restarted" in str(error) for error in broken)
    assert isinstance(failures[-1], StoreBusyError)
    assert str(failures[-1]) == (
        f"no connection to the PostgreSQL store at {store.location} within 1 s: the database server may be down or "
        "unreachable, or every connection busy; `tunedeck doctor` says which"
    )
