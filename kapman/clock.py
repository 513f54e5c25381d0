"""KapMan's single notion of "now".

Real UTC time by default; the ``KAPMAN_NOW`` setting (an ISO date or timestamp) freezes it, which
is how the offline sandbox, the demo and the tests replay a given market day.  Every default that
means "today" or "now" must come from here.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
#: The regular session close; ``daily_snapshots.time`` is the trading date at this time.
MARKET_CLOSE = time(16, 0)

ENV_VAR = "KAPMAN_NOW"


def parse_instant(text: str) -> datetime:
    """Parse an ISO date or timestamp; naive timestamps are UTC, a bare date is its NY close."""
    text = text.strip()
    if len(text) == 10:
        return close_of(date.fromisoformat(text))
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now() -> datetime:
    """The current instant (UTC, aware), honouring ``KAPMAN_NOW``."""
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return parse_instant(override)
    return real_now()


def real_now() -> datetime:
    """The wall clock, whatever ``KAPMAN_NOW`` says (durations, and the server's view of time)."""
    return datetime.now(UTC)


#: How far KapMan's clock may sit from real time and still count as real time: lifecycle windows
#: are whole days, so a clock frozen earlier today changes no cutoff that matters.
REAL_TIME_TOLERANCE = timedelta(days=1)


def is_frozen() -> bool:
    """Whether ``KAPMAN_NOW`` sets KapMan's clock in this process."""
    return bool(os.environ.get(ENV_VAR, "").strip())


def away_from_real_time() -> bool:
    """KapMan's clock is frozen at an instant more than a day from the wall clock."""
    return is_frozen() and abs(now() - real_now()) > REAL_TIME_TOLERANCE


def today_ny() -> date:
    """Today's date in New York, the calendar trading dates are named in."""
    return now().astimezone(NEW_YORK).date()


def close_of(day: date) -> datetime:
    """The canonical snapshot time of a trading date: 16:00 America/New_York, in UTC."""
    return datetime.combine(day, MARKET_CLOSE, tzinfo=NEW_YORK).astimezone(UTC)


def ny_date_of(instant: datetime) -> date:
    """The New York calendar date of an instant."""
    return instant.astimezone(NEW_YORK).date()
