"""Which trading dates a job works on, resolved once for A2 and A3."""

from __future__ import annotations

from datetime import date

import psycopg

from kapman import clock
from kapman.calendar import trading_days
from kapman.errors import UsageError


def requested_dates(conn: psycopg.Connection, *, day: date | None, start: date | None,
                    end: date | None) -> list[date]:
    """``--date D`` or ``--start-date/--end-date``; default: the newest date with OHLCV."""
    if day and (start or end):
        raise UsageError("give either --date or --start-date/--end-date, not both")
    if start or end:
        if not (start and end):
            raise UsageError("--start-date and --end-date go together")
        if start > end:
            raise UsageError(f"--start-date {start} is after --end-date {end}")
        return list(trading_days(start, end))
    if day:
        return [day]
    newest = conn.execute("SELECT max(date) FROM public.ohlcv WHERE date <= %s",
                          (clock.today_ny(),)).fetchone()[0]  # type: ignore[index]
    if newest is None:
        raise UsageError("public.ohlcv is empty: there is no trading date to compute",
                         hint="run python -m scripts.ingest_ohlcv base first")
    return [newest]
