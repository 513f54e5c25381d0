"""Step 7: A2 over sandbox bars in a real TimescaleDB: rows, values, reruns, stability."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date

import numpy as np
import psycopg
import pytest
import talib

from kapman.clock import close_of
from kapman.config import Settings
from kapman.db import lifecycle
from kapman.jobs import a2_local_ta
from kapman.jobs.a2_window import anchor, read_batches
from kapman.metrics.indicators import TECHNICAL_KEYS
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market
from tests.support import database

pytestmark = pytest.mark.integration
D = date(2025, 12, 5)
RANGE = [date(2025, 12, 15), date(2025, 12, 16), date(2025, 12, 17), date(2025, 12, 18), date(2025, 12, 19)]


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=21, n_tickers=40, days=430)


@pytest.fixture
def bars_db(templates: database.Templates, market: Market) -> Iterator[tuple[psycopg.Connection, str]]:
    def build(url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            # A frozen clock, first: on the community edition it pauses the retention policy, which on the
            # real clock drops the 2024 bars some tests load (mid-COPY: 'could not open relation').  The
            # Monday after the market's last day, so that its weekend is a weekend, not the future.
            lifecycle.record_clock(conn, lifecycle.Clock("frozen", close_of(date(2025, 12, 22))))
            load_tickers(conn, market)
            load_bars(conn, market, [d for d in market.trading_days if d >= anchor(date(2025, 12, 1))])

    with templates.copy("a2_bars", build) as url, psycopg.connect(url, autocommit=True) as conn:
        yield conn, url


def run(conn: psycopg.Connection, dates: list[date], **kw: object) -> a2_local_ta.A2Result:
    return a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=dates, **kw))  # type: ignore[arg-type]


def snapshot(conn: psycopg.Connection, day: date) -> dict[str, tuple[dict, dict]]:
    rows = conn.execute("SELECT t.symbol, ds.technical_indicators_json, ds.price_metrics_json "
                        "FROM daily_snapshots ds JOIN tickers t ON t.id = ds.ticker_id WHERE ds.time = %s",
                        (close_of(day),)).fetchall()
    return {s: (ta, pm) for s, ta, pm in rows}


def window_closes(market: Market, symbol: str, day: date) -> np.ndarray:
    frame = market.bars_between(anchor(day), day)
    return frame[frame["ticker"] == symbol].sort_values("date")["close"].to_numpy(float)


def test_one_row_per_ticker_with_a_bar_and_every_key(bars_db: tuple, market: Market) -> None:
    conn, _ = bars_db
    result = run(conn, [D])
    traded = set(market.bars(D)["ticker"])
    rows = snapshot(conn, D)
    assert set(rows) == traded and result.rows_inserted == len(traded)
    ta, pm = rows["AAPL"]
    flat = {f"{c}.{i}.{o}" for c, inds in ta.items() for i, outs in inds.items() for o in outs}
    assert flat == set(TECHNICAL_KEYS)
    assert set(pm) == {"rvol", "vsi", "hv", "close"}
    assert pm["close"] == float(market.bars(D).set_index("ticker").loc["AAPL", "close"])
    assert ta["trend"]["aroon"]["aroon_up"] is not None and ta["trend"]["sma"]["sma_200"] is not None
    times = conn.execute("SELECT DISTINCT time FROM daily_snapshots").fetchall()
    assert times == [(close_of(D),)]


def test_values_match_an_independent_calculation_on_the_window(bars_db: tuple, market: Market) -> None:
    conn, _ = bars_db
    run(conn, [D])
    ta, pm = snapshot(conn, D)["NVDA"]
    closes = window_closes(market, "NVDA", D)
    assert ta["momentum"]["rsi"]["rsi"] == pytest.approx(talib.RSI(closes, 14)[-1], rel=1e-9)
    assert ta["trend"]["sma"]["sma_200"] == pytest.approx(closes[-200:].mean(), rel=1e-12)
    assert ta["trend"]["ema"]["ema_indicator"] == pytest.approx(talib.EMA(closes, 14)[-1], rel=1e-9)
    logret = np.diff(np.log(closes[-21:]))
    assert pm["hv"] == pytest.approx(logret.std(ddof=1) * np.sqrt(252), rel=1e-9)


def test_no_row_for_a_ticker_without_a_bar_that_day(bars_db: tuple) -> None:
    conn, _ = bars_db
    # AAPL halted on D: it traded before and after, but must not get D's row with stale values.
    conn.execute("DELETE FROM ohlcv o USING tickers t WHERE t.id = o.ticker_id AND t.symbol = 'AAPL' "
                 "AND o.date = %s", (D,))
    result = run(conn, [D])
    assert "AAPL" not in snapshot(conn, D) and "MSFT" in snapshot(conn, D)
    assert result.no_bar[str(D)] == 1


def test_rerun_skips_force_updates_in_place_and_keeps_dealer_columns(bars_db: tuple) -> None:
    conn, _ = bars_db
    first = run(conn, [D])
    conn.execute("UPDATE daily_snapshots SET dealer_metrics_json = '{\"status\": \"FULL\"}'")
    again = run(conn, [D])
    assert again.rows_written == 0 and again.skipped_existing == first.rows_inserted
    forced = run(conn, [D], force=True)
    assert (forced.rows_inserted, forced.rows_updated, forced.rows_unchanged) == (0, 0, first.rows_inserted)
    count, dealer = conn.execute("SELECT count(*), count(dealer_metrics_json) FROM daily_snapshots").fetchone()
    assert count == dealer == first.rows_inserted


def test_range_equals_single_dates_and_1_vs_all_tickers(bars_db: tuple) -> None:
    conn, _ = bars_db
    ranged = run(conn, RANGE)
    assert ranged.rows_inserted > 0
    for day in (RANGE[0], RANGE[-1]):
        single = run(conn, [day], force=True)
        assert single.rows_updated == 0 and single.rows_unchanged == single.rows_written
    alone = run(conn, [RANGE[-1]], force=True, symbols=["AAPL"])
    assert alone.rows_written == 1 and alone.rows_unchanged == 1


def test_dates_written_over_several_connections_match_one_connection(bars_db: tuple) -> None:
    conn, url = bars_db
    with psycopg.connect(url, autocommit=True) as one, psycopg.connect(url, autocommit=True) as two:
        ranged = a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=RANGE), extra=[one, two])
    assert ranged.rows_inserted == sum(len(snapshot(conn, d)) for d in RANGE) > 0
    again = run(conn, RANGE, force=True)
    assert again.rows_unchanged == ranged.rows_inserted and again.rows_updated == again.rows_inserted == 0
    lz4 = conn.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                       "WHERE name = 'default_toast_compression'").fetchone()[0]
    methods = {m for (m,) in conn.execute("SELECT DISTINCT pg_column_compression(technical_indicators_json) "
                                          "FROM daily_snapshots")}
    assert methods == ({"lz4"} if lz4 else {"pglz"})


def test_a_date_another_writer_started_is_merged_not_copied(bars_db: tuple) -> None:
    conn, _ = bars_db
    # A3 wrote AAPL's row for D first: A2 must merge into it (a plain COPY would collide).
    conn.execute("INSERT INTO daily_snapshots (time, ticker_id, dealer_metrics_json) "
                 "SELECT %s, id, '{\"status\": \"FULL\"}' FROM tickers WHERE symbol = 'AAPL'", (close_of(D),))
    result = run(conn, [D])
    assert result.rows_updated == 1 and result.rows_inserted == len(snapshot(conn, D)) - 1
    dealer = conn.execute("SELECT ds.dealer_metrics_json FROM daily_snapshots ds JOIN tickers t ON t.id = "
                          "ds.ticker_id WHERE t.symbol = 'AAPL'").fetchone()[0]
    assert dealer == {"status": "FULL"} and snapshot(conn, D)["AAPL"][0] is not None


def test_stable_after_older_history_is_added_and_old_chunks_dropped(bars_db: tuple, market: Market) -> None:
    conn, _ = bars_db
    first = run(conn, [D])
    before = snapshot(conn, D)
    load_bars(conn, market, [d for d in market.trading_days if d < anchor(date(2025, 12, 1))])
    after_backfill = run(conn, [D], force=True)
    assert after_backfill.rows_unchanged == first.rows_inserted
    conn.execute("SELECT drop_chunks('ohlcv', older_than => %s::date)", (anchor(D),))
    after_drop = run(conn, [D], force=True)
    assert after_drop.rows_unchanged == first.rows_inserted
    assert snapshot(conn, D) == before


def test_date_without_bars_is_reported(bars_db: tuple) -> None:
    conn, _ = bars_db
    result = run(conn, [date(2025, 12, 25)])
    assert result.dates_without_bars == [date(2025, 12, 25)] and result.rows_written == 0


def test_cli_as_in_the_runbook(bars_db: tuple) -> None:
    _, url = bars_db
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"}
    cmd = [sys.executable, "-m", "scripts.run_a2_local_ta", "--date", "2025-12-05", "--workers", "6",
           "--ticker-chunk-size", "7", "--db-url", url, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows_inserted"] > 30 and summary["dates"] == ["2025-12-05"]
    bad = subprocess.run(cmd[:3] + ["--date", "2025-12-05", "--start-date", "2025-12-01", "--end-date",
                                    "2025-12-05", "--db-url", url], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "either --date or --start-date" in bad.stderr


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"}
    return subprocess.run([sys.executable, "-m", "scripts.run_a2_local_ta", "--db-url", url, *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_exit_codes_and_ledger_on_the_step_contract(bars_db: tuple) -> None:
    conn, url = bars_db
    unknown = _cli(url, "--date", "2025-12-05", "--symbols", "ZZZZ")
    assert unknown.returncode == 2 and "nothing-to-do" in unknown.stdout and "ZZZZ" in unknown.stdout
    assert "Traceback" not in unknown.stderr
    saturday = _cli(url, "--date", "2025-12-20")
    assert saturday.returncode == 2 and "no OHLCV bars on 2025-12-20 (Saturday)" in saturday.stdout
    some = _cli(url, "--date", "2025-12-05", "--symbols", "AAPL,ZZZZ,msft", "--json")
    assert some.returncode == 0, some.stderr
    data = json.loads(some.stdout)
    assert data["status"] == "ok" and data["rows_inserted"] == 1
    assert data["notes"][0] == "not in public.tickers, skipped: ZZZZ msft (did you mean MSFT?)"
    again = _cli(url, "--date", "2025-12-05", "--symbols", "AAPL")
    assert again.returncode == 0 and "up to date: 1 rows already computed" in again.stdout
    statuses = [r[0] for r in conn.execute("SELECT status FROM ingest_runs WHERE job = 'a2' ORDER BY started_at")]
    assert statuses == ["nothing-to-do", "nothing-to-do", "ok", "ok"]


def test_a_lost_connection_says_how_many_dates_were_done(bars_db: tuple,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    conn, url = bars_db
    from kapman.errors import ConnectionLost
    from kapman.jobs import a2_splits

    windows = []
    original = a2_splits.read

    def read_then_lose(c: psycopg.Connection, after: date, through: date):  # type: ignore[no-untyped-def]
        windows.append(after)
        if len(windows) == 2:   # the second month's window: the server drops the session
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (c.info.backend_pid,))
        return original(c, after, through)

    monkeypatch.setattr(a2_splits, "read", read_then_lose)
    # Through the step: the one mapping of a lost connection (kapman.execute) counts the dates done.
    with pytest.raises(ConnectionLost) as info:
        a2_local_ta.run(Settings(database_url=url), a2_local_ta.A2Params(dates=[date(2025, 11, 14), D]))
    assert info.value.message == "the database connection was lost after 1 dates; rerun to resume"
    assert info.value.exit_code == 2
    assert len(snapshot(conn, date(2025, 11, 14))) > 0 and not snapshot(conn, D)


def test_range_over_months_read_in_batches_equals_single_dates_and_resumes(
        bars_db: tuple, market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, url = bars_db
    load_bars(conn, market, [d for d in market.trading_days if d < anchor(date(2025, 12, 1))])
    days = [d for d in market.trading_days if date(2025, 9, 26) <= d <= date(2025, 12, 2)]   # four anchors
    # two reads of two windows each, computed while the previous window is written
    monkeypatch.setattr(a2_local_ta, "read_batches", lambda groups: read_batches(groups, size=2))
    with psycopg.connect(url, autocommit=True) as one, psycopg.connect(url, autocommit=True) as two:
        ranged = a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=days), extra=[one, two])
    bars = conn.execute("SELECT count(*) FROM ohlcv WHERE date = ANY(%s)", (days,)).fetchone()[0]
    assert ranged.rows_inserted == bars and ranged.dates_done == len(days)
    # each value as a run for that date alone computes it (its own read of its own window)
    for day in (days[0], date(2025, 10, 31), date(2025, 11, 3), days[-1]):
        single = run(conn, [day], force=True)
        assert single.rows_unchanged == single.rows_written == len(snapshot(conn, day)) > 30
        assert single.rows_updated == 0
    # a stopped run resumes at the missing date: complete dates are skipped before any read
    lost = date(2025, 11, 14)
    conn.execute("DELETE FROM daily_snapshots WHERE time = %s", (close_of(lost),))
    again = run(conn, days)
    assert again.rows_inserted == conn.execute("SELECT count(*) FROM ohlcv WHERE date = %s",
                                               (lost,)).fetchone()[0] > 30
    assert again.dates_complete == len(days) - 1 and again.dates_done == len(days)
    assert again.skipped_existing == bars - again.rows_inserted
    window = conn.execute("SELECT count(*) FROM ohlcv WHERE date BETWEEN %s AND %s",
                          (anchor(lost), lost)).fetchone()[0]
    assert again.bars_read == window
    assert run(conn, days).rows_written == 0


def test_a_failed_write_is_the_runs_error_and_the_written_dates_stay_counted(bars_db: tuple) -> None:
    conn, url = bars_db
    broken = psycopg.connect(url, autocommit=True)
    broken.close()
    into = a2_local_ta.A2Result(dates=[])
    with psycopg.connect(url, autocommit=True) as ok, pytest.raises(psycopg.OperationalError):
        # reads over conn and ok; dates written over ok and broken: one of them fails
        a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=RANGE), extra=[ok, broken], into=into)
    stored = conn.execute("SELECT count(DISTINCT time) FROM daily_snapshots").fetchone()[0]
    assert 0 < stored < len(RANGE) and into.dates_done == stored


def test_a_date_after_today_before_the_window_or_a_span_without_trading_days_is_one_line(bars_db: tuple,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Not "no OHLCV bars … not loaded yet (Step 5)": no step can store anything for those dates (the bars
    of a date before the retention window would be dropped again at once)."""
    _, url = bars_db
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T21:00:00Z")
    future = _cli(url, "--date", "2025-12-22")
    assert future.returncode == 2 and "Traceback" not in future.stderr
    assert future.stderr.splitlines()[0] == "error: 2025-12-22 is after today (2025-12-19 by KapMan's clock)"
    weekend = _cli(url, "--start-date", "2025-12-13", "--end-date", "2025-12-14")
    assert weekend.returncode == 2
    assert weekend.stderr.splitlines()[0] == "error: 2025-12-13..2025-12-14 holds no NYSE trading day"
    past = _cli(url, "--date", "2023-01-03")
    assert past.returncode == 2
    assert past.stderr.splitlines()[0] == ("error: 2023-01-03 is before the retention window (bars are kept "
                                           "from 2023-12-20, 730 days)")
    span = _cli(url, "--start-date", "2023-01-03", "--end-date", "2023-02-01")
    assert span.stderr.splitlines()[0].startswith("error: 2023-01-03..2023-02-01 is before the retention window")


def test_an_index_named_in_symbols_is_said_to_have_no_bars(bars_db: tuple) -> None:
    """It ended 'ok · 0 rows for 0 tickers' with 'no OHLCV at all on' each date, which the market had."""
    conn, url = bars_db
    if conn.execute("SELECT count(*) FROM tickers WHERE symbol = 'I:SPX'").fetchone() == (0,):
        conn.execute("INSERT INTO tickers (id, symbol, name, market, type, active) "
                     "VALUES (gen_random_uuid(), 'I:SPX', 'S&P 500', 'indices', 'INDEX', true)")
    alone = _cli(url, "--date", "2025-12-05", "--symbols", "I:SPX")
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert "a2: nothing-to-do · I:SPX: an index has no daily bars, and A2 computes from bars" in alone.stdout
    beside = _cli(url, "--date", "2025-12-05", "--symbols", "I:SPX,AAPL", "--json")
    assert beside.returncode == 0, beside.stderr
    data = json.loads(beside.stdout)
    assert data["rows_inserted"] == 1 and data["notes"] == ["indices have no daily bars, skipped: I:SPX"]


def test_symbols_without_a_bar_on_the_date_are_nothing_to_do(bars_db: tuple) -> None:
    """The symbols asked for had no bar on the date (a halted or not yet listed ticker): the run ended
    'ok · 0 rows for 0 tickers' with exit 0, as if their A2 were done."""
    conn, url = bars_db
    conn.execute("DELETE FROM ohlcv o USING tickers t WHERE t.id = o.ticker_id AND t.symbol = 'MSFT' "
                 "AND o.date = ANY(%s)", ([date(2025, 12, 3), date(2025, 12, 4)],))
    halted = _cli(url, "--date", "2025-12-03", "--symbols", "MSFT")
    assert halted.returncode == 2, halted.stdout + halted.stderr
    assert "a2: nothing-to-do · no OHLCV bars of MSFT on 2025-12-03 (Wednesday)" in halted.stdout
    span = _cli(url, "--start-date", "2025-12-02", "--end-date", "2025-12-05", "--symbols", "MSFT", "--json")
    assert span.returncode == 0, span.stderr
    data = json.loads(span.stdout)
    assert data["rows_inserted"] == 2 and data["dates"] == ["2025-12-02", "2025-12-05"]
    assert data["notes"] == ["no OHLCV bars of MSFT on 2025-12-03..2025-12-04: skipped"]
    statuses = [r[0] for r in conn.execute("SELECT status FROM ingest_runs WHERE job = 'a2' ORDER BY started_at")]
    assert statuses == ["nothing-to-do", "ok"]
