"""The team-mode tests skip only where PostgreSQL's binaries are absent, and never in CI."""

import pytest

from tests import postgres


def test_without_the_binaries_tests_skip_with_the_reason_outside_ci(monkeypatch):
    monkeypatch.setattr(postgres, "binaries", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TUNEDECK_REQUIRE_POSTGRES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        postgres.skip_or_fail_without_binaries()


@pytest.mark.parametrize("variable", ["CI", "TUNEDECK_REQUIRE_POSTGRES"])
def test_without_the_binaries_ci_fails_instead_of_skipping(monkeypatch, variable):
    monkeypatch.setattr(postgres, "binaries", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install postgresql"):
        postgres.skip_or_fail_without_binaries()
