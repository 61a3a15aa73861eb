"""Shared fixtures: a fresh store per test, a clock that ticks, and factories for populated stores."""

import os
import shutil
import tempfile

# Test stores commit thousands of times, and on a disk each commit also waits for its fsync (~2 ms here): temporary files
# go to memory (/dev/shm) where it has room, unless TMPDIR names a place. Nothing here tests a power cut; killed
# processes leave their writes in the page cache either way. Set first, so every process the tests start inherits it.
_IN_MEMORY = not os.environ.get("TMPDIR") and os.access("/dev/shm", os.W_OK) and shutil.disk_usage("/dev/shm").free > 4 * 2**30
if _IN_MEMORY:
    os.environ["TMPDIR"] = "/dev/shm"
    tempfile.tempdir = None

# Before anything imports the queue: tests never touch ./data, and jobs heartbeat fast.
_DATA_DIR = tempfile.mkdtemp(prefix="tunedeck-tests-")
os.environ["TUNEDECK_DATA_DIR"] = _DATA_DIR
os.environ["TUNEDECK_HEARTBEAT_INTERVAL"] = "0.5"
os.environ["TUNEDECK_EMBEDDED_WORKER"] = "0"
os.environ["TUNEDECK_STORE_SERVER_IDLE_EXIT"] = "20"  # store servers started by tests outlive a test, not the suite
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["TUNEDECK_DATASET_ROOTS"] = os.pathsep.join([_ROOT, tempfile.gettempdir()])  # the repo and pytest's tmp_path

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core import open_store, overviews
from core.duckdb_store import DuckDBStore
from core.postgres_store import PostgresStore
from core.sql import frame, identifier
from core.store import TrackingStore
from core.writer import MetricWriter
from tests.stores import serving


class TickingClock:
    """Each reading is one second after the last, so 'newest first' never ties."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, 12, 0, 0)):
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "tunedeck.duckdb"


@pytest.fixture(scope="session")
def migrated_file(tmp_path_factory) -> Path:
    """An empty store with every migration applied, closed: copying it (1 ms) replaces migrating each test's new
    file (tens of milliseconds)."""
    path = tmp_path_factory.mktemp("template") / "tunedeck.duckdb"
    template = DuckDBStore(path)
    template.list_experiments()  # the file is opened, and migrated, on first use
    template.close()
    return path


@pytest.fixture
def backing(store_path: Path, clock: TickingClock, migrated_file: Path):
    """The DuckDB store itself, held by the test process."""
    shutil.copyfile(migrated_file, store_path)
    held = DuckDBStore(store_path, clock=clock)
    yield held
    held.close()


# Store tests reach the embedded store as every other process does: their requests cross the real socket and transport
# to the DuckDB file's owner (a store server on a thread here), which runs each one in the DuckDB store.
EMBEDDED = ["through the server"]
# The contract suites: each of their tests also runs on PostgreSQL (team mode), unless it reaches into the embedded
# store itself (it asks for `backing`): one suite on every backend, as Huey runs one StorageTests on each storage.
ON_EVERY_BACKEND = ("tests/core/", "tests/importers/", "tests/reliability/test_bad_input.py")


# Test files run in parallel, a file at a time per process, in this order: the longest first, so that no process is
# left with a long file while the others have finished (xdist's default would start the files with the most tests).
SLOW_FIRST = ("tests/browser/test_screens.py", "tests/browser/", "tests/reliability/", "tests/team/", "tests/jobs/", "tests/cli/")


def pytest_unconfigure(config):
    shutil.rmtree(_DATA_DIR, ignore_errors=True)  # this process's data folder: it may be in memory


def pytest_sessionfinish(session, exitstatus):
    """Files in memory hold memory: a passing run's folders go once it ends (a failing run's stay, to look at).
    Only the process that chose /dev/shm does it: xdist's workers' folders are inside its own."""
    if _IN_MEMORY and exitstatus == 0:
        shutil.rmtree(session.config._tmp_path_factory.getbasetemp(), ignore_errors=True)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = Path(item.fspath).as_posix()
        return next((index for index, prefix in enumerate(SLOW_FIRST) if f"/{prefix}" in path), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: each file's tests stay together and in order


def pytest_generate_tests(metafunc):
    if "store" not in metafunc.fixturenames:
        return
    path = Path(metafunc.definition.fspath).as_posix()
    on_postgres = "backing" not in metafunc.fixturenames and any(f"/{suite}" in path for suite in ON_EVERY_BACKEND)
    metafunc.parametrize("store", EMBEDDED + (["postgresql"] if on_postgres else []), indirect=True)


@pytest.fixture
def store(request, clock: TickingClock, tmp_path: Path) -> TrackingStore:
    """Every store test runs on the DuckDB store as other processes reach it (the contract), and in the contract
    suites on PostgreSQL too, in an emptied database of a private server."""
    if request.param == "postgresql":
        held = request.getfixturevalue("postgres_databases").store(clock, tmp_path)
        yield held
        held.close()
        return
    with serving(request.getfixturevalue("backing")) as remote:
        yield remote


@pytest.fixture(scope="session")
def postgres_databases():
    """A private PostgreSQL server for the session, handing out fresh migrated databases."""
    from tests.postgres import Databases

    databases = Databases.start()
    yield databases
    databases.stop()


@pytest.fixture
def held(store: TrackingStore, request) -> TrackingStore:
    """The store that holds the data of `store`: what snapshot() reads."""
    return store if isinstance(store, PostgresStore) else request.getfixturevalue("backing")


@pytest.fixture
def job_store() -> TrackingStore:
    """The session's store in TUNEDECK_DATA_DIR, the one worker processes started by tests use."""
    return open_store()


@pytest.fixture
def make_experiment(store: TrackingStore):
    counter = iter(range(1, 1_000_000))

    def make(name: str | None = None, dataset: str = "data/sample/sentiment.csv", **extra) -> int:
        return store.create_experiment({"name": name or f"experiment {next(counter)}", "dataset": dataset, **extra})

    return make


@pytest.fixture
def make_run(store: TrackingStore):
    """A run driven through the real lifecycle to `status`, with `metrics` logged as {key: [values by step]}."""

    def make(
        experiment_id: int,
        status: str = "completed",
        metrics: dict[str, list[float]] | None = None,
        config: dict | None = None,
        error: str = "boom",
    ) -> int:
        run_id = store.create_run(experiment_id, config or {"learning_rate": 0.01})
        if metrics:
            with MetricWriter(store) as writer:
                for key, values in metrics.items():
                    writer.log_series(run_id, key, list(range(1, len(values) + 1)), values)
        if status == "queued":
            return run_id
        if status == "cancelled":
            store.cancel_run(run_id)
            return run_id
        store.mark_running(run_id, worker="test-worker")
        if status == "completed":
            store.complete_run(run_id)
        elif status == "failed":
            store.fail_run(run_id, error)
        return run_id

    return make


def snapshot(held: DuckDBStore) -> dict[str, pl.DataFrame]:
    """Every table of the store, to prove that a rejected request changed nothing."""
    if isinstance(held, PostgresStore):
        from tests.postgres import snapshot as postgres_snapshot

        return postgres_snapshot(held)
    with held.reading() as con:
        tables = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        # Curve overviews are derived from the points and built whenever the store idles (core.overviews).
        return {table: frame(con, f"SELECT * FROM {identifier(table)} ORDER BY ALL") for table in tables if table not in overviews.TABLES}


@pytest.fixture
def unchanged(held: TrackingStore, make_experiment, make_run):
    """Yields a checker: call it after a bad request to assert the store is exactly as before."""
    experiment_id = make_experiment("baseline")
    make_run(experiment_id, metrics={"loss": [1.0, 0.5]})
    before = snapshot(held)

    def check() -> None:
        after = snapshot(held)
        assert after.keys() == before.keys()
        for table, rows in before.items():
            assert after[table].equals(rows), f"table {table} changed"

    return check
