"""export.by_date: each date's rows as one slice of the table put in date order, in their order within the day."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

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


def test_two_writers_of_one_date_do_not_take_each_others_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Another export writing the same date while this one writes it: both end with the file in place (on one
    shared temporary name, the second rename found nothing: 'cannot write ...: No such file or directory')."""
    import pyarrow.parquet as pq

    from kapman import export

    table = pa.table({"symbol": ["A"], "date": pa.array([date(2024, 1, 2)], pa.date32()), "close": [1.0]})
    target = tmp_path / "ohlcv" / "2024-01-02.parquet"
    write = pq.write_table
    others: list[int] = []
    writing = []

    def while_another_writes(data: pa.Table, where: object, **options: object) -> None:
        write(data, where, **options)
        if not writing:   # the other export writes and renames the same date now
            writing.append(where)
            others.append(export.write_parquet(table, target))

    monkeypatch.setattr(export.pq, "write_table", while_another_writes)
    assert export.write_parquet(table, target) > 0 and others and others[0] > 0
    assert pq.read_table(target).equals(table)
    assert [p.name for p in target.parent.iterdir()] == [target.name]   # no temporary file left


def test_an_empty_to_is_refused_not_read_as_the_working_directory(capsys: pytest.CaptureFixture[str]) -> None:
    from kapman.console import main
    from kapman.export import DEFAULT_DIR

    with pytest.raises(SystemExit) as done:   # before any database is asked
        main(["export", "--to", " ", "--db-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert done.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == (
        f"kapman export: error: argument --to: is empty; name a directory, or leave --to out for {DEFAULT_DIR}")
