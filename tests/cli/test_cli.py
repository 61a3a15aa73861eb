"""The `tunedeck` command: the app, a worker, imports and a health check, each from one place."""

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib

from core.duckdb_store import DuckDBStore
from tests.cli.conftest import ROOT, clean_env
from tests.importers.conftest import FIXTURES
from tests.servers import free_port, healthy, stop
from tunedeck.cli import shown_address, streamlit_config


def test_the_console_script_is_the_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"tunedeck": "tunedeck.cli:main"}


def test_help_lists_every_command(tunedeck):
    result = tunedeck("--help")

    assert result.returncode == 0
    for command in ("ui", "worker", "import", "doctor"):
        assert f"  {command} " in result.stdout


def test_doctor_says_ok_for_each_part_of_a_fresh_setup(tunedeck):
    result = tunedeck("doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    names = [line.split(":")[0].split(maxsplit=1)[1] for line in result.stdout.splitlines()]
    assert names == ["versions", "store", "queue", "workers", "artifacts", "dataset roots", "sample data", "trainers"]
    assert all(line.startswith(("OK", "WARN")) for line in result.stdout.splitlines())


def test_doctor_on_a_data_folder_with_nothing_in_it_warns_and_makes_nothing_there(tunedeck, tmp_path):
    typo = tmp_path / "dta"

    result = tunedeck("doctor", TUNEDECK_DATA_DIR=str(typo))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"WARN  store: no store at {typo / 'tunedeck.duckdb'} yet: nothing was recorded there." in result.stdout
    assert not typo.exists()


def test_doctor_fails_on_a_data_folder_that_is_a_file(tunedeck, tmp_path):
    (tmp_path / "data").write_text("not a folder")

    result = tunedeck("doctor", TUNEDECK_DATA_DIR=str(tmp_path / "data"))

    assert result.returncode == 1
    assert f"FAIL  store: {tmp_path / 'data'} is a file, not a folder; point TUNEDECK_DATA_DIR at a folder" in result.stdout
    assert f"FAIL  queue: {tmp_path / 'data'} is a file, so the SQLite queue cannot be kept there" in result.stdout


def test_doctor_fails_on_an_artifact_root_that_is_not_mounted(tunedeck, tmp_path):
    result = tunedeck("doctor", TUNEDECK_ARTIFACT_ROOT=str(tmp_path / "mnt" / "team"))

    assert result.returncode == 1
    assert (
        f"FAIL  artifacts: TUNEDECK_ARTIFACT_ROOT: {tmp_path / 'mnt' / 'team'} does not exist; mount the shared folder there"
    ) in result.stdout


def test_doctor_with_a_malformed_store_url_says_the_queue_follows_it(tunedeck):
    result = tunedeck("doctor", TUNEDECK_STORE_URL="postgres:/missing-a-slash")

    assert result.returncode == 1
    assert "FAIL  queue: it lives in the store's database, and TUNEDECK_STORE_URL is no PostgreSQL URL" in result.stdout
    assert "redis" not in result.stdout.lower()


def test_doctor_lists_the_registered_commands_and_fails_on_a_broken_commands_file(tunedeck, tmp_path):
    listed = tunedeck("doctor", TUNEDECK_COMMANDS_FILE=str(ROOT / "commands.example.toml"))
    (tmp_path / "commands.toml").write_text("[commands.x]\ncommand = 'not a list'\n")
    broken = tunedeck("doctor", TUNEDECK_COMMANDS_FILE=str(tmp_path / "commands.toml"))

    assert "(commands: sdk-example)" in listed.stdout
    assert broken.returncode == 1
    assert f"FAIL  trainers: invalid commands file {tmp_path / 'commands.toml'}" in broken.stdout


def test_doctor_on_a_commands_file_that_is_a_folder_fails_that_line_without_a_traceback(tunedeck, tmp_path):
    result = tunedeck("doctor", TUNEDECK_COMMANDS_FILE=str(tmp_path))

    assert result.returncode == 1
    assert f"FAIL  trainers: cannot read the commands file {tmp_path}: Is a directory" in result.stdout
    assert "Traceback" not in result.stderr


def test_doctor_names_what_the_store_could_not_take(tunedeck, tmp_path):
    data = tmp_path / "data"
    made = DuckDBStore(data / "tunedeck.duckdb")
    made.list_experiments()  # the file is made on first use
    made.close()
    (data / "tunedeck.duckdb.events.refused-1").write_bytes(b"")
    (data / "journal").mkdir()
    (data / "journal" / "host-1-0-abc.refused").write_bytes(b"")

    result = tunedeck("doctor", TUNEDECK_DATA_DIR=str(data))

    line = next(line for line in result.stdout.splitlines() if " store: " in line)
    assert line.startswith("WARN  store: ") and "2 file(s) hold what the store could not take" in line, result.stdout
    assert "journal/host-1-0-abc.refused, tunedeck.duckdb.events.refused-1" in line


def test_doctor_warns_of_runs_whose_process_is_gone_when_no_worker_would_fail_them(tunedeck, tmp_path):
    import socket

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    data = tmp_path / "data"
    made = DuckDBStore(data / "tunedeck.duckdb")
    run_id = made.begin_run("killed script", worker=f"{socket.gethostname()}:{gone.stdout.strip()}")
    made.close()

    result = tunedeck("doctor", TUNEDECK_DATA_DIR=str(data), TUNEDECK_EMBEDDED_WORKER="0")

    line = next(line for line in result.stdout.splitlines() if " workers: " in line)
    assert line.startswith("WARN  workers: 1 run shows running but their process is gone"), result.stdout
    assert f"(run {run_id})" in line and "`tunedeck worker`" in line


def test_doctor_names_the_process_of_the_worker_that_runs(tunedeck, tmp_path):
    """So that a script that needs other settings can stop it (README, Use it from Python)."""
    from core.settings import Settings
    from jobs.lock import worker_running
    from tests.jobs.conftest import start_worker, stop_worker, wait_for

    data = tmp_path / "data"
    worker = start_worker(TUNEDECK_DATA_DIR=str(data))
    try:
        wait_for(lambda: worker_running(Settings(data_dir=data)), timeout=60, what="the worker to start")
        result = tunedeck("doctor", TUNEDECK_DATA_DIR=str(data), TUNEDECK_EMBEDDED_WORKER="0")
    finally:
        stop_worker(worker)

    line = next(line for line in result.stdout.splitlines() if " workers: " in line)
    assert f"OK    workers: a worker runs on this data folder (PID {worker.pid}); 0 runs queued or running" == line


def test_python_dash_m_tunedeck_is_the_command_in_a_checkout():
    result = subprocess.run([sys.executable, "-m", "tunedeck", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0 and result.stdout.startswith("Usage: tunedeck ")


def test_doctor_fails_on_a_missing_dataset_folder_and_says_what_to_fix(tunedeck, tmp_path):
    result = tunedeck("doctor", TUNEDECK_DATASET_ROOTS=str(tmp_path / "nowhere"))

    assert result.returncode == 1
    assert f"FAIL  dataset roots: {tmp_path / 'nowhere'} missing; fix TUNEDECK_DATASET_ROOTS" in result.stdout


def test_a_bad_setting_stops_any_command_with_what_to_fix(tunedeck):
    result = tunedeck("doctor", TUNEDECK_QUEUE_URL="amqp://elsewhere")

    assert result.returncode == 1
    assert result.stderr.startswith("Error: TUNEDECK_QUEUE_URL must be empty (SQLite queue")


def test_a_setting_that_is_not_a_number_is_named_with_what_it_got(tunedeck):
    result = tunedeck("doctor", TUNEDECK_LOCK_TIMEOUT="abc")

    assert result.returncode == 1
    assert result.stderr.startswith("Error: TUNEDECK_LOCK_TIMEOUT: Input should be a valid number")
    assert result.stderr.rstrip().endswith("got 'abc'")


def test_tunedeck_worker_with_a_bad_setting_refuses_as_a_worker_does(tunedeck):
    """Exit code 2 and the worker's own line (README: Team mode, "Fails loudly"), as `python -m jobs.worker` says it."""
    result = tunedeck("worker", TUNEDECK_LOCK_TIMEOUT="abc")

    assert result.returncode == 2
    assert result.stderr.startswith("tunedeck worker: not starting: TUNEDECK_LOCK_TIMEOUT: Input should be a valid number")


def test_import_tensorboard_twice_imports_once_and_summarises_both_times(tunedeck):
    logdir = str(FIXTURES / "tensorboard")

    first = tunedeck("import", "tensorboard", logdir, "--experiment", "tb")
    second = tunedeck("import", "tensorboard", logdir, "--experiment", "tb")

    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("imported 3 runs with 27 metric points into 1 new experiment: tb\n")
    assert "importing runs" in first.stderr  # the progress bar
    assert second.returncode == 0
    assert second.stdout.startswith("imported 0 runs with 0 metric points\nskipped 3 runs:\n  - 3 runs already imported: ")


def test_import_that_could_read_nothing_fails_with_what_it_skipped(tunedeck, tmp_path):
    """A folder whose only event file is damaged printed "imported 0 runs" and exited 0, as a success does."""
    damaged = tmp_path / "logs" / "run1"
    damaged.mkdir(parents=True)
    (damaged / "events.out.tfevents.1").write_bytes(b"garbage")

    result = tunedeck("import", "tensorboard", str(tmp_path / "logs"))

    assert result.returncode == 1
    assert result.stdout.startswith("imported 0 runs with 0 metric points\nskipped 1 run:\n  - run 'run1' ")
    assert "no metric point could be read (events.out.tfevents.1 was read up to byte 0" in result.stdout


def test_an_import_interrupted_by_ctrl_c_says_how_far_it_got_and_the_same_command_finishes_it(tunedeck, tmp_path):
    """Ctrl-C printed click's bare "Aborted!" and exited 1, as a failed import does, saying nothing of what was in."""
    logdir = tmp_path / "logs"
    for copy in range(60):  # long enough to be interrupted: each run is a few store requests
        shutil.copytree(FIXTURES / "tensorboard" / "train", logdir / f"run{copy:03}")
    command = [sys.executable, "-m", "tunedeck.cli", "import", "tensorboard", str(logdir), "--experiment", "tb"]
    progress = tmp_path / "stderr"
    with progress.open("w") as stderr:
        importing = subprocess.Popen(command, cwd=ROOT, env=clean_env(tmp_path / "data"), stdout=subprocess.PIPE, stderr=stderr, text=True)
        while importing.poll() is None and "importing runs" not in progress.read_text():
            time.sleep(0.05)
        time.sleep(1.0)  # some runs in
        importing.send_signal(signal.SIGINT)
        out, _ = importing.communicate(timeout=60)
    err = progress.read_text()

    assert importing.returncode == 130, err
    first = re.match(r"imported (\d+) runs? with", out)
    assert first and 0 <= int(first[1]) < 60
    assert "import interrupted: the same command again imports what is not in yet" in err and "Traceback" not in err
    again = tunedeck("import", "tensorboard", str(logdir), "--experiment", "tb")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"imported {60 - int(first[1])} run")
    if int(first[1]):
        assert f"skipped {first[1]} run" in again.stdout


def test_imports_of_one_folder_at_once_take_turns_and_bring_each_run_in_once(tunedeck, tmp_path):
    """Three at once made 5 runs of 3 (each found a run not imported yet), and one failed on the experiment the
    other had just made."""
    logdir = tmp_path / "logs"
    for copy in range(20):
        shutil.copytree(FIXTURES / "tensorboard" / "train", logdir / f"run{copy:02}")
    command = [sys.executable, "-m", "tunedeck.cli", "import", "tensorboard", str(logdir), "--experiment", "tb"]
    env = clean_env(tmp_path / "data")

    importing = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    ended = [(process.wait(timeout=120), *process.communicate()) for process in importing]

    assert [code for code, _, _ in ended] == [0, 0, 0], [err for _, _, err in ended]
    counts = sorted(int(re.match(r"imported (\d+) run", out)[1]) for _, out, _ in ended)
    assert counts == [0, 0, 20]
    again = tunedeck("import", "tensorboard", str(logdir), "--experiment", "tb")
    assert again.stdout.startswith("imported 0 runs with 0 metric points\nskipped 20 runs:")


def test_import_tensorboard_into_an_empty_experiment_name_is_refused_as_a_blank_one_is(tunedeck):
    """An empty --experiment was taken as no option at all, and imported the runs again under the folder's name."""
    logdir = str(FIXTURES / "tensorboard")

    empty, blank = (tunedeck("import", "tensorboard", logdir, "--experiment", name) for name in ("", "   "))

    assert empty.returncode == blank.returncode != 0
    assert empty.stderr == blank.stderr
    assert "name must not be empty" in empty.stderr


def test_import_mlflow_from_a_folder_summarises_what_was_skipped_and_why(tunedeck):
    result = tunedeck("import", "mlflow", str(FIXTURES / "mlruns"))

    assert result.returncode == 0, result.stderr
    assert "imported 4 runs with 42 metric points into 2 new experiments" in result.stdout
    assert "still RUNNING in MLflow; import again once it has ended" in result.stdout
    assert "deleted in MLflow" in result.stdout


def test_import_from_something_else_is_a_message_not_a_traceback(tunedeck):
    result = tunedeck("import", "mlflow", "http://localhost:5000")

    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot read http://localhost:5000: give an MLflow SQLite database")
    assert "Traceback" not in result.stderr


def test_worker_help_lists_its_options_without_opening_the_queue(tunedeck, tmp_path):
    """`--help` made the data folder and the queue's database in it before printing anything."""
    result = tunedeck("worker", "--help")

    assert result.returncode == 0
    assert "--workers WORKERS" in result.stdout and "--idle-exit" in result.stdout
    assert not (tmp_path / "data").exists()


def test_worker_refuses_an_idle_exit_that_is_not_a_positive_number(tunedeck, tmp_path):
    """`--idle-exit -5` started a worker that never exited for idleness; `0` did the same silently."""
    negative, zero = (tunedeck("worker", "--idle-exit", seconds) for seconds in ("-5", "0"))

    assert negative.returncode == zero.returncode == 2
    assert "argument --idle-exit: a number of seconds more than 0, got '-5'" in negative.stderr
    assert "got '0'" in zero.stderr
    assert not (tmp_path / "data").exists()


def test_ui_help_says_it_is_the_dashboard_before_streamlits_options(tunedeck):
    result = tunedeck("ui", "--help")

    assert result.returncode == 0
    assert result.stdout.startswith("Usage: tunedeck ui [STREAMLIT OPTIONS]: the dashboard, as `streamlit run app.py`.")
    assert "--server.port" in result.stdout


def test_ui_uses_tunedecks_streamlit_settings_unless_the_folder_has_its_own(tmp_path):
    assert "--server.address=localhost" in streamlit_config(tmp_path)
    assert "--client.showErrorDetails=none" in streamlit_config(tmp_path)
    assert streamlit_config(ROOT) == []  # Streamlit reads ./.streamlit/config.toml itself


def test_ui_served_to_other_machines_prints_the_address_they_open():
    """README's team command (--server.address 0.0.0.0) printed only http://localhost:8501."""
    assert shown_address(("--server.address", "0.0.0.0")) == [f"--browser.serverAddress={socket.getfqdn()}"]
    assert shown_address(("--server.address=10.0.0.5", "--server.port", "8502")) == ["--browser.serverAddress=10.0.0.5"]
    assert shown_address(("--server.port", "8502")) == shown_address(("--server.address", "localhost")) == []
    assert shown_address(("--server.address", "0.0.0.0", "--browser.serverAddress", "app.team")) == []


def test_ui_serves_the_app(tmp_path):
    command = [sys.executable, "-m", "tunedeck.cli", "ui", "--server.port", str(port := free_port())]
    env = clean_env(tmp_path / "data", PYTHONPATH=str(ROOT))
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not healthy(f"http://localhost:{port}") and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
        assert healthy(f"http://localhost:{port}")
    finally:
        stop(server)


def test_samples_prints_a_runs_samples_as_json_lines_and_says_when_there_are_none(tunedeck, tmp_path):
    held = DuckDBStore(tmp_path / "data" / "tunedeck.duckdb")
    experiment_id = held.create_experiment({"name": "cli samples", "dataset": "x.csv"})
    run_id = held.create_run(experiment_id, {"epochs": 1})
    held.log_samples(
        run_id, 4, [{"example_id": 1, "input": "<b>hi</b>", "reference": "a", "prediction": "b", "extra": {"confidence": 0.5}}]
    )
    held.close()

    printed = tunedeck("samples", str(run_id))
    missing = tunedeck("samples", str(run_id), "--step", "9")

    assert printed.returncode == 0, printed.stderr
    (line,) = [json.loads(text) for text in printed.stdout.splitlines()]
    assert (line["run_id"], line["step"], line["example_id"], line["input"]) == (run_id, 4, "1", "<b>hi</b>")
    assert line["extra"] == {"confidence": 0.5}
    assert missing.returncode == 1 and "no samples at step 9; it has samples at steps 4" in missing.stderr


def test_samples_on_a_folder_with_no_store_says_so_and_makes_nothing(tunedeck, tmp_path):
    """A mistyped TUNEDECK_DATA_DIR made a new, empty store there and then said the run did not exist."""
    result = tunedeck("samples", "3")

    assert result.returncode == 1
    assert result.stderr == f"Error: no TuneDeck store in {tmp_path / 'data'} (TUNEDECK_DATA_DIR): no run 3 to read\n"
    assert not (tmp_path / "data").exists()
