"""The SQL calendar (migration 0014) the runbook dashboards read is kapman.calendar, day by day."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from kapman import calendar

pytestmark = pytest.mark.integration

FIRST, LAST = date(2000, 1, 1), date(2060, 12, 31)


def _python(days: str) -> list[date]:
    by_year = calendar.holidays if days == "closures" else calendar.early_closes
    return sorted(d for year in range(FIRST.year, LAST.year + 1) for d in by_year(year) if d.weekday() < 5)


@pytest.mark.parametrize("days", ["closures", "early_closes"])
def test_the_sql_calendar_is_the_python_calendar_from_2000_to_2060(conn: psycopg.Connection, days: str) -> None:
    rows = conn.execute(f"SELECT public.nyse_{days}(%s, %s)", (FIRST, LAST)).fetchall()
    assert [r[0] for r in rows] == _python(days)


def test_a_range_within_a_year_keeps_only_its_own_days(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT public.nyse_closures(DATE '2025-01-02', DATE '2025-04-30')").fetchall()
    assert [r[0] for r in rows] == [date(2025, 1, 9), date(2025, 1, 20), date(2025, 2, 17), date(2025, 4, 18)]
    early = conn.execute("SELECT public.nyse_early_closes(DATE '2024-07-01', DATE '2024-12-31')").fetchall()
    assert [r[0] for r in early] == [date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24)]
