"""The watchlist scope of options ingestion and dealer metrics: exact symbols, active tickers only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from kapman.errors import UsageError
from kapman.ids import ticker_id
from kapman.ingest.options.pipeline import plan_options
from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.ingest.watchlists import ingest_watchlists
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.market import Market

pytestmark = pytest.mark.integration


@pytest.fixture
def scoped(db: psycopg.Connection, realistic_polygon: PolygonClient, realistic_market: Market,
           market_clock: None, tmp_path: Path) -> tuple[psycopg.Connection, str]:
    ingest_tickers(db, realistic_polygon, force=True)
    gone = next(r for r in realistic_market.tickers if not r["active"] and r["type"] == "CS")["ticker"]
    (tmp_path / "mvp.txt").write_text(f"AAPL\nAAP\nAAp\nTpC\nGLD\n{gone}\nnvda\n")
    ingest_watchlists(db, tmp_path)
    return db, gone


def test_scope_keeps_case_and_skips_inactive_tickers(scoped: tuple[psycopg.Connection, str]) -> None:
    db, gone = scoped
    delisted = db.execute("SELECT delisted_utc FROM tickers WHERE symbol = %s", (gone,)).fetchone()[0]
    scope = resolve_scope(db)
    assert scope.tickers == {s: ticker_id(s) for s in ("AAP", "AAPL", "AAp", "GLD", "TpC")}
    assert scope.skipped == {gone: f"inactive ticker (delisted {delisted:%Y-%m-%d})",
                             "nvda": "no ticker (did you mean NVDA?)"}
    assert list(resolve_scope(db, ["AAp"]).tickers) == ["AAp"]


def test_requested_symbols_are_exact(scoped: tuple[psycopg.Connection, str]) -> None:
    db, gone = scoped
    with pytest.raises(UsageError) as info:
        resolve_scope(db, ["aapl", "AAp", "TPC"])
    assert info.value.message == ("--symbols names symbols outside the options ingestion scope "
                                  "(not in an active watchlist: TPC (did you mean TpC?) aapl (did you mean AAPL?))")
    with pytest.raises(UsageError, match=r"not in an active watchlist: tpc \(did you mean TpC\?\)"):
        resolve_scope(db, ["tpc"])
    with pytest.raises(UsageError, match=rf"inactive: {gone} \(inactive ticker \(delisted "):
        resolve_scope(db, [gone], work="dealer metrics")
    with pytest.raises(UsageError, match=r"no ticker: nvda \(did you mean NVDA\?\)"):
        resolve_scope(db, ["nvda"])


def test_an_options_run_names_why_each_watchlist_symbol_was_skipped(scoped: tuple[psycopg.Connection, str]) -> None:
    """The note called every skipped symbol one 'without a ticker', an inactive (delisted) one too."""
    db, gone = scoped
    delisted = db.execute("SELECT delisted_utc FROM tickers WHERE symbol = %s", (gone,)).fetchone()[0]
    plan = plan_options(resolve_scope(db), datetime(2025, 12, 19, 21, tzinfo=UTC), concurrency=1)
    skipped = [n for n in plan.step_result().notes if n.startswith("skipped")]
    assert skipped == [f"skipped (watchlist symbols out of the scope): {gone} (inactive ticker (delisted "
                       f"{delisted:%Y-%m-%d})) nvda (no ticker (did you mean NVDA?))"]
