"""Which dates A2 owes (``inventory.a2_first`` / ``a2_missing``) and what status's a2 check says of
them: the one answer the nightly's plan and status share."""

from __future__ import annotations

from datetime import date

from kapman import calendar
from kapman.clock import parse_instant
from kapman.ops import inventory, status
from kapman.ops.checks import Verdict
from kapman.ops.inventory import Inventory

#: Friday 2025-12-19 17:00 New York: the 18th's file is due (11:00 today), the 19th's is not.
EVENING = parse_instant("2025-12-19T22:00:00Z")
DAYS = list(calendar.trading_days(date(2025, 11, 3), date(2025, 12, 19)))
HISTORY_FIX = "python -m scripts.nightly (or python -m scripts.run_a2_local_ta --history)"


def warehouse(a2_from: date | None = None, *, asked: bool = False, gaps: tuple[date, ...] = ()) -> Inventory:
    """Bars on every trading day of ``DAYS``; A2 on those from ``a2_from`` on but ``gaps``."""
    a2 = {d: 10 for d in DAYS if a2_from is not None and d >= a2_from and d not in gaps}
    return Inventory(start=date(2023, 12, 20), bars=dict.fromkeys(DAYS, 10), a2=a2, a2_history=asked)


def test_a_warehouse_with_bars_and_no_a2_owes_the_whole_history() -> None:
    inv = warehouse()
    assert inventory.a2_first(inv, EVENING) == DAYS[0]
    assert inventory.a2_missing(inv, EVENING) == DAYS
    check = status.a2(inv, EVENING)
    assert check.verdict is Verdict.WARN and check.details["missing"] == DAYS
    assert check.details["history_not_computed"] == 0
    assert check.summary == ("0 dates computed; the indicator history is owed, 34 dates with bars and no A2: "
                             "2025-11-03, 2025-11-04, 2025-11-05, 2025-11-06, 2025-11-07 and 29 more")
    assert check.fix == HISTORY_FIX


def test_without_the_history_a2_begins_at_the_newest_due_day() -> None:
    """``nightly --no-history`` on a warehouse without A2: the newest day whose file is due."""
    inv = warehouse()
    assert inventory.a2_first(inv, EVENING, history=False) == date(2025, 12, 18)
    assert inventory.a2_missing(inv, EVENING, history=False) == [date(2025, 12, 18), date(2025, 12, 19)]


def test_a_history_asked_for_and_interrupted_is_owed_from_the_first_date_with_bars() -> None:
    inv = warehouse(date(2025, 12, 19), asked=True)
    assert inventory.a2_missing(inv, EVENING) == DAYS[:-1]
    check = status.a2(inv, EVENING)
    assert check.verdict is Verdict.WARN and check.fix == HISTORY_FIX
    # --no-history neither starts nor resumes it: A2 from where it began.
    assert inventory.a2_missing(inv, EVENING, history=False) == []


def test_a2_begun_later_without_the_history_says_it_and_stays_ok() -> None:
    inv = warehouse(date(2025, 12, 15))
    assert inventory.a2_missing(inv, EVENING) == []
    check = status.a2(inv, EVENING)
    assert check.verdict is Verdict.OK and check.details["history_not_computed"] == 29
    assert check.summary.endswith("the 29 earlier dates with bars have none "
                                  "(python -m scripts.run_a2_local_ta --history computes them)")


def test_a_gap_after_a2_began_is_mended_by_dates() -> None:
    gap = (date(2025, 12, 8), date(2025, 12, 9))
    for asked in (False, True):
        check = status.a2(warehouse(DAYS[0] if asked else date(2025, 12, 1), asked=asked, gaps=gap), EVENING)
        assert check.verdict is Verdict.WARN and check.details["missing"] == list(gap)
        assert check.fix == ("python -m scripts.nightly (or python -m scripts.run_a2_local_ta "
                             "--start-date 2025-12-08 --end-date 2025-12-09)")
