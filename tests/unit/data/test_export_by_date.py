"""export.by_date: each date's rows as one slice of the table put in date order, in their order within the day."""

from __future__ import annotations

from datetime import UTC, date, datetime
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


NOWHERE = "postgresql://nobody@127.0.0.1:1/none"   # each refusal comes before any database is asked


@pytest.mark.parametrize(("args", "message"), [
    (["--start-date", "2025-12-19", "--end-date", "2025-12-01"],
     "--start-date 2025-12-19 is after --end-date 2025-12-01"),
    (["--date", "2025-12-19", "--start-date", "2025-12-01"], "give either --date or --start-date/--end-date, not both"),
])
def test_a_date_span_that_cannot_be_meant_names_the_flags(args: list[str], message: str,
                                                          capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """It said "start 2025-12-19 is after end 2025-12-01", the Data API's argument names, not the command's."""
    from kapman.console import main

    assert main(["export", "--to", str(tmp_path), *args, "--db-url", NOWHERE]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {message}"]


def test_a_to_that_is_a_dangling_link_is_named_as_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """It failed at the first file: "cannot write LINK/ohlcv/2025-12-19.parquet: File exists"."""
    from kapman.console import main

    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert main(["export", "--to", str(tmp_path / "link"), "--db-url", NOWHERE]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --to {tmp_path / 'link'} is a link to "
                                                    f"{tmp_path / 'gone'}, which does not exist"]


@pytest.mark.parametrize("inside", ["", "mine", "mine/deeper"])
def test_a_to_inside_a_tables_directory_of_an_export_is_refused(inside: str, capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    """``--to export/ohlcv`` wrote export/ohlcv/ohlcv/..., export/ohlcv/options_chains/...: pd.read_parquet of
    export/ohlcv reads its subdirectories, so the bars read with option contracts among them."""
    from kapman import export
    from kapman.console import main

    table = pa.table({"symbol": ["A"], "date": pa.array([date(2024, 1, 2)], pa.date32()), "close": [1.0]})
    ohlcv = tmp_path / "export" / "ohlcv"
    export.write_parquet(table, ohlcv / "2024-01-02.parquet", export.Stamp(1, datetime(2024, 1, 2, tzinfo=UTC)))
    to = ohlcv / inside if inside else ohlcv
    assert main(["export", "--to", str(to), "--db-url", NOWHERE]) == 2
    where = "holds an export's dated files" if not inside else f"is inside {ohlcv}, which does"
    assert capsys.readouterr().err.splitlines() == [
        f"error: --to {to} {where}: it is a table's directory of an export, and every reader of that table "
        "would read this export's files as its rows",
        f"hint: name the export's own directory ({tmp_path / 'export'}), or one outside it"]
    assert [p.name for p in ohlcv.iterdir()] == ["2024-01-02.parquet"]   # nothing made inside it


def test_a_directory_named_as_a_table_without_an_exports_files_is_a_place_to_export_to(tmp_path: Path) -> None:
    from kapman import export

    (tmp_path / "ohlcv" / "x").mkdir(parents=True)
    (tmp_path / "ohlcv" / "2024-01-02.parquet").write_bytes(b"not an export's")
    export._check_directory(export.ExportParams(tmp_path / "ohlcv" / "x"))   # no error


def test_a_write_stopped_by_anything_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an OSError removed it: Ctrl-C while a file was being written left a .partial file behind."""
    from kapman import export

    def interrupted(data: pa.Table, where: Path, **options: object) -> None:
        Path(where).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(export.pq, "write_table", interrupted)
    table = pa.table({"symbol": ["A"], "date": pa.array([date(2024, 1, 2)], pa.date32())})
    with pytest.raises(KeyboardInterrupt):
        export.write_parquet(table, tmp_path / "ohlcv" / "2024-01-02.parquet")
    assert not list((tmp_path / "ohlcv").iterdir())
