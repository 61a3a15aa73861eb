"""Tests of optional parts skip when their packages are missing, except on CI, which installs them."""

import importlib
import os

import pytest


def require(*names: str, install: str = "pip install -r requirements-train.txt") -> None:
    for name in names:
        if not os.environ.get("CI"):
            pytest.importorskip(name, reason=f"{name} is not installed: {install}")
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            pytest.fail(f"CI installs what {name} needs ({install}), yet it does not import: {exc}", pytrace=False)
