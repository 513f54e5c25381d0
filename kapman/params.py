"""The checks a step's parameters share, each written once; a ``Params.validate()`` is made of these.

A number outside its range and a date span that cannot be meant are usage errors (exit 2) that
name the flag and the rule, whoever built the parameters: the command line, the nightly, a test.
"""

from __future__ import annotations

from datetime import date

from kapman.config import NumberRange
from kapman.errors import UsageError

#: Threads or processes a step runs at once (A2's kernels, A3's symbols, OHLCV's downloads).
WORKERS_RANGE = NumberRange(1, 64, integer=True)


def in_range(flag: str, value: float | None, allowed: NumberRange) -> None:
    """``value`` (None: the default, always allowed) within ``allowed``, or one line naming ``flag``."""
    if value is None:
        return
    whole = isinstance(value, float) and value.is_integer() and abs(value) < 1e15
    raw = str(int(value)) if whole else str(value)   # 7200, not 7200.0; 1e+308, not its 309 digits
    try:
        allowed.parse(raw)
    except ValueError as exc:
        raise UsageError(f"argument {flag}: {exc}") from None


def date_span(day: date | None, start: date | None, end: date | None, *, open_ended: bool = False) -> None:
    """``--date D`` or ``--start-date/--end-date``, never both; ``open_ended``: either end may be left
    out (everything from, or up to, a date), else the two go together."""
    if day and (start or end):
        raise UsageError("give either --date or --start-date/--end-date, not both")
    if not open_ended and bool(start) != bool(end):
        raise UsageError("--start-date and --end-date go together")
    if start and end and start > end:
        raise UsageError(f"--start-date {start} is after --end-date {end}")


def not_before_window(day: date | None, oldest: date, today: date, *, span: str | None = None) -> None:
    """A date (the last of ``span``) before the retention window running from ``oldest`` to ``today``,
    whose bars retention drops: a backfill would load what the lifecycle drops again."""
    if day is not None and day < oldest:
        raise UsageError(f"{span or day} is before the retention window (bars are kept from {oldest}, "
                         f"{(today - oldest).days} days)")


def not_after_today(day: date | None, today: date, *, flag: str = "") -> None:
    """A date nothing can be stored for yet is refused as such (not "no bars", not "run a step first");
    ``flag`` names the argument that gave it."""
    if day is not None and day > today:
        raise UsageError(f"{flag + ' ' if flag else ''}{day} is after today ({today} by KapMan's clock)")
