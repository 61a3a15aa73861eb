"""`tunedeck ui | worker | import | store | doctor`: one command for what used to be `streamlit run` and `python -m ...`."""

import os
import socket
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from core import flocks, open_store, resources
from core.dataset_labels import imported_from
from core.errors import TuneDeckError
from core.importers import mlflow, tensorboard
from core.importers.runs import ImportSummary, SourceRun, import_runs
from core.samples import sample_lines
from core.settings import get_settings
from core.store_url import is_postgres, safe_message
from tunedeck import doctor as health

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(health.package_version("tunedeck"), message="tunedeck %(version)s")
@click.pass_context
def main(context: click.Context) -> None:
    """TuneDeck: an experiment dashboard for LoRA fine-tuning. The store lives in TUNEDECK_DATA_DIR (./data)."""
    if context.invoked_subcommand == "worker":  # it refuses bad settings itself, as `python -m jobs.worker` does
        return
    try:
        get_settings()
    except TuneDeckError as error:  # bad configuration stops here with what to fix, before any command runs
        raise click.ClickException(str(error)) from None


@main.command(context_settings=PASS_THROUGH)
@click.argument("streamlit_args", nargs=-1, type=click.UNPROCESSED)
def ui(streamlit_args: tuple[str, ...]) -> None:
    """Run the dashboard (streamlit run app.py); other options go to Streamlit, e.g. --server.port 8502."""
    command = [sys.executable, "-m", "streamlit", "run", str(resources.app_file()), *streamlit_config(Path.cwd())]
    if {"-h", "--help"} & set(streamlit_args):  # what follows is Streamlit's own help: say whose
        click.echo("Usage: tunedeck ui [STREAMLIT OPTIONS]: the dashboard, as `streamlit run app.py`. Streamlit's options:\n")
        sys.stdout.flush()
    shown = shown_address(streamlit_args)
    os.execv(sys.executable, [*command, *streamlit_args, *shown])  # Streamlit takes this process over: signals reach it


def shown_address(streamlit_args: tuple[str, ...]) -> list[str]:
    """The app served to other machines (--server.address 0.0.0.0, as README's Team mode) prints the address they
    open, not the "localhost" of TuneDeck's settings, which only this machine can."""
    args = list(streamlit_args)
    if any(arg.startswith("--browser.serverAddress") for arg in args):
        return []
    address = next((value for flag, value in zip(args, [*args[1:], ""], strict=True) if flag == "--server.address"), None)
    address = next((arg.partition("=")[2] for arg in args if arg.startswith("--server.address=")), address)
    if not address or address in ("localhost", "127.0.0.1", "::1"):
        return []
    return [f"--browser.serverAddress={socket.getfqdn() if address in ('0.0.0.0', '::') else address}"]


def streamlit_config(folder: Path) -> list[str]:
    """TuneDeck's .streamlit/config.toml as options, unless the folder has its own (Streamlit reads that one)."""
    if (folder / ".streamlit" / "config.toml").is_file():
        return []
    config = tomllib.loads((resources.root() / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    return [
        f"--{section}.{key}={str(value).lower() if isinstance(value, bool) else value}"
        for section, options in config.items()
        for key, value in options.items()
    ]


@main.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def worker(worker_args: tuple[str, ...]) -> None:
    """Run a worker for queued training jobs (python -m jobs.worker; --help lists its options)."""
    from jobs.worker import main as worker_main  # the queue opens on import: only for this command

    worker_main(list(worker_args))


@main.command()
def doctor() -> None:
    """Check the store, queue, workers, versions and dataset folders; say what to do about each problem."""
    failed = False
    for check in health.checks():
        click.echo(f"{check.state.upper():4}  {check.name}: {check.detail}")
        failed |= check.state == health.FAIL
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("run_id", type=int)
@click.option("--step", type=int, help="only this evaluation step (default: every step)")
def samples(run_id: int, step: int | None) -> None:
    """Print a run's prediction samples as JSON lines (one example at one step per line)."""
    settings = get_settings()
    if not settings.store_url.get_secret_value() and not settings.store_path.exists():  # a mistyped folder: not made
        raise click.ClickException(f"no TuneDeck store in {settings.data_dir} (TUNEDECK_DATA_DIR): no run {run_id} to read")
    try:
        found = open_store().get_samples([run_id], step=step)
        if found.is_empty():
            steps = open_store().list_sample_steps(run_id)
            hint = f"; it has samples at steps {', '.join(map(str, steps))}" if steps else ""
            raise click.ClickException(f"run {run_id} has no samples{' at step ' + str(step) if step is not None else ''}{hint}")
    except TuneDeckError as error:
        raise click.ClickException(str(error)) from None
    for line in sample_lines(found):
        click.echo(line)


@main.group()
def store() -> None:
    """Move a whole store between the embedded file and PostgreSQL (team mode)."""


@store.command("copy")
@click.option("--from", "source", required=True, help="a data folder, a .duckdb file or a postgresql:// URL")
@click.option("--to", "destination", required=True, help="a data folder, a .duckdb file or a postgresql:// URL")
def store_copy(source: str, destination: str) -> None:
    """Copy everything (deleted experiments too) and verify it by row counts and checksums; safe to run again.
    Stop the app and the workers of an embedded store first."""
    from core.store_copy import copy_store

    bars = []

    def start(total: int):
        bars.append(click.progressbar(length=total, label="copying rows", file=sys.stderr))
        return bars[0].__enter__().update

    try:
        report = copy_store(source, destination, start)
    except TuneDeckError as error:
        raise click.ClickException(str(error)) from None
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    click.echo("\n".join(report.lines()))
    if is_postgres(destination) and not get_settings().queue_url:  # the queue lives in the store's database
        _queue_tables_in(destination)


def _queue_tables_in(url: str) -> None:
    """The team's queue lives in the store's database: its tables made now, so workers can start on the copy."""
    from jobs.queue_tables import make_queue_tables, queue_storage

    try:
        make_queue_tables(queue_storage(url))
    except Exception as error:  # noqa: BLE001 - the driver's own error, said without the password
        raise click.ClickException(
            f"the store was copied, but the job queue's tables could not be made ({safe_message(error)}); run "
            "`tunedeck doctor` once as the database's owner (README, Team mode) before starting workers"
        ) from None
    click.echo("job queue tables ready")


IMPORT_LOCK = "import.lock"


@main.group("import")
def import_() -> None:
    """Bring runs from MLflow or TensorBoard into the store; importing again adds only what is new."""


@import_.command("mlflow")
@click.argument("tracking_uri")
def import_mlflow(tracking_uri: str) -> None:
    """Import an MLflow store: sqlite:///mlflow.db, a database file, or an mlruns folder."""
    _import(lambda skipped: mlflow.read(tracking_uri, skipped), imported_from("MLflow"))


@import_.command("tensorboard")
@click.argument("logdir", type=click.Path(path_type=Path))
@click.option("--experiment", help="experiment to import into (default: the log folder's name)")
def import_tensorboard(logdir: Path, experiment: str | None) -> None:
    """Import each run's scalars from a TensorBoard log folder (one run per folder of event files)."""
    _import(lambda _: tensorboard.read(logdir, experiment), imported_from("TensorBoard"))


@contextmanager
def _one_import_at_a_time() -> Iterator[None]:
    """Imports into one data folder's store take turns: two at once (a cron job and a hand) each found a run not
    imported yet, and both brought it in."""
    folder = get_settings().data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = (folder / IMPORT_LOCK).open("a")
    except OSError as error:
        raise click.ClickException(f"cannot import into the data folder {folder}: {error}") from None
    with lock:
        if not flocks.take(lock, wait=0):
            click.echo("another import into this store is running: waiting for it to end", err=True)
            flocks.take(lock, wait=float("inf"))
        yield


def _import(read: Callable[[list[str]], list[SourceRun]], dataset: str) -> None:
    """Read the source, import its runs with a progress bar, and print what was imported and skipped; exit code 1
    when nothing was imported because nothing there could be read as metrics, 130 on Ctrl-C (after saying how far it
    got: the same command again imports the rest)."""
    summary = ImportSummary()
    try:
        runs = read(summary.skipped)
        with _one_import_at_a_time(), click.progressbar(length=len(runs), label="importing runs", file=sys.stderr) as bar:
            import_runs(open_store(), runs, summary, dataset=dataset, advance=bar.update)
    except TuneDeckError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        click.echo("\n".join(summary.lines()))
        click.echo(
            "\nimport interrupted: the same command again imports what is not in yet (a run it cut short is in the "
            "store as failed, and is imported again whole)",
            err=True,
        )
        sys.exit(130)
    click.echo("\n".join(summary.lines()))
    if summary.read_nothing:
        sys.exit(1)


if __name__ == "__main__":
    main()
