"""When each day's data becomes available, by KapMan's clock and the NYSE calendar.

Two schedules: a day's flat file is final about 11:00 New York the next calendar day, and an
option snapshot of a session can only be taken between its close (16:00, 13:00 on the NYSE's
early-close days: ``clock.session_close``) and midnight New York
that day (the endpoint returns the chain as of now, and ``options_chains.time`` is named by its
New York date, so a later snapshot would belong to another day).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from kapman import calendar, clock

#: Polygon publishes the day-aggregate file the morning after; final by about 11:00 New York.
FLAT_FILE_FINAL = time(11, 0)


def file_due_at(day: date) -> datetime:
    """The instant a trading day's flat file is expected to be final."""
    return datetime.combine(day + timedelta(days=1), FLAT_FILE_FINAL, tzinfo=clock.NEW_YORK)


def ohlcv_due_days(start: date, now: datetime) -> list[date]:
    """Trading days from ``start`` whose flat file is due by ``now``, oldest first."""
    end = clock.ny_date_of(now)
    return [d for d in calendar.trading_days(start, end) if file_due_at(d) <= now]


def closed_sessions(start: date, now: datetime) -> list[date]:
    """Trading days from ``start`` whose session has closed by ``now``."""
    return [d for d in calendar.trading_days(start, clock.ny_date_of(now)) if clock.session_close(d) <= now]


def snapshot_session(now: datetime) -> date | None:
    """The session whose option snapshot can be taken now: today's, after its close, else None."""
    today = clock.ny_date_of(now)
    if calendar.is_trading_day(today) and clock.session_close(today) <= now:
        return today
    return None


def snapshot_window_end(day: date) -> datetime:
    """Midnight New York after ``day``: its snapshot can no longer be taken from then on."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=clock.NEW_YORK)


def snapshot_window_over(day: date, now: datetime) -> bool:
    return now >= snapshot_window_end(day)
