"""KapMan's single notion of "now", and the one way a date or time is written to KapMan.

Real UTC time by default; the ``KAPMAN_NOW`` setting freezes it, which is how the offline
sandbox, the demo and the tests replay a given market day.  Every default that means "today" or
"now" must come from here.

``KAPMAN_NOW`` and every date or time flag take two forms (``parse_day``, ``parse_instant``):
``YYYY-MM-DD``, a trading date (as an instant: that day's 16:00 close in New York), and ISO 8601
with its offset, ``2025-12-19T21:00:00Z`` or ``2025-12-19T16:00:00-05:00``, an instant.  Anything
else (``20251219``, a time without an offset, a year outside 1900..2999) is refused with the
accepted forms: a time without a zone would be read in someone's zone, and ``20251219`` as
something nobody wrote.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kapman import calendar

NEW_YORK = ZoneInfo("America/New_York")
#: The regular session close; ``daily_snapshots.time`` is the trading date at this time.
MARKET_CLOSE = time(16, 0)

ENV_VAR = "KAPMAN_NOW"


DAY_FORM = "YYYY-MM-DD"
INSTANT_FORMS = ("YYYY-MM-DD (that day's 16:00 close in New York) or an ISO 8601 time with its offset "
                 "(2025-12-19T21:00:00Z, 2025-12-19T16:00:00-05:00)")
#: The years a date may name: far from datetime's limits, so no arithmetic on it overflows.
YEARS = (1900, 2999)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")


def parse_day(text: str) -> date:
    """A date written ``YYYY-MM-DD`` in ``YEARS``; ValueError naming the form otherwise."""
    text = text.strip()
    try:
        day = date.fromisoformat(text) if _DAY.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None or not YEARS[0] <= day.year <= YEARS[1]:
        raise ValueError(f"{text!r} is not a date written {DAY_FORM} (years {YEARS[0]}..{YEARS[1]})")
    return day


def parse_instant(text: str) -> datetime:
    """An instant (UTC, aware) written in one of ``INSTANT_FORMS``; ValueError naming them otherwise."""
    text = text.strip()
    try:
        if _DAY.fullmatch(text):
            return close_of(parse_day(text))
        value = datetime.fromisoformat(text.replace("Z", "+00:00")) if _INSTANT.fullmatch(text) else None
    except ValueError:
        value = None
    if value is None or not YEARS[0] <= value.year <= YEARS[1]:
        raise ValueError(f"{text!r} is not {INSTANT_FORMS}, in the years {YEARS[0]}..{YEARS[1]}")
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
    """The canonical snapshot time of a trading date: 16:00 America/New_York, in UTC.

    A label (``daily_snapshots.time``, ``KAPMAN_NOW=YYYY-MM-DD``), at or after every session's
    end; whether a session has closed is ``session_close``'s to say."""
    return datetime.combine(day, MARKET_CLOSE, tzinfo=NEW_YORK).astimezone(UTC)


def session_close(day: date) -> datetime:
    """The instant a trading day's session really closes (UTC): 16:00 New York, 13:00 on the
    NYSE's early-close days (``calendar.close_time``).  Every "after the close" rule uses it."""
    return datetime.combine(day, calendar.close_time(day), tzinfo=NEW_YORK).astimezone(UTC)


def ny_date_of(instant: datetime) -> date:
    """The New York calendar date of an instant."""
    return instant.astimezone(NEW_YORK).date()
