"""A2 on split-adjusted bars: as of each date, stable in time, equal to the same series unsplit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from kapman.calendar import trading_days
from kapman.clock import close_of
from kapman.db import bulk, lifecycle
from kapman.ids import ticker_id
from kapman.jobs import a2_local_ta
from kapman.jobs.a2_window import anchor
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market

pytestmark = pytest.mark.integration
NVDA_DAY = date(2024, 6, 20)
#: The synthetic series' split: 10-for-1 on FWD, 1-for-10 on REV, executed on SPLIT_DAY.
SPLIT_DAY = date(2025, 6, 16)
SERIES_DAYS = list(trading_days(date(2024, 5, 1), date(2025, 7, 31)))
FROZEN_AT = datetime(2025, 12, 19, 21, tzinfo=UTC)


@pytest.fixture(scope="module")
def market() -> Market:
    # Enough names for a synthetic common stock (the reverse split), history back to mid-2023.
    return Market(seed=21, n_tickers=185, days=950)


@pytest.fixture
def db(fresh_db: str) -> Iterator[psycopg.Connection]:
    """The bars go back to 2023, older than the real clock's retention window: the database's
    lifecycle follows a clock frozen at the sandbox's date, so on the community edition the
    retention policy is paused and never drops them in the middle of a test."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        lifecycle.record_clock(conn, lifecycle.Clock("frozen", FROZEN_AT))
        yield conn


def insert_splits(conn: psycopg.Connection, splits: list[tuple[str, date, float, float]]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO splits (ticker, execution_date, split_from, split_to) VALUES (%s, %s, %s, %s)",
                        splits)


def stored(conn: psycopg.Connection, symbol: str, day: date) -> tuple[str, str] | None:
    """The row's two documents as the server renders them (text: byte comparisons)."""
    row = conn.execute("SELECT ds.technical_indicators_json::text, ds.price_metrics_json::text "
                       "FROM daily_snapshots ds JOIN tickers t ON t.id = ds.ticker_id "
                       "WHERE t.symbol = %s AND ds.time = %s", (symbol, close_of(day))).fetchone()
    return None if row is None else (row[0], row[1])


def values(conn: psycopg.Connection, symbol: str, day: date) -> dict[str, float | None]:
    row = stored(conn, symbol, day)
    assert row is not None, f"no A2 row for {symbol} on {day}"
    ta, pm = json.loads(row[0]), json.loads(row[1])
    flat = {f"{c}.{i}.{o}": v for c, inds in ta.items() for i, outs in inds.items() for o, v in outs.items()}
    return {**flat, **{f"price.{k}": v for k, v in pm.items()}}


def run(conn: psycopg.Connection, dates: list[date], **kw: object) -> a2_local_ta.A2Result:
    return a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=dates, **kw))  # type: ignore[arg-type]


# --- the sandbox's NVDA split, as the issue reproduced it ------------------------------------

@pytest.fixture
def nvda_db(db: psycopg.Connection, market: Market) -> psycopg.Connection:
    load_tickers(db, market)
    load_bars(db, market, [d for d in market.trading_days if anchor(NVDA_DAY) <= d <= date(2024, 9, 30)])
    return db


def test_nvda_after_its_split_is_computed_on_adjusted_bars(nvda_db: psycopg.Connection, market: Market,
                                                         fresh_db: str) -> None:
    conn = nvda_db
    split = next(s for s in market.splits if s["ticker"] == "NVDA")
    assert split["execution_date"] == "2024-06-07" and (split["split_from"], split["split_to"]) == (1, 10)
    insert_splits(conn, [("NVDA", date(2024, 6, 7), 1, 10)])
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"}
    cmd = [sys.executable, "-m", "scripts.run_a2_local_ta", "--date", NVDA_DAY.isoformat(), "--symbols", "NVDA",
           "--db-url", fresh_db]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    day = values(conn, "NVDA", NVDA_DAY)
    close = day["price.close"]
    raw = market.bars(NVDA_DAY).set_index("ticker").loc["NVDA"]
    assert close == float(raw["close"])      # the bar as traded, post-split
    assert abs(day["trend.sma.sma_20"] / close - 1) < 0.05
    frame = market.bars_between(anchor(NVDA_DAY), NVDA_DAY).query("ticker == 'NVDA'").sort_values("date")
    adjusted = np.where(frame["date"] < date(2024, 6, 7), frame["close"] / 10, frame["close"])
    assert day["trend.sma.sma_50"] == pytest.approx(adjusted[-50:].mean(), rel=1e-12)
    assert 20 < day["momentum.rsi.rsi"] < 80
    # hv like that of the weeks after the split left the 20-day window
    later = [d for d in trading_days(date(2024, 8, 1), date(2024, 9, 30))]
    run(conn, later, symbols=["NVDA"])
    hv = np.array([values(conn, "NVDA", d)["price.hv"] for d in later])
    assert 0.5 * hv.min() < day["price.hv"] < 2.0 * hv.max() and day["price.hv"] < 1.5


def test_without_the_split_row_nvda_is_computed_on_raw_bars(nvda_db: psycopg.Connection) -> None:
    run(nvda_db, [NVDA_DAY], symbols=["NVDA"])
    day = values(nvda_db, "NVDA", NVDA_DAY)
    assert day["trend.sma.sma_20"] / day["price.close"] > 3 and day["price.hv"] > 3   # what the issue saw


# --- a synthetic series across a 10-for-1 and a 1-for-10 split --------------------------------

def _series(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(SERIES_DAYS)
    close = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.008, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    volume = np.round(1e6 * np.exp(rng.normal(0, 0.3, n)))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _load(conn: psycopg.Connection, bars: dict[str, dict[str, np.ndarray]]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        bulk.copy_rows(cur, psycopg.sql.Identifier("public", "tickers"), ("id", "symbol"), ("uuid", "text"),
                       [(ticker_id(s), s) for s in bars])
        columns = ("ticker_id", "date", "open", "high", "low", "close", "volume")
        bulk.copy_rows(cur, psycopg.sql.Identifier("public", "ohlcv"), columns,
                       ("uuid", "date", "float8", "float8", "float8", "float8", "float8"),
                       [(ticker_id(s), d, *(float(b[k][i]) for k in columns[2:]))
                        for s, b in bars.items() for i, d in enumerate(SERIES_DAYS)])


@pytest.fixture
def split_db(db: psycopg.Connection) -> psycopg.Connection:
    """FWD and REV: FWD_PLAIN's and REV_PLAIN's series as traded across their split, unadjusted."""
    before = np.array([d < SPLIT_DAY for d in SERIES_DAYS])
    bars = {}
    for symbol, seed, ratio in (("FWD", 1, 10.0), ("REV", 2, 0.1)):
        plain = _series(seed)
        bars[f"{symbol}_PLAIN"] = plain
        raw = {k: np.where(before, v * ratio, v) for k, v in plain.items() if k != "volume"}
        raw["volume"] = np.where(before, plain["volume"] / ratio, plain["volume"])
        bars[symbol] = raw
    _load(db, bars)
    return db


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) or abs(a - b) < 1e-12


def test_every_indicator_across_a_split_equals_the_unsplit_series(split_db: psycopg.Connection) -> None:
    conn = split_db
    insert_splits(conn, [("FWD", SPLIT_DAY, 1, 10), ("REV", SPLIT_DAY, 10, 1)])
    after = [d for d in SERIES_DAYS if d >= SPLIT_DAY][:12:3] + [SERIES_DAYS[-1]]
    result = run(conn, after)
    # FWD and REV, once each, though the dates fall in two windows (June's and July's) that both hold the split
    assert len({anchor(d) for d in after}) == 2 and result.split_adjusted == 2
    for symbol in ("FWD", "REV"):
        for day in after:
            got, want = values(conn, symbol, day), values(conn, f"{symbol}_PLAIN", day)
            assert got.keys() == want.keys()
            bad = {k: (got[k], want[k]) for k in got if not _close(got[k], want[k])}
            assert not bad, f"{symbol} {day}: {bad}"
            assert sum(v is not None for v in got.values()) > 80


def test_a_split_after_d_leaves_d_byte_identical(split_db: psycopg.Connection) -> None:
    conn = split_db
    before = [d for d in SERIES_DAYS if d < SPLIT_DAY][-2:]
    run(conn, before)
    first = {(s, d): stored(conn, s, d) for s in ("FWD", "REV") for d in before}
    insert_splits(conn, [("FWD", SPLIT_DAY, 1, 10), ("REV", SPLIT_DAY, 10, 1)])
    # One range across the execution date: the dates before it read the unadjusted column.
    across = [*before, SPLIT_DAY, SPLIT_DAY + timedelta(days=1)]
    run(conn, across, force=True)
    assert {(s, d): stored(conn, s, d) for s in ("FWD", "REV") for d in before} == first
    run(conn, before[-1:], force=True)
    assert stored(conn, "FWD", before[-1]) == first[("FWD", before[-1])]
    for symbol in ("FWD", "REV"):   # while the dates from the split on are adjusted
        got, want = values(conn, symbol, SPLIT_DAY), values(conn, f"{symbol}_PLAIN", SPLIT_DAY)
        assert all(_close(got[k], want[k]) for k in got)


def test_a_split_of_a_ticker_without_bars_or_ticker_changes_nothing(split_db: psycopg.Connection) -> None:
    conn = split_db
    day = SERIES_DAYS[-1]
    run(conn, [day])
    first = stored(conn, "FWD_PLAIN", day)
    insert_splits(conn, [("NOSUCH", SPLIT_DAY, 1, 4), ("FWD_PLAIN", SERIES_DAYS[-1] + timedelta(days=3), 1, 2)])
    result = run(conn, [day], force=True)
    assert result.rows_updated == 0 and stored(conn, "FWD_PLAIN", day) == first


# --- split records the prices contradict, and one split recorded twice ------------------------

def test_a_split_recorded_twice_is_applied_once(split_db: psycopg.Connection) -> None:
    """The vendor lists SHOP 1-for-10 on 2022-06-22 and 2022-06-29; only the second shows in the bars."""
    conn = split_db
    week_before = SERIES_DAYS[SERIES_DAYS.index(SPLIT_DAY) - 5]
    insert_splits(conn, [("FWD", week_before, 1, 10), ("FWD", SPLIT_DAY, 1, 10), ("REV", SPLIT_DAY, 10, 1)])
    day = SERIES_DAYS[-1]
    result = run(conn, [day, week_before])
    got, want = values(conn, "FWD", day), values(conn, "FWD_PLAIN", day)
    assert got["trend.sma.sma_200"] == pytest.approx(want["trend.sma.sma_200"], rel=1e-12)
    assert all(_close(got[k], want[k]) for k in got)
    # on the duplicate's own date nothing was adjusted: the bars then were the bars as traded
    early, plain = values(conn, "FWD", week_before), values(conn, "FWD_PLAIN", week_before)
    assert early["price.close"] == pytest.approx(10 * plain["price.close"], rel=1e-12)
    assert early["trend.sma.sma_20"] == pytest.approx(10 * plain["trend.sma.sma_20"], rel=1e-9)
    assert result.splits_not_applied == {
        f"FWD {week_before} 10-for-1": f"not-in-prices: {_jump(conn, 'FWD', week_before)}: no x10 jump"}


def test_a_record_without_its_jump_is_not_applied_and_twins_unchecked_apply_once(
        split_db: psycopg.Connection) -> None:
    conn = split_db
    day = SERIES_DAYS[-1]
    run(conn, [day])
    first = stored(conn, "REV_PLAIN", day)
    bogus = SERIES_DAYS[SERIES_DAYS.index(SPLIT_DAY) + 10]
    insert_splits(conn, [("REV_PLAIN", bogus, 1, 4)])
    result = run(conn, [day], force=True)
    assert result.rows_updated == 0 and stored(conn, "REV_PLAIN", day) == first
    assert list(result.splits_not_applied) == [f"REV_PLAIN {bogus} 4-for-1"]
    # Without bars across the dates, two records of one ratio days apart are still applied once.
    from kapman.jobs import split_checks
    tid = conn.execute("SELECT id FROM tickers WHERE symbol = 'FWD'").fetchone()[0]
    twins = split_checks.resolve([(tid, "FWD", date(2030, 1, 2), 1.0, 10.0, None, None),
                                  (tid, "FWD", date(2030, 1, 9), 1.0, 10.0, None, None),
                                  (tid, "FWD", date(2030, 3, 9), 1.0, 10.0, None, None)])
    assert [(s.verdict, s.applied) for s in twins] == [("unchecked", True), ("duplicate", False),
                                                       ("unchecked", True)]


def _jump(conn: psycopg.Connection, symbol: str, day: date) -> str:
    before = conn.execute("SELECT o.close FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id WHERE t.symbol = %s "
                          "AND o.date < %s ORDER BY o.date DESC LIMIT 1", (symbol, day)).fetchone()[0]
    on = conn.execute("SELECT o.open FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id WHERE t.symbol = %s "
                      "AND o.date = %s", (symbol, day)).fetchone()[0]
    return f"close {before:g} before, open {on:g} from the date"


def test_show_lists_each_split_record_and_whether_it_was_applied(split_db: psycopg.Connection, fresh_db: str,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from scripts import show
    conn = split_db
    week_before = SERIES_DAYS[SERIES_DAYS.index(SPLIT_DAY) - 5]
    insert_splits(conn, [("FWD", week_before, 1, 10), ("FWD", SPLIT_DAY, 1, 10)])
    day = SERIES_DAYS[-1]
    run(conn, [day])
    conn.execute("UPDATE daily_snapshots SET dealer_metrics_json = '{}'")   # show wants an A3 row too
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    assert show.main(["FWD", "--date", str(day), "--db-url", fresh_db, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(s["split"], s["applied"], s["verdict"]) for s in data["splits"]] == [
        (f"{week_before} 10-for-1", False, "not-in-prices"), (f"{SPLIT_DAY} 10-for-1", True, "confirmed")]
    assert show.main(["FWD", "--date", str(day), "--db-url", fresh_db]) == 0
    text = capsys.readouterr().out
    assert f"{week_before} 10-for-1" in text and "NOT applied: not-in-prices" in text
    assert f"{SPLIT_DAY} 10-for-1" in text and "applied: confirmed" in text


# --- a split loaded after the dates it adjusts were computed ---------------------------------

LATE_DATES = list(trading_days(date(2024, 6, 3), date(2024, 6, 14)))   # across NVDA's split of 2024-06-07


def test_a_split_loaded_late_is_owed_planned_and_mended_for_its_ticker_only(
        db: psycopg.Connection, market: Market, fresh_db: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman.config import load_settings
    from kapman.ingest.splits import ingest_splits
    from kapman.ops import inventory, nightly, status
    from kapman.providers.http import PolygonHTTP
    from kapman.providers.polygon import PolygonClient
    from kapman.sandbox.rest import SandboxRestServer

    conn = db
    load_tickers(conn, market)
    load_bars(conn, market, [d for d in market.trading_days if anchor(LATE_DATES[0]) <= d <= LATE_DATES[-1]])
    for name, value in {"DATABASE_URL": fresh_db, "KAPMAN_ENV_FILE": "/nonexistent",
                        "FLATFILES_MIRROR_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    computed, loaded, mended = "2024-06-14T22:00:00Z", "2024-06-17T22:00:00Z", "2024-06-17T23:00:00Z"
    monkeypatch.setenv("KAPMAN_NOW", computed)
    run(conn, LATE_DATES)                                 # no split known yet: NVDA on its bars as traded
    before = {(s, d): stored(conn, s, d) for s in ("NVDA", "AAPL") for d in LATE_DATES}
    monkeypatch.setenv("KAPMAN_NOW", loaded)
    with SandboxRestServer(market, api_key="k") as server:
        client = PolygonClient(PolygonHTTP(server.base_url, "k", rate_limit=1000))
        ingest_splits(conn, client, since=date(2024, 1, 1))       # the vendor published it ten days late
        owed = [d for d in LATE_DATES if d >= date(2024, 6, 7)]
        # status owes exactly NVDA's dates from the execution date, and names the fix
        check = status.report(conn).check("a2")
        assert check.verdict is status.Verdict.WARN and check.details["split_stale"] == {"NVDA": owed}
        assert "NVDA 6 dates 2024-06-07..2024-06-14 (split of 2024-06-07)" in check.summary
        assert check.fix is not None and "run_a2_local_ta" in check.fix and "--force" in check.fix
        # the nightly plans them, without --force (the market's other rows are not recomputed)
        task = next(t for t in nightly.plan(load_settings(), conn).tasks if t.step == "a2")
        assert task.args == {"dates": owed} and "NVDA" in task.reason
        # A2 without --force (its default date, the newest, is complete) recomputes NVDA's owed dates only
        env = {**os.environ, "KAPMAN_NOW": mended}
        proc = subprocess.run([sys.executable, "-m", "scripts.run_a2_local_ta", "--db-url", fresh_db],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "recomputed NVDA on 6 dates 2024-06-07..2024-06-14" in proc.stdout + proc.stderr
        after = {(s, d): stored(conn, s, d) for s in ("NVDA", "AAPL") for d in LATE_DATES}
        assert {k for k in before if before[k] != after[k]} == {("NVDA", d) for d in owed}
        stamps = dict(conn.execute(
            "SELECT t.symbol || ' ' || (ds.time AT TIME ZONE 'America/New_York')::date, ds.ta_computed_at "
            "FROM daily_snapshots ds JOIN tickers t ON t.id = ds.ticker_id").fetchall())
        assert {k for k, at in stamps.items() if at == datetime.fromisoformat(mended)} == {f"NVDA {d}" for d in owed}
        day = values(conn, "NVDA", LATE_DATES[-1])
        raw = json.loads(before[("NVDA", LATE_DATES[-1])][0])["trend"]["sma"]["sma_50"]   # type: ignore[index]
        assert raw / day["price.close"] > 3 > 0.5 > abs(day["trend.sma.sma_50"] / day["price.close"] - 1)
        # the values equal a fresh computation with the split known
        fresh = run(conn, LATE_DATES, force=True, symbols=["NVDA"])
        assert fresh.rows_updated == 0 and fresh.rows_unchanged == len(LATE_DATES)
        # and nothing is owed any more: status, the plan, A2; loading the same splits again changes nothing
        ingest_splits(conn, client, since=date(2024, 1, 1))
        client.close()
    assert inventory.a2_split_stale(conn, LATE_DATES[0]) == []
    assert status.report(conn).check("a2").details["split_stale"] == {}
    assert not any(t.step == "a2" for t in nightly.plan(load_settings(), conn).tasks)
