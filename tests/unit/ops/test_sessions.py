"""When a day's flat file and option snapshot are due, by the NYSE calendar."""

from __future__ import annotations

from datetime import date

from kapman.clock import parse_instant
from kapman.ops import sessions
from kapman.ops.checks import Check, StatusReport, Verdict, day_list


def test_a_file_is_due_at_eleven_new_york_the_next_calendar_day() -> None:
    friday = date(2025, 12, 19)
    assert sessions.file_due_at(friday) == parse_instant("2025-12-20T16:00:00Z")   # 11:00 EST
    start = date(2025, 12, 17)
    assert sessions.ohlcv_due_days(start, parse_instant("2025-12-19T22:00:00Z")) == [date(2025, 12, 17),
                                                                                     date(2025, 12, 18)]
    assert sessions.ohlcv_due_days(start, parse_instant("2025-12-20T16:00:00Z"))[-1] == friday


def test_holidays_and_weekends_are_never_due() -> None:
    days = sessions.ohlcv_due_days(date(2025, 11, 26), parse_instant("2025-12-02T12:00:00Z"))
    assert days == [date(2025, 11, 26), date(2025, 11, 28)]     # Thanksgiving and the weekend skipped


def test_a_snapshot_can_be_taken_from_the_close_to_midnight_new_york() -> None:
    monday = date(2025, 12, 15)
    assert sessions.snapshot_session(parse_instant("2025-12-15T20:59:00Z")) is None      # 15:59 New York
    assert sessions.snapshot_session(parse_instant("2025-12-15T21:00:00Z")) == monday
    assert sessions.snapshot_session(parse_instant("2025-12-16T04:59:00Z")) == monday    # 23:59 New York
    assert sessions.snapshot_session(parse_instant("2025-12-16T05:00:00Z")) is None      # next day
    assert sessions.snapshot_session(parse_instant("2025-12-20T22:00:00Z")) is None      # Saturday
    assert not sessions.snapshot_window_over(monday, parse_instant("2025-12-16T04:59:00Z"))
    assert sessions.snapshot_window_over(monday, parse_instant("2025-12-16T05:00:00Z"))
    assert sessions.closed_sessions(monday, parse_instant("2025-12-16T12:00:00Z")) == [monday]


def test_the_overall_verdict_is_the_worst_and_is_the_exit_code() -> None:
    now = parse_instant("2025-12-19")
    report = StatusReport(now, [Check("a", Verdict.OK, "fine"), Check("b", Verdict.WARN, "hm", "fix-b")])
    assert (report.verdict, report.exit_code) == (Verdict.WARN, 1)
    text = report.render()
    assert "WARN  b" in text and "fix: fix-b" in text and text.endswith("overall WARN (exit 1)")
    report.checks.append(Check("c", Verdict.FAIL, "broken", "fix-c"))
    assert report.exit_code == 2 and report.as_dict()["verdict"] == "FAIL"
    assert StatusReport(now, []).exit_code == 0
    assert day_list([date(2025, 12, d) for d in range(1, 9)], 2) == "2025-12-01, 2025-12-02 and 6 more"


def test_early_closes_end_the_session_at_one() -> None:
    """The day after Thanksgiving and Christmas Eve close at 13:00: a snapshot after that is of the
    closed session (it used to wait for 16:00)."""
    from kapman import clock
    friday, eve = date(2025, 11, 28), date(2025, 12, 24)
    assert sessions.snapshot_session(parse_instant("2025-11-28T17:59:00Z")) is None      # 12:59 New York
    assert sessions.snapshot_session(parse_instant("2025-11-28T18:00:00Z")) == friday    # 13:00
    assert sessions.snapshot_session(parse_instant("2025-12-24T18:30:00Z")) == eve
    assert sessions.closed_sessions(eve, parse_instant("2025-12-24T18:00:00Z")) == [eve]
    assert clock.session_close(date(2025, 7, 3)) == parse_instant("2025-07-03T17:00:00Z")  # 13:00 EDT
    assert clock.session_close(date(2025, 12, 23)) == parse_instant("2025-12-23T21:00:00Z")
    assert clock.close_of(eve) == parse_instant("2025-12-24")  # the label keeps 16:00


def test_the_calendars_early_closes() -> None:
    """As the NYSE publishes them (13:00): July 3 only when July 4 falls Tuesday to Friday,
    Christmas Eve only Monday to Thursday, the day after Thanksgiving always."""
    from kapman import calendar
    got = sorted(d for y in range(2019, 2028) for d in calendar.early_closes(y))
    assert got == [date(2019, 7, 3), date(2019, 11, 29), date(2019, 12, 24), date(2020, 11, 27),
                   date(2020, 12, 24), date(2021, 11, 26), date(2022, 11, 25), date(2023, 7, 3),
                   date(2023, 11, 24), date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24),
                   date(2025, 7, 3), date(2025, 11, 28), date(2025, 12, 24), date(2026, 11, 27),
                   date(2026, 12, 24), date(2027, 11, 26)]
    assert calendar.close_time(date(2002, 7, 5)).hour == 13 and calendar.close_time(date(2002, 7, 3)).hour == 16
