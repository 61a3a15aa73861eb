"""The store server: one process owns the file, every other process sends it whole operations."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.flight as flight
import pytest

from core import remote
from core.duckdb_store import DuckDBStore
from core.errors import ConflictError, NotFoundError, StoreBusyError, StoreError, ValidationError
from core.remote import RemoteStore
from core.status import RunStatus
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(store_path: Path):
    """A store reached as every process but its server reaches it; the server is stopped afterwards."""
    yield RemoteStore(store_path, timeout=10, idle_exit=30)
    assert remote.stop(store_path)


def server_pid(path: Path) -> int:
    return int(Path(f"{remote.address_for(path.resolve())}.lock").read_text())


def run_child(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_fresh_process_lists_runs_as_a_frame_without_loading_pydantic(served, store_path):
    """A cold `python -c` pays for what it imports: Pydantic and pydantic-settings were ~60 ms of its ~300
    (BENCHMARKS.md, a cold process). A frame needs neither; an entity still decodes through Pydantic."""
    experiment_id = served.create_experiment({"name": "cold", "dataset": "d.csv"})
    served.create_run(experiment_id, {"learning_rate": 0.01})
    child = run_child(
        f"""
        import sys
        from core import open_store
        store = open_store({str(store_path.parent)!r})
        table = store.runs_table({experiment_id}, order_by="created_at")
        loaded = sorted(name for name in sys.modules if name.split(".")[0].startswith("pydantic"))
        print(table.height, loaded, store.get_experiment({experiment_id}).name)
        """
    )

    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["1", "[]", "cold"]


def test_every_primitive_answers_a_type_the_client_can_decode():
    """The contract's annotations stay text until a decoder asks for them (core.store.return_type): a type named from
    a module that function does not look in would fail only when that answer first came back."""
    import inspect

    from core.store import TrackingStore, operations, return_type

    for operation in operations():
        resolved, written = return_type(operation), inspect.signature(getattr(TrackingStore, operation)).return_annotation
        # the client routes by the text (a frame comes as Arrow, None as nothing): it must say what the type is
        assert (resolved is pl.DataFrame) == (written == "pl.DataFrame"), operation
        assert (resolved is type(None)) == (written == "None"), operation


def test_the_first_request_starts_a_server_that_other_processes_share(served, store_path):
    experiment_id = served.create_experiment({"name": "shared", "dataset": "d.csv"})

    assert remote.running(store_path)
    child = run_child(
        f"""
        import duckdb
        try:
            duckdb.connect({str(store_path)!r})
        except duckdb.IOException:
            print("the file is held")
        from core.remote import RemoteStore
        print(RemoteStore({str(store_path)!r}).get_experiment({experiment_id}).name)
        """
    )
    assert child.stdout.split() == ["the", "file", "is", "held", "shared"], child.stderr


def test_only_one_server_runs_per_store_however_many_start(served, store_path):
    served.create_experiment({"name": "one", "dataset": "d.csv"})
    first = server_pid(store_path)
    others = [
        subprocess.Popen([sys.executable, "-m", "core.store_server", str(store_path), "--idle-exit", "5"], cwd=ROOT)
        for _ in range(3)
    ]
    assert [process.wait(timeout=60) for process in others] == [0, 0, 0]  # each saw the live one and left
    assert server_pid(store_path) == first
    assert served.list_experiments().total == 1


def test_an_idle_server_exits_and_lets_go_of_the_file(store_path):
    store = RemoteStore(store_path, idle_exit=1.0)
    store.create_experiment({"name": "idle", "dataset": "d.csv"})
    pid = server_pid(store_path)
    wait_for(lambda: not remote.process_alive(pid), timeout=30, what="the idle server to exit", every=0.1)

    assert not remote.process_alive(pid)
    duckdb.connect(str(store_path), read_only=True).close()  # nobody holds it now
    assert store.list_experiments().items[0].name == "idle"  # and the next request starts a new server
    assert remote.stop(store_path)


def test_a_killed_server_is_replaced_by_the_next_request_and_nothing_committed_is_lost(served, store_path):
    experiment_id = served.create_experiment({"name": "survivor", "dataset": "d.csv"})
    old = server_pid(store_path)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not remote.running(store_path), timeout=30, what="the killed server's claim to go")

    assert served.get_experiment(experiment_id).name == "survivor"
    assert server_pid(store_path) != old


def test_the_servers_errors_reach_the_caller_as_the_same_kind_and_message(served):
    experiment_id = served.create_experiment({"name": "taken", "dataset": "d.csv"})

    with pytest.raises(NotFoundError, match="no run with ID 404"):
        served.get_run(404)
    with pytest.raises(ConflictError, match="an experiment named “taken” already exists"):
        served.create_experiment({"name": "taken", "dataset": "d.csv"})
    with pytest.raises(ValidationError) as caught:
        served.create_experiment({"name": "", "dataset": "d.csv"})
    assert "name" in caught.value.field_errors
    with pytest.raises(ValidationError, match="unexpected keyword argument"):
        served.get_experiment(experiment_id, deleted=True)


def test_an_operation_outside_the_contract_is_refused(served, store_path):
    served.create_experiment({"name": "x", "dataset": "d.csv"})
    client = flight.FlightClient(f"grpc+unix://{served.address}")

    with pytest.raises(flight.FlightServerError, match="unknown store operation 'close'"):
        list(client.do_action(flight.Action("close", b"{}")))
    assert served.list_experiments().total == 1


def test_a_request_that_does_not_fit_the_contract_is_a_bad_request_and_the_store_answers_on(served):
    """Arguments are bound to the contract's call before the operation runs: what does not fit is a bad request."""
    experiment_id = served.create_experiment({"name": "x", "dataset": "d.csv"})
    client = flight.FlightClient(f"grpc+unix://{served.address}")

    with pytest.raises(flight.FlightServerError, match="got an unexpected keyword argument 'deleted'") as caught:
        list(client.do_action(flight.Action("get_experiment", json.dumps({"experiment_id": experiment_id, "deleted": 1}).encode())))
    assert "bad request" in str(caught.value.extra_info)
    with pytest.raises(flight.FlightServerError, match="missing a required argument: 'max_silence_seconds'"):
        list(client.do_action(flight.Action("fail_stale_runs", b"{}")))
    assert served.get_experiment(experiment_id).name == "x"


def test_opening_a_file_its_store_server_holds_says_who_holds_it_and_what_to_do(served):
    served.list_experiments()  # the server is up and holds the file

    with pytest.raises(StoreBusyError) as busy:
        DuckDBStore(served.path).db  # noqa: B018 - opening is the point

    assert str(busy.value).startswith(f"the store at {served.path} is in use by its store server (pid {server_pid(served.path)})")
    assert "stop the app and workers that use it and try again" in str(busy.value)


def test_opening_a_file_another_program_holds_names_that_program(store_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; held = duckdb.connect({str(store_path)!r}); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "open\n"
        with pytest.raises(StoreBusyError, match=rf"is held by another process \(pid {holder.pid}: .*python.* -c import duckdb"):
            DuckDBStore(store_path).db  # noqa: B018 - opening is the point
    finally:
        holder.kill()
        holder.wait()


class LateClient(RemoteStore):
    """The real client, whose timeout runs out a moment before the server takes its request up."""

    def _deadline(self) -> float:
        return time.monotonic() - 0.001


def test_writes_their_client_gave_up_on_are_refused_starts_and_ends_too(served):
    """A server too busy (or paused) to take a write before its client's timeout must not apply it later: the client
    sends it again (its points with what came after: the old copy would overwrite those steps; a start: two runs)."""
    run_id = served.begin_run("late", {}, worker="test")
    served.end_run(served.begin_run("late", {}, worker="test"), "completed")  # starts and ends are answered early now
    points = pl.DataFrame({"run_id": [run_id], "key": ["loss"], "step": [1], "value": [3.0], "wall_time": [datetime(2026, 1, 1)]})
    experiment_id = served.get_run(run_id).experiment_id

    late = LateClient(served.path, timeout=served.timeout)
    for write in (lambda: late.log_metrics(points), lambda: late.begin_run("late", {}, worker="test"), lambda: late.end_run(run_id, "completed")):
        with pytest.raises(StoreBusyError, match="longer than its client waited"):
            write()

    assert served.get_run_metrics(run_id).series.is_empty()
    assert len(served.list_runs(experiment_id)) == 2
    assert served.get_run(run_id).status is RunStatus.RUNNING


def test_a_write_sent_while_the_server_is_paused_past_its_timeout_is_not_applied_when_it_resumes(store_path):
    """Through the client itself, both ways points travel (inside the request, and streamed when the batch is large)."""
    store = RemoteStore(store_path, timeout=0.5, idle_exit=30)
    try:
        run_id = store.begin_run("paused", {}, worker="test")
        small = pl.DataFrame({"run_id": run_id, "key": "loss", "step": [1], "value": [3.0], "wall_time": datetime(2026, 1, 1)})
        large = pl.DataFrame(
            {"run_id": run_id, "key": "lr", "step": range(remote.SMALL_BATCH + 1), "value": 0.1, "wall_time": datetime(2026, 1, 1)}
        )
        server = server_pid(store_path)
        os.kill(server, signal.SIGSTOP)
        try:
            for batch in (small, large):
                with pytest.raises(StoreBusyError):
                    store.log_metrics(batch)
        finally:
            os.kill(server, signal.SIGCONT)
        after = small.with_columns(key=pl.lit("after"))
        store.log_metrics(after)  # sent behind the two: once it is answered, the server has taken them up

        assert store.get_run_metrics(run_id).series["key"].to_list() == ["after"]
    finally:
        assert remote.stop(store_path)


def test_only_this_user_can_reach_the_servers_socket(served):
    served.create_experiment({"name": "private", "dataset": "d.csv"})

    assert stat.S_IMODE(os.stat(served.address).st_mode) & 0o077 == 0


def test_a_client_stalled_or_killed_in_the_middle_of_a_write_holds_up_nobody(served, store_path):
    experiment_id = served.create_experiment({"name": "stalled", "dataset": "d.csv"})
    run_id = served.create_run(experiment_id, {})
    stalled = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import json, time
                import polars as pl, pyarrow.flight as flight
                points = pl.DataFrame({{"run_id": [{run_id}] * 1000, "key": ["loss"] * 1000, "step": list(range(1000)),
                                        "value": [0.5] * 1000, "wall_time": [None] * 1000}}).cast({{"wall_time": pl.Datetime("us")}})
                client = flight.FlightClient("grpc+unix://{served.address}")
                writer, _ = client.do_put(flight.FlightDescriptor.for_command(json.dumps({{"operation": "log_metrics", "rows": 2000}})),
                                          points.to_arrow().schema)
                writer.write_table(points.to_arrow())  # half a request: the batch never ends
                print("writing", flush=True)
                time.sleep(600)
                """
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stalled.stdout.readline().strip() == "writing"
        os.kill(stalled.pid, signal.SIGSTOP)
        prompt = RemoteStore(store_path, timeout=5)  # a write lock held by the stalled client would time this out
        other = prompt.create_run(experiment_id, {})
        prompt.mark_running(other, "w")
        prompt.complete_run(other)
        assert prompt.get_run(other).status is RunStatus.COMPLETED
    finally:
        os.kill(stalled.pid, signal.SIGKILL)
        stalled.wait()

    assert served.get_run(run_id).metrics == {}  # nothing of the half-sent batch
    assert served.verify_integrity() == []


def test_a_request_that_no_server_can_serve_is_a_clear_error(tmp_path):
    (tmp_path / "tunedeck.duckdb").write_text("this is not a database")
    store = RemoteStore(tmp_path / "tunedeck.duckdb", timeout=5)

    with pytest.raises(StoreError, match="could not start the store server"):
        store.list_experiments()
    assert "tunedeck.duckdb" in (tmp_path / "logs" / "store-server.log").read_text()


def test_a_data_folder_that_cannot_hold_the_store_says_so_rather_than_naming_a_log_it_could_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("a file where the data folder would go")
    store = RemoteStore(tmp_path / "notes.txt" / "tunedeck.duckdb", timeout=5)

    with pytest.raises(StoreError, match=r"could not start the store server for .*; cannot write .*notes.txt \(TUNEDECK_DATA_DIR must name a folder you may write\)"):
        store.list_experiments()


def test_a_setting_the_server_refuses_is_named_to_a_reader_that_does_not_read_it_itself(tmp_path, monkeypatch):
    """A script that only reads reads three settings; the server it starts reads all, and a wrong one of the others
    stopped the script with "see store-server.log", where alone the setting was named."""
    monkeypatch.setenv("TUNEDECK_WORKERS", "abc")
    store = RemoteStore(tmp_path / "tunedeck.duckdb", timeout=5)

    with pytest.raises(StoreError) as refused:
        store.list_experiments()

    assert str(refused.value).startswith(
        f"could not start the store server for {tmp_path / 'tunedeck.duckdb'}: it reads every setting, and TUNEDECK_WORKERS: "
    )
    assert str(refused.value).endswith("got 'abc'")


def test_a_store_in_a_folder_with_spaces_is_served(tmp_path):
    store = RemoteStore(tmp_path / "my experiments" / "tunedeck.duckdb", timeout=10)

    experiment_id = store.create_experiment({"name": "spaced", "dataset": "d.csv"})

    assert store.get_experiment(experiment_id).name == "spaced"
    assert " " not in store.address
    assert remote.stop(store.path)


def test_requests_served_on_threads_of_their_own_share_a_few_read_connections(backing, store, make_experiment):
    experiment_id = make_experiment()
    for number in range(40):
        store.set_tags("experiment", experiment_id, {"round": str(number)})  # a commit: the reads below are read anew
        store.get_experiment(experiment_id)
        store.runs_table(experiment_id)

    assert backing.db.read_connections <= 4  # one per read at the same moment, not one per request (80 here)


def test_a_request_that_timed_out_says_so_in_words_not_in_the_transports():
    error = remote._as_store_error(flight.FlightTimedOutError("Flight returned timeout error, with message: Deadline Exceeded"))

    assert isinstance(error, StoreBusyError)
    assert str(error) == "the store did not answer in time (busy, or its server paused); try again in a moment"


def test_a_server_failure_that_is_not_a_store_error_reaches_the_caller_as_its_first_line_without_grpcs_detail(tmp_path):
    """What a Flight server sends for an exception it did not expect, from a real one: the message, then gRPC's
    ". Detail:" with the server's traceback; the caller gets the message alone, never the traceback."""

    class Failing(flight.FlightServerBase):
        def do_get(self, context, ticket):
            raise RuntimeError("disk on fire")

    server = Failing(f"grpc+unix://{tmp_path / 'failing.sock'}")
    try:
        with pytest.raises(flight.FlightError) as raised:
            flight.FlightClient(f"grpc+unix://{tmp_path / 'failing.sock'}").do_get(flight.Ticket(b"")).read_all()
    finally:
        server.shutdown()

    assert "Traceback" in str(raised.value)  # what the cut has to remove
    error = remote._as_store_error(raised.value)
    assert isinstance(error, StoreError)
    assert str(error) == "the store server failed: disk on fire"


def test_only_duckdbs_own_fatal_error_counts_as_fatal_not_a_message_that_quotes_the_words():
    """The server exits on a fatal error: a name someone typed must never make it do so."""
    from core.database import is_fatal, store_error

    fatal = duckdb.FatalException("FATAL Error: Failed to create checkpoint: No space left on device")

    assert is_fatal(fatal) and is_fatal(store_error(Path("t.duckdb"), fatal))
    assert not is_fatal(ConflictError("an experiment named 'FATAL Error' already exists"))
    assert not is_fatal(store_error(Path("t.duckdb"), duckdb.ConstraintException("Constraint Error: 'FATAL Error' taken")))


def test_a_name_that_quotes_fatal_error_leaves_the_server_running(served, store_path):
    served.create_experiment({"name": "FATAL Error", "dataset": "d.csv"})
    pid = server_pid(store_path)

    with pytest.raises(ConflictError):
        served.create_experiment({"name": "FATAL Error", "dataset": "d.csv"})
    with pytest.raises(NotFoundError):
        served.find_adapter("FATAL Error")

    assert served.list_experiments().total == 1
    assert server_pid(store_path) == pid
