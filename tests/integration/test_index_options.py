"""Index options end to end: I:SPX as a ticker, in a watchlist, its chain ingested, A3 computed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from kapman.clock import close_of
from kapman.errors import UsageError
from kapman.ingest.options import ingest_options
from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.ingest.watchlists import ingest_watchlists
from kapman.jobs import a3_dealer_metrics as a3
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox import indices
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from tests.support import database

pytestmark = pytest.mark.integration
D = date(2025, 12, 19)
WATCHLISTS = Path(__file__).resolve().parents[2] / "data" / "watchlists"


@pytest.fixture
def index_db(templates: database.Templates, rest: SandboxRestServer,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[psycopg.Connection, str]]:
    monkeypatch.setenv("KAPMAN_NOW", close_of(D).isoformat())

    def build(url: str) -> None:
        polygon = PolygonClient(PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000))
        with psycopg.connect(url, autocommit=True) as conn:
            tickers = ingest_tickers(conn, polygon, force=True)
            assert tickers.details.indices == 4
            ingest_watchlists(conn, WATCHLISTS)
            rest.set_clock(close_of(D))
            result = ingest_options(url, polygon, resolve_scope(conn, ["I:SPX", "I:VIX"]), close_of(D),
                                    concurrency=2)
            assert result.step_result().exit_code == 0 and result.outcomes["I:SPX"].status == "ok"
        polygon.close()

    with templates.copy("index_options", build) as url, psycopg.connect(url, autocommit=True) as conn:
        rest.set_clock(close_of(D))
        yield conn, url


def test_spx_and_spxw_are_one_underlying_with_the_index_value(index_db: tuple, market: Market) -> None:
    conn, _ = index_db
    listed = {r[0] for r in conn.execute("SELECT symbol FROM tickers WHERE market = 'indices' AND active")}
    assert listed == {"I:SPX", "I:NDX", "I:RUT", "I:VIX"}
    assert {r[0] for r in conn.execute("SELECT symbol FROM watchlists WHERE watchlist_id = 'indices'")} == listed
    rows = conn.execute("SELECT oc.contract_symbol, oc.strike_price, oc.underlying_price FROM options_chains oc "
                        "JOIN tickers t ON t.id = oc.ticker_id WHERE t.symbol = 'I:SPX'").fetchall()
    chain = market.option_chain("I:SPX", close_of(D))
    assert {r[0] for r in rows} == {c["details"]["ticker"] for c in chain}
    roots = {r[0][2:-15] for r in rows}
    assert roots == {"SPX", "SPXW"}
    level = indices.level("I:SPX", close_of(D))
    assert {r[2] for r in rows} == {level}
    assert Decimal(str(chain[0]["details"]["strike_price"])) in {r[1] for r in rows}


def test_a3_on_an_index_is_full_with_its_settlement(index_db: tuple) -> None:
    conn, _ = index_db
    result = a3.compute(conn, a3.A3Params(dates=[D], symbols=["I:SPX", "I:VIX"]))
    payloads = dict(conn.execute("SELECT t.symbol, ds.dealer_metrics_json FROM daily_snapshots ds "
                                 "JOIN tickers t ON t.id = ds.ticker_id WHERE ds.time = %s", (close_of(D),)))
    spx = payloads["I:SPX"]
    assert spx["status"] == "FULL", spx["status_reason"]
    assert spx["spot"] == indices.level("I:SPX", close_of(D)) and spx["spot_source"] == "snapshot_underlying_price"
    assert spx["counts"]["eligible"] > 100 and spx["gex_gross"] > 0 and spx["max_pain"] is not None
    assert "09:30 for AM-settled index monthlies" in spx["conventions"]["time_to_expiry"]
    assert payloads["I:VIX"]["status"] in ("FULL", "LIMITED") and result.exit_code == 0


def test_show_and_the_report_say_why_an_index_has_no_price_or_a2(index_db: tuple, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from kapman.report import symbol
    from kapman.report.data import load_symbol_day
    from scripts import show
    conn, url = index_db
    a3.compute(conn, a3.A3Params(dates=[D], symbols=["I:SPX"]))
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    assert show.main(["I:SPX", "--db-url", url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["date"] == str(D) and data["values"]["dealer_metrics_json.status"] == "FULL"
    assert data["values"]["ohlcv.close"] is None and "the stock flat files hold no index bars" in data["no_bars"]
    assert show.main(["I:SPX", "--db-url", url]) == 0
    assert "price and A2 are empty: I:SPX is an index" in capsys.readouterr().out
    html = symbol.render(load_symbol_day(conn, "I:SPX", D))
    assert "I:SPX is an index" in html and "Dealer gamma by strike" in html and "Price, volume" not in html
    # an index in other case is answered as any symbol is (it was "'i:spx' is not a ticker symbol")
    with pytest.raises(UsageError, match=r"^unknown symbol i:spx; did you mean I:SPX\? \(symbols are case-sens"):
        load_symbol_day(conn, "i:spx", D)
