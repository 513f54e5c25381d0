"""Which trading dates a job works on, resolved once for A2 and A3."""

from __future__ import annotations

from datetime import date

import psycopg

from kapman import clock
from kapman.calendar import trading_days
from kapman.errors import UsageError

#: Default-date sources: the newest trading date that has the job's input.
NEWEST_OHLCV = "SELECT max(date) FROM public.ohlcv WHERE date <= %s"
NEWEST_SNAPSHOT = ("SELECT max((time AT TIME ZONE 'America/New_York')::date) FROM public.options_chains "
                   "WHERE (time AT TIME ZONE 'America/New_York')::date <= %s")


def requested_dates(conn: psycopg.Connection, *, day: date | None, start: date | None,
                    end: date | None, newest: str = NEWEST_OHLCV) -> list[date]:
    """``--date D`` or ``--start-date/--end-date``; default: the newest date with input."""
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
    found = conn.execute(newest, (clock.today_ny(),)).fetchone()[0]  # type: ignore[index]
    if found is None:
        what = "public.ohlcv" if newest == NEWEST_OHLCV else "public.options_chains"
        step = "ingest_ohlcv base" if newest == NEWEST_OHLCV else "ingest_options"
        raise UsageError(f"{what} is empty: there is no trading date to compute",
                         hint=f"run python -m scripts.{step} first, or pass --date")
    return [found]


def history_dates(conn: psycopg.Connection) -> list[date]:
    """Every date with bars in the retention window, up to today: A2's indicator history after a repave
    (dates already computed are then skipped, so a second run resumes where the first stopped)."""
    from kapman.ops.inventory import window_start

    start = window_start(conn, clock.now())
    rows = conn.execute("SELECT DISTINCT date FROM public.ohlcv WHERE date >= %s AND date <= %s ORDER BY 1",
                        (start, clock.today_ny())).fetchall()
    if not rows:
        raise UsageError(f"public.ohlcv has no bars since {start}: there is no history to compute",
                         hint="run python -m scripts.ingest_ohlcv base first")
    return [r[0] for r in rows]
