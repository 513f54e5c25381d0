"""The sandbox's corporate actions end to end: a reverse split the vendor lists twice, and the
adjusted contracts it leaves in the chain, through the splits step, A2, the options step and A3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import psycopg
import pytest

from kapman.clock import close_of
from kapman.db import lifecycle
from kapman.ingest.options import ingest_options
from kapman.ingest.splits import ingest_splits
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.jobs import a2_local_ta
from kapman.jobs import a3_dealer_metrics as a3
from kapman.jobs.a2_window import anchor
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from tests.support import database

pytestmark = pytest.mark.integration
D = date(2025, 4, 30)     # five weeks after the sandbox's reverse split


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=21, n_tickers=185, days=950, duplicate_split=True)


@pytest.fixture
def actions_db(templates: database.Templates, market: Market,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[psycopg.Connection, PolygonClient, str]]:
    monkeypatch.setenv("KAPMAN_NOW", close_of(D).isoformat())

    def build(url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            # the bars are older than the real clock's retention window: the database follows the
            # frozen clock too, so the community edition's policies are paused and never drop them
            lifecycle.record_clock(conn, lifecycle.Clock("frozen", close_of(D)))
            load_tickers(conn, market)
            load_bars(conn, market, [d for d in market.trading_days if anchor(D) <= d <= D])

    with (templates.copy("corporate_actions", build) as url, SandboxRestServer(market, api_key="k") as server,
          psycopg.connect(url, autocommit=True) as conn):
        server.set_clock(close_of(D))
        client = PolygonClient(PolygonHTTP(server.base_url, "k", rate_limit=1000))
        yield conn, client, url
        client.close()


def test_a_reverse_split_listed_twice_is_applied_once(actions_db: tuple, market: Market) -> None:
    conn, client, _ = actions_db
    real, twin = sorted((s for s in market.splits if s["split_from"] > s["split_to"]),
                        key=lambda s: s["execution_date"], reverse=True)
    symbol, executed = real["ticker"], date.fromisoformat(real["execution_date"])
    steps = ingest_splits(conn, client, since=date(2024, 1, 1))
    assert steps.details.not_applied == 1
    assert any(f"{symbol} {twin['execution_date']} 1-for-10 (not-in-prices" in n for n in steps.notes)
    result = a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=[D], symbols=[symbol]))
    assert list(result.splits_not_applied) == [f"{symbol} {twin['execution_date']} 1-for-10"]
    ta = conn.execute("SELECT technical_indicators_json FROM daily_snapshots ds JOIN tickers t ON t.id = ds.ticker_id "
                      "WHERE t.symbol = %s", (symbol,)).fetchone()[0]
    frame = market.bars_between(anchor(D), D).query("ticker == @symbol").sort_values("date")
    adjusted = np.where(frame["date"] < executed, frame["close"] * 10, frame["close"])   # once, not 100x
    assert ta["trend"]["sma"]["sma_50"] == pytest.approx(adjusted[-50:].mean(), rel=1e-12)


def test_the_adjusted_contracts_it_left_are_stored_and_kept_out_of_a3(actions_db: tuple, market: Market) -> None:
    conn, client, url = actions_db
    symbol = next(s["ticker"] for s in market.splits if s["split_from"] > s["split_to"])
    conn.execute("INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) VALUES ('t', %s, 't', %s)",
                 (symbol, D))
    run = ingest_options(url, client, resolve_scope(conn, [symbol]), close_of(D), concurrency=1, workers=0)
    assert run.step_result().exit_code == 0 and run.outcomes[symbol].status == "ok"
    stored = conn.execute("SELECT contract_symbol, strike_price, shares_per_contract, open_interest "
                          "FROM options_chains WHERE shares_per_contract <> 100 ORDER BY 1").fetchall()
    assert [(s, oi) for _, _, s, oi in stored] == [(10, 50_000), (10, 30_000)]   # 100 shares became 10
    adjusted_strike = float(stored[0][1])
    a3.compute(conn, a3.A3Params(dates=[D], symbols=[symbol]))
    payload = conn.execute("SELECT dealer_metrics_json FROM daily_snapshots ds JOIN tickers t ON t.id = ds.ticker_id "
                           "WHERE t.symbol = %s", (symbol,)).fetchone()[0]
    assert payload["counts"]["excluded"]["adjusted_deliverable"] == 2
    walls = [w["strike"] for w in payload["call_walls"] + payload["put_walls"]]
    assert adjusted_strike not in walls and payload["max_pain"] != adjusted_strike
