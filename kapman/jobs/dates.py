"""Which trading dates a job works on, resolved once for A2 and A3."""

from __future__ import annotations

from datetime import date

import psycopg

from kapman import clock, registry
from kapman.calendar import trading_days
from kapman.errors import UsageError
from kapman.params import date_span

#: The default date: the newest trading date with bars.
NEWEST_OHLCV = "SELECT max(date) FROM public.ohlcv WHERE date <= %s"


def requested_dates(conn: psycopg.Connection, *, day: date | None, start: date | None,
                    end: date | None) -> list[date]:
    """``--date D`` or ``--start-date/--end-date``; default: the newest date with bars."""
    date_span(day, start, end)
    if start and end:
        return list(trading_days(start, end))
    if day:
        return [day]
    found = conn.execute(NEWEST_OHLCV, (clock.today_ny(),)).fetchone()[0]  # type: ignore[index]
    if found is None:
        raise UsageError("public.ohlcv is empty: there is no trading date to compute",
                         hint=f"run {registry.get('ohlcv').command} base first, or pass --date")
    return [found]
