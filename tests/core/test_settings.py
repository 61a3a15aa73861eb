"""Settings come from TUNEDECK_ variables; a wrong one is named, wherever it is read."""

from pathlib import Path

import pytest

from core import tracking
from core.client_settings import plain_client_settings
from core.errors import ValidationError
from core.settings import get_settings


def test_an_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("TUNEDECK_DATA_DIR", "")
    monkeypatch.setenv("TUNEDECK_LOCK_TIMEOUT", "")

    settings = get_settings()

    assert settings.data_dir == Path("data")
    assert settings.lock_timeout == 60.0


def test_a_script_with_a_bad_variable_is_told_which_and_what_it_got(monkeypatch):
    monkeypatch.setenv("TUNEDECK_LOCK_TIMEOUT", "abc")

    with pytest.raises(ValidationError, match=r"^TUNEDECK_LOCK_TIMEOUT: Input should be a valid number.*, got 'abc'$"):
        tracking.start_run("never started")


def test_a_queue_url_with_an_unencoded_password_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("TUNEDECK_QUEUE_URL", "postgresql://queue:hunter%zz2@db/queue")

    with pytest.raises(ValidationError) as refused:
        get_settings()

    said = str(refused.value)
    assert said.startswith("TUNEDECK_QUEUE_URL: the password in the URL holds a character a URL cannot carry as typed")
    assert said.endswith("got 'postgresql://queue:***@db/queue'") and "hunter" not in said


def test_a_heartbeat_timeout_shorter_than_two_heartbeats_is_refused(monkeypatch):
    """With a timeout of 1 s and a beat every 2 s, a healthy run was failed as lost."""
    monkeypatch.setenv("TUNEDECK_HEARTBEAT_INTERVAL", "2")
    monkeypatch.setenv("TUNEDECK_HEARTBEAT_TIMEOUT", "1")

    with pytest.raises(ValidationError, match=r"^TUNEDECK_HEARTBEAT_TIMEOUT must be at least twice TUNEDECK_HEARTBEAT_INTERVAL \(2 s\), got 1 s$"):
        get_settings()


def test_an_idle_check_more_often_than_every_second_is_refused(monkeypatch):
    """Each open idle page reads the store at that pace: a fraction of a second is a typo, not a setting."""
    monkeypatch.setenv("TUNEDECK_IDLE_CHECK_INTERVAL", "0.1")

    with pytest.raises(ValidationError, match=r"^TUNEDECK_IDLE_CHECK_INTERVAL: Input should be greater than or equal to 1, got '0.1'$"):
        get_settings()


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"TUNEDECK_DATA_DIR": "elsewhere/data", "TUNEDECK_LOCK_TIMEOUT": "5"},
        {"TUNEDECK_LOCK_TIMEOUT": "2.5", "TUNEDECK_STORE_SERVER_IDLE_EXIT": "0"},
        {"TUNEDECK_LOCK_TIMEOUT": "", "TUNEDECK_STORE_SERVER_IDLE_EXIT": "3600", "TUNEDECK_WORKERS": "4"},
    ],
)
def test_a_client_reads_where_the_store_is_as_the_settings_do(monkeypatch, variables):
    """Without Pydantic (core.client_settings): the same file and timeouts, so a cold process reaches the same store."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    settings = get_settings()

    assert plain_client_settings() == (settings.store_path, settings.lock_timeout, settings.store_server_idle_exit)
    assert plain_client_settings("given")[0] == Path("given") / "tunedeck.duckdb"


@pytest.mark.parametrize(
    "name, value",
    [
        ("TUNEDECK_LOCK_TIMEOUT", "0"),
        ("TUNEDECK_LOCK_TIMEOUT", "abc"),
        ("TUNEDECK_LOCK_TIMEOUT", "1e3"),
        ("TUNEDECK_STORE_SERVER_IDLE_EXIT", "-1"),
        ("TUNEDECK_STORE_URL", "postgresql://tunedeck@db/tunedeck"),
        ("Tunedeck_Store_Url", "postgresql://tunedeck@db/tunedeck"),  # the settings read names in any case
        ("tunedeck_data_dir", "elsewhere"),
    ],
)
def test_what_a_client_cannot_read_plainly_is_left_to_the_settings(monkeypatch, name, value):
    """Team mode, and any value that is not a plain number: the settings read it, or say what is wrong."""
    monkeypatch.setenv(name, value)

    assert plain_client_settings() is None
