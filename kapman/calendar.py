"""The NYSE trading calendar (full-day closures and 13:00 early closes), from the exchange's rules.

Used by the sandbox to decide which days have a flat file, by reports to tell a missing file
from a market holiday, and by every "after the close" rule (``close_time``).  Rules cover 2000
onwards; one-off closures (national days of mourning, 9/11, Hurricane Sandy) are listed
explicitly.  Early closes at 13:00: the day after Thanksgiving, Christmas Eve and July 3 when
they are trading days before the holiday (Monday to Thursday), plus the listed one-offs.

Written here rather than taken from ``exchange_calendars``: its XNYS sessions and early closes
for 2000-2030 are these (checked when this was written), but importing it costs seconds and
pins another pandas, for a few dozen dates a year.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time, timedelta
from functools import cache

#: The regular close and the early close, New York time.
REGULAR_CLOSE = time(16, 0)
EARLY_CLOSE = time(13, 0)

# Unscheduled full-day closures since 2000.
_SPECIAL_CLOSURES = frozenset({
    date(2001, 9, 11), date(2001, 9, 12), date(2001, 9, 13), date(2001, 9, 14),
    date(2004, 6, 11), date(2007, 1, 2), date(2012, 10, 29), date(2012, 10, 30),
    date(2018, 12, 5), date(2025, 1, 9),
})


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Saturday holidays are observed Friday, Sunday holidays Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@cache
def holidays(year: int) -> frozenset[date]:
    days = {
        _nth_weekday(year, 1, 0, 3),   # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),   # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),     # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),   # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    new_year = date(year, 1, 1)
    # NYSE does not close on the Friday before a Saturday New Year's Day.
    if new_year.weekday() != 5:
        days.add(_observed(new_year))
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    days |= {d for d in _SPECIAL_CLOSURES if d.year == year}
    return frozenset(days)


# One-off early closes since 2000, and a July 3 that closed at 16:00 (2002 closed early on the 5th).
_SPECIAL_EARLY = frozenset({date(2002, 7, 5), date(2003, 12, 26)})
_REGULAR_JULY_3 = frozenset({date(2002, 7, 3)})


@cache
def early_closes(year: int) -> frozenset[date]:
    """The trading days of ``year`` that close at 13:00 New York."""
    candidates = {date(year, 7, 3), _nth_weekday(year, 11, 3, 4) + timedelta(days=1), date(year, 12, 24)}
    days = {d for d in candidates if d.weekday() < 4 or d.month == 11}
    days = (days - _REGULAR_JULY_3) | {d for d in _SPECIAL_EARLY if d.year == year}
    return frozenset(d for d in days if is_trading_day(d))


def close_time(day: date) -> time:
    """The New York time a trading day's session closes: 13:00 on an early close, else 16:00."""
    return EARLY_CLOSE if day in early_closes(day.year) else REGULAR_CLOSE


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in holidays(day.year)


def trading_days(start: date, end: date) -> Iterator[date]:
    """Trading days in [start, end], oldest first."""
    day = start
    while day <= end:
        if is_trading_day(day):
            yield day
        day += timedelta(days=1)


def previous_trading_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def spans(days: list[date]) -> str:
    """``2025-12-01..2025-12-03, 2025-12-05`` for a sorted list of trading days (runs collapse)."""
    out: list[str] = []
    run: list[date] = []
    for day in days:
        if run and previous_trading_day(day) != run[-1]:
            out.append(_span(run))
            run = []
        run.append(day)
    if run:
        out.append(_span(run))
    return ", ".join(out)


def _span(run: list[date]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}"
