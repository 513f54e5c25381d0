"""What an OHLCV run plans: windows, the retention cutoff, publication times, missing days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kapman import calendar
from kapman.errors import UsageError
from kapman.ingest import ohlcv_plan as plan
from kapman.ingest.ohlcv import OhlcvParams
from kapman.providers.flatfiles import FileRef


def ref(day: date) -> FileRef:
    return FileRef(f"us_stocks_sip/day_aggs_v1/{day:%Y/%m}/{day}.csv.gz", day, "e", 1)


def test_a_days_file_is_due_at_eleven_new_york_the_next_day() -> None:
    assert plan.due_at(date(2025, 12, 19)) == datetime(2025, 12, 20, 16, 0, tzinfo=UTC)
    assert plan.due_at(date(2025, 7, 3)) == datetime(2025, 7, 4, 15, 0, tzinfo=UTC)   # summer time


def test_coverage_tells_missing_from_pending_and_skips_holidays() -> None:
    refs = [ref(date(2025, 11, 24)), ref(date(2025, 11, 26))]   # 25th absent, 27th Thanksgiving
    now = datetime(2025, 11, 28, 15, 0, tzinfo=UTC)             # 10:00 New York, Friday
    cover = plan.coverage(date(2025, 11, 24), date(2025, 11, 28), refs, now)
    assert cover.missing == [date(2025, 11, 25)]
    assert cover.pending == [date(2025, 11, 28)]


def test_retention_cutoff_clips_or_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19")
    cutoff = plan.retention_cutoff()
    assert cutoff == date(2023, 12, 20)
    window, why = plan.refuse_expired(plan.base_window(730), cutoff)
    assert window.start == cutoff and why is None
    clipped, why = plan.refuse_expired(plan.backfill_window(date(2023, 12, 1), date(2024, 1, 31)), cutoff)
    assert (clipped.start, clipped.end) == (cutoff, date(2024, 1, 31))
    assert why == ("dates 2023-12-01..2023-12-19 refused: retention keeps 730 days by KapMan's clock (cutoff "
                   "2023-12-20); older dates would be dropped again at once")
    with pytest.raises(UsageError, match="2023-01-02..2023-01-31 is older than the retention cutoff") as info:
        plan.refuse_expired(plan.backfill_window(date(2023, 1, 2), date(2023, 1, 31)), cutoff)
    assert info.value.hint == "choose dates from 2023-12-20 on"


def test_windows_never_read_reversed() -> None:
    assert plan.Window("backfill", date(2025, 12, 1), date(2025, 12, 5)).describe() == "backfill 2025-12-01..2025-12-05"
    assert plan.Window("incremental", date(2025, 12, 19), date(2025, 12, 19)).describe() == "incremental 2025-12-19"
    empty = plan.Window("incremental", date(2025, 12, 20), date(2025, 12, 19), newest=date(2025, 12, 19))
    assert empty.empty and empty.describe() == "incremental: nothing after 2025-12-19"
    with pytest.raises(UsageError, match="--start-date 2025-12-20 is after --end-date 2025-12-19"):
        OhlcvParams(mode="backfill", start=date(2025, 12, 20), end=date(2025, 12, 19)).validate()  # the one check


def test_spans_collapse_consecutive_trading_days() -> None:
    days = [date(2025, 11, 24), date(2025, 11, 25), date(2025, 11, 26), date(2025, 11, 28),  # across Thanksgiving
            date(2025, 12, 3)]
    assert calendar.spans(days) == "2025-11-24..2025-11-28, 2025-12-03"


@pytest.mark.parametrize("argv", [
    ["incremental", "--date", "2025-12-19", "--start-date", "2025-12-01"],
    ["incremental", "--date", "2025-12-19", "--end", "2025-12-01"],
])
def test_incremental_date_with_a_start_or_an_end_is_refused(argv: list[str]) -> None:
    """It loaded --date alone, the other flag dropped without a word."""
    from kapman.commands import ohlcv

    with pytest.raises(UsageError, match="give either --date or --start-date/--end-date, not both"):
        ohlcv.params_of(ohlcv.build_parser().parse_args(argv))


def test_a_reversed_incremental_range_is_refused() -> None:
    """It was 'ok ... nothing after <newest>', exit 0."""
    with pytest.raises(UsageError, match="--start-date 2025-12-12 is after --end-date 2025-12-10"):
        OhlcvParams(mode="incremental", start=date(2025, 12, 12), end=date(2025, 12, 10)).validate()
    OhlcvParams(mode="incremental", end=date(2025, 12, 10)).validate()   # an end alone: from the newest loaded


@pytest.mark.parametrize(("argv", "workers", "source", "force"), [
    (["base"], 4, "flatfiles", False),
    (["--workers", "3", "--source", "rest", "--force", "base"], 3, "rest", True),
    (["base", "--workers", "2", "--source", "rest", "--force"], 2, "rest", True),   # was 'unrecognized arguments'
    (["--workers", "3", "backfill", "--start", "2025-12-01", "--end", "2025-12-02", "--workers", "5"], 5, "flatfiles",
     False),
])
def test_run_options_go_before_or_after_the_subcommand(argv: list[str], workers: int, source: str, force: bool) -> None:
    from kapman.commands import ohlcv

    params = ohlcv.params_of(ohlcv.build_parser().parse_args(argv))
    assert (params.workers, params.source, params.force) == (workers, source, force)


@pytest.mark.parametrize(("argv", "message"), [
    (["incremental", "--date", "2025-12-13"], "2025-12-13 (Saturday) is not a NYSE trading day: it has no flat file"),
    (["incremental", "--date", "2025-11-27"], "2025-11-27 (Thursday) is not a NYSE trading day: it has no flat file"),
    (["backfill", "--start", "2025-12-13", "--end", "2025-12-14"], "2025-12-13..2025-12-14 holds no NYSE trading day"),
    (["incremental", "--start-date", "2025-12-25", "--end-date", "2025-12-25"],
     "2025-12-25 (Thursday) is not a NYSE trading day: it has no flat file"),
])
def test_dates_typed_without_a_session_are_refused(argv: list[str], message: str) -> None:
    """They were 'ok · ... up to date', exit 0, as if their file had been loaded."""
    from kapman.commands import ohlcv

    with pytest.raises(UsageError) as refused:
        ohlcv.params_of(ohlcv.build_parser().parse_args(argv))
    assert refused.value.message == message
    ohlcv.params_of(ohlcv.build_parser().parse_args(["backfill", "--start", "2025-12-13", "--end", "2025-12-15"]))
