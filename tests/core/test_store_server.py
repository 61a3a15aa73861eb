"""The store server: one process keeps the file open and every other process's operations go through it."""

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from core import remote
from core.db import connect
from core.duckdb_store import DuckDBStore
from core.errors import ConflictError, StoreError
from core.sql import first, rows
from core.store_server import StoreServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(store_path: Path, clock):
    """A store that starts a server on first use; the server stays while the test runs, then is stopped."""
    yield DuckDBStore(store_path, clock=clock, server_idle_exit=60.0)
    assert remote.stop(store_path.resolve())


SERVED_CHILD = """
from pathlib import Path
from core import remote
assert remote.running(Path({path!r}).resolve()), "the store server should be serving this child"
"""


def _server_pid(path: Path) -> int:
    return int(Path(f"{remote.address_for(path.resolve())}.lock").read_text())


def _gone(path: Path, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while remote.running(path.resolve()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _python(code: str, served_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run code in a fresh Python; with served_path, it first checks that the store's server is running."""
    prelude = SERVED_CHILD.format(path=str(served_path)) if served_path else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_first_use_starts_a_server_that_other_processes_share(served, store_path):
    experiment_id = served.create_experiment({"name": "shared", "dataset": "data/sample/sentiment.csv"})

    assert remote.running(store_path.resolve())
    with pytest.raises(duckdb.IOException, match="lock"):
        duckdb.connect(str(store_path), read_only=True)  # the server holds the file...
    child = _python(
        f"""
        from core.duckdb_store import DuckDBStore
        store = DuckDBStore({str(store_path)!r})  # ...and a process that would open it directly uses the server
        print(store.get_experiment({experiment_id}).name)
        store.create_run({experiment_id}, {{"lora_rank": 4}})
        """,
        served_path=store_path,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "shared"
    assert served.get_experiment_detail(experiment_id).experiment.run_count == 1


def test_only_one_server_runs_per_store_however_many_processes_start_one(served, store_path):
    served.list_experiments()
    first_pid = _server_pid(store_path)
    children = [
        subprocess.Popen([sys.executable, "-m", "core.store_server", str(store_path), "--idle-exit", "1"], cwd=ROOT)
        for _ in range(3)
    ]
    assert [child.wait(timeout=30) for child in children] == [0, 0, 0]  # each saw the claim taken and left
    assert _server_pid(store_path) == first_pid
    assert served.list_experiments().total == 0


def test_an_idle_server_exits_and_the_file_opens_directly_again(store_path, clock):
    DuckDBStore(store_path, clock=clock, server_idle_exit=1.0).create_experiment(
        {"name": "kept", "dataset": "data/sample/sentiment.csv"}
    )
    pid = _server_pid(store_path)

    assert _gone(store_path)
    con = duckdb.connect(str(store_path), read_only=True)
    assert con.execute("SELECT name FROM experiments").fetchall() == [("kept",)]
    con.close()
    deadline = time.monotonic() + 10
    while remote.process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not remote.process_alive(pid)


def test_a_killed_server_is_replaced_by_the_next_operation_and_nothing_committed_is_lost(served, store_path):
    experiment_id = served.create_experiment({"name": "before", "dataset": "data/sample/sentiment.csv"})
    old = _server_pid(store_path)
    os.kill(old, signal.SIGKILL)

    run_id = served.create_run(experiment_id, {"lora_rank": 8})  # finds the dead socket and starts a new server

    assert _server_pid(store_path) != old
    assert served.get_run(run_id).experiment_id == experiment_id
    assert served.get_experiment(experiment_id).name == "before"


def test_a_client_killed_mid_write_leaves_nothing_behind_and_blocks_no_one(served, store_path):
    experiment_id = served.create_experiment({"name": "audit", "dataset": "data/sample/sentiment.csv"})
    child = _python(
        f"""
        import os
        from pathlib import Path
        from core.db import connect
        from core.sql import rows
        with connect(Path({str(store_path)!r})) as con:
            rows(con, "UPDATE experiments SET name = 'half-written' WHERE id = ?", [{experiment_id}])
            os.kill(os.getpid(), 9)
        """,
        served_path=store_path,
    )
    assert child.returncode == -signal.SIGKILL

    impatient = DuckDBStore(store_path, lock_timeout=5)  # a write lock still held would fail it with StoreBusyError
    impatient.rename_experiment(experiment_id, "renamed")  # the write lock was released with the dead client's line
    assert served.get_experiment(experiment_id).name == "renamed"


def test_the_servers_errors_reach_the_caller_as_store_errors(served, store_path):
    served.create_experiment({"name": "taken", "dataset": "data/sample/sentiment.csv"})

    with pytest.raises(ConflictError, match="taken"):
        served.create_experiment({"name": "taken", "dataset": "data/sample/sentiment.csv"})
    with pytest.raises(StoreError, match="the store at .* failed"), connect(store_path) as con:
        rows(con, "SELECT * FROM no_such_table")
    assert served.list_experiments().total == 1


def test_a_failed_write_through_the_server_is_rolled_back(served, store_path):
    served.create_experiment({"name": "one", "dataset": "data/sample/sentiment.csv"})

    with pytest.raises(StoreError), connect(store_path) as con:
        rows(con, "UPDATE experiments SET name = 'changed'")
        rows(con, "INSERT INTO experiments (id) VALUES (NULL)")  # fails: the update goes too

    with connect(store_path, read_only=True) as con:
        assert first(con, "SELECT name FROM experiments") == ("one",)


def test_reads_see_a_snapshot_while_a_write_is_in_progress(served, store_path):
    served.create_experiment({"name": "snapshot", "dataset": "data/sample/sentiment.csv"})

    with connect(store_path) as writing:
        rows(writing, "UPDATE experiments SET name = 'uncommitted'")
        with connect(store_path, read_only=True) as reading:  # not blocked by the open write
            assert first(reading, "SELECT name FROM experiments") == ("snapshot",)
    assert served.list_experiments().items[0].name == "uncommitted"


def test_a_single_read_runs_without_a_transaction_and_refuses_a_second_statement(served, store_path):
    served.create_experiment({"name": "one", "dataset": "data/sample/sentiment.csv"})

    with connect(store_path, read_only=True, single=True) as con:
        assert first(con, "SELECT name FROM experiments") == ("one",)
        with pytest.raises(StoreError, match="single-statement read sent a second statement"):
            first(con, "SELECT count(*) FROM experiments")


def test_a_server_that_had_to_wait_for_the_file_still_serves(store_path, clock):
    DuckDBStore(store_path).create_experiment({"name": "waited", "dataset": "data/sample/sentiment.csv"})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(store_path)!r}); print(1, flush=True); time.sleep(3)",
        ],
        stdout=subprocess.PIPE,
    )
    holder.stdout.readline()  # another process holds the file for 3 s: longer than the server's idle time
    try:
        store = DuckDBStore(store_path, clock=clock, server_idle_exit=1.0, lock_timeout=30)
        assert store.list_experiments().total == 1

        assert remote.running(store_path.resolve())  # served by the server, which counts idle time from then
    finally:
        holder.wait()
        remote.stop(store_path.resolve())


def test_many_operations_at_once_are_each_served(served, store_path):
    served.create_experiment({"name": "one", "dataset": "data/sample/sentiment.csv"})

    child = _python(  # in a child with a time limit: a server that could not serve them all would hang it
        f"""
        import contextlib
        from pathlib import Path
        from core.db import connect
        from core.sql import first
        with contextlib.ExitStack() as stack:  # more lines open at once than the server keeps threads waiting
            lines = [stack.enter_context(connect(Path({str(store_path)!r}), read_only=True)) for _ in range(12)]
            print([first(line, "SELECT count(*) FROM experiments")[0] for line in lines])
        """,
        served_path=store_path,
    )

    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == str([1] * 12)


def test_a_stopped_server_finishes_the_operation_in_progress_first(served, store_path):
    experiment_id = served.create_experiment({"name": "before", "dataset": "data/sample/sentiment.csv"})

    with ThreadPoolExecutor(1) as pool:
        with connect(store_path) as con:
            rows(con, "UPDATE experiments SET name = 'after' WHERE id = ?", [experiment_id])
            stopped = pool.submit(remote.stop, store_path.resolve())
            time.sleep(0.5)
            assert not stopped.done()  # the server waits for this write's commit
        assert stopped.result(timeout=30)

    assert not remote.running(store_path.resolve())
    assert served.get_experiment(experiment_id).name == "after"


def test_a_server_that_hangs_up_as_it_goes_is_dialed_again_until_a_new_one_serves(store_path, clock):
    store = DuckDBStore(store_path, clock=clock, server_idle_exit=60.0)
    store.create_experiment({"name": "kept", "dataset": "data/sample/sentiment.csv"})
    assert remote.stop(store_path.resolve())
    address = remote.address_for(store_path.resolve())
    dying = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # like a killed server that still takes connections
    dying.bind(address)
    dying.listen()
    dying.settimeout(30)  # a client that stopped dialing fails this test rather than hanging it

    def hang_up_twice_then_go() -> None:
        for _ in range(2):
            line, _ = dying.accept()
            line.close()
        os.unlink(address)
        dying.close()

    with ThreadPoolExecutor(1) as pool:
        going = pool.submit(hang_up_twice_then_go)
        try:
            assert store.list_experiments().items[0].name == "kept"  # nothing had run: sent again to a new server
        finally:
            going.result(timeout=30)
            remote.stop(store_path.resolve())


class _AcceptFailsOnce(socket.socket):
    """A listener whose first accept() fails as when the process is out of file descriptors."""

    failed = False

    def accept(self):
        if not self.failed:
            type(self).failed = True
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


class _ServerOutOfDescriptorsOnce(StoreServer):
    def _listen(self) -> socket.socket:
        listener = super()._listen()
        return _AcceptFailsOnce(socket.AF_UNIX, socket.SOCK_STREAM, fileno=listener.detach())


def test_a_failed_accept_does_not_leave_the_server_deaf(store_path):
    DuckDBStore(store_path).create_experiment({"name": "one", "dataset": "data/sample/sentiment.csv"})
    server = _ServerOutOfDescriptorsOnce(store_path, idle_exit=60.0)
    serving = threading.Thread(target=server.serve)
    serving.start()
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(remote.address_for(store_path.resolve())) and time.monotonic() < deadline:
            time.sleep(0.02)

        child = _python(  # with a time limit: a server with no thread left in accept() would hang it
            f"""
            from core.duckdb_store import DuckDBStore
            print(DuckDBStore({str(store_path)!r}).list_experiments().total)
            """,
            served_path=store_path,
        )

        assert _AcceptFailsOnce.failed
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "1"
    finally:
        server.stop()
        serving.join(timeout=30)
    assert not serving.is_alive()
