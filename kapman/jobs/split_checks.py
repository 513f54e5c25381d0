"""Which recorded splits A2 (and the report's candles) apply: each is checked against the bars.

The vendor's split records are not all true: the same split can be recorded twice a few sessions
apart (SHOP 1-for-10 on both 2022-06-22 and 2022-06-29), and applying both divides the history by
100.  One rule, used wherever splits adjust bars:

1. *In the prices*: the jump from the ticker's last close before the execution date to its first
   open on or after it (each looked for within ``NEAR_DAYS`` calendar days) must be nearer, on a log
   scale, to the split's ratio than to no change at all.  A record the prices contradict is
   ``not-in-prices`` and not applied.  A record without bars on both sides, or with a ratio too
   close to 1 to tell from a day's move (within ``SMALL_RATIO``), is applied as recorded
   (``unchecked``).
2. *Once*: of records of the same ticker and ratio executed within ``DUPLICATE_DAYS`` calendar
   days of each other, one is applied (the one the prices confirm, else the earliest); the others
   are ``duplicate`` and not applied.

Verdicts depend only on the bars around each execution date, so a date computed again later gets
the same adjustment.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import date, timedelta

import psycopg

#: How far from the execution date the bar before it and the bar from it on are looked for.
NEAR_DAYS = 10
#: Records of the same ratio this many calendar days apart or less are one split recorded twice.
DUPLICATE_DAYS = 14
#: Ratios within this factor of 1 (e.g. 6-for-5) cannot be told from an ordinary day's move.
SMALL_RATIO = 1.22

APPLIED = ("confirmed", "unchecked")

_CHECKED = f"""
SELECT t.id, s.ticker, s.execution_date, s.split_from, s.split_to, p.close, n.open
FROM public.splits s JOIN public.tickers t ON t.symbol = s.ticker
LEFT JOIN LATERAL (SELECT o.close FROM public.ohlcv o WHERE o.ticker_id = t.id
                   AND o.date < s.execution_date AND o.date >= s.execution_date - {NEAR_DAYS}
                   ORDER BY o.date DESC LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT o.open FROM public.ohlcv o WHERE o.ticker_id = t.id
                   AND o.date >= s.execution_date AND o.date <= s.execution_date + {NEAR_DAYS}
                   ORDER BY o.date LIMIT 1) n ON true
WHERE s.execution_date > %(after)s AND s.execution_date <= %(through)s
  AND (%(ticker)s::uuid IS NULL OR t.id = %(ticker)s::uuid)
ORDER BY t.id, s.execution_date
"""


@dataclass(frozen=True)
class CheckedSplit:
    ticker_id: uuid.UUID
    symbol: str
    execution_date: date
    split_from: float
    split_to: float
    verdict: str        # confirmed | unchecked | not-in-prices | duplicate
    reason: str

    @property
    def ratio(self) -> float:
        """Price divisor for the bars before the split: split_to / split_from (10 for 10-for-1)."""
        return self.split_to / self.split_from

    @property
    def applied(self) -> bool:
        return self.verdict in APPLIED

    def label(self) -> str:
        return f"{self.execution_date} {_fmt(self.split_to)}-for-{_fmt(self.split_from)}"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def price_verdict(ratio: float, before_close: float | None, from_open: float | None) -> tuple[str, str]:
    """Rule 1 for one record: (verdict, reason)."""
    if abs(math.log(ratio)) < math.log(SMALL_RATIO):
        return "unchecked", "ratio too close to 1 to check against the prices"
    if before_close is None or from_open is None or before_close <= 0 or from_open <= 0:
        return "unchecked", "no bars on both sides of the execution date"
    seen = math.log(before_close / from_open)
    if abs(seen - math.log(ratio)) < abs(seen):
        return "confirmed", f"close {before_close:g} before, open {from_open:g} from the date"
    return "not-in-prices", f"close {before_close:g} before, open {from_open:g} from the date: no x{ratio:g} jump"


def resolve(records: list[tuple[uuid.UUID, str, date, float, float, float | None, float | None]]
            ) -> list[CheckedSplit]:
    """Rules 1 and 2 over rows ordered by (ticker id, execution date)."""
    out: list[CheckedSplit] = []
    for tid, symbol, day, s_from, s_to, before, after in records:
        verdict, reason = price_verdict(s_to / s_from, before, after)
        out.append(CheckedSplit(tid, symbol, day, s_from, s_to, verdict, reason))
    start = 0
    for end in range(1, len(out) + 1):   # one ticker's records at a time (rows come ordered by ticker)
        if end == len(out) or out[end].ticker_id != out[start].ticker_id:
            _apply_once(out, start, end)
            start = end
    return out


def _apply_once(out: list[CheckedSplit], start: int, end: int) -> None:
    """Rule 2 over one ticker's records ``out[start:end]``, in place."""
    for i in range(start, end):
        split = out[i]
        if not split.applied:
            continue
        twins = [j for j in range(start, end) if j != i and out[j].applied
                 and math.isclose(out[j].ratio, split.ratio, rel_tol=1e-9)
                 and abs((out[j].execution_date - split.execution_date).days) <= DUPLICATE_DAYS]
        if not twins:
            continue
        group = sorted([i, *twins], key=lambda k: (out[k].verdict != "confirmed", out[k].execution_date))
        kept = out[group[0]]
        for k in group[1:]:
            out[k] = replace(out[k], verdict="duplicate",
                             reason=f"same ratio as the record of {kept.execution_date} (applied once)")


def checked(conn: psycopg.Connection, after: date, through: date,
            ticker: uuid.UUID | None = None) -> list[CheckedSplit]:
    """Every split executed in (after, through] of a known ticker, with its verdict.

    Records up to DUPLICATE_DAYS outside the range are read too, so a duplicate is told the same
    way whichever range asks.
    """
    margin = timedelta(days=DUPLICATE_DAYS)
    rows = conn.execute(_CHECKED, {"after": after - margin, "through": through + margin,
                                   "ticker": ticker}).fetchall()
    return [s for s in resolve(rows) if after < s.execution_date <= through]


def applied(conn: psycopg.Connection, after: date, through: date,
            ticker: uuid.UUID | None = None) -> list[CheckedSplit]:
    return [s for s in checked(conn, after, through, ticker) if s.applied]
