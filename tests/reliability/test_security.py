"""Security checks on the code and configuration; the behaviour itself is proven by the other tests."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|FROM|CREATE|DROP|ALTER|ATTACH|COPY|TRUNCATE|GRANT)\b")
STATEMENT = re.compile(r"\b(SELECT .+ FROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
# Fragments our own builders make from allow-lists and bound parameters, by the module that builds and uses them: the
# same name anywhere else is a value like any other.
SQL_FRAGMENTS = {
    "core/sql_store.py": {
        "where", "order", "paging", "key_filter", "step_filter", "assignments", "placeholders", "names", "runs", "counters"
    },
    "core/sql_annotations.py": {"where"},
    "core/duckdb_store.py": {"key_filter", "runs"},
    "core/postgres_store.py": {"key_filter", "query"},
    "core/pg_connection.py": {"placeholders"},
    "core/store_copy.py": {"names", "placeholders", "counters"},
}
CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")  # a module constant: SQL text written in the code itself


def python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in (ROOT / folder).rglob("*.py")]


def interpolated_sql(path: Path) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{finding}" for finding in _findings(path, SQL_FRAGMENTS.get(str(path.relative_to(ROOT)), set()))]


def interpolated_sql_at(path: Path, fragments: frozenset[str] = frozenset()) -> list[str]:
    return [f"{path.name}:{finding}" for finding in _findings(path, fragments)]


def _findings(path: Path, fragments: set[str] | frozenset[str]) -> list[str]:
    """Values spliced into SQL text, by an f-string, `.format()` or `%`, that are not constants, quoted identifiers
    or this module's own builder-made fragments."""
    tree = ast.parse(path.read_text())
    constants = _sql_constants(tree)
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and SQL.search(_text(node)):
            spliced = [part.value for part in node.values if isinstance(part, ast.FormattedValue)]
        elif _is_format(node) and _holds_sql(node.func.value, constants):
            spliced = [*node.args, *(keyword.value for keyword in node.keywords)]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _holds_sql(node.left, constants):
            spliced = list(node.right.elts) if isinstance(node.right, ast.Tuple) else [node.right]
        else:
            continue
        findings += [f"{node.lineno}: {ast.unparse(value)}" for value in spliced if not _known_fragment(value, fragments)]
    return findings


def _text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else ""
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(part) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def _sql_constants(tree: ast.Module) -> set[str]:
    """Module-level names bound to SQL text."""
    return {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign) and SQL.search(_text(node.value))
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _is_format(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def _holds_sql(node: ast.expr, constants: set[str]) -> bool:
    return bool(SQL.search(_text(node))) or (isinstance(node, ast.Name) and node.id in constants)


def _known_fragment(value: ast.expr, fragments: set[str] | frozenset[str]) -> bool:
    """A builder-made fragment, a literal, a module constant (or its .format() with such), or a quoted identifier."""
    if isinstance(value, ast.Constant):
        return True
    if isinstance(value, ast.Name):
        return value.id in fragments or bool(CONSTANT.fullmatch(value.id))
    if _is_format(value):
        arguments = [*value.args, *(keyword.value for keyword in value.keywords)]
        receiver = value.func.value
        constant = isinstance(receiver, ast.Name) and bool(CONSTANT.fullmatch(receiver.id))
        return constant and all(_known_fragment(argument, fragments) for argument in arguments)
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("identifier", "int")


def test_no_sql_is_built_by_formatting_values_into_strings():
    findings = [
        finding
        for path in python_files("core", "jobs", "pages", "ui", "tunedeck", "bench")
        for finding in interpolated_sql(path)
    ]

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


def test_the_scanner_catches_format_percent_and_ddl_and_trusts_a_fragments_name_only_where_it_is_built(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "_TEMPLATE = 'SELECT * FROM runs {where}'\n"
        "a = \"SELECT * FROM experiments WHERE name = '{}'\".format(user_text)\n"
        "b = \"SELECT * FROM experiments WHERE name = '%s'\" % user_text\n"
        "c = _TEMPLATE.format(where=user_text)\n"
        "d = f'SELECT * FROM runs {where}'\n"
        "e = f'DROP TABLE {user_table}'\n"
        "f = f\"ATTACH '{user_path}' AS other\"\n"
        "g = 'SELECT * FROM runs WHERE id = %s' % (run_id, )\n"
        "h = 'SELECT * FROM runs LIMIT {}'.format(int(limit))\n"
    )

    assert interpolated_sql_at(bad) == [
        "bad.py:2: user_text", "bad.py:3: user_text", "bad.py:4: user_text", "bad.py:5: where", "bad.py:6: user_table",
        "bad.py:7: user_path", "bad.py:8: run_id",
    ]  # fmt: skip
    assert interpolated_sql_at(bad, frozenset({"where"}))[3:5] == ["bad.py:6: user_table", "bad.py:7: user_path"]


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


@pytest.mark.parametrize("path", python_files("core", "ui", "pages", "jobs") + [ROOT / "app.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_python_function_runs_on_polars_threads(path):
    """Polars' map_elements and map_batches call Python from its thread pool, which waits for the interpreter's lock;
    a page's to_pandas() holds that lock while it waits for the same pool: two tabs refreshing at once froze the server
    for everyone (core.presenters.each runs such a function in the caller's thread instead)."""
    text = path.read_text()

    assert ".map_elements(" not in text and ".map_batches(" not in text
