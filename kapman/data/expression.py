"""The screener's expression language: comparisons of flattened columns, joined by and / or / not.

    rsi < 30 and position = short_gamma
    (momentum.rsi.rsi < 30 or trend.adx.adx >= 25) and not neutral and gex_net < -1e6

* A column is a name of kapman.data.columns, full (``momentum.rsi.rsi``) or short (``rsi``).
* A value is a number (``30``, ``-1.5e6``), a quoted string (``'FULL'``), or one of the stored
  position labels ``long_gamma``, ``short_gamma``, ``neutral`` (bare).
* Comparisons: ``< <= > >= = == != <>``; a column may be compared with a value or another column.
* A date column (``max_pain_expiration``) compares with a quoted ``'YYYY-MM-DD'``; ``dealer_snapshot_time``
  with a quoted date (its 16:00 close in New York) or an ISO 8601 time with its offset.
* A bare position label alone means ``position = label``; ``COLUMN is null`` / ``is not null``.
* ``and`` binds tighter than ``or``; ``not`` tighter than both; parentheses group.  A missing value
  (null) satisfies no comparison.

Parsed by a small recursive-descent parser into a tree evaluated with pyarrow.compute; nothing is
ever evaluated as Python or sent as SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from kapman.clock import parse_day, parse_instant
from kapman.data.columns import COLUMNS, POSITIONS, closest, resolve
from kapman.errors import UsageError

_TOKEN = re.compile(r"""\s*(?:
    (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op><=|>=|==|!=|<>|<|>|=)
  | (?P<paren>[()])
  | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
)""", re.X)
_COMPARE = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal, "=": pc.equal,
            "==": pc.equal, "!=": pc.not_equal, "<>": pc.not_equal}
_WORDS = ("and", "or", "not", "is", "null")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    at: int


#: A literal: a number, a string, or a date or time read from a quoted one beside a date or time column.
Value = str | float | date | datetime


@dataclass(frozen=True)
class Compare:
    op: str
    left: Value                # a column name (resolved) or a value
    right: Value
    left_is_column: bool
    right_is_column: bool


@dataclass(frozen=True)
class IsNull:
    column: str
    negated: bool


@dataclass(frozen=True)
class Logic:
    op: str                     # and, or, not
    parts: tuple[Node, ...]


Node = Compare | IsNull | Logic


def tokens(text: str) -> list[Token]:
    out, at = [], 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        if not match or match.end() == at:
            raise UsageError(f"screen: cannot read the expression at column {at + 1}: {text[at:at + 20]!r}")
        kind = match.lastgroup or ""
        value, start = match.group(kind), match.start(kind)
        if kind == "name" and value.lower() in _WORDS:
            kind, value = value.lower(), value.lower()
        out.append(Token(kind, value, start + 1))
        at = match.end()
    return out


#: Parentheses and ``not`` nested deeper than this are refused (a screen needs a few; the parser
#: recurses once per level).
MAX_DEPTH = 50
#: How an expected token is named in an error.
_KIND_WORDS = {"op": "a comparison (< <= > >= = == != <>)", "paren": "')'", "name": "a column",
               "number": "a number", "string": "a string"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.items = tokens(text)
        self.pos = 0
        self.depth = 0
        self.columns: list[str] = []

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            token = self.items[self.pos - 1]
            raise UsageError(f"screen: nested deeper than {MAX_DEPTH} parentheses or nots at column {token.at}")

    def peek(self) -> Token | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self, *kinds: str) -> Token:
        token = self.peek()
        if token is None or token.kind not in kinds:
            where = f"at column {token.at}: {token.text!r}" if token else "at the end"
            raise UsageError(f"screen: expected {' or '.join(_KIND_WORDS.get(k, k) for k in kinds)} {where}")
        self.pos += 1
        return token

    def parse(self) -> Node:
        if not self.items:
            raise UsageError("screen: the expression is empty")
        node = self.disjunction()
        if self.peek() is not None:
            token = self.items[self.pos]
            raise UsageError(f"screen: unexpected {token.text!r} at column {token.at}",
                             hint="comparisons do not chain: join them with and (20 < rsi and rsi < 30)"
                             if token.kind == "op" else None)
        return node

    def disjunction(self) -> Node:
        return self._joined("or", self.conjunction)

    def conjunction(self) -> Node:
        return self._joined("and", self.negation)

    def _joined(self, word: str, operand: Callable[[], Node]) -> Node:
        """``operand (word operand)*``: one node, or a Logic of them all."""
        parts = [operand()]
        while (t := self.peek()) is not None and t.kind == word:
            self.pos += 1
            parts.append(operand())
        return parts[0] if len(parts) == 1 else Logic(word, tuple(parts))

    def negation(self) -> Node:
        if (t := self.peek()) is not None and t.kind == "not":
            self.pos += 1
            self._deeper()
            node = Logic("not", (self.negation(),))
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        token = self.peek()
        if token is not None and token.kind == "paren" and token.text == "(":
            self.pos += 1
            self._deeper()
            node = self.disjunction()
            if self.take("paren").text != ")":
                raise UsageError(f"screen: expected ')' at column {self.items[self.pos - 1].at}")
            self.depth -= 1
            return node
        if token is not None and token.kind == "name" and token.text in POSITIONS and not self._operator_next():
            self.pos += 1
            self.columns.append("position")
            return Compare("=", "position", token.text, True, False)
        left, left_column = self.operand()
        if (t := self.peek()) is not None and t.kind == "is":
            return self._is_null(left, left_column)
        op = self.take("op").text
        right, right_column = self.operand()
        return Compare(op, left, right, left_column, right_column)

    def _operator_next(self) -> bool:
        following = self.items[self.pos + 1] if self.pos + 1 < len(self.items) else None
        return following is not None and following.kind in ("op", "is")

    def _is_null(self, left: str | float, left_column: bool) -> Node:
        self.pos += 1
        negated = (t := self.peek()) is not None and t.kind == "not"
        if negated:
            self.pos += 1
        self.take("null")
        if not left_column:
            raise UsageError("screen: 'is null' needs a column on its left")
        return IsNull(str(left), negated)

    def operand(self) -> tuple[str | float, bool]:
        token = self.take("number", "string", "name")
        if token.kind == "number":
            return float(token.text), False
        if token.kind == "string":
            return token.text[1:-1], False
        if token.text in POSITIONS:
            return token.text, False
        try:
            name = resolve(token.text)
        except KeyError:   # a position label in other case is named first (SHORT_GAMMA: short_gamma)
            near = [label for label in POSITIONS if label == token.text.lower()] + closest(token.text)
            compared = self.pos >= 2 and self.items[self.pos - 2].kind == "op"   # status = FULL: a value unquoted
            raise UsageError(f"screen: no column {token.text!r} (column {token.at})"
                             + (f"; did you mean {', '.join(near)}?" if near else ""),
                             hint="kapman screen --columns lists them"
                                  + (f"; a text value is quoted: '{token.text}'" if compared else "")) from None
        self.columns.append(name)
        return name, True


@dataclass(frozen=True)
class Expression:
    text: str
    tree: Node
    #: the columns it reads, in order of first mention
    columns: tuple[str, ...]

    def mask(self, table: pa.Table) -> pa.ChunkedArray:
        """True where a row satisfies the expression (null counts as not)."""
        return pc.fill_null(_evaluate(self.tree, table), False)


def parse(text: str) -> Expression:
    parser = _Parser(text)
    tree = _typed(parser.parse())
    if not parser.columns:   # '1 < 2' screens nothing; it would select no column at all
        raise UsageError(f"screen: {text.strip()!r} reads no column", hint="kapman screen --columns lists them")
    return Expression(text, tree, tuple(dict.fromkeys(parser.columns)))


def _kind(value: object, column: bool) -> str:
    """number, text, date (a date32 column) or time (a timestamp column); a literal is text or a number."""
    if not column:
        return "text" if isinstance(value, str) else "number"
    kind = COLUMNS[str(value)].type
    if pa.types.is_string(kind):
        return "text"
    if pa.types.is_date(kind):
        return "date"
    return "time" if pa.types.is_timestamp(kind) else "number"


def _as_when(text: str, kind: str, column: str) -> date | datetime:
    """A quoted literal compared with a date or time column, read in the one written form of each."""
    try:
        return parse_day(text) if kind == "date" else parse_instant(text)
    except ValueError as exc:
        raise UsageError(f"screen: {column} is a {kind}: {exc}") from None


def _typed(node: Node) -> Node:
    """The tree checked for comparable types, with a quoted date or time compared with a date or time column
    read as one (``max_pain_expiration <= '2025-12-26'``)."""
    if isinstance(node, Logic):
        return Logic(node.op, tuple(_typed(part) for part in node.parts))
    if not isinstance(node, Compare):
        return node
    sides = [(node.left, node.left_is_column), (node.right, node.right_is_column)]
    kinds = [_kind(v, col) for v, col in sides]
    for i, j in ((0, 1), (1, 0)):   # a quoted literal beside a date or time column is a date or time
        if kinds[i] in ("date", "time") and not sides[j][1] and kinds[j] == "text":
            sides[j] = (_as_when(str(sides[j][0]), kinds[i], str(sides[i][0])), False)
            kinds[j] = kinds[i]
    if kinds[0] != kinds[1]:
        shown = [str(v) if col else repr(v) for v, col in sides]
        raise UsageError(f"screen: cannot compare {shown[0]} ({kinds[0]}) with {shown[1]} ({kinds[1]})"
                         + (" (write a date as 'YYYY-MM-DD')" if {"date", "time"} & set(kinds)
                            and not (sides[0][1] and sides[1][1]) else ""))
    for (value, column), (other, other_column) in ((sides[0], sides[1]), (sides[1], sides[0])):
        if column and value == "position" and not other_column and other not in POSITIONS:
            raise UsageError(f"screen: position is one of {', '.join(POSITIONS)}, not {other!r}")
    if kinds[0] == "text" and node.op in ("<", "<=", ">", ">="):
        raise UsageError(f"screen: text compares only with = or != (got {node.op})")
    return Compare(node.op, sides[0][0], sides[1][0], node.left_is_column, node.right_is_column)


def _side(value: Value, column: bool, table: pa.Table) -> pa.ChunkedArray | pa.Scalar:
    if not column:
        return pa.scalar(value)
    data = table.column(str(value))
    return pc.cast(data, pa.float64()) if pa.types.is_integer(data.type) else data


def _evaluate(node: Node, table: pa.Table) -> pa.ChunkedArray:
    if isinstance(node, Compare):
        return _COMPARE[node.op](_side(node.left, node.left_is_column, table),
                                 _side(node.right, node.right_is_column, table))
    if isinstance(node, IsNull):
        nulls = pc.is_null(table.column(node.column), nan_is_null=True)
        return pc.invert(nulls) if node.negated else nulls
    values = [_evaluate(part, table) for part in node.parts]
    if node.op == "not":
        return pc.invert(values[0])
    combine = pc.and_kleene if node.op == "and" else pc.or_kleene
    out = values[0]
    for value in values[1:]:
        out = combine(out, value)
    return out
