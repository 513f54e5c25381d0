"""Which trading dates a job works on, resolved once for A2 and A3."""

from __future__ import annotations

from datetime import date

import psycopg

from kapman import clock, registry
from kapman.calendar import trading_days
from kapman.db import lifecycle
from kapman.errors import UsageError
from kapman.params import date_span, not_after_today

#: The default date: the newest trading date with bars.
NEWEST_OHLCV = "SELECT max(date) FROM public.ohlcv WHERE date <= %s"


def requested_dates(conn: psycopg.Connection, *, day: date | None, start: date | None,
                    end: date | None) -> list[date]:
    """``--date D`` or ``--start-date/--end-date``; default: the newest date with bars."""
    date_span(day, start, end)
    today = lifecycle.warehouse_today(conn)
    not_after_today(day or start, today)
    if start and end:  # the days after today hold nothing yet, and are not "missed" either
        days = list(trading_days(start, min(end, today)))
        if not days:
            raise UsageError(f"{start}..{end} holds no NYSE trading day")
        return days
    if day:
        return [day]
    found = conn.execute(NEWEST_OHLCV, (clock.today_ny(),)).fetchone()[0]  # type: ignore[index]
    if found is None:
        raise UsageError("public.ohlcv is empty: there is no trading date to compute",
                         hint=f"run {registry.get('ohlcv').command} base first, or pass --date")
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
                         hint=f"run {registry.command('ohlcv')} base first")
    return [r[0] for r in rows]
