"""`tunedeck doctor` in team mode: the store and the queue on PostgreSQL, shown without the password."""

import subprocess
import sys

from core.postgres_store import PostgresStore
from tests.cli.conftest import ROOT, clean_env


def doctor(tmp_path, url: str) -> subprocess.CompletedProcess:
    env = clean_env(tmp_path / "data", TUNEDECK_STORE_URL=url)
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.cli", "doctor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_doctor_checks_the_team_store_and_queue_and_never_shows_the_password(tmp_path, postgres_databases):
    url = postgres_databases.fresh().replace("postgres@", "postgres:s3cret@")
    result = doctor(tmp_path, url)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = url.replace(":s3cret@", ":***@")
    assert f"OK    store: PostgreSQL {shown} (0 experiments)" in result.stdout
    assert f"OK    queue: PostgreSQL queue at {shown} answers" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr


def test_doctor_says_what_to_check_when_the_team_store_does_not_answer(tmp_path, postgres_databases):
    url = postgres_databases.cluster.database_url("missing").replace("postgres@", "postgres:s3cret@")
    result = doctor(tmp_path, url)
    assert result.returncode == 1
    assert (
        "FAIL  store: cannot use the PostgreSQL store at" in result.stdout
        and 'database "missing" does not exist' in result.stdout
    )
    assert "check TUNEDECK_STORE_URL" in result.stdout
    [queue] = [line for line in result.stdout.splitlines() if line.startswith("FAIL  queue:")]
    assert queue.endswith("the queue lives in the store's PostgreSQL database: fix TUNEDECK_STORE_URL (see the store's line)")
    assert "s3cret" not in result.stdout + result.stderr


def test_doctor_in_team_mode_counts_workers_training_on_any_machine_and_warns_without_an_artifact_root(
    tmp_path, postgres_databases
):
    url = postgres_databases.fresh()
    store = PostgresStore(url, tmp_path / "elsewhere")
    try:
        experiment = store.create_experiment({"name": "team", "dataset": "data/sample/sentiment.csv"})
        store.mark_running(store.create_run(experiment, {"epochs": 1}), worker="gpu-b:4242")
        store.create_run(experiment, {"epochs": 1})
    finally:
        store.close()

    result = doctor(tmp_path, url)

    assert (
        "WARN  workers: no worker runs on this machine (1 worker training on any machine, 1 runs queued); "
        "`tunedeck worker` on a GPU machine starts one"
    ) in result.stdout
    assert "WARN  artifacts: TUNEDECK_ARTIFACT_ROOT is not set: adapters stay in" in result.stdout


def test_doctor_never_shows_a_fragment_of_a_password_a_url_cannot_carry(tmp_path):
    """The queue's line handed the URL to the driver, which echoed 'ssword1@localhost' as a host it could not find."""
    result = doctor(tmp_path, "postgresql://bob:p@ssword1@localhost:1/db")

    assert result.returncode == 1
    assert "percent-encode it" in result.stdout
    assert "ssword1" not in result.stdout + result.stderr


def test_doctor_shows_its_own_messages_whole(tmp_path):
    """A URL parser run over the whole sentence took everything after its first '://' for a password."""
    result = doctor(tmp_path, "postgresq://tunedeck_app:s3cret@db.internal:5432/tunedeck")

    assert (
        "FAIL  store: TUNEDECK_STORE_URL must be empty (the embedded store) or postgresql://user@host:port/database, got "
        "'postgresq://tunedeck_app:***@db.internal:5432/tunedeck'" in result.stdout
    )
    assert "s3cret" not in result.stdout + result.stderr
