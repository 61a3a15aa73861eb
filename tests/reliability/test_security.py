"""Security checks on the code and configuration; the behaviour itself is proven by the other tests."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|FROM)\b")
STATEMENT = re.compile(r"\b(SELECT .+ FROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
# Fragments our own builders make from allow-lists and bound parameters (core/filters.py, core/duckdb_store.py).
SQL_FRAGMENTS = {"where", "order", "paging", "key_filter", "step_filter", "assignments", "names", "placeholders", "counters"}
CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")  # a module constant: SQL text written in the code itself


def python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in (ROOT / folder).rglob("*.py")]


def interpolated_sql(path: Path) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{finding}" for finding in _findings(path)]


def interpolated_sql_at(path: Path) -> list[str]:
    return [f"{path.name}:{finding}" for finding in _findings(path)]


def _findings(path: Path) -> list[str]:
    """f-strings holding SQL that splice in anything but the known, builder-made fragments."""
    findings = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.JoinedStr):
            continue
        text = "".join(part.value for part in node.values if isinstance(part, ast.Constant))
        if not SQL.search(text):
            continue
        for part in node.values:
            if isinstance(part, ast.FormattedValue) and not _known_fragment(part.value):
                findings.append(f"{node.lineno}: {ast.unparse(part.value)}")
    return findings


def _known_fragment(value: ast.expr) -> bool:
    """A builder-made fragment, a module constant (or its .format() with constants), or a quoted identifier."""
    if isinstance(value, ast.Name):
        return value.id in SQL_FRAGMENTS or bool(CONSTANT.fullmatch(value.id))
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "format":
        constant_args = all(isinstance(arg, ast.Constant) for arg in [*value.args, *(k.value for k in value.keywords)])
        return isinstance(value.func.value, ast.Name) and bool(CONSTANT.fullmatch(value.func.value.id)) and constant_args
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "identifier"


def test_no_sql_is_built_by_formatting_values_into_strings():
    findings = [finding for path in python_files("core", "jobs", "pages", "ui") for finding in interpolated_sql(path)]

    assert findings == []


def test_the_scanner_allows_constants_and_quoted_identifiers_but_not_a_formatted_variable(tmp_path):
    code = tmp_path / "code.py"
    code.write_text(
        "a = f'SELECT {_COLUMNS} FROM runs'\n"
        "b = f'SELECT {TEMPLATE.format(column=\"value\")} FROM runs'\n"
        "c = f'DELETE FROM {identifier(table)}'\n"
        "d = f'SELECT * FROM runs WHERE {TEMPLATE.format(column=user_text)}'\n"
    )

    assert interpolated_sql_at(code) == ["code.py:4: TEMPLATE.format(column=user_text)"]


def test_the_scanner_catches_a_value_formatted_into_sql(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("query = f\"SELECT * FROM experiments WHERE name = '{name}'\"\n")

    assert interpolated_sql_at(bad) == ["bad.py:1: name"]


@pytest.mark.parametrize("path", python_files("pages", "ui") + [ROOT / "app.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_talk_no_sql_and_render_no_html(path):
    text = path.read_text()

    assert not STATEMENT.search(text)
    assert "unsafe_allow_html" not in text and "st.html" not in text
    assert "import duckdb" not in text


def test_the_server_binds_to_localhost_and_hides_tracebacks():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())

    assert config["server"]["address"] == "localhost"
    assert config["client"]["showErrorDetails"] == "none"
