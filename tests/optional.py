"""Tests of optional parts skip, with the install command as the reason, when their packages are missing.

`.ci/run` first runs the suite as the README sets it up (these skip), then installs the optional
packages and runs them again with TUNEDECK_REQUIRE_OPTIONAL=1, where a missing package fails instead.
"""

import importlib
import os

import pytest

REQUIRE_OPTIONAL = "TUNEDECK_REQUIRE_OPTIONAL"


def require(*names: str, install: str = "pip install -r requirements-train.txt") -> None:
    for name in names:
        if os.environ.get(REQUIRE_OPTIONAL) != "1":
            pytest.importorskip(name, reason=f"{name} is not installed: {install}")
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            pytest.fail(
                f"{REQUIRE_OPTIONAL}=1 says {name} is installed ({install}), yet it does not import: {exc}", pytrace=False
            )
