"""The README's least privileges hold: an owner role migrates once; the app's and workers' role, with only the rights
the README lists, runs the whole lifecycle, the queue included."""

import os
import subprocess
import sys

import psycopg

from core.postgres_store import PostgresStore
from tests.jobs.conftest import ROOT

# As in README "Team mode", for a database named tunedeck_lp.
GRANTS = """
    CREATE ROLE tunedeck_owner LOGIN;
    CREATE ROLE tunedeck_app LOGIN;
    CREATE DATABASE tunedeck_lp OWNER tunedeck_owner;
"""
APP_GRANTS = """
    REVOKE ALL ON DATABASE tunedeck_lp FROM PUBLIC;
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    GRANT CONNECT, TEMPORARY ON DATABASE tunedeck_lp TO tunedeck_app;
    GRANT USAGE ON SCHEMA public TO tunedeck_app;
    ALTER DEFAULT PRIVILEGES FOR ROLE tunedeck_owner IN SCHEMA public
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tunedeck_app;
    ALTER DEFAULT PRIVILEGES FOR ROLE tunedeck_owner IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO tunedeck_app;
"""
APP_LIFECYCLE = """
import polars as pl
from core import open_store
from jobs.tasks import enqueue, live_job_ids
store = open_store()
experiment_id = store.create_experiment({"name": "least", "dataset": "data/sample/sentiment.csv"})
run_id = store.create_run(experiment_id, {})
store.set_job_id(run_id, enqueue(run_id))
assert live_job_ids()
store.mark_running(run_id, "w:1")
store.log_metrics(pl.DataFrame({"run_id": [run_id] * 3, "key": ["loss"] * 3, "step": [1, 2, 3], "value": [0.3, 0.2, 0.1], "wall_time": None}))
store.log_metrics(pl.DataFrame({"run_id": [run_id], "key": ["loss"], "step": [2], "value": [0.25], "wall_time": None}))
store.append_log(run_id, "hello\\n")
store.complete_run(run_id)
assert store.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [0.3, 0.25, 0.1]  # its seal
store.log_metrics(pl.DataFrame({"run_id": [run_id], "key": ["loss"], "step": [1], "value": [0.35], "wall_time": None}))
assert store.get_metric_series([run_id], ["loss"], max_points=None)["value"].to_list() == [0.35, 0.25, 0.1]  # the trigger
store.delete_experiment(experiment_id)
store.restore_experiment(experiment_id)
assert store.verify_integrity() == [], store.verify_integrity()
print(store.get_run(run_id).metrics["loss"].last)
"""


def _python(url: str, data_dir, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUNEDECK_STORE_URL": url, "TUNEDECK_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_apps_role_needs_only_the_rights_the_readme_lists(postgres_databases, tmp_path):
    cluster = postgres_databases.cluster
    with psycopg.connect(cluster.url, autocommit=True) as con:
        for statement in filter(str.strip, GRANTS.split(";")):
            con.execute(statement)
    owner_url = cluster.database_url("tunedeck_lp").replace("postgres@", "tunedeck_owner@")
    with psycopg.connect(owner_url, autocommit=True) as con:
        con.execute(APP_GRANTS)
    app_url = owner_url.replace("tunedeck_owner@", "tunedeck_app@")
    too_early = _python(app_url, tmp_path / "app", "-m", "tunedeck.cli", "doctor")  # before the owner made the tables
    assert too_early.returncode == 1
    assert "run `tunedeck doctor` once with the URL of the role that owns the database" in too_early.stdout
    worker = _python(app_url, tmp_path / "app", "-m", "jobs.worker")  # a GPU machine started before the owner
    assert worker.returncode == 2
    assert "permission denied for schema public; if TuneDeck's tables are not made or not migrated yet, run `tunedeck doctor`" in (
        worker.stderr.splitlines()[-1]
    )

    first = _python(owner_url, tmp_path / "owner", "-m", "tunedeck.cli", "doctor")  # the README's first start
    assert first.returncode == 0, first.stdout + first.stderr

    app = _python(app_url, tmp_path / "app", "-c", APP_LIFECYCLE)
    assert app.returncode == 0, app.stderr
    assert app.stdout.strip() == "0.1"

    with psycopg.connect(app_url, autocommit=True) as con:  # and it cannot change the schema
        try:
            con.execute("DROP TABLE metrics")
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("the app's role could drop a table")
    check = PostgresStore(app_url, tmp_path / "check")
    try:
        assert check.get_experiment(1).name == "least"
    finally:
        check.close()  # its pool's threads go now, not in a garbage collection during a later test
