"""export.by_date: each date's rows as one slice of the table put in date order, in their order within the day."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from kapman.export import _tables, by_date


def test_each_date_is_its_rows_in_their_order() -> None:
    days = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)]
    table = pa.table({"symbol": ["A", "A", "B", "B", "C"],
                      "date": pa.array([days[1], days[0], days[1], days[0], days[1]], pa.date32()),
                      "close": [1.0, 2.0, 3.0, 4.0, 5.0]})
    parts = {day: part.to_pydict() for day, part in by_date(table, days)}
    assert parts[days[0]] == {"symbol": ["A", "B"], "date": [days[0]] * 2, "close": [2.0, 4.0]}
    assert parts[days[1]] == {"symbol": ["A", "B", "C"], "date": [days[1]] * 3, "close": [1.0, 3.0, 5.0]}
    assert parts[days[2]] == {"symbol": [], "date": [], "close": []}


def test_an_empty_table_gives_empty_dates() -> None:
    table = pa.table({"symbol": pa.array([], pa.string()), "date": pa.array([], pa.date32())})
    assert [(day, part.num_rows) for day, part in by_date(table, [date(2024, 1, 2)])] == [(date(2024, 1, 2), 0)]


def test_a_table_named_twice_is_exported_once() -> None:
    # two writers of the same date raced on its temporary file, and the loser failed the run
    assert _tables("ohlcv, daily_snapshots,ohlcv") == ["ohlcv", "daily_snapshots"]
