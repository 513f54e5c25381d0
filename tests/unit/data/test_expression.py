"""The screener's expression language: parsing, refusals, evaluation over Arrow columns."""

from __future__ import annotations

from datetime import UTC, date, datetime

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
    # a name in other case is named (closest compared case-sensitively offered nothing for RSI)
    ("RSI < 30", r"^screen: no column 'RSI' \(column 1\); did you mean rsi \(momentum.rsi.rsi\)"),
    ("position = SHORT_GAMMA", r"^screen: no column 'SHORT_GAMMA' \(column 12\); did you mean short_gamma\?$"),
    # no column at all: it selected nothing and failed in SQL ("syntax error at or near FROM")
    ("1 < 2", "^screen: '1 < 2' reads no column$"),
    ("'a' = 'a' or not 2 > 3", "reads no column$"),
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


DATED = pa.table({
    "symbol": ["A", "B", "C"],
    "max_pain_expiration": pa.array([date(2025, 12, 19), date(2025, 12, 26), None], pa.date32()),
    "atm_iv_expiration": pa.array([date(2025, 12, 19), date(2026, 1, 2), None], pa.date32()),
    "dealer_snapshot_time": pa.array([datetime(2025, 12, 19, 21, tzinfo=UTC), datetime(2025, 12, 18, 21, tzinfo=UTC),
                                      None], pa.timestamp("us", tz="UTC")),
})


def test_date_and_time_columns_compare_with_a_quoted_date_or_instant() -> None:
    def dated(text: str) -> list[str]:
        return DATED.filter(parse(text).mask(DATED)).column("symbol").to_pylist()

    # they ended in an unexpected ArrowNotImplementedError ('greater' has no kernel for date32 and double),
    # and a quoted date was refused as text
    assert dated("max_pain_expiration <= '2025-12-19'") == ["A"]
    assert dated("max_pain_expiration != '2025-12-19'") == ["B"]
    assert dated("max_pain_expiration = atm_iv_expiration") == ["A"]
    assert dated("dealer_snapshot_time >= '2025-12-19'") == ["A"]            # that day's 16:00 in New York
    assert dated("dealer_snapshot_time < '2025-12-19T20:00:00Z'") == ["B"]


@pytest.mark.parametrize(("text", "message"), [
    ("max_pain_expiration > 5", r"^screen: cannot compare max_pain_expiration \(date\) with 5.0 \(number\) "
                                r"\(write a date as 'YYYY-MM-DD'\)$"),
    ("dealer_snapshot_time > 1", r"cannot compare dealer_snapshot_time \(time\) with 1.0 \(number\)"),
    ("max_pain_expiration < '20251226'", "^screen: max_pain_expiration is a date: '20251226' is not a date "
                                         "written YYYY-MM-DD"),
    ("dealer_snapshot_time < '2025-12-19 21:00'", "^screen: dealer_snapshot_time is a time: '2025-12-19 21:00' is "
                                                  "not YYYY-MM-DD"),
    ("dealer_snapshot_time = max_pain_expiration", r"cannot compare dealer_snapshot_time \(time\) with "
                                                   r"max_pain_expiration \(date\)$"),
])
def test_a_date_or_time_compared_with_anything_else_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(text)


def test_a_chained_comparison_is_told_to_join_with_and() -> None:
    with pytest.raises(UsageError, match=r"^screen: unexpected '<' at column 10$") as refused:
        parse("20 < rsi < 30")
    assert refused.value.hint == "comparisons do not chain: join them with and (20 < rsi and rsi < 30)"
    with pytest.raises(UsageError) as refused:   # any other stray word has no such hint
        parse("rsi < 30 adx")
    assert refused.value.hint is None


def test_an_unquoted_text_value_is_told_to_be_quoted() -> None:
    with pytest.raises(UsageError, match="^screen: no column 'FULL' \\(column 10\\)") as refused:
        parse("status = FULL")
    assert refused.value.hint == "kapman screen --columns lists them; a text value is quoted: 'FULL'"
    with pytest.raises(UsageError) as refused:   # a name on the left is a column, misspelt
        parse("rsii < 30")
    assert refused.value.hint == "kapman screen --columns lists them"
