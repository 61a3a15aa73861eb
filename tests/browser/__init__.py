"""Browser tests: the running app in Debian's headless Chromium, driven by Playwright."""

import shutil

import pytest

from tests import postgres

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MISSING = "Debian's chromium is missing: apt-get install chromium (.ci/run installs it)"


def needs_chromium() -> pytest.MarkDecorator:
    """Each browser module's mark: without Chromium its tests skip, but a run that must be complete (CI, or
    TUNEDECK_REQUIRE_POSTGRES=1 as .ci/run sets) fails instead, so a lost browser is never a quiet green."""
    if CHROMIUM is None and postgres.required():
        pytest.fail(MISSING, pytrace=False)
    return pytest.mark.skipif(CHROMIUM is None, reason=MISSING)
