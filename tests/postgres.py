"""A private PostgreSQL cluster from Debian's binaries, for tests and benchmarks: a temporary folder, 127.0.0.1 on a
free port, stopped at the end. Tests skip where the binaries are absent, and fail instead in CI."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    return next((folder for folder in BIN_DIRS if (folder / "initdb").exists()), None)


def required() -> bool:
    """CI, or whoever sets TUNEDECK_REQUIRE_POSTGRES=1, wants a failure rather than a skip."""
    return bool(os.environ.get("CI")) or os.environ.get("TUNEDECK_REQUIRE_POSTGRES") == "1"


def skip_or_fail_without_binaries() -> Path:
    folder = binaries()
    if folder is None:
        reason = "PostgreSQL's binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        if required():
            pytest.fail(reason)
        pytest.skip(reason)
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """initdb into a temporary folder and start the server; as root, both run as the `postgres` user."""

    def __init__(self, bin_dir: Path, durable: bool = False):
        self.bin_dir = bin_dir
        self.durable = durable  # benchmarks: fsync on, as a real server; tests: off, for speed
        self.folder = Path(tempfile.mkdtemp(prefix="tunedeck-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._as = entry
        self.url = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        kwargs = {"user": self._as.pw_uid, "group": self._as.pw_gid, "extra_groups": []} if self._as else {}
        subprocess.run(args, check=True, capture_output=True, cwd=self.folder, **kwargs)

    def start(self) -> "Cluster":
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-N", "-E", "UTF8")
        return self.start_server()

    def start_server(self) -> "Cluster":
        """The server on the cluster made by `start`: again after `stop_server`, as a database restarted by its admin."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} -c max_connections=300"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        return self

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop_server(self, mode: str = "fast") -> None:
        """`fast`, as an admin stops it: sessions are ended and every commit is kept (`immediate` may lose the last
        ones here, where commits do not wait for the disk)."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def stop(self) -> None:
        try:
            self.stop_server("immediate")
        except subprocess.CalledProcessError:
            pass  # stopped already: a test stopped it and failed before starting it again
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class Databases:
    """A cluster and a migrated template. A test that needs a database of its own gets a copy of the template
    (CREATE DATABASE ... TEMPLATE, about 0.25 s); the contract suites' stores share one database per process,
    emptied before each test (a few milliseconds), so hundreds of them stay independent and quick."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.count = 0
        self._shared: str | None = None

    @classmethod
    def start(cls) -> "Databases":
        import psycopg

        from core.pg_migrations import migrate

        cluster = Cluster(skip_or_fail_without_binaries()).start()
        with psycopg.connect(cluster.url, autocommit=True) as con:
            con.execute("CREATE DATABASE tunedeck_template")
        with psycopg.connect(cluster.database_url("tunedeck_template"), autocommit=True) as con:
            migrate(con)
        return cls(cluster)

    def fresh(self) -> str:
        """The URL of a new database, migrated."""
        import psycopg

        self.count += 1
        name = f"test_{os.getpid()}_{self.count}"
        with psycopg.connect(self.cluster.url, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name} TEMPLATE tunedeck_template")
        return self.cluster.database_url(name)

    def emptied(self) -> str:
        """The URL of this process's shared database with every row deleted and the ID sequences restarted, as
        fresh as a new copy of the template; a new copy if something still holds a lock on it."""
        import psycopg

        if self._shared is None:
            self._shared = self.fresh()
            return self._shared
        try:
            with psycopg.connect(self._shared, autocommit=True) as con, con.transaction():
                con.execute("SET LOCAL lock_timeout = '2s'")
                con.execute("SET LOCAL session_replication_role = replica")  # no foreign-key checks while emptying
                tables = con.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
                ).fetchall()
                sequences = con.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'").fetchall()
                for (table,) in tables:
                    con.execute(f'DELETE FROM "{table}"')
                for (sequence,) in sequences:
                    con.execute(f'ALTER SEQUENCE "{sequence}" RESTART')
        except psycopg.errors.LockNotAvailable:
            self._shared = self.fresh()
        return self._shared

    def store(self, clock, data_dir: Path):
        from core.postgres_store import PostgresStore

        return PostgresStore(self.emptied(), data_dir, clock=clock, timeout=30)

    def stop(self) -> None:
        self.cluster.stop()


def snapshot(store) -> dict:
    """Every table of a PostgreSQL store, ordered by all its columns."""
    from core.sql import frame

    with store.reading() as con:
        tables = [
            row[0] for row in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
        ]
        found = {}
        for table in tables:
            (width,) = con.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ?", [table]
            ).fetchall()[0]
            order = ", ".join(str(i) for i in range(1, width + 1))
            found[table] = frame(con, f'SELECT * FROM "{table}" ORDER BY {order}')
        return found
