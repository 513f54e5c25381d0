"""A2 with ``--enable-pattern-indicators``: the job stores TA-Lib's candlestick patterns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import numpy as np
import psycopg
import pytest
import talib

from kapman.clock import close_of
from kapman.db import lifecycle
from kapman.jobs.a2_window import anchor
from kapman.metrics.indicators import TECHNICAL_KEYS
from kapman.metrics.patterns import PATTERN_FUNCS
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market
from scripts import run_a2_local_ta
from tests.support import database

pytestmark = pytest.mark.integration
D = date(2025, 12, 5)


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=21, n_tickers=12, days=430)


@pytest.fixture
def bars_db(templates: database.Templates, market: Market) -> Iterator[tuple[psycopg.Connection, str]]:
    def build(url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            # A frozen clock, first: on the community edition it pauses the retention policy, which on the
            # real clock drops the window's 2024 bars while they load.
            lifecycle.record_clock(conn, lifecycle.Clock("frozen", close_of(date(2025, 12, 22))))
            load_tickers(conn, market)
            load_bars(conn, market, [d for d in market.trading_days if d >= anchor(D)])

    with templates.copy("a2_pattern_bars", build) as url, psycopg.connect(url, autocommit=True) as conn:
        yield conn, url


def test_the_flag_stores_every_pattern_beside_the_indicators(bars_db: tuple, market: Market,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    conn, url = bars_db
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    code = run_a2_local_ta.main(["--date", str(D), "--db-url", url, "--enable-pattern-indicators", "--json"])
    assert code == 0, capsys.readouterr()
    summary = json.loads(capsys.readouterr().out)
    traded = set(market.bars(D)["ticker"])
    assert summary["rows_inserted"] == len(traded)
    rows = dict(conn.execute(
        "SELECT t.symbol, ds.technical_indicators_json FROM daily_snapshots ds JOIN tickers t ON t.id = ds.ticker_id "
        "WHERE ds.time = %s", (close_of(D),)).fetchall())
    assert set(rows) == traded
    frame = market.bars_between(anchor(D), D)
    hits = 0
    for symbol, doc in rows.items():
        patterns = doc["pattern_recognition"]
        assert set(patterns) == {f.lower() for f in PATTERN_FUNCS}
        flat = {f"{c}.{i}.{o}" for c, inds in doc.items() if c != "pattern_recognition"
                for i, outs in inds.items() for o in outs}
        assert flat == set(TECHNICAL_KEYS)
        bars = frame[frame["ticker"] == symbol].sort_values("date")
        o, h, lo, c = (bars[k].to_numpy(float) for k in ("open", "high", "low", "close"))
        for func in PATTERN_FUNCS:
            want = float(getattr(talib, func)(o, h, lo, c)[-1])
            assert patterns[func.lower()] == want, (symbol, func)
            hits += want != 0
    assert hits > 0   # some pattern fires somewhere: the comparison is not all zeros


def test_without_the_flag_no_pattern_is_stored(bars_db: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, url = bars_db
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    assert run_a2_local_ta.main(["--date", str(D), "--db-url", url, "--quiet"]) == 0
    docs = [r[0] for r in conn.execute("SELECT technical_indicators_json FROM daily_snapshots")]
    assert docs and all("pattern_recognition" not in d for d in docs)
    assert all(np.isfinite(d["trend"]["sma"]["sma_20"]) for d in docs)


def test_rows_computed_without_the_patterns_are_not_done_for_a_run_that_asks_for_them(
        bars_db: tuple, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A plain run's rows, then the flag: each row gains the patterns (it said 'up to date: … already
    computed' and stored none); again with the flag it is up to date; a plain run keeps them."""
    conn, url = bars_db
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    assert run_a2_local_ta.main(["--date", str(D), "--db-url", url, "--quiet"]) == 0
    rows = conn.execute("SELECT count(*) FROM daily_snapshots").fetchone()[0]
    capsys.readouterr()

    def run(*flags: str) -> dict:
        assert run_a2_local_ta.main(["--date", str(D), "--db-url", url, "--json", *flags]) == 0
        return json.loads(capsys.readouterr().out)

    first = run("--enable-pattern-indicators")
    assert (first["rows_inserted"], first["rows_updated"], first["skipped_existing"]) == (0, rows, 0)
    assert conn.execute("SELECT count(*) FROM daily_snapshots WHERE technical_indicators_json ? "
                        "'pattern_recognition'").fetchone() == (rows,)
    again = run("--enable-pattern-indicators")
    assert (again["rows_updated"], again["skipped_existing"]) == (0, rows)
    plain = run()
    assert (plain["rows_updated"], plain["skipped_existing"]) == (0, rows)
    assert conn.execute("SELECT count(*) FROM daily_snapshots WHERE technical_indicators_json ? "
                        "'pattern_recognition'").fetchone() == (rows,)
