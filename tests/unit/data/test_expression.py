"""The screener's expression language: parsing, refusals, evaluation over Arrow columns."""

from __future__ import annotations

import pyarrow as pa
import pytest

from kapman.data.expression import Compare, Logic, parse
from kapman.errors import UsageError

TABLE = pa.table({
    "symbol": ["A", "B", "C", "D"],
    "momentum.rsi.rsi": [25.0, 35.0, None, 20.0],
    "trend.adx.adx": [30.0, 10.0, 40.0, 26.0],
    "position": ["short_gamma", "short_gamma", "long_gamma", None],
    "gex_net": [-2e6, 5e5, 1e9, None],
    "gamma_flip_crossings": pa.array([1, 0, 2, None], pa.int64()),
})


def matches(text: str) -> list[str]:
    expression = parse(text)
    return TABLE.filter(expression.mask(TABLE)).column("symbol").to_pylist()


def test_comparisons_and_short_names() -> None:
    assert matches("rsi < 30") == ["A", "D"]
    assert matches("momentum.rsi.rsi >= 35") == ["B"]
    assert matches("gex_net < -1e6") == ["A"]
    assert matches("gamma_flip_crossings = 2") == ["C"]


def test_and_binds_tighter_than_or_and_not_tighter_than_both() -> None:
    assert matches("rsi < 30 and position = short_gamma") == ["A"]
    assert matches("rsi > 30 or adx > 35 and position = long_gamma") == ["B", "C"]
    assert matches("(rsi > 30 or adx > 35) and not position = long_gamma") == ["B"]
    assert matches("not rsi < 30") == ["B"]                # null satisfies nothing, its negation neither


def test_a_bare_position_label_and_null_tests() -> None:
    assert matches("short_gamma and rsi < 30") == ["A"]
    assert matches("position = 'long_gamma'") == ["C"]
    assert matches("rsi is null") == ["C"]
    assert matches("position is not null and gex_net is not null") == ["A", "B", "C"]
    assert matches("rsi < adx") == ["A", "D"]              # column against column


def test_the_tree_and_the_columns_read() -> None:
    parsed = parse("rsi < 30 and short_gamma")
    assert parsed.columns == ("momentum.rsi.rsi", "position")
    assert parsed.tree == Logic("and", (Compare("<", "momentum.rsi.rsi", 30.0, True, False),
                                        Compare("=", "position", "short_gamma", True, False)))


@pytest.mark.parametrize(("text", "message"), [
    ("rsii < 30", r"no column 'rsii' \(column 1\); did you mean rsi \(momentum.rsi.rsi\)"),
    ("gex_nett > 0", "did you mean gex_net"),
    ("rsi < 30 and", "expected a number or a string or a column at the end"),
    ("rsi < 30)", r"unexpected '\)' at column 9"),
    ("rsi 30", r"expected a comparison \(< <= > >= = == != <>\) at column 5"),
    ("(" * 51 + "rsi < 30" + ")" * 51, "nested deeper than 50 parentheses or nots at column 51"),
    ("not " * 51 + "rsi < 30", "nested deeper than 50 parentheses or nots at column 201"),
    ("position = shorty", "no column 'shorty'"),
    ("position = 'shorty'", "position is one of long_gamma, short_gamma, neutral, not 'shorty'"),
    ("status < 'FULL'", "text compares only with = or !="),
    ("rsi = 'x'", r"cannot compare momentum.rsi.rsi \(number\) with 'x' \(text\)"),
    ("__import__('os').system('true')", "cannot read the expression at column 17"),
    ("__import__ = 1", "no column '__import__'"),
    ("rsi < 30; drop table tickers", "cannot read the expression at column 9"),
    ("", "the expression is empty"),
])
def test_bad_expressions_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(text)
