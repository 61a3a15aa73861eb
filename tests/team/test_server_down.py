"""The database server stopping under a running app, then coming back: while it is down each call ends in a store
error that says what to check, within the store's timeout; once it is back the same store object carries on."""

import pytest

from core.errors import StoreBusyError, TuneDeckError
from core.postgres_store import PostgresStore
from tests.postgres import Cluster, skip_or_fail_without_binaries
from tests.waiting import wait_for


@pytest.fixture
def cluster():
    cluster = Cluster(skip_or_fail_without_binaries()).start()
    yield cluster
    cluster.stop()


def test_while_the_database_server_is_down_calls_say_so_and_once_it_is_back_they_work_again(cluster, tmp_path):
    store = PostgresStore(cluster.url, tmp_path, timeout=1)
    experiment_id = store.create_experiment({"name": "before the outage", "dataset": "d.csv"})

    cluster.stop_server()
    failures = []
    for _ in range(3):  # the connections the pool held break first; then no new one can be made within the timeout
        with pytest.raises(TuneDeckError) as raised:
            store.get_experiment(experiment_id)
        failures.append(raised.value)

    assert all("psycopg" not in str(error) for error in failures)
    broken = [error for error in failures if not isinstance(error, StoreBusyError)]
    assert broken and broken[0] is failures[0]
    assert all("lost the connection to the PostgreSQL store" in str(error) for error in broken)
    assert all("may have stopped or restarted" in str(error) for error in broken)
    assert isinstance(failures[-1], StoreBusyError)
    assert str(failures[-1]) == (
        f"no connection to the PostgreSQL store at {store.location} within 1 s: the database server may be down or "
        "unreachable, or every connection busy; `tunedeck doctor` says which"
    )

    cluster.start_server()

    def answers() -> bool:
        try:
            return store.get_experiment(experiment_id).name == "before the outage"
        except TuneDeckError:
            return False

    wait_for(answers, timeout=30, what="the store to answer once its server is back")
    assert store.create_experiment({"name": "after the outage", "dataset": "d.csv"}) > experiment_id
    store.close()
