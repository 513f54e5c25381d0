"""Reference records checked where they enter: fields a text column cannot hold make their record
invalid, not the run; a *_utc field without an offset is UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


def test_a_date_only_delisted_utc_is_utc_midnight() -> None:
    """A date-only delisted_utc used to be compared naive with aware: a traceback, exit 1."""
    from kapman.ingest.tickers import select
    rec = {"ticker": "OLD", "type": "CS", "active": False, "last_updated_utc": "2025-01-02T00:00:00Z"}
    since = datetime(2024, 1, 1, tzinfo=UTC)
    out = select([], [{**rec, "delisted_utc": "2024-06-03"}, {**rec, "ticker": "OLDER", "delisted_utc": "2023-06-03"},
                      {**rec, "ticker": "ODD", "delisted_utc": 17}], ("CS",), since)
    assert set(out.kept) == {"OLD"} and out.delisted_outside_window == 2


@pytest.mark.parametrize("bad", [{"name": "Apple\x00Inc"}, {"name": {"en": "Apple"}}, {"cik": 320193}])
def test_a_ticker_record_with_a_field_text_cannot_hold_is_invalid_not_fatal(bad: dict) -> None:
    """A NUL or an object in a text field used to fail the whole tickers run in the COPY."""
    from kapman.ingest.tickers import latest_per_symbol
    good = {"ticker": "MSFT", "name": "Microsoft", "type": "CS", "last_updated_utc": "2025-01-02T00:00:00Z"}
    best, duplicates, invalid = latest_per_symbol([good, {**good, "ticker": "AAPL", **bad}, "not a record"])
    assert set(best) == {"MSFT"} and invalid == {"bad_text": 1, "not_an_object": 1} and duplicates == 0


SINCE = datetime(2024, 1, 1, tzinfo=UTC)
GOOD = {"ticker": "MSFT", "name": "Microsoft", "market": "stocks", "locale": "us", "type": "CS", "active": True,
        "last_updated_utc": "2025-01-01T00:00:00Z"}


@pytest.mark.parametrize(("ticker", "shown"), [
    (True, "True"), (["A"], "['A']"), (123, "123"), (1.5, "1.5"), ("';--", "\"';--\""), ("A\x01B", "'A\\x01B'"),
    ("A\x00B", "'A\\x00B'"), ("A\ud800", "'A\\ud800'"), ("", "''"), ("X" * 21, "'" + "X" * 21 + "'"), (None, "None"),
])
def test_a_record_whose_ticker_is_not_a_symbol_is_invalid_by_reason(ticker: object, shown: str) -> None:
    """Non-strings used to be kept as their text ('True', "['A']", '123') and junk strings as written."""
    from kapman.ingest.tickers import select
    out = select([{**GOOD, "ticker": ticker}, GOOD], [], ("CS",), SINCE)
    assert list(out.kept) == ["MSFT"] and out.listed == {"MSFT"} and out.invalid == 1
    assert out.invalid_by_reason == {"bad_symbol": 1}
    assert out.invalid_samples == {"bad_symbol": [f"ticker {shown} is not a symbol"]}


def test_real_ticker_shapes_are_kept() -> None:
    from kapman.ingest.tickers import add_indices, select
    shapes = ["BRK.A", "AAp", "BACpA", "TpC", "GRP.U", " MSFT "]
    out = select([{**GOOD, "ticker": s} for s in shapes], [], ("CS",), SINCE)
    add_indices(out, [{**GOOD, "ticker": "I:SPX", "type": "INDEX", "market": "indices"}])
    assert sorted(out.kept) == sorted(["BRK.A", "AAp", "BACpA", "TpC", "GRP.U", "MSFT", "I:SPX"]) and out.invalid == 0


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_timestamp_outside_datetimes_range_is_unreadable_for_its_record_only(when: str) -> None:
    """It used to raise OverflowError out of select() and add_indices(): a traceback, no tickers."""
    from kapman.ingest.tickers import Selection, _row, add_indices, select
    out = select([{**GOOD, "ticker": "AAPL", "last_updated_utc": when}, GOOD],
                 [{**GOOD, "ticker": "OLD", "active": False, "delisted_utc": when}], ("CS",), SINCE)
    assert sorted(out.kept) == ["AAPL", "MSFT"] and out.invalid == 0 and out.delisted_outside_window == 1
    assert _row("AAPL", out.kept["AAPL"])[12:] == (None, None)
    assert _row("MSFT", out.kept["MSFT"])[13] == datetime(2025, 1, 1, tzinfo=UTC)
    indices = Selection()
    add_indices(indices, [{"ticker": "I:SPX", "last_updated_utc": when}])
    assert list(indices.kept) == ["I:SPX"] and _row("I:SPX", indices.kept["I:SPX"])[13] is None


@pytest.mark.parametrize("field", ["name", "primary_exchange", "cik"])
def test_a_text_field_utf8_cannot_encode_makes_its_record_invalid(field: str) -> None:
    """A lone surrogate (JSON "\\ud800") used to pass, then fail the COPY of the whole universe."""
    from kapman.ingest.tickers import _row, select
    out = select([{**GOOD, "ticker": "AAPL", field: "Apple \ud800"}, GOOD], [], ("CS",), SINCE)
    assert list(out.kept) == ["MSFT"] and out.invalid_by_reason == {"bad_text": 1}
    assert out.listed == {"AAPL", "MSFT"}   # AAPL's stored row stays as it was, active: only its text was bad
    assert out.invalid_samples == {"bad_text": [f"AAPL: {field} 'Apple \\ud800' cannot be stored as text"]}
    for value in _row("MSFT", out.kept["MSFT"])[1:11]:
        assert value is None or value.encode("utf-8")
