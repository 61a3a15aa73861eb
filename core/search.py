"""The run search language: text -> tokens -> a small syntax tree (a recursive-descent parser).

    params.learning_rate < 0.01 and metrics.eval_loss.min < 0.6 and (tags.base = "llama" or status = completed)

Grammar (keywords are case-insensitive):

    query      := [or_expr] EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := FIELD (OP value | ["not"] "in" "(" value ("," value)* ")" | "contains" value)
    value      := NUMBER | DURATION | DATE | STRING | WORD

The tree is compiled to a Polars expression over the runs' search frame by `core.search_compiler`;
nothing the user types ever becomes SQL. Every error names the column of the token at fault.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime

from core.errors import ValidationError
from core.presenters import fold

QUOTED = 41  # characters of a pasted word a message quotes, its ellipsis included

KEYWORDS = ("and", "or", "not", "in", "contains")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?")

_TOKENS = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<date>{date})(?![\w.])
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?P<unit>[smhd])?(?![\w.])
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<quoted>`[^`]+`)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.\-/:@]*)
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """.replace("{date}", DATE.pattern),
    re.VERBOSE,
)


class SearchError(ValidationError):
    """A query that cannot be read or run; `column` (1-based) points at the token at fault."""

    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # word, quoted, number, date, string, op, punct, keyword, end
    text: str
    column: int  # 1-based
    value: object = None


@dataclass(frozen=True)
class Comparison:
    field: Token
    op: str  # =, !=, <, <=, >, >=, "in", "not in" or "contains"
    values: tuple[Token, ...]


@dataclass(frozen=True)
class Not:
    operand: "Node"


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple["Node", ...]


Node = Comparison | Not | BoolOp


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(text):
        found = _TOKENS.match(text, position)
        if found is None:
            raise _unreadable(text, position)
        kind, column = found.lastgroup, position + 1
        if kind == "unit":
            kind = "number"
        if kind != "space":
            tokens.append(_token(kind, found, column))
        position = found.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


_NUMBERISH = re.compile(r"[-+]?\d[\w.]*")


def _unreadable(text: str, position: int) -> SearchError:
    """Why no token starts here, said the way the user would fix it."""
    column, character = position + 1, text[position]
    quote = {'"': "double quote", "'": "single quote", "`": "backtick"}.get(character)  # named: a lone ` breaks Markdown
    if quote:
        return SearchError(f"the {quote} at column {column} is never closed: end the text with another {quote}", column)
    numberish = _NUMBERISH.match(text, position)
    if numberish:
        return SearchError(
            f"`{numberish.group(0)}` at column {column} is not a number or a duration (a duration ends in s, m, h or d)",
            column,
        )
    if not character.isascii() and not character.isspace():  # a word with é, 名 or 🚀: only quoted text holds them
        return SearchError(
            f"unexpected `{character}` at column {column}: put text with accents, other scripts or symbols in double "
            'quotes, e.g. experiment = "Ünïcode"',
            column,
        )
    return SearchError(f"unexpected `{character}` at column {column}", column)


def _token(kind: str, found: re.Match, column: int) -> Token:
    text = found.group(0)
    if kind == "number":
        value = float(found["number"]) * DURATION_UNITS.get(found["unit"] or "s", 1)
        return Token("duration" if found["unit"] else "number", text, column, value)
    if kind == "date":
        return Token("date", text, column, read_date(text, column))
    if kind == "string":
        return Token("string", text, column, re.sub(r"\\(.)", r"\1", text[1:-1]))
    if kind == "quoted":
        return Token("word", text, column, text[1:-1])
    if kind == "word" and text.lower() in KEYWORDS:
        return Token("keyword", text.lower(), column)
    if kind == "op":
        return Token("op", {"==": "=", "<>": "!="}.get(text, text), column)
    return Token(kind, text, column, text if kind == "word" else None)


def read_date(text: str, column: int) -> date | datetime:
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise SearchError(f"`{text}` at column {column} is not a real date; write it as 2026-01-31", column) from None


def parse(text: str) -> Node | None:
    """The query's tree, or None for an empty query (every run matches)."""
    if not isinstance(text, str):
        raise SearchError("a search must be text", 1)
    parser = _Parser(tokenize(text))
    if parser.peek().kind == "end":
        return None
    tree = parser.or_expr()
    parser.expect_end()
    return tree


MAX_NESTING = 50  # `(` and `not` one inside another: far past any real search, well short of Python's recursion limit


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token.kind == kind and (text is None or token.text == text)

    def or_expr(self) -> Node:
        return self._chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("and", self.not_expr)

    def _chain(self, keyword: str, operand) -> Node:
        operands = [operand()]
        while self.at("keyword", keyword):
            self.take()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else BoolOp(keyword, tuple(operands))

    def not_expr(self) -> Node:
        if not self.at("keyword", "not") and not self.at("punct", "("):
            return self.comparison()
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _error(self.peek(), f"the search nests `(` and `not` more than {MAX_NESTING} deep", "write it flatter")
        try:
            if self.at("keyword", "not"):
                self.take()
                return Not(self.not_expr())
            opening = self.take()
            inner = self.or_expr()
            if not self.at("punct", ")"):
                raise _error(self.peek(), f"the `(` at column {opening.column} is never closed", "expected `)`")
            self.take()
            return inner
        finally:
            self.depth -= 1

    def comparison(self) -> Comparison:
        field = self.take()
        if field.kind != "word":
            raise _error(field, "expected a field such as params.learning_rate, metrics.eval_loss or status")
        token = self.take()
        if token.kind == "op":
            return Comparison(field, token.text, (self.value(),))
        if token.kind == "keyword" and token.text == "contains":
            return Comparison(field, "contains", (self.value(),))
        if token.kind == "keyword" and token.text == "not" and self.at("keyword", "in"):
            self.take()
            return Comparison(field, "not in", self.value_list())
        if token.kind == "keyword" and token.text == "in":
            return Comparison(field, "in", self.value_list())
        alone = token.kind == "end"  # a word typed alone, as into other tools' search boxes: say how to find it by name
        hint = f'to find runs by name, write: name contains "{fold(field.text, QUOTED)}"' if alone else None
        raise _error(token, f"expected a comparison after `{fold(field.text, QUOTED)}` (= != < <= > >= in contains)", hint)

    def value_list(self) -> tuple[Token, ...]:
        if not self.at("punct", "("):
            raise _error(self.peek(), "expected `(` to open the list after `in`")
        self.take()
        values = [self.value()]
        while self.at("punct", ","):
            self.take()
            values.append(self.value())
        if not self.at("punct", ")"):
            raise _error(self.peek(), "expected `,` or `)` in the list after `in`")
        self.take()
        return tuple(values)

    def value(self) -> Token:
        token = self.take()
        if token.kind in ("number", "duration", "date", "string", "word"):
            return token
        raise _error(token, 'expected a value (a number, a "quoted string", a date like 2026-01-31, or a word)')

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "end":
            hint = {"word": "join conditions with `and` or `or`", "punct": "no `(` before it is left to close"}.get(token.kind)
            raise _error(token, "unexpected", hint)


def _error(token: Token, problem: str, hint: str | None = None) -> SearchError:
    """'unexpected `)` at column 12: expected a value': the token at fault and where it is."""
    shown = "the end of the search" if token.kind == "end" else f"`{fold(token.text, QUOTED)}`"
    if problem == "unexpected":
        message = f"unexpected {shown} at column {token.column}"
    else:
        message = f"{problem}; found {shown} at column {token.column}"
    return SearchError(f"{message}: {hint}" if hint else message, token.column)
