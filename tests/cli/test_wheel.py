"""`pip install .` (not editable) gives a working command, app, worker and sample data, away from the checkout."""

import ast
import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, clean_env

LEFT_BEHIND = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", "tests", "bench", "*.duckdb*", "queue.sqlite3*"
)

TRAIN_FROM_THE_WHEEL = textwrap.dedent(
    """
    import json, sys, time
    import core
    from core import open_store, resources
    from jobs.tasks import start_run

    store = open_store()
    experiment_id = store.create_experiment({"name": "from the wheel", "dataset": resources.sample_dataset()})
    run_id = start_run(store, experiment_id, {"epochs": 3, "learning_rate": 0.01})
    deadline = time.monotonic() + 120
    while not store.get_run(run_id).status.is_terminal and time.monotonic() < deadline:
        time.sleep(0.2)
    run = store.get_run(run_id)
    accuracy = run.metrics["eval_accuracy"].last if "eval_accuracy" in run.metrics else None
    print(json.dumps({"core": core.__file__, "status": run.status.value, "error": run.error,
                      "accuracy": accuracy, "adapter": run.adapter is not None}))
    """
)

APP_FROM_THE_WHEEL = textwrap.dedent(
    """
    from streamlit.testing.v1 import AppTest
    from core import resources

    app = AppTest.from_file(str(resources.app_file()), default_timeout=60).run()
    assert not app.exception, app.exception
    print(app.title[0].value)
    """
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel built from this checkout; its deps come from this environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=LEFT_BEHIND)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--quiet", "-w", str(tmp / "dist")], check=True
    )
    (wheel,) = (tmp / "dist").glob("tunedeck-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # this pip installs into it
    site = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies this environment already has (requirements.txt), without the checkout itself.
    Path(site, "tunedeck-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True)
    return venv


def run_in(venv: Path, folder: Path, *command: str) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    env = clean_env(folder / "data")
    env.pop("PYTHONPATH", None)
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=180)


def test_doctor_from_the_wheel_finds_everything_installed(installed, tmp_path):
    result = run_in(installed, tmp_path, str(installed / "bin" / "tunedeck"), "doctor")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "TuneDeck 0.1.0" in result.stdout
    assert f"sample data: {installed}" in result.stdout and "tunedeck_app/data/sample and the tiny-base model" in result.stdout


def test_a_builtin_run_trains_from_the_wheel_with_its_sample_data(installed, tmp_path):
    result = run_in(installed, tmp_path, str(installed / "bin" / "python"), "-c", TRAIN_FROM_THE_WHEEL)

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["core"].startswith(str(installed)), "the installed package ran, not the checkout"
    assert outcome["status"] == "completed", outcome["error"]
    assert outcome["accuracy"] > 0.9 and outcome["adapter"]


def test_the_wheel_ships_both_tiny_models_where_runs_look_for_them(installed, tmp_path):
    listing = "from core.models import list_models, model_roots; print(sorted((m.name, str(m.path)) for m in list_models(model_roots())))"
    result = run_in(installed, tmp_path, str(installed / "bin" / "python"), "-c", listing)

    assert result.returncode == 0, result.stderr
    found = dict(ast.literal_eval(result.stdout.strip().splitlines()[-1]))
    assert set(found) == {"tiny-base", "tiny-gpt2"}  # the peft trainer's default base model too, not only the builtin's
    assert all(path.startswith(str(installed)) for path in found.values()), found


def test_the_app_from_the_wheel_runs_its_pages(installed, tmp_path):
    result = run_in(installed, tmp_path, str(installed / "bin" / "python"), "-c", APP_FROM_THE_WHEEL)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "Experiments"


def pins(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def test_the_package_declares_the_pins_of_the_requirements_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_tools = {"pytest==9.0.3", "playwright==1.65.2", "pytest-xdist==3.8.0"}

    assert set(project["dependencies"]) == pins(ROOT / "requirements.txt") - test_tools
    assert set(project["optional-dependencies"]["train"]) == pins(ROOT / "requirements-train.txt")
