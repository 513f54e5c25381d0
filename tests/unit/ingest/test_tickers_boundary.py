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
    assert set(best) == {"MSFT"} and invalid == 2 and duplicates == 0
