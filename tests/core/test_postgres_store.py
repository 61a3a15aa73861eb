"""What the PostgreSQL store adds to the shared contract suite: its wording of the embedded store's statements,
credentials that never show, and the locks two machines need when they change one experiment at once."""

import inspect
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import polars as pl
import psycopg
import pytest

from core import pg_curves, sql_annotations, sql_store
from core.errors import ConflictError, StoreError, StoreUnavailableError, ValidationError
from core.pg_connection import TRANSLATIONS, _normal
from core.postgres_store import PostgresStore
from core.settings import Settings
from core.status import RunStatus
from core.store_url import checked_store_url, redacted, safe_message
from jobs.config import make_huey


def test_every_translated_statement_is_still_in_the_embedded_store():
    """A statement reworded in core.sql_store must be reworded for PostgreSQL too; this names the one that drifted."""
    source = _normal(inspect.getsource(sql_store) + inspect.getsource(sql_annotations))
    constants = {_normal(value) for value in vars(sql_store).values() if isinstance(value, str)}  # built ones too
    for statement in TRANSLATIONS:
        assert statement in source or statement in constants, f"core.sql_store no longer says: {statement[:80]}..."


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://alice:s3cret@db.example:5432/tunedeck", "postgresql://alice:***@db.example:5432/tunedeck"),
        ("postgresql://alice:p%40ss@db/tunedeck?sslmode=require", "postgresql://alice:***@db/tunedeck?sslmode=require"),
        (
            "postgresql://alice@db/tunedeck?password=s3cret&sslmode=verify-full",
            "postgresql://alice@db/tunedeck?password=***&sslmode=verify-full",
        ),
        ("postgresql://alice@db/tunedeck", "postgresql://alice@db/tunedeck"),
        # typed unencoded, a space, #, / or @ ends the password for a URL parser: hidden all the same
        ("postgresql://alice:my #secret@db/tunedeck", "postgresql://alice:***@db/tunedeck"),
        ("postgresql://alice:s3cr@et@db/tunedeck", "postgresql://alice:***@db/tunedeck"),
        ("postgresql://alice:a/b c@db/tunedeck", "postgresql://alice:***@db/tunedeck"),
        ("postgresql://alice@db/tunedeck?password=s3 cret", "postgresql://alice@db/tunedeck?password=***"),
        ("postgresql://alice:s3cret@db/tunedeck?options=a@b", "postgresql://alice:***@db/tunedeck?options=a@b"),
    ],
)
def test_a_url_is_shown_without_its_password(url, shown):
    assert redacted(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "mysql://alice:s3cret@db/x",
        "postgresql://alice:s3cret@/x",
        "postgresql://alice:s3cret@db:port/x",
        "postgresql://alice:s3cret@db",
    ],
)
def test_a_malformed_store_url_is_refused_without_showing_the_password(url):
    with pytest.raises(ValidationError) as refused:
        checked_store_url(url)
    assert "s3cret" not in str(refused.value)
    assert "TUNEDECK_STORE_URL" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("postgresql://alice@db:99999/x", "its port must be a whole number up to 65535"),
        ("postgresql://alice@db:54a2/x", "its port must be a whole number up to 65535"),
        ("postgresql://alice@[::1/x", "check the [ ] around an IPv6 address"),
    ],
)
def test_a_malformed_store_url_says_what_is_wrong_with_it(url, why):
    """It said "is malformed" and nothing more: a port past 65535 looked like a fine URL."""
    with pytest.raises(ValidationError, match=re.escape(f"TUNEDECK_STORE_URL is malformed ({why}): {url!r}")):
        checked_store_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cret hunter@db/tunedeck",
        "postgresql://alice:s3cret#hunter@db/tunedeck",
        "postgresql://alice:s3cret/hunter@db/tunedeck",
        "postgresql://alice:s3cret@hunter@db/tunedeck",
        "postgresql://alice:s3cret%zzhunter@db/tunedeck",
        "postgresql://alice@db/tunedeck?password=s3cret hunter",
        "postgresql://alice:s3cret/hunter?x@db:5432/tunedeck",  # a / and then a ? typed in the password
    ],
)
def test_a_password_a_url_cannot_carry_as_typed_is_refused_with_how_to_write_it(url):
    with pytest.raises(ValidationError) as refused:
        checked_store_url(url)

    said = str(refused.value)
    assert "s3cret" not in said and "hunter" not in said
    assert "the password in TUNEDECK_STORE_URL" in said and "percent-encode it" in said and "~/.pgpass" in said


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://db.example:5432/tunedeck?user=admin@corp",  # a cloud provider's user@server
        "postgresql://[::1]:5432/tunedeck?user=a@b",
        "postgresql://alice@db/tunedeck?password=a/b",
        "postgresql://alice@db/tunedeck?password=p@ss",
        "postgresql://alice:s3cret@db/tunedeck?options=-c%20search_path%3Da@b",
        "postgresql:///tunedeck?host=/var/run/postgresql",  # a Unix socket's folder as the host
    ],
)
def test_an_at_sign_or_slash_in_a_querys_values_is_a_valid_url_and_keeps_its_host_shown(url):
    assert checked_store_url(url) == url
    host_and_database = url.partition("?")[0].rpartition("@")[2]
    assert redacted(url).partition("?")[0].endswith(host_and_database)  # shown, not taken for a password


def test_a_drivers_error_that_quotes_part_of_the_url_never_shows_the_password(monkeypatch):
    monkeypatch.setenv("TUNEDECK_STORE_URL", "postgresql://alice:s3cr%20et@db/tunedeck")
    monkeypatch.setenv("PGPASSWORD", "other-secret")
    monkeypatch.setenv("TUNEDECK_QUEUE_URL", "postgresql://queue:pa%zzss@db/queue")

    said = safe_message(ValueError('unexpected spaces found in "s3cr et", and other-secret, or "pa%zzss"; ok'))

    assert said == 'unexpected spaces found in "***", and ***, or "***"; ok'


def test_a_key_password_in_the_url_is_hidden_in_the_url_and_in_a_drivers_error_alike(monkeypatch):
    """`sslpassword=` was redacted from the URL but not searched for in the driver's messages."""
    monkeypatch.setenv("TUNEDECK_STORE_URL", "postgresql://alice@db/tunedeck?sslmode=verify-full&sslpassword=keysecret")

    assert redacted("postgresql://alice@db/tunedeck?sslpassword=keysecret") == "postgresql://alice@db/tunedeck?sslpassword=***"
    assert safe_message(ValueError("could not decrypt the key with keysecret")) == "could not decrypt the key with ***"


def test_a_password_file_others_can_read_is_refused(tmp_path, monkeypatch):
    passfile = tmp_path / "pgpass"
    passfile.write_text("db:5432:tunedeck:alice:s3cret\n")
    passfile.chmod(0o644)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with pytest.raises(ValidationError, match="chmod 600"):
        checked_store_url("postgresql://alice@db/tunedeck")
    passfile.chmod(0o600)
    assert checked_store_url("postgresql://alice@db/tunedeck")


def test_a_missing_password_file_matters_only_where_libpq_would_read_it(tmp_path, monkeypatch):
    """A URL carrying its password was refused because PGPASSFILE named no file; libpq does not read it then."""
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "nosuchpass"))
    monkeypatch.delenv("PGPASSWORD", raising=False)

    assert checked_store_url("postgresql://alice:s3cret@db/tunedeck")
    with pytest.raises(ValidationError, match="PGPASSFILE names .*nosuchpass, which does not exist"):
        checked_store_url("postgresql://alice@db/tunedeck")
    monkeypatch.setenv("PGPASSWORD", "s3cret")
    assert checked_store_url("postgresql://alice@db/tunedeck")


def test_an_unreachable_server_is_one_clear_error_without_the_password(postgres_databases, tmp_path):
    port = postgres_databases.cluster.port
    with pytest.raises(StoreError) as failed:
        PostgresStore(f"postgresql://alice:s3cret@127.0.0.1:{port}/no_such_database", tmp_path)
    assert "s3cret" not in str(failed.value)
    assert "postgresql://alice:***@127.0.0.1" in str(failed.value)
    assert "no_such_database" in str(failed.value)
    assert not isinstance(failed.value, StoreUnavailableError)  # the server answered no: waiting changes nothing


def test_tls_settings_in_the_url_reach_the_driver(postgres_databases, tmp_path):
    """sslmode and the certificates' paths go to libpq as given: the private test server has no TLS, so a URL that
    requires it is refused by the driver itself, and one that merely prefers it connects."""
    url = postgres_databases.fresh()
    with pytest.raises(StoreError, match="server does not support SSL, but SSL was required"):
        PostgresStore(f"{url}?sslmode=require&sslrootcert={tmp_path / 'ca.pem'}", tmp_path)

    preferred = PostgresStore(f"{url}?sslmode=prefer", tmp_path)
    assert preferred.list_experiments().total == 0
    preferred.close()


def test_the_stores_and_the_queues_connections_notice_a_silent_server_within_a_minute_unless_the_url_says_otherwise(
    postgres_databases, tmp_path
):
    """Keepalive probes, a TCP user timeout and a connect timeout on every connection (the system's defaults take 2
    hours idle, about 15 minutes with a request unanswered); a setting the URL makes itself is the one it gets."""
    url = postgres_databases.fresh()
    store = PostgresStore(f"{url}?keepalives_idle=5&connect_timeout=3", tmp_path)
    try:
        with store._connections().connection() as raw:
            given = raw.info.get_parameters()
    finally:
        store.close()
    assert (given["keepalives_idle"], given["connect_timeout"]) == ("5", "3")
    assert (given["keepalives"], given["keepalives_interval"], given["keepalives_count"]) == ("1", "10", "3")
    assert given["tcp_user_timeout"] == "60000"

    queue = make_huey(Settings(data_dir=tmp_path, store_url=url))
    connection = queue.storage.conn
    try:
        given = connection.info.get_parameters()
    finally:
        queue.storage.close()
        connection.close()
    assert (given["keepalives_idle"], given["tcp_user_timeout"], given["connect_timeout"]) == ("30", "60000", "10")


@pytest.fixture
def pg(postgres_databases, clock, tmp_path):
    held = postgres_databases.store(clock, tmp_path)
    yield held
    held.close()


def test_points_go_in_by_binary_copy_exactly(pg):
    experiment_id = pg.create_experiment({"name": "copy", "dataset": "data/sample/sentiment.csv"})
    run_id = pg.create_run(experiment_id, {})
    points = pl.DataFrame(
        {
            "run_id": [run_id] * 4,
            "key": ["loss", "eval loss/top-1@k"] * 2,
            "step": [0, 0, 7, 7],
            "value": [0.1 + 0.2, -1e-300, 1.7976931348623157e308, 5e-324],
            "wall_time": [
                datetime(1999, 12, 31, 23, 59, 59, 999999),
                datetime(2000, 1, 1),
                datetime(2026, 5, 1, 1, 2, 3, 4),
                datetime(2040, 1, 1),
            ],
        }
    )
    assert pg.log_metrics(points) == 4
    stored = pg.get_metric_series([run_id], max_points=None)
    assert stored.sort("key", "step").equals(points.sort("key", "step"))


def test_experiments_created_at_once_with_one_name_give_one_experiment_and_clear_conflicts(pg):
    barrier = threading.Barrier(8)

    def create(_):
        barrier.wait()
        try:
            return pg.create_experiment({"name": "same", "dataset": "data/sample/sentiment.csv"})
        except ConflictError as error:
            return error

    results = list(ThreadPoolExecutor(8).map(create, range(8)))
    assert len([r for r in results if isinstance(r, int)]) == 1
    assert all("name" in str(r) for r in results if not isinstance(r, int))


def test_scripts_starting_runs_at_once_in_a_new_experiment_all_start_in_that_one_experiment(pg):
    """Each script looks the name up, finds nothing and makes the experiment: the ones that lose that race join the
    winner's (they used to fail with "another experiment took that name")."""
    def begin(sweep: str, barrier: threading.Barrier, machine: int) -> int:
        barrier.wait()
        return pg.begin_run(sweep, {"seed": machine}, worker=f"machine-{machine}:1")

    for sweep in range(5):
        barrier = threading.Barrier(6)
        run_ids = list(ThreadPoolExecutor(6).map(lambda machine, b=barrier, s=f"sweep {sweep}": begin(s, b, machine), range(6)))
        experiment_ids = {pg.get_run(run_id).experiment_id for run_id in run_ids}
        assert len(experiment_ids) == 1
        assert pg.get_experiment(experiment_ids.pop()).run_count == 6
    assert pg.verify_integrity() == []


def test_a_run_started_by_name_while_another_machine_deletes_that_experiment_starts_in_a_live_one(pg):
    """The delete holds the experiment's row until it commits; the run waits for it, then finds the name free and
    starts the experiment anew, instead of running on inside the deleted one (heartbeats answered "running")."""
    old = pg.create_experiment({"name": "nightly", "dataset": "data/sample/sentiment.csv"})
    with psycopg.connect(pg.url) as other_machine:  # a delete in flight: the row locked and changed, not committed
        other_machine.execute("SELECT 1 FROM experiments WHERE id = %s FOR UPDATE", [old])
        other_machine.execute("UPDATE experiments SET deleted_at = now() WHERE id = %s", [old])
        started = ThreadPoolExecutor(1).submit(pg.begin_run, "nightly", {}, worker="script:1")
        time.sleep(0.5)
        assert not started.done()  # waits for the delete
        other_machine.commit()
    run = pg.get_run(started.result(timeout=30))

    assert run.experiment_id != old and run.status is RunStatus.RUNNING
    assert pg.get_experiment(run.experiment_id).name == "nightly"
    assert pg.list_runs(old) == []
    assert pg.verify_integrity() == []


def test_runs_of_one_experiment_changing_at_once_keep_its_counters_right(pg):
    experiment_id = pg.create_experiment({"name": "busy", "dataset": "data/sample/sentiment.csv"})
    run_ids = [pg.create_run(experiment_id, {}) for _ in range(24)]

    def finish(run_id):
        pg.mark_running(run_id, "w")
        if run_id % 3:
            pg.complete_run(run_id)
        else:
            pg.fail_run(run_id, "boom")

    list(ThreadPoolExecutor(8).map(finish, run_ids))
    assert pg.verify_integrity() == []
    assert pg.get_experiment(experiment_id).run_count == 24


def test_the_sidebar_shows_the_team_store_without_its_password(tmp_path):
    from core.settings import Settings
    from core.store_url import store_location

    assert store_location(Settings(data_dir=tmp_path, store_url="postgresql://a:s3cret@db/t")) == "postgresql://a:***@db/t"
    assert store_location(Settings(data_dir=tmp_path)) == str(tmp_path)


def test_the_integrity_check_is_worded_for_postgresql():
    from core.pg_connection import postgres_sql

    worded = postgres_sql(sql_store._SUMMARY_MISMATCHES)
    assert "arg_max" not in worded and "array_agg(value ORDER BY step DESC)" in worded


def test_small_and_large_results_come_back_as_the_same_frames(pg):
    """A few rows are made into a frame at once, many a column at a time: the same types and values either way,
    NUMERIC's NaN and infinities included (Decimal values a frame built from rows cannot take)."""
    from core.pg_connection import ROWS_AT_ONCE, to_frame

    query = (
        "SELECT i::BIGINT AS id, i::INTEGER AS small, 'key ' || i AS key, i / 4.0 AS share, (i %% 2 = 0) AS even, "
        "CASE WHEN i %% 3 = 0 THEN NULL ELSE TIMESTAMP '2026-01-01' + i * INTERVAL '1 second' END AS at, "
        "CASE i %% 4 WHEN 1 THEN 'NaN'::NUMERIC WHEN 2 THEN 'Infinity'::NUMERIC ELSE i::NUMERIC / 3 END AS ratio "
        "FROM generate_series(1, %s) AS i ORDER BY i"
    )
    with pg._connection() as con, con.raw.cursor(binary=True) as cursor:
        few = to_frame(cursor.execute(query, [ROWS_AT_ONCE]))
        many = to_frame(cursor.execute(query, [ROWS_AT_ONCE * 3]))

    assert few.schema == many.schema
    assert few.equals(many.head(ROWS_AT_ONCE))
    assert few["ratio"].head(3).to_list()[:2] == [pytest.approx(float("nan"), nan_ok=True), float("inf")]


def running_run(pg, values: list[float]) -> int:
    experiment_id = pg.create_experiment({"name": f"sealed {time.monotonic_ns()}", "dataset": "data/sample/sentiment.csv"})
    run_id = pg.create_run(experiment_id, {})
    pg.mark_running(run_id, "w:1")
    steps = list(range(len(values)))
    pg.log_metrics(pl.DataFrame({"run_id": run_id, "key": "loss", "step": steps, "value": values, "wall_time": None}))
    return run_id


def ended_run(pg, values: list[float]) -> int:
    run_id = running_run(pg, values)
    pg.complete_run(run_id)
    return run_id


def test_an_ended_runs_whole_curve_is_read_from_its_seal_while_the_seal_holds(pg):
    """The seal is what a history call reads (a first value changed in it alone shows), and a point logged after the
    end makes it stale, so the call reads the points again."""
    run_id = ended_run(pg, [1.0, 0.5, 0.25])
    with pg._connection() as con:
        con.raw.execute(
            "UPDATE sealed_curves SET points = overlay(points PLACING float8send(9.5) FROM 9) WHERE run_id = %s",  # after the step
            [run_id],
        )
    assert pg.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [9.5, 0.5, 0.25]
    assert pg.verify_integrity() == [f"the sealed curve of run {run_id} key 'loss' disagrees with its points"]

    pg.log_metrics(pl.DataFrame({"run_id": run_id, "key": "loss", "step": [3], "value": [0.125], "wall_time": None}))
    assert pg.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [1.0, 0.5, 0.25, 0.125]
    assert pg.verify_integrity() == []  # a stale seal is no disagreement: no read trusts it


def test_a_rewrite_by_any_writer_drops_the_seal_in_the_database(pg):
    """A machine still on a release from before seals rewrites a step with a plain DELETE and INSERT: the trigger on
    `metrics` drops the seal, so upgraded machines read the new value, not the sealed one."""
    run_id = ended_run(pg, [1.0, 0.5, 0.25])
    with pg._connection() as con, con.raw.transaction():
        con.raw.execute("DELETE FROM metrics WHERE run_id = %s AND key = 'loss' AND step = 1", [run_id])
        con.raw.execute("INSERT INTO metrics VALUES (%s, 'loss', 1, 0.75, now())", [run_id])
    assert pg.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [1.0, 0.75, 0.25]

    ended = ended_run(pg, [2.0, 1.0])
    with pg._connection() as con:
        con.raw.execute("UPDATE metrics SET value = -1 WHERE run_id = %s AND step = 0", [ended])
    assert pg.get_metric_series([ended], ["loss"], max_points=None)["value"].to_list() == [-1.0, 1.0]


def test_a_copy_seals_the_ended_runs_of_a_store_that_had_none(postgres_databases, tmp_path):
    """Runs that ended before the store had seals read from their points until `tunedeck store copy` or
    `build_overviews` seals them (the migration leaves them: it holds every starting process while it runs)."""
    url = postgres_databases.fresh()
    store = PostgresStore(url, tmp_path / "team")
    try:
        run_id = ended_run(store, [0.3, 0.2])
        with store._connection() as con:
            con.raw.execute("DELETE FROM sealed_curves")
        assert store.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [0.3, 0.2]

        store.build_overviews()
        with store._connection() as con:
            sealed = con.raw.execute("SELECT run_id, key, count, last_step FROM sealed_curves").fetchall()
        assert sealed == [(run_id, "loss", 2, 1)]
        assert store.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [0.3, 0.2]
    finally:
        store.close()


def test_a_series_too_long_to_seal_is_read_from_its_points(pg, monkeypatch):
    monkeypatch.setattr(pg_curves, "_SEAL", pg_curves._SEAL.replace(f"<= {pg_curves.SEALED_MAX_POINTS}", "<= 2"))
    long_run, short_run = ended_run(pg, [3.0, 2.0, 1.0]), ended_run(pg, [2.0, 1.0])
    with pg._connection() as con:
        sealed = con.raw.execute("SELECT run_id FROM sealed_curves WHERE run_id = ANY(%s)", [[long_run, short_run]]).fetchall()
    assert sealed == [(short_run,)]
    assert pg.get_metric_series([long_run], ["loss"], max_points=None)["value"].to_list() == [3.0, 2.0, 1.0]


def test_a_run_ending_while_another_machine_rewrites_its_step_seals_the_new_value(pg):
    """The rewrite's trigger holds the run: the end's seal waits for the rewrite to commit, then reads its points."""
    run_id = running_run(pg, [1.0, 0.5, 0.25])
    with psycopg.connect(pg.url, autocommit=True) as other, other.transaction():
        other.execute("DELETE FROM metrics WHERE run_id = %s AND step = 1", [run_id])
        other.execute("INSERT INTO metrics VALUES (%s, 'loss', 1, 0.75, now())", [run_id])
        ending = threading.Thread(target=pg.complete_run, args=[run_id])
        ending.start()
        time.sleep(0.5)
        assert ending.is_alive()  # waiting for the rewrite's lock on the run
    ending.join(timeout=30)

    assert pg.get_run(run_id).status is RunStatus.COMPLETED
    assert pg.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [1.0, 0.75, 0.25]
