"""`tunedeck doctor`: each part TuneDeck needs, OK or what to do about it."""

import glob
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from core import open_store, resources
from core.artifacts import artifact_store
from core.errors import StoreBusyError, TuneDeckError
from core.journal import REFUSED
from core.lifecycle import DAMAGED
from core.lifecycle import REFUSED as EVENTS_REFUSED
from core.settings import Settings, get_settings
from core.store_url import checked_store_url, is_postgres, redacted, safe_message, scrubbed

OK, WARN, FAIL = "ok", "warn", "fail"
PACKAGES = ("streamlit", "duckdb", "polars", "pyarrow", "huey", "pydantic")


@dataclass(frozen=True)
class Check:
    name: str
    state: str
    detail: str


def checks(settings: Settings | None = None) -> list[Check]:
    settings = settings or get_settings()
    return [
        versions(),
        store(settings),
        queue(settings),
        workers(settings),
        _guarded("artifacts", lambda: artifacts(settings), "fix TUNEDECK_ARTIFACT_ROOT"),
        dataset_roots(settings),
        sample_data(),
        _guarded("trainers", lambda: trainers(settings), "fix TUNEDECK_COMMANDS_FILE"),
    ]


def _guarded(name: str, check, hint) -> Check:
    """Run a check; an exception becomes a failure that says what went wrong and what to do (`hint`: the advice, or
    a function of the error that gives it)."""
    try:
        return check()
    except Exception as error:  # doctor reports, never crashes
        advice = hint(error) if callable(hint) else hint
        said = scrubbed(str(error).strip().splitlines()[0]) if isinstance(error, TuneDeckError) else safe_message(error)
        return Check(name, FAIL, f"{said}; {advice}" if advice else said)


def versions() -> Check:
    found = ", ".join(f"{name} {package_version(name)}" for name in PACKAGES)
    detail = f"TuneDeck {package_version('tunedeck')}, Python {platform.python_version()}, {found}"
    missing = [name for name in PACKAGES if package_version(name) == "missing"]
    if missing:
        return Check("versions", FAIL, f"{detail}; install them: pip install -r requirements.txt (or pip install . in the project folder)")
    return Check("versions", OK, detail)


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "(checkout)" if name == "tunedeck" else "missing"


def _no_store_yet(settings: Settings) -> bool:
    """Embedded, and nothing recorded in the data folder yet: a check looks without making a store there."""
    return not settings.team_mode and not settings.store_path.exists()


def _not_a_folder(settings: Settings) -> Check | None:
    if not settings.team_mode and settings.data_dir.exists() and not settings.data_dir.is_dir():
        return Check("store", FAIL, f"{settings.data_dir} is a file, not a folder; point TUNEDECK_DATA_DIR at a folder")
    return None


def store(settings: Settings) -> Check:
    def check() -> Check:
        if wrong := _not_a_folder(settings):
            return wrong
        if _no_store_yet(settings):
            return Check(
                "store",
                WARN,
                f"no store at {settings.store_path} yet: nothing was recorded there. If TUNEDECK_DATA_DIR is right, the "
                "first experiment (or `tunedeck ui`) makes one",
            )
        page = open_store(settings.data_dir).list_experiments(page_size=1, include_deleted=True)
        where = f"PostgreSQL {redacted(settings.store_url.get_secret_value())}" if settings.team_mode else settings.store_path
        kept = set_aside(settings)
        if kept:
            return Check(
                "store",
                WARN,
                f"{where} ({page.total} experiments); {len(kept)} file(s) hold what the store could not take, kept for a "
                f"person to look at: {', '.join(sorted(_shown(path, settings) for path in kept)[:5])} (README: How the store works)",
            )
        return Check("store", OK, f"{where} ({page.total} experiments)")

    def hint(error: Exception) -> str:
        if isinstance(error, StoreBusyError):
            return f"the store did not answer within TUNEDECK_LOCK_TIMEOUT ({settings.lock_timeout:g} s): try again, or allow longer"
        if "(README: Team mode)" in str(error) or "PGPASSWORD" in str(error):
            return None  # the store's error says what to do
        if settings.team_mode:
            return "check TUNEDECK_STORE_URL, that the server answers, and that the role may log in (README: Team mode)"
        return f"check that {settings.data_dir} is a folder you may write (TUNEDECK_DATA_DIR picks another)"

    return _guarded("store", check, hint)


def set_aside(settings: Settings) -> list[Path]:
    """Run events and metric journal segments the store could not take (a failing disk, a damaged file)."""
    store = glob.escape(settings.store_path.name)
    folder = settings.store_path.parent
    events = [*folder.glob(f"{store}.events.{EVENTS_REFUSED}-*"), *folder.glob(f"{store}.events.{DAMAGED}-*")]
    journals = (settings.data_dir / "journal").glob(f"*{REFUSED}")
    return [path for path in [*events, *journals] if path.is_file()]


def _shown(path: Path, settings: Settings) -> str:
    return str(path.relative_to(settings.data_dir)) if path.is_relative_to(settings.data_dir) else str(path)


def queue(settings: Settings) -> Check:
    def check() -> Check:
        url = settings.effective_queue_url
        if settings.team_mode and not settings.queue_url and not is_postgres(url):
            return Check(
                "queue", FAIL, "it lives in the store's database, and TUNEDECK_STORE_URL is no PostgreSQL URL (see the store's line)"
            )
        if not url and _not_a_folder(settings):
            return Check("queue", FAIL, f"{settings.data_dir} is a file, so the SQLite queue cannot be kept there")
        if is_postgres(url):
            checked_store_url(url, "TUNEDECK_QUEUE_URL" if settings.queue_url else "TUNEDECK_STORE_URL")  # before a driver echoes it
            from jobs.config import ready_queue  # in team mode the queue opens nothing on import

            ready_queue()  # its tables made on first use: the owner's first `tunedeck doctor` makes them
            return Check("queue", OK, f"PostgreSQL queue at {redacted(url)} answers")
        if url:
            from redis import Redis

            Redis.from_url(url, socket_timeout=2).ping()
            return Check("queue", OK, f"Redis at {redacted(url)} answers")
        folder = next(path for path in [settings.data_dir, *settings.data_dir.resolve().parents] if path.exists())
        if not os.access(folder, os.W_OK):  # the data folder, or where it will be made
            return Check("queue", FAIL, f"{folder} is not writable, so the SQLite queue cannot be used")
        return Check("queue", OK, f"SQLite queue {settings.queue_path}")

    hint = "start Redis or fix TUNEDECK_QUEUE_URL (pip install redis for a Redis queue), or unset it for the SQLite queue"
    if is_postgres(settings.effective_queue_url) and not settings.queue_url:
        hint = "the queue lives in the store's PostgreSQL database: fix TUNEDECK_STORE_URL (see the store's line)"
    return _guarded("queue", check, hint)


def workers(settings: Settings) -> Check:
    def check() -> Check:
        from core.presenters import plural, workers_training
        from jobs.lock import worker_pids, worker_running
        from jobs.reaper import looks_lost

        if _no_store_yet(settings):
            return Check("workers", OK, "no store yet, so no runs wait for a worker")
        store = open_store(settings.data_dir)
        active, now = store.list_active_runs(), store.now()
        queued = sum(run.status.value == "queued" for run in active)
        if worker_running(settings):
            pids = worker_pids(settings)  # the yes comes from the locks; a PID is only read, and may be missing
            which = f"{'a worker runs' if len(pids) <= 1 else f'{len(pids)} workers run'} on this data folder"
            which += f" (PID {', '.join(map(str, pids))})" if pids else ""
            return Check("workers", OK, f"{which}; {plural(len(active), 'run')} queued or running")
        if settings.team_mode:  # workers on other machines: seen only while they train
            start = "`tunedeck worker` on a GPU machine starts one"
            training = f"{plural(workers_training(active, now, settings.heartbeat_timeout), 'worker')} training on any machine, "
        else:
            start = "`tunedeck ui` starts one with the app, `tunedeck worker` starts one by hand"
            training = ""
        lost = [run.id for run in active if looks_lost(run, settings, now)]
        if lost:
            shown = ", ".join(map(str, lost[:10])) + (", ..." if len(lost) > 10 else "")
            return Check(
                "workers",
                WARN,
                f"{plural(len(lost), 'run')} {'shows' if len(lost) == 1 else 'show'} running but their process is gone or silent past the heartbeat timeout "
                f"(run {shown}); a worker fails them as lost: {start}",
            )
        state = WARN if queued else OK
        here = "no worker runs on this machine" if settings.team_mode else "no worker runs"
        return Check("workers", state, f"{here} ({training}{queued} runs queued); {start}")

    return _guarded("workers", check, "fix the store first (see above)")


def artifacts(settings: Settings) -> Check:
    """Where adapters go, and whether this machine can put them there."""
    if problem := artifact_store(settings).problem():
        return Check("artifacts", FAIL, f"{problem}; workers here refuse to start until it is fixed")
    if settings.artifact_root is not None:
        return Check("artifacts", OK, f"adapters are copied to {settings.artifact_root}, which every machine should mount")
    if settings.team_mode:
        return Check(
            "artifacts",
            WARN,
            f"TUNEDECK_ARTIFACT_ROOT is not set: adapters stay in {settings.adapters_dir} on the machine that trained "
            "them, and an app on another machine cannot offer them; set it to a folder every machine mounts",
        )
    return Check("artifacts", OK, f"adapters are kept in {settings.adapters_dir}")


def dataset_roots(settings: Settings) -> Check:
    roots = settings.allowed_dataset_roots
    missing = [str(root) for root in roots if not root.is_dir() and root != settings.data_dir.resolve()]
    listed = ", ".join(str(root) for root in roots)
    if missing:
        return Check("dataset roots", FAIL, f"{', '.join(missing)} missing; fix TUNEDECK_DATASET_ROOTS ({listed})")
    return Check("dataset roots", OK, listed)


def sample_data() -> Check:
    sample, model = resources.sample_dir() / "sentiment.csv", resources.models_dir() / "tiny-base" / "model.safetensors"
    missing = [str(path) for path in (sample, model) if not path.is_file()]
    if missing:
        return Check(
            "sample data", FAIL, f"{', '.join(missing)} missing; reinstall TuneDeck or run python -m scripts.make_sample_data"
        )
    return Check("sample data", OK, f"{sample.parent} and the tiny-base model")


def trainers(settings: Settings) -> Check:
    from core.commands import load_commands
    from jobs.trainers import available_trainers

    try:
        commands = ", ".join(sorted(load_commands(settings))) or f"none registered in {settings.commands_file}"
    except TuneDeckError as error:
        return Check("trainers", FAIL, f"{error}; runs with trainer 'command' fail until it is fixed")
    unavailable = {name: reason for name, reason in available_trainers().items() if reason}
    ready = ", ".join(name for name in available_trainers() if name not in unavailable)
    if unavailable:
        why = "; ".join(f"{name}: {reason}" for name, reason in unavailable.items())
        return Check("trainers", WARN, f"{ready} ready (commands: {commands}); {why}")
    return Check("trainers", OK, f"{ready} ready (commands: {commands})")
