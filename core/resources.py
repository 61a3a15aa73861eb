"""Files TuneDeck ships (app, pages, sample data, tiny base model), found in a checkout or an installed wheel.

A wheel installs them as the `tunedeck_app` package (see pyproject.toml); a checkout has them at its root.
"""

import os
from importlib.util import find_spec
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
BUNDLE = "tunedeck_app"


def root() -> Path:
    """The checkout's folder when this code runs from one, else the installed bundle's."""
    if (CHECKOUT / "app.py").is_file():
        return CHECKOUT
    spec = find_spec(BUNDLE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return CHECKOUT


def app_file() -> Path:
    return root() / "app.py"


def models_dir() -> Path:
    return root() / "data" / "models"


def sample_dir() -> Path:
    return root() / "data" / "sample"


def sample_dataset() -> str:
    """The sample CSV as a user would type it: relative to the working folder when inside it."""
    path = sample_dir() / "sentiment.csv"
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return os.fspath(path)
