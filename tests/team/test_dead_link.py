"""A database machine that goes silent (a pulled cable, a frozen VM: its packets dropped, nothing closed) ends a call
in a store error within the connection's timeouts, where the system's own take 15 minutes or more; once the link is
back the same store object carries on. The link is cut by an iptables rule dropping the server's packets; where
iptables cannot be used (not installed, not root), the test skips and says so.

The timeouts are the URL's here (a few seconds): the defaults (core.store_url.CONNECTION_DEFAULTS, a minute) are the
same libpq settings, and the URL's win, as test_postgres_store checks."""

import os
import shutil
import subprocess
import threading
import time

import pytest

from core.errors import StoreBusyError, StoreUnavailableError
from core.postgres_store import PostgresStore
from tests.postgres import Cluster, skip_or_fail_without_binaries
from tests.waiting import wait_for

QUICK = "connect_timeout=2&keepalives_idle=1&keepalives_interval=1&keepalives_count=2&tcp_user_timeout=2000"


def usable_iptables() -> str:
    """Why the link cannot be cut here, or '' where it can."""
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install iptables)"
    if os.geteuid() != 0:
        return "cutting a link with iptables needs root"
    listed = subprocess.run(["iptables", "-L", "INPUT", "-n"], capture_output=True, text=True)
    return "" if listed.returncode == 0 else f"iptables cannot be used here: {listed.stderr.strip()}"


@pytest.fixture
def cluster():
    cluster = Cluster(skip_or_fail_without_binaries()).start()
    yield cluster
    cluster.stop()


class Link:
    """The loopback link to one port: cut drops its packets both ways, as a dead cable does; mend takes that back."""

    def __init__(self, port: int):
        self.rules = [["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"], ["INPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"]]
        self.is_cut = False

    def cut(self) -> None:
        for rule in self.rules:
            subprocess.run(["iptables", "-I", *rule], check=True)
        self.is_cut = True

    def mend(self) -> None:
        if self.is_cut:
            for rule in self.rules:
                subprocess.run(["iptables", "-D", *rule], check=True)
            self.is_cut = False


@pytest.fixture
def link(cluster):
    why_not = usable_iptables()
    if why_not:
        pytest.skip(why_not)
    link = Link(cluster.port)
    yield link
    link.mend()


def test_a_call_to_a_server_gone_silent_fails_within_the_tcp_timeout_and_works_once_the_link_is_back(cluster, link, tmp_path):
    store = PostgresStore(f"{cluster.url}?{QUICK}", tmp_path, timeout=1)
    experiment_id = store.create_experiment({"name": "before the cut", "dataset": "d.csv"})

    link.cut()
    started = time.monotonic()
    with pytest.raises((StoreUnavailableError, StoreBusyError)) as raised:  # the pooled connection's request goes unanswered
        store.get_experiment(experiment_id)
    waited = time.monotonic() - started

    assert waited < 15, f"the call waited {waited:.1f} s on a dead link"
    assert "psycopg" not in str(raised.value) and "PostgreSQL store" in str(raised.value)
    link.mend()

    def answers() -> bool:
        try:
            return store.get_experiment(experiment_id).name == "before the cut"
        except (StoreUnavailableError, StoreBusyError):
            return False

    wait_for(answers, timeout=30, what="the store to answer once the link is back")
    store.close()


def test_a_statement_waiting_on_a_server_gone_silent_is_given_up_by_keepalive_probes(cluster, link, tmp_path):
    """Nothing unacknowledged is in flight while a statement runs, so only keepalive probes notice the silence."""
    store = PostgresStore(f"{cluster.url}?{QUICK}", tmp_path, timeout=1)
    outcome: dict[str, object] = {}

    def slow_read() -> None:
        started = time.monotonic()
        try:
            store._statement(lambda con: con.raw.execute("SELECT pg_sleep(60)").fetchall())  # a long report's query
        except Exception as error:  # noqa: BLE001 - what reached the caller is what the test checks
            outcome["error"] = error
        outcome["waited"] = time.monotonic() - started

    reader = threading.Thread(target=slow_read, daemon=True)
    reader.start()
    time.sleep(1.5)  # the statement is on the server
    link.cut()
    reader.join(timeout=30)

    assert not reader.is_alive(), "the statement still waited 30 s after the link went silent"
    assert isinstance(outcome.get("error"), StoreUnavailableError), outcome
    assert outcome["waited"] < 20
    store.close()
