"""What an OHLCV run should load: its window, what the calendar expects, what the ledger believes.

Pure decisions (windows, the retention cutoff, publication times, which trading days lack a file)
and the ledger query they need.  Every rule here counts by KapMan's clock
(``kapman.clock``) and the NYSE calendar (``kapman.calendar``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

import psycopg

from kapman import calendar, clock, registry
from kapman.db import retention, schema
from kapman.errors import UsageError
from kapman.providers.flatfiles import FileRef

#: The vendor's files are final by about 11:00 New York the day after the session.
PUBLISHED_BY = time(11, 0)
#: Trading days before an incremental run's start whose files are listed again for a new ETag.
RECHECK_DAYS = 5


@dataclass(frozen=True)
class Window:
    mode: str
    start: date
    end: date
    #: First day listed: before ``start`` when trailing days are re-checked for republished files.
    listed_from: date | None = None
    #: The newest date already loaded (incremental only).
    newest: date | None = None

    @property
    def empty(self) -> bool:
        return self.start > self.end

    @property
    def first_listed(self) -> date:
        return min(self.listed_from or self.start, self.start)

    def describe(self) -> str:
        """``base 2025-12-09..2025-12-19``; never a reversed range."""
        if self.empty:
            return f"{self.mode}: nothing after {self.newest or self.end}"
        span = str(self.start) if self.start == self.end else f"{self.start}..{self.end}"
        return f"{self.mode} {span}"


def base_window(days: int, as_of: date | None = None) -> Window:
    end = as_of or clock.today_ny()
    return Window("base", end - timedelta(days=days), end)


def backfill_window(start: date, end: date) -> Window:
    return Window("backfill", start, end)


def newest_loaded(conn: psycopg.Connection) -> date | None:
    row = conn.execute("SELECT max(date) FROM public.ohlcv").fetchone()
    return row[0] if row else None


def incremental_window(conn: psycopg.Connection, *, start: date | None = None, end: date | None = None,
                       recheck: int = RECHECK_DAYS) -> Window:
    """From the day after the newest loaded date (or ``start``) to ``end`` (default today), listing
    the ``recheck`` trading days before it again so a republished file is noticed."""
    newest = newest_loaded(conn)
    if start is None:
        if newest is None:
            raise UsageError("no OHLCV loaded yet, so there is nothing to continue from",
                             hint=f"run {registry.command('ohlcv')} base first")
        start = newest + timedelta(days=1)
    end = end or clock.today_ny()
    listed_from = start
    for _ in range(recheck):
        listed_from = calendar.previous_trading_day(listed_from)
    return Window("incremental", start, end, listed_from=listed_from, newest=newest)


def retention_cutoff(conn: psycopg.Connection | None = None) -> date:
    """The oldest date retention keeps: 730 days before today by KapMan's clock (the lifecycle's
    recorded clock where the database has one, see ``retention.cutoff``)."""
    recorded = retention.cutoff(conn) if conn is not None else None
    return recorded or clock.today_ny() - schema.RETENTION


def refuse_expired(window: Window, cutoff: date) -> tuple[Window, str | None]:
    """Clip the window to the retention cutoff, with the reason; refuse it wholly when it ends before.

    A date older than the cutoff would be loaded and dropped by the next retention pass (or loaded
    into a hole the policy keeps making), so it is never loaded.
    """
    why = (f"retention keeps {schema.RETENTION.days} days by KapMan's clock (cutoff {cutoff}); older dates "
           f"would be dropped again at once")
    if window.end < cutoff:
        raise UsageError(f"{window.start}..{window.end} is older than the retention cutoff: {why}",
                         hint=f"choose dates from {cutoff} on")
    if window.start >= cutoff:
        return window, None
    clipped = Window(window.mode, cutoff, window.end, listed_from=max(window.first_listed, cutoff),
                     newest=window.newest)
    return clipped, f"dates {window.start}..{cutoff - timedelta(days=1)} refused: {why}"


def due_at(day: date) -> datetime:
    """When the day's final file is due: 11:00 New York the next calendar day."""
    return datetime.combine(day + timedelta(days=1), PUBLISHED_BY, tzinfo=clock.NEW_YORK)


@dataclass
class Coverage:
    """Trading days of the listed range without a file: overdue ones are missing data."""

    missing: list[date]       # past their publication time
    pending: list[date]       # not due yet


def coverage(start: date, end: date, refs: list[FileRef], now: datetime | None = None) -> Coverage:
    now = now or clock.now()
    have = {r.day for r in refs}
    absent = [d for d in calendar.trading_days(start, end) if d not in have]
    return Coverage([d for d in absent if due_at(d) <= now], [d for d in absent if due_at(d) > now])


class Loaded(NamedTuple):
    etag: str
    day: date


def ledger(conn: psycopg.Connection, start: date, end: date) -> dict[str, Loaded]:
    """key -> (ETag, trading date) of the files recorded as loaded for [start, end]."""
    rows = conn.execute("SELECT key, etag, trading_date FROM public.ingest_files "
                        "WHERE trading_date BETWEEN %s AND %s", (start, end)).fetchall()
    return {k: Loaded(e, d) for k, e, d in rows}
