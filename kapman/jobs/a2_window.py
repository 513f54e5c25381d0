"""A2's look-back rule: which bars a value for (ticker, D) is computed from.

The window for D starts at the first trading day of the calendar month twelve months before
D's month and ends at D: 252-275 bars.  That covers the longest warm-up (SMA 200, see
``kapman.metrics.indicators.MAX_WARMUP_BARS``) with 50+ bars to spare for the recursive
indicators' seeds to fade, and it depends only on D, so:

- recomputing D after older history is loaded, or after retention drops chunks older than the
  window, gives the same value (bars before the anchor are never read);
- every date of the same month shares one anchor, so a date range is one pass over one panel
  per distinct month, which is what makes a 5-day range cost little more than one date.

A run reads the bars of several anchors at once (``read_batches``) and cuts each anchor's window
out of that one read: the windows of consecutive months overlap by eleven of their twelve months.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from kapman.calendar import trading_days

LOOKBACK_MONTHS = 12
#: Anchors (months) whose bars are read at once: one read spans 12 + 6 months plus the requested
#: dates' own month, ~4.4M bars (~300 MB decoded) on an 11,000-ticker market, so a whole retention
#: window's history is read in a few passes without holding two years of bars at once.
ANCHORS_PER_READ = 6


def anchor(day: date) -> date:
    """First trading day of the month LOOKBACK_MONTHS before ``day``'s month."""
    months = day.year * 12 + (day.month - 1) - LOOKBACK_MONTHS
    first = date(months // 12, months % 12 + 1, 1)
    return next(trading_days(first, date(first.year, first.month, 28)), first)


def group_by_anchor(days: list[date]) -> dict[date, list[date]]:
    """Requested dates grouped by their window start, oldest first."""
    groups: dict[date, list[date]] = defaultdict(list)
    for d in sorted(set(days)):
        groups[anchor(d)].append(d)
    return dict(sorted(groups.items()))



def read_batches(groups: dict[date, list[date]], size: int = ANCHORS_PER_READ) -> list[dict[date, list[date]]]:
    """``group_by_anchor``'s groups in consecutive runs of at most ``size`` anchors, oldest first:
    each run is read once, from its first anchor through its last date."""
    items = list(groups.items())
    return [dict(items[i:i + size]) for i in range(0, len(items), size)]
