"""Dates given to the Data API and to screen: one written form, YYYY-MM-DD, as on every command line."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kapman.console import main
from kapman.data.api import Dates
from kapman.errors import UsageError


def test_a_date_is_a_date_a_datetime_or_text_written_yyyy_mm_dd() -> None:
    assert Dates.of("2025-12-19", None, None) == Dates(date(2025, 12, 19), date(2025, 12, 19))
    assert Dates.of(None, date(2025, 12, 1), " 2025-12-19 ") == Dates(date(2025, 12, 1), date(2025, 12, 19))
    # an aware instant is a New York date: 03:00 UTC on the 19th is still the 18th there
    assert Dates.of(datetime(2025, 12, 19, 3, tzinfo=UTC), None, None).start == date(2025, 12, 18)


@pytest.mark.parametrize("text", ["20251219", "2025-12-19junk", "2025-W51-5", "1700-01-01", "", "12/19/2025"])
def test_any_other_text_is_refused_with_the_form(text: str) -> None:
    with pytest.raises(UsageError, match=rf"^start: '{text}' is not a date written YYYY-MM-DD"):
        Dates.of(None, text, None)


@pytest.mark.parametrize("text", ["20251219", "2025-W51-5", "1700-01-01"])
def test_screen_date_takes_only_yyyy_mm_dd(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:   # refused by the parser, before any database is asked
        main(["screen", "rsi < 30", "--date", text, "--db-url", "postgresql://nobody@127.0.0.1:1/none"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.splitlines()[-1] == (f"kapman screen: error: argument --date: '{text}' is not a date written "
                                    "YYYY-MM-DD (years 1900..2999)")



def test_a_snapshot_bound_is_an_instant_with_its_zone_or_a_date() -> None:
    from kapman.data.api import _instant

    assert _instant(datetime(2025, 12, 18, 21, 5, tzinfo=UTC)) == datetime(2025, 12, 18, 21, 5, tzinfo=UTC)
    assert _instant("2025-12-18T16:05:00-05:00") == datetime(2025, 12, 18, 21, 5, tzinfo=UTC)
    assert _instant(date(2025, 12, 18)) == datetime(2025, 12, 19, 4, 59, 59, 999999, tzinfo=UTC)  # the day's end
    # a naive datetime went to the server as is, read in the server's own time zone
    with pytest.raises(UsageError, match=r"^snapshot: 2025-12-18T21:05:00 has no time zone"):
        _instant(datetime(2025, 12, 18, 21, 5))
