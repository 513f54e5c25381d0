"""Which trading dates a job works on, resolved once for A2 and A3."""

from __future__ import annotations

from datetime import date

import psycopg

from kapman import clock, registry
from kapman.calendar import trading_days
from kapman.db import lifecycle
from kapman.errors import UsageError
from kapman.params import date_span, not_after_today, not_before_window

#: The default date: the newest trading date with bars.
NEWEST_OHLCV = "SELECT max(date) FROM public.ohlcv WHERE date <= %s"


def requested_dates(conn: psycopg.Connection, *, day: date | None, start: date | None,
                    end: date | None) -> list[date]:
    """``--date D`` or ``--start-date/--end-date``; default: the newest date with bars.  By the warehouse's
    clock: a date after today, or before the retention window, holds nothing a step can store, so it
    is refused, and a range is cut to the days between."""
    date_span(day, start, end)
    from kapman.ops.inventory import window_start

    now = lifecycle.warehouse_now(conn)
    today, oldest = clock.ny_date_of(now), window_start(conn, now)
    not_after_today(day or start, today)
    not_before_window(day or end, oldest, today, span=f"{start}..{end}" if end else None)
    if start and end:  # the days after today hold nothing yet, nor the days before the window any more
        days = list(trading_days(max(start, oldest), min(end, today)))
        if not days:
            raise UsageError(f"{start}..{end} holds no NYSE trading day")
        return days
    if day:
        return [day]
    found = conn.execute(NEWEST_OHLCV, (today,)).fetchone()[0]  # type: ignore[index]
    if found is None:
        raise UsageError("public.ohlcv is empty: there is no trading date to compute",
                         hint=f"run {registry.get('ohlcv').command} base first, or pass --date")
    return [found]


def history_dates(conn: psycopg.Connection) -> list[date]:
    """Every date with bars in the retention window, up to today: A2's indicator history after a repave
    (dates already computed are then skipped, so a second run resumes where the first stopped)."""
    from kapman.ops.inventory import window_start

    now = lifecycle.warehouse_now(conn)   # the window status counts, on a frozen database's clock too
    start = window_start(conn, now)
    rows = conn.execute("SELECT DISTINCT date FROM public.ohlcv WHERE date >= %s AND date <= %s ORDER BY 1",
                        (start, clock.ny_date_of(now))).fetchall()
    if not rows:
        raise UsageError(f"public.ohlcv has no bars since {start}: there is no history to compute",
                         hint=f"run {registry.command('ohlcv')} base first")
    return [r[0] for r in rows]
