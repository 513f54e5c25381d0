"""kapman.data against a hydrated database: the values stored, the selections, splits, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pytest

from kapman import data
from kapman.errors import InputError, UsageError
from tests.support.database import NewRebuiltDb
from tests.support.hydrate import (
    DAYS,
    DEALER_DAYS,
    GAP,
    LAST_DAY,
    SNAPSHOT_DAYS,
    ZERO_VOLUME,
    hydrated_database,
    snapshot_time,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(new_rebuilt_db: NewRebuiltDb) -> Iterator[str]:
    """One rebuilt and hydrated database shared by the module's read-only tests."""
    with hydrated_database(new_rebuilt_db, "data_") as url:
        yield url


@pytest.fixture
def conn(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def test_bars_are_the_stored_rows(conn: psycopg.Connection, url: str) -> None:
    stored = conn.execute("SELECT o.date, o.open, o.high, o.low, o.close, o.volume, o.vwap, o.transactions "
                          "FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id WHERE t.symbol = 'MSFT' "
                          "ORDER BY o.date").fetchall()
    frame = data.bars(url, "MSFT")               # a URL: the API opens and closes its own connection
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["symbol", "date", "open", "high", "low", "close", "volume", "vwap",
                                   "transactions"]
    assert len(frame) == len(stored) == len(DAYS) - 1             # MSFT's gap day has no bar
    assert pd.Timestamp(GAP[1]) not in set(frame["date"])
    assert [tuple(r) for r in frame.drop(columns="symbol").itertuples(index=False)] == [
        (pd.Timestamp(d), *rest) for d, *rest in stored]


def test_bars_for_a_watchlist_and_a_range_as_arrow(conn: psycopg.Connection) -> None:
    table = data.bars(conn, watchlist="mvp", start=DAYS[-3], end=LAST_DAY, arrow=True)
    assert isinstance(table, pa.Table)
    assert table.schema.field("date").type == pa.date32()
    # OLDCO (no bars), ZZZZ (no ticker) and IBM (removed) bring no rows
    assert sorted(set(table.column("symbol").to_pylist())) == ["AAPL", "MSFT", "NVDA", "SPY"]
    assert set(table.column("date").to_pylist()) == set(DAYS[-3:])
    assert table.num_rows == 12


def test_bars_split_adjusted_as_of_a_date(conn: psycopg.Connection) -> None:
    split_day = DAYS[20]
    raw = data.bars(conn, "AAPL")
    conn.execute("INSERT INTO splits (ticker, execution_date, split_from, split_to) VALUES ('AAPL', %s, 1, 4)",
                 (split_day,))
    try:
        adjusted = data.bars(conn, "AAPL", adjusted=True, as_of=LAST_DAY)
        before_split = data.bars(conn, "AAPL", adjusted=True, as_of=DAYS[19])
        range_end = data.bars(conn, "AAPL", end=DAYS[25], adjusted=True)
    finally:
        conn.execute("DELETE FROM splits WHERE ticker = 'AAPL'")
    early = raw["date"] < pd.Timestamp(split_day)
    assert early.sum() == 20
    for name in ("open", "high", "low", "close", "vwap"):
        assert list(adjusted.loc[early, name]) == pytest.approx(list(raw.loc[early, name] / 4), rel=1e-15)
        assert list(adjusted.loc[~early, name]) == list(raw.loc[~early, name])
    assert list(adjusted.loc[early, "volume"]) == pytest.approx(list(raw.loc[early, "volume"] * 4))
    assert before_split.equals(raw)                       # a split after as_of changes nothing
    assert list(range_end["close"][:20]) == pytest.approx(list(raw["close"][:20] / 4))   # as of the range's end


def test_split_adjusted_bars_keep_a_missing_vwap_missing(conn: psycopg.Connection) -> None:
    """NVDA's halted day has no vwap: adjusted through numpy it came back NaN, a value, in the Arrow table
    (null_count 0), where the raw bars hold NULL; pandas showed NaN either way."""
    halted = ZERO_VOLUME[1]
    conn.execute("INSERT INTO splits (ticker, execution_date, split_from, split_to) VALUES ('NVDA', %s, 1, 10)",
                 (DAYS[-3],))
    try:
        adjusted = data.bars(conn, "NVDA", adjusted=True, arrow=True)
        frame = data.bars(conn, "NVDA", adjusted=True)
    finally:
        conn.execute("DELETE FROM splits WHERE ticker = 'NVDA'")
    raw = data.bars(conn, "NVDA", arrow=True)
    vwap = dict(zip(adjusted.column("date").to_pylist(), adjusted.column("vwap").to_pylist(), strict=True))
    assert vwap[halted] is None and adjusted.column("vwap").null_count == raw.column("vwap").null_count == 1
    early = [d < DAYS[-3] for d in raw.column("date").to_pylist()]
    assert [v for v, e in zip(adjusted.column("close").to_pylist(), early, strict=True) if e] == pytest.approx(
        [v / 10 for v, e in zip(raw.column("close").to_pylist(), early, strict=True) if e], rel=1e-15)
    assert adjusted.column("volume").to_pylist() == [v * 10 if e else v for v, e in
                                                     zip(raw.column("volume").to_pylist(), early, strict=True)]
    pd.testing.assert_frame_equal(frame, adjusted.to_pandas(date_as_object=False,
                                                            types_mapper={pa.int64(): pd.Int64Dtype()}.get))


def test_a_column_keeps_its_dtype_whether_or_not_it_holds_a_null(conn: psycopg.Connection) -> None:
    """An integer column came to pandas as int64, or as float64 where some row (NVDA has no A3: every row)
    held NULL: one column, two dtypes, by selection. It is the nullable Int64 always; the floats, dates and
    times keep theirs when entirely NULL."""
    with_a3, without = data.snapshots(conn, "AAPL", date=LAST_DAY), data.snapshots(conn, "NVDA", date=LAST_DAY)
    assert without["gamma_flip_crossings"].isna().all() and without["gex_net"].isna().all()
    for name in ("gamma_flip_crossings", "gex_net", "max_pain_expiration", "dealer_snapshot_time", "date"):
        assert with_a3[name].dtype == without[name].dtype, name
    assert str(without["gamma_flip_crossings"].dtype) == "Int64" and without["gex_net"].dtype == "float64"
    assert without["max_pain_expiration"].dtype.kind == "M" and with_a3["date"].dtype.kind == "M"
    assert with_a3["gamma_flip_crossings"].tolist() == data.snapshots(
        conn, "AAPL", date=LAST_DAY, arrow=True).column("gamma_flip_crossings").to_pylist()
    bars, none = data.bars(conn, "NVDA"), data.bars(conn, "NVDA", date=LAST_DAY + timedelta(days=1))
    assert str(bars["transactions"].dtype) == str(none["transactions"].dtype) == "Int64" and none.empty
    assert str(data.chain(conn, "AAPL")["volume"].dtype) == "Int64"


def test_symbols_that_name_no_symbol_are_refused_not_an_empty_selection(conn: psycopg.Connection) -> None:
    """An empty variable in a script ("" or []) answered with no rows, as if those symbols had none."""
    for empty in ("", " , ", []):
        with pytest.raises(UsageError, match=r"^symbols: .* names no symbol$"):
            data.bars(conn, empty)


def test_snapshots_flattened_to_the_documented_columns(conn: psycopg.Connection) -> None:
    frame = data.snapshots(conn, "AAPL")
    assert list(frame.columns) == ["symbol", "date"] + [c["name"] for c in data.describe()]
    assert list(frame["date"]) == [pd.Timestamp(d) for d in SNAPSHOT_DAYS]
    docs = conn.execute("SELECT technical_indicators_json, price_metrics_json, dealer_metrics_json "
                        "FROM daily_snapshots s JOIN tickers t ON t.id = s.ticker_id WHERE t.symbol = 'AAPL' "
                        "ORDER BY time").fetchall()
    for row, (ta, price, dealer) in zip(frame.itertuples(index=False), docs, strict=True):
        got = dict(zip(frame.columns, row, strict=True))
        assert got["momentum.rsi.rsi"] == ta["momentum"]["rsi"]["rsi"]
        assert got["volatility.bbands.bollinger_pband"] == ta["volatility"]["bbands"]["bollinger_pband"]
        assert pd.isna(got["trend.sma.sma_200"])                         # null in the document
        assert pd.isna(got["momentum.kama.kama"])                        # absent from the document
        assert got["close"] == price["close"] and got["rvol"] == price["rvol"]
        if dealer is None:
            assert pd.isna(got["position"]) and pd.isna(got["gex_net"])
        else:
            assert got["position"] == dealer["position"] and got["gex_net"] == dealer["gex_net"]
            assert got["status"] == dealer["status"]


def test_snapshots_of_a_watchlist_on_a_date_with_chosen_columns(conn: psycopg.Connection) -> None:
    table = data.snapshots(conn, watchlist="mvp", date=DEALER_DAYS[-1], columns=["rsi", "position", "gex_net"],
                           arrow=True)
    assert table.column_names == ["symbol", "date", "momentum.rsi.rsi", "position", "gex_net"]
    rows = {r["symbol"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["AAPL", "MSFT", "NVDA", "SPY"]
    assert rows["NVDA"]["position"] is None                              # no A3 for NVDA
    assert rows["AAPL"]["position"] in data.POSITIONS
    assert table.schema.field("gex_net").type == pa.float64()


def test_the_chain_as_of_a_snapshot(conn: psycopg.Connection) -> None:
    latest = data.chain(conn, ["AAPL", "MSFT"])
    times = latest.groupby("symbol")["time"].unique().to_dict()
    assert [t.to_pydatetime() for t in times["AAPL"]] == [datetime(2025, 12, 19, 21, 5, tzinfo=UTC)]
    assert [t.to_pydatetime() for t in times["MSFT"]] == [datetime(2025, 12, 18, 21, 5, tzinfo=UTC)]
    earlier = data.chain(conn, "AAPL", snapshot=date(2025, 12, 18), arrow=True)
    assert set(earlier.column("time").to_pylist()) == {datetime(2025, 12, 18, 21, 5, tzinfo=UTC)}
    stored = conn.execute("SELECT count(*), sum(strike_price)::float8 FROM options_chains o "
                          "JOIN tickers t ON t.id = o.ticker_id WHERE t.symbol = 'AAPL' "
                          "AND time = '2025-12-18 21:05+00'").fetchone()
    assert (earlier.num_rows, sum(earlier.column("strike_price").to_pylist())) == stored
    assert earlier.schema.field("strike_price").type == pa.float64()


def test_symbols_are_case_sensitive_with_a_did_you_mean(conn: psycopg.Connection) -> None:
    with pytest.raises(InputError, match=r"no ticker QQQQ aapl \(did you mean AAPL\?\)"):
        data.bars(conn, ["aapl", "QQQQ"])
    with pytest.raises(InputError, match="no watchlist 'nope' \\(known: mvp\\)"):
        data.snapshots(conn, watchlist="nope")


def test_one_column_or_symbol_by_name_and_a_selection_that_is_neither(conn: psycopg.Connection) -> None:
    """A single name is one column (it was read letter by letter: "no column 'r'")."""
    one = data.snapshots(conn, "AAPL", columns="rsi", date=str(LAST_DAY))
    assert list(one.columns) == ["symbol", "date", "momentum.rsi.rsi"] and len(one) == 1
    # no column: the rows' symbol and date (it was an SQL syntax error, "at or near FROM")
    none = data.snapshots(conn, "AAPL", columns=[], start=str(DAYS[-2]), arrow=True)
    assert none.to_pylist() == [{"symbol": "AAPL", "date": d} for d in DAYS[-2:]]
    for wrong in (123, ["AAPL", 5]):
        with pytest.raises(UsageError, match=r"^symbols: .* is not a symbol or a list of symbols$"):
            data.bars(conn, wrong)  # type: ignore[arg-type]


def test_an_unknown_column_names_the_closest(conn: psycopg.Connection) -> None:
    with pytest.raises(UsageError, match=r"no column 'rsii'; did you mean rsi \(momentum.rsi.rsi\)"):
        data.snapshots(conn, "AAPL", columns=["rsii"])
    with pytest.raises(UsageError, match=r"no column 'RSI'; did you mean rsi \(momentum.rsi.rsi\)"):   # case aside
        data.snapshots(conn, "AAPL", columns="RSI")
    with pytest.raises(UsageError, match="start 2025-12-19 is after end 2025-12-01"):
        data.bars(conn, "AAPL", start="2025-12-19", end="2025-12-01")


# --- kapman screen ------------------------------------------------------------------------------

def screen(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from kapman.console import main

    code = main(["screen", *args, "--db-url", url])
    out, err = capsys.readouterr()
    return code, out, err


def test_screen_matches_what_the_documents_say(url: str, conn: psycopg.Connection,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    expected = sorted(r[0] for r in conn.execute(
        "SELECT t.symbol FROM daily_snapshots s JOIN tickers t ON t.id = s.ticker_id WHERE s.time = %s AND "
        "((technical_indicators_json #>> '{momentum,rsi,rsi}')::float8 < 50 "
        "OR dealer_metrics_json ->> 'position' = 'short_gamma')", (snapshot_time(LAST_DAY),)))
    code, out, _ = screen(url, capsys, "rsi < 50 or short_gamma", "--date", str(LAST_DAY), "--json")
    assert code == 0
    found = json.loads(out)
    assert [r["symbol"] for r in found["rows"]] == expected and expected
    assert (found["screened"], found["matched"], found["date"]) == (4, len(expected), str(LAST_DAY))
    assert set(found["rows"][0]) == {"symbol", "momentum.rsi.rsi", "position"}


def test_screen_as_csv_and_as_a_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = screen(url, capsys, "close > 0 and rvol is not null", "--watchlist", "mvp", "--csv")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "symbol,close,rvol"
    assert [line.split(",")[0] for line in lines[1:]] == ["AAPL", "MSFT", "NVDA", "SPY"]
    code, out, _ = screen(url, capsys, "close < 0")
    assert code == 0 and out.strip() == f"0 of 4 symbols on {LAST_DAY} match close < 0"


def test_screen_refuses_an_unknown_column_with_the_closest(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = screen(url, capsys, "gex_nett < 0")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == ("error: screen: no column 'gex_nett' (column 1); "
                                   "did you mean gex_net, dex_net, gex_ratio?")
    assert "Traceback" not in err


def test_screen_of_a_day_without_values_names_the_step_or_the_newest_date(url: str,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    weekend = LAST_DAY + timedelta(days=(5 - LAST_DAY.weekday()) % 7 or 7)   # the Saturday after
    code, out, err = screen(url, capsys, "rsi < 30", "--date", str(weekend))
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: {weekend} is not a trading day: no A2 or A3 values are computed for it",
                                f"hint: the newest date with values is {LAST_DAY}"]
    code, out, err = screen(url, capsys, "rsi < 30", "--date", "2025-12-22")   # a Monday not computed
    assert code == 2 and err.splitlines() == [
        "error: no A2 or A3 values stored for 2025-12-22",
        "hint: kapman a2 --date 2025-12-22 (and kapman a3 for the dealer columns)"]


def test_screen_of_a_date_without_a3_names_a3_not_zero_matches(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A2 is stored for the date, A3 is not: every comparison on a dealer column is false, and it printed
    '0 of 4 symbols ... match' as if none were short gamma."""
    day = SNAPSHOT_DAYS[0]
    assert day not in DEALER_DAYS
    code, out, err = screen(url, capsys, "rsi < 50 or short_gamma", "--date", str(day), "--watchlist", "mvp")
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: no A3 values stored for {day} on watchlist mvp: the expression reads position",
                                f"hint: kapman a3 --date {day}"]
    code, out, _ = screen(url, capsys, "rsi < 50 or rsi >= 50", "--date", str(day), "--json")   # A2 alone: read
    assert code == 0 and json.loads(out)["matched"] == 4
    code, out, _ = screen(url, capsys, "dex_net is null", "--date", str(LAST_DAY), "--json")   # A3 there, key empty
    assert code == 0 and json.loads(out)["matched"] == 4


def test_screen_of_a_date_whose_rows_hold_only_a3_names_a2(conn: psycopg.Connection) -> None:
    from kapman.data.expression import parse
    from kapman.screen import screen as screen_rows

    with conn.transaction(force_rollback=True):   # the module's database stays as hydrated
        conn.execute("UPDATE daily_snapshots SET technical_indicators_json = NULL, price_metrics_json = NULL "
                     "WHERE time = %s", (snapshot_time(LAST_DAY),))
        with pytest.raises(InputError, match=f"^no A2 values stored for {LAST_DAY}: the expression reads "
                                             "momentum.rsi.rsi, close$") as refused:
            screen_rows(conn, parse("rsi < 30 and gex_net > 0 or close > 1"), LAST_DAY)
        assert refused.value.hint == f"kapman a2 --date {LAST_DAY}"
        assert screen_rows(conn, parse("gex_net > 0"), LAST_DAY)[1] == 4


def test_screen_of_indices_alone_for_a2_says_they_have_none(conn: psycopg.Connection) -> None:
    """An index has no bars, so no A2: the hint to run A2 would change nothing."""
    from kapman.data.expression import parse
    from kapman.screen import screen as screen_rows

    with conn.transaction(force_rollback=True):
        conn.execute("UPDATE tickers SET symbol = 'I:SPY' WHERE symbol = 'SPY'")
        conn.execute("UPDATE daily_snapshots SET technical_indicators_json = NULL, price_metrics_json = NULL "
                     "WHERE ticker_id = (SELECT id FROM tickers WHERE symbol = 'I:SPY')")
        conn.execute("INSERT INTO watchlists (watchlist_id, symbol, active, source, effective_date) "
                     "VALUES ('idx', 'I:SPY', true, 'idx.txt', '2025-01-02')")
        with pytest.raises(InputError, match=r"^the symbols screened are indices, which have no A2 values \(the "
                                             r"stock flat files hold no index bars\): the expression reads "
                                             r"momentum.rsi.rsi$") as refused:
            screen_rows(conn, parse("rsi > 0"), LAST_DAY, "idx")
        assert refused.value.hint is None
        assert screen_rows(conn, parse("gex_net > 0"), LAST_DAY, "idx")[1] == 1


@pytest.mark.parametrize(("day", "message"), [
    ("2025-12-22", "error: 2025-12-22 is after today (2025-12-19 by KapMan's clock)"),
    ("2023-06-01", "error: 2023-06-01 is before the retention window (bars are kept from 2023-12-20, 730 days)"),
])
def test_screen_of_a_day_a2_cannot_compute_says_why(url: str, day: str, message: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """It named 'kapman a2 --date D', which refuses a date after today and has no bars before the window."""
    monkeypatch.setenv("KAPMAN_NOW", str(LAST_DAY))
    code, out, err = screen(url, capsys, "rsi < 30", "--date", day)
    assert code == 2 and out == "" and err.splitlines() == [message]


def test_screen_of_a_watchlist_whose_symbols_were_all_removed_says_so(fresh_db: str,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """It said no values were stored and named an A2 run, which computes nothing for a list with no symbols."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("INSERT INTO watchlists (watchlist_id, symbol, active, source, effective_date) "
                     "VALUES ('gone', 'AAPL', false, 'gone.txt', '2025-01-02'), ('kept', 'MSFT', true, 'kept.txt', "
                     "'2025-01-02')")
    code, out, err = screen(fresh_db, capsys, "rsi < 30", "--date", str(LAST_DAY), "--watchlist", "gone")
    assert code == 2 and out == ""
    assert err.splitlines() == ["error: watchlist gone has no active symbols (active watchlists: kept); "
                                "run python -m scripts.ingest_watchlists"]


# --- kapman export ------------------------------------------------------------------------------

def export(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    from kapman.console import main

    code = main(["export", *args, "--db-url", url, "--json"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    return json.loads(out)


def test_export_is_read_alike_by_pandas_polars_and_duckdb(url: str, conn: psycopg.Connection, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import duckdb
    import polars as pl

    done = export(url, capsys, "--to", str(tmp_path))
    assert done["ohlcv"]["files"] == len(DAYS)
    assert done["daily_snapshots"]["files"] == len(SNAPSHOT_DAYS)
    assert done["options_chains"]["files"] == 2
    assert sorted(p.name for p in (tmp_path / "options_chains").iterdir()) == ["2025-12-18.parquet",
                                                                             "2025-12-19.parquet"]
    bars = pd.read_parquet(tmp_path / "ohlcv").sort_values(["symbol", "date"], ignore_index=True)
    expected = data.bars(conn, arrow=True).to_pandas().sort_values(["symbol", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(bars, expected, check_dtype=False)

    snapshots = pl.read_parquet(str(tmp_path / "daily_snapshots" / "*.parquet")).sort(["symbol", "date"])
    assert snapshots.columns == ["symbol", "date"] + [c["name"] for c in data.describe()]
    stored = data.snapshots(conn, arrow=True)
    assert snapshots["momentum.rsi.rsi"].to_list() == stored.column("momentum.rsi.rsi").to_pylist()
    assert snapshots["position"].to_list() == stored.column("position").to_pylist()

    averages = duckdb.sql(f"""SELECT date, avg("momentum.rsi.rsi") FROM '{tmp_path}/daily_snapshots/*.parquet'
                              GROUP BY 1 ORDER BY 1""").fetchall()
    in_sql = conn.execute("SELECT (time AT TIME ZONE 'America/New_York')::date, "
                          "avg((technical_indicators_json #>> '{momentum,rsi,rsi}')::float8) "
                          "FROM daily_snapshots GROUP BY 1 ORDER BY 1").fetchall()
    assert [d for d, _ in averages] == [d for d, _ in in_sql]
    assert [a for _, a in averages] == pytest.approx([a for _, a in in_sql], rel=1e-12)
    contracts = duckdb.sql(f"SELECT count(*), count(DISTINCT time) FROM '{tmp_path}/options_chains/*.parquet'")
    stored = conn.execute("SELECT count(*), count(DISTINCT time) FROM options_chains").fetchone()
    assert contracts.fetchall()[0] == stored


def test_export_writes_only_the_dates_not_yet_exported(url: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv")
    again = export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv")
    assert again["ohlcv"]["files"] == 0 and again["ohlcv"]["skipped"] == len(DAYS)
    missing = tmp_path / "ohlcv" / f"{DAYS[5]}.parquet"
    untouched = tmp_path / "ohlcv" / f"{DAYS[6]}.parquet"
    before = untouched.stat().st_mtime_ns
    missing.unlink()
    # a file of another name for that day (fromisoformat also reads 20251209) is not its file
    (tmp_path / "ohlcv" / f"{DAYS[5]:%Y%m%d}.parquet").write_bytes(untouched.read_bytes())
    third = export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv")
    assert third["ohlcv"]["files"] == 1 and third["ohlcv"]["changed"] == 0 and missing.exists()
    assert untouched.stat().st_mtime_ns == before
    forced = export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv", "--date", str(DAYS[6]), "--force")
    assert forced["ohlcv"]["files"] == 1 and untouched.stat().st_mtime_ns != before
    assert not list(tmp_path.rglob(".*.partial"))


def test_export_writes_again_the_dates_whose_rows_changed_since_their_file(
        url: str, conn: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A date recomputed (its rows' updated_at) or with a row deleted (its count) after it was exported is
    written again by the next run; the other dates are not; a file without a stamp is written again."""
    import pyarrow.parquet as pq

    export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv,daily_snapshots")
    recomputed, deleted, unstamped = SNAPSHOT_DAYS[-2], DAYS[3], DAYS[0]
    files = {table: {p.name: p.stat().st_mtime_ns for p in (tmp_path / table).iterdir()}
             for table in ("ohlcv", "daily_snapshots")}
    where = "t.id = s.ticker_id AND t.symbol = 'AAPL' AND (s.time AT TIME ZONE 'America/New_York')::date = %s"
    old_json, old_stamp = conn.execute(f"SELECT s.technical_indicators_json, s.updated_at FROM daily_snapshots s, "
                                       f"tickers t WHERE {where}", (recomputed,)).fetchone()  # type: ignore[misc]
    bar = conn.execute("SELECT o.* FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id "
                       "WHERE t.symbol = 'MSFT' AND o.date = %s", (deleted,)).fetchone()
    assert bar is not None
    try:
        conn.execute("UPDATE daily_snapshots s SET technical_indicators_json = jsonb_set("
                     "s.technical_indicators_json, '{momentum,rsi,rsi}', '12.5'), updated_at = now() "
                     f"FROM tickers t WHERE {where}", (recomputed,))
        conn.execute("DELETE FROM ohlcv o USING tickers t WHERE t.id = o.ticker_id AND t.symbol = 'MSFT' "
                     "AND o.date = %s", (deleted,))
        path = tmp_path / "ohlcv" / f"{unstamped}.parquet"
        pq.write_table(pq.read_table(path).replace_schema_metadata(None), path)   # as written before stamps
        files["ohlcv"][path.name] = path.stat().st_mtime_ns
        again = export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv,daily_snapshots")
        rewritten = {table: sorted(name for name, mtime in before.items()
                                   if (tmp_path / table / name).stat().st_mtime_ns != mtime)
                     for table, before in files.items()}
        snapshot = pq.read_table(tmp_path / "daily_snapshots" / f"{recomputed}.parquet").to_pandas()
        bars = pq.read_table(tmp_path / "ohlcv" / f"{deleted}.parquet").to_pandas()
    finally:
        conn.execute("UPDATE daily_snapshots s SET technical_indicators_json = %s, updated_at = %s "
                     f"FROM tickers t WHERE {where}", (psycopg.types.json.Jsonb(old_json), old_stamp, recomputed))
        conn.execute("INSERT INTO ohlcv VALUES (" + ", ".join(["%s"] * len(bar)) + ")", bar)
    assert rewritten == {"ohlcv": sorted([f"{deleted}.parquet", f"{unstamped}.parquet"]),
                         "daily_snapshots": [f"{recomputed}.parquet"]}
    assert (again["ohlcv"]["files"], again["ohlcv"]["changed"], again["ohlcv"]["skipped"]) == (2, 2, len(DAYS) - 2)
    assert (again["daily_snapshots"]["files"], again["daily_snapshots"]["changed"]) == (1, 1)
    assert snapshot.loc[snapshot["symbol"] == "AAPL", "momentum.rsi.rsi"].tolist() == [12.5]
    assert "MSFT" not in set(bars["symbol"]) and len(bars) > 0
    from kapman.console import main

    # the restored rows are what the first files held, but not what the new files hold: exactly the two
    # dates changed back are written once more, and then nothing
    code = main(["export", "--to", str(tmp_path), "--tables", "ohlcv,daily_snapshots", "--db-url", url])
    summary = capsys.readouterr().out.splitlines()[0]
    assert code == 0 and summary.startswith("export: ok · 2 files, ")
    assert summary.split(" · ")[1].endswith(f", 2 of them dates whose rows changed since their file; "
                                            f"{len(DAYS) - 1 + len(SNAPSHOT_DAYS) - 1} already there")
    fourth = export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv,daily_snapshots")
    assert fourth["ohlcv"]["files"] == fourth["daily_snapshots"]["files"] == 0


def test_export_sees_a_change_whose_updated_at_is_older_than_the_dates_latest(
        url: str, conn: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A restore writes a row back with its archived (older) updated_at; a writer's now() is its transaction's
    start. Either leaves a date's row count and latest updated_at as they were: the date's file kept the
    rows it was written from. A file stamped before the sum (rows and latest alone) still counts as current."""
    import pyarrow.parquet as pq

    day = DAYS[7]
    export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv")
    legacy = tmp_path / "ohlcv" / f"{DAYS[8]}.parquet"
    table = pq.read_table(legacy)
    rows, latest = table.schema.metadata[b"kapman.stamp"].split(b" ")[:2]
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"kapman.stamp": rows + b" " + latest}),
                   legacy)
    legacy_mtime = legacy.stat().st_mtime_ns
    where = "FROM tickers t WHERE t.id = o.ticker_id AND t.symbol = 'AAPL' AND o.date = %s"
    close, stamp = conn.execute(f"SELECT o.close, o.updated_at {where.replace('WHERE', ', ohlcv o WHERE')}",
                                (day,)).fetchone()  # type: ignore[misc]
    assert conn.execute("SELECT max(updated_at) FROM ohlcv WHERE date = %s", (day,)).fetchone() == (stamp,)
    try:
        conn.execute(f"UPDATE ohlcv o SET close = o.close + 1, updated_at = o.updated_at - interval '1 hour' {where}",
                     (day,))
        again = export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv")
        bars = pq.read_table(tmp_path / "ohlcv" / f"{day}.parquet").to_pandas()
    finally:
        conn.execute(f"UPDATE ohlcv o SET close = %s, updated_at = %s {where}", (close, stamp, day))
    assert (again["ohlcv"]["files"], again["ohlcv"]["changed"]) == (1, 1)
    assert bars.loc[bars["symbol"] == "AAPL", "close"].tolist() == [pytest.approx(close + 1)]
    assert legacy.stat().st_mtime_ns == legacy_mtime


def test_export_refuses_a_directory_holding_another_warehouses_files(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sandbox's export and a real warehouse's in one directory would read as one data set: each file
    records its warehouse, and an export into a directory with another's files writes nothing."""
    import pyarrow.parquet as pq

    from kapman.console import main

    export(url, capsys, "--to", str(tmp_path), "--tables", "ohlcv")
    path = tmp_path / "ohlcv" / f"{DAYS[4]}.parquet"
    params = psycopg.conninfo.conninfo_to_dict(url)
    here = pq.read_metadata(path).metadata[b"kapman.warehouse"].decode()
    assert here.startswith(f"{params['dbname']}@{params['host']}:{params.get('port') or 5432} (")
    table = pq.read_table(path)
    other = "kapman_sandbox@127.0.0.1:5432 (sandbox)"
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"kapman.warehouse": other.encode()}),
                   path)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ohlcv").iterdir()}
    path.with_name(f"{DAYS[5]}.parquet").unlink()       # a date to write: still nothing is
    for force in ([], ["--force"]):
        code = main(["export", "--to", str(tmp_path), "--tables", "ohlcv", *force, "--db-url", url])
        err = capsys.readouterr().err.splitlines()
        assert code == 2 and err[0] == (f"error: {tmp_path} holds files exported from another warehouse ({other}; "
                                        f"e.g. {path.name} of ohlcv); this is {here}: nothing was written")
        assert err[1] == ("hint: export into a directory of its own (--to DIR), or move that warehouse's files away; "
                          "if it is this warehouse under another host name, set KAPMAN_WAREHOUSE to its name")
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ohlcv").iterdir()}
    assert after == {n: m for n, m in before.items() if n != f"{DAYS[5]}.parquet"}


def test_export_of_one_table_refuses_another_warehouses_files_of_another_table(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the tables being exported were looked at: --tables ohlcv into a directory whose options_chains
    were a sandbox's wrote the bars beside them, one directory of two warehouses."""
    import pyarrow.parquet as pq

    from kapman.console import main

    export(url, capsys, "--to", str(tmp_path), "--tables", "options_chains")
    path = next((tmp_path / "options_chains").iterdir())
    table = pq.read_table(path)
    other = "kapman_sandbox@127.0.0.1:5432 (sandbox)"
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"kapman.warehouse": other.encode()}),
                   path)
    code = main(["export", "--to", str(tmp_path), "--tables", "ohlcv", "--db-url", url])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[0].startswith(f"error: {tmp_path} holds files exported from another warehouse ({other}; "
                                           f"e.g. {path.name} of options_chains); this is ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["options_chains"]


def test_export_removes_the_file_of_a_date_whose_rows_were_all_deleted(
        url: str, conn: psycopg.Connection, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A date inside the table's stored span that lost every row (a snapshot cleared, a day file withdrawn)
    kept its file, and every reader its deleted rows; a date before the span (past retention) keeps its file."""
    emptied, oldest = SNAPSHOT_DAYS[2], SNAPSHOT_DAYS[0]
    export(url, capsys, "--to", str(tmp_path), "--tables", "daily_snapshots")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "daily_snapshots").iterdir()}
    on = "(time AT TIME ZONE 'America/New_York')::date = ANY(%s)"
    conn.execute(f"CREATE TABLE kept_snapshots AS SELECT * FROM daily_snapshots WHERE {on}", ([emptied, oldest],))
    try:
        conn.execute(f"DELETE FROM daily_snapshots WHERE {on}", ([emptied, oldest],))
        ranged = export(url, capsys, "--to", str(tmp_path), "--tables", "daily_snapshots",
                        "--start-date", str(SNAPSHOT_DAYS[3]))          # the emptied date is not asked for
        again = export(url, capsys, "--to", str(tmp_path), "--tables", "daily_snapshots")
        after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "daily_snapshots").iterdir()}
        last = export(url, capsys, "--to", str(tmp_path), "--tables", "daily_snapshots")
    finally:
        conn.execute("INSERT INTO daily_snapshots SELECT * FROM kept_snapshots")
        conn.execute("DROP TABLE kept_snapshots")
    assert ranged["daily_snapshots"]["removed"] == 0
    assert (again["daily_snapshots"]["removed"], again["daily_snapshots"]["files"],
            again["counts"]["removed"]) == (1, 0, 1)
    assert after == {n: m for n, m in before.items() if n != f"{emptied}.parquet"}   # the oldest date's file kept
    assert last["daily_snapshots"]["removed"] == 0


def test_export_of_dates_that_hold_nothing_is_nothing_to_do(url: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """It was 'ok', 0 files, exit 0, for a weekend or a range past the data, as if written."""
    from kapman.console import main

    weekend = LAST_DAY + timedelta(days=(5 - LAST_DAY.weekday()) % 7 or 7)
    code = main(["export", "--to", str(tmp_path), "--date", str(weekend), "--db-url", url])
    assert code == 2 and capsys.readouterr().out.splitlines()[0].rsplit(" · ", 1)[0] == (
        f"export: nothing-to-do · no ohlcv, daily_snapshots, options_chains rows stored on {weekend} (not a "
        "trading day): nothing to export")
    code = main(["export", "--to", str(tmp_path), "--tables", "options_chains", "--start-date", str(DAYS[0]),
                 "--end-date", str(DAYS[2]), "--db-url", url, "--json"])
    found = json.loads(capsys.readouterr().out)
    assert code == 2 and (found["status"], found["nothing_reason"]) == (
        "nothing-to-do", f"no options_chains rows stored from {DAYS[0]} to {DAYS[2]}: nothing to export")
    assert not list(tmp_path.iterdir())


def test_export_of_an_empty_warehouse_is_nothing_to_do(fresh_db: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from kapman.console import main

    code = main(["export", "--to", str(tmp_path), "--db-url", fresh_db, "--json"])
    found = json.loads(capsys.readouterr().out)
    assert code == 2 and (found["status"], found["nothing_reason"]) == (
        "nothing-to-do", "no ohlcv, daily_snapshots, options_chains rows stored at all: nothing to export")
    assert not list(tmp_path.iterdir())


def test_export_to_a_place_it_cannot_write_is_one_line_and_keeps_what_it_wrote(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kapman.console import main

    (tmp_path / "afile").write_text("")
    code = main(["export", "--to", str(tmp_path / "afile"), "--db-url", url])
    assert code == 2 and capsys.readouterr().err.splitlines() == [f"error: --to {tmp_path / 'afile'} is a file, "
                                                                  "not a directory"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "options_chains").write_text("")   # where the options table's directory goes
    code = main(["export", "--to", str(tmp_path / "out"), "--tables", "ohlcv,options_chains", "--db-url", url])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[-2].startswith(f"error: cannot write {tmp_path / 'out' / 'options_chains'}/")
    assert err[-1].startswith("hint: check --to: a writable directory with room") and "Traceback" not in err
    assert len(list((tmp_path / "out" / "ohlcv").glob("*.parquet"))) == len(DAYS)   # the table written first stays
    assert not list(tmp_path.rglob(".*.partial"))


# --- kapman runs, kapman snapshots --------------------------------------------------------------

def command(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from kapman.console import main

    code = main([*args, "--db-url", url])
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_lists_the_ledger_newest_first_filtered(url: str, conn: psycopg.Connection,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = command(url, capsys, "runs", "--json")
    runs = json.loads(out)["runs"]
    stored = conn.execute("SELECT job, status FROM ingest_runs ORDER BY started_at DESC").fetchall()
    assert code == 0 and [(r["step"], r["status"]) for r in runs] == stored and len(stored) == 3
    code, out, _ = command(url, capsys, "runs", "--step", "options", "--status", "partial", "--json")
    assert [(r["step"], r["status"], r["snapshot_time"]) for r in json.loads(out)["runs"]] == [
        ("options", "partial", "2025-12-19T21:05:00+00:00")]
    code, out, _ = command(url, capsys, "runs", "--step", "options")
    lines = out.splitlines()
    assert lines[0].split() == ["started_at", "step", "status", "seconds", "clock", "outcome"]
    assert [line.split()[2:4] for line in lines[1:]] == [["options", "partial"], ["options", "ok"]]
    code, _, err = command(url, capsys, "runs", "--status", "done")
    assert code == 2 and "--status: done is not a run status" in err


def test_runs_refuses_what_is_not_a_step_or_a_count(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from kapman.views.runs import _outcome

    code, out, err = command(url, capsys, "runs", "--step", "a2,optionz")
    assert code == 2 and out == "" and err.splitlines()[0] == (
        "error: --step: optionz is not a step that records runs; choose from rebuild, tickers, splits, "
        "watchlists, ohlcv, restore-options, options, a2, a3, nightly, migrate")
    code, _, err = command(url, capsys, "runs", "--step", "status")
    assert code == 2 and "--step: status is not a step that records runs" in err
    code, _, err = command(url, capsys, "runs", "--step", "report")   # it writes pages, no ledger row
    assert code == 2 and "--step: report is not a step that records runs" in err
    for older in ("restore_options", "restore-options"):   # a step's older ledger name reads as the step
        code, out, _ = command(url, capsys, "runs", "--step", older)
        assert code == 0 and out.strip() == "no runs recorded that match"
    for listing in ("runs", "snapshots"):
        with pytest.raises(SystemExit) as exited:   # argparse's refusal: usage and one error line
            command(url, capsys, listing, "--limit", "0")
        assert exited.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == (
            f"kapman {listing}: error: argument --limit: 0 is not at least 1")
    assert _outcome({"error": None, "summary": {"done": 1, "unit": "dates"}}) == "1 date"
    assert _outcome({"error": None, "summary": {"done": 2, "unit": "dates", "counts": {"written": 5}}}) \
        == "2 dates; 5 written"


def test_runs_and_snapshots_mark_a_run_killed_without_a_word_abandoned(fresh_db: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Each reads the ledger, so each marks what no process will finish (they listed it as running)."""
    snap = datetime(2025, 12, 19, 21, 5, tzinfo=UTC)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        ticker = conn.execute("INSERT INTO tickers (id, symbol) VALUES (gen_random_uuid(), 'AAPL') RETURNING id"
                              ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price, option_type, "
                     "contract_symbol) VALUES (%s, %s, '2026-01-16', 250, 'C', 'O:AAPL260116C00250000')",
                     (snap, ticker))
        for job, at in (("a2", None), ("options", snap)):   # a backend and a process that are long gone
            conn.execute("INSERT INTO ingest_runs (run_id, job, started_at, status, args, snapshot_time, backend_pid, "
                         "backend_start, process_host, process_pid, process_start) VALUES (gen_random_uuid(), %s, "
                         "now(), 'running', '{}', %s, 999999, now(), 'elsewhere', 999999, 'long ago')", (job, at))
    code, out, _ = command(fresh_db, capsys, "snapshots", "--json")
    assert code == 0 and [s["run"] for s in json.loads(out)["snapshots"]] == ["abandoned"]
    code, out, _ = command(fresh_db, capsys, "runs", "--json")
    assert code == 0 and sorted((r["step"], r["status"]) for r in json.loads(out)["runs"]) == [
        ("a2", "abandoned"), ("options", "abandoned")]


def test_snapshots_lists_symbols_runs_and_archive_state(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = command(url, capsys, "snapshots", "--json")
    found = json.loads(out)
    assert "snapshots" in found, err
    rows = [(s["time"], s["date"], s["symbols"], s["session"], s["run"], s["archive"]) for s in found["snapshots"]]
    assert code == 0 and rows == [
        ("2025-12-19T21:05:00+00:00", "2025-12-19", 2, "2 missing", "partial", "not archived"),
        ("2025-12-18T21:05:00+00:00", "2025-12-18", 3, "1 missing", "ok", "not archived")]
    assert [s["contracts"] for s in found["snapshots"]] == [40 + 12, 40 + 40 + 12]
    code, out, _ = command(url, capsys, "snapshots", "--limit", "1")
    assert out.splitlines()[0].split() == ["time", "date", "symbols", "contracts", "session", "run", "failed",
                                           "archive"]
    assert len(out.splitlines()) == 3 and out.splitlines()[-1].startswith("archive: ")
