"""The runbook, end to end, exactly as documented, on the sandbox and a real TimescaleDB.

Runs every command of docs/runbooks/README.md (through kapman.runbook, which a unit test keeps
identical to the document), then repaves and runs it all again: the table contents must be
identical (deterministic ticker ids, deterministic sandbox, deterministic metrics, and the option
snapshots restored from the archive the first pass wrote).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from kapman.config import PROJECT_ROOT
from kapman.demo import report, sandbox_runbook
from kapman.ids import ticker_id
from kapman.runbook import REPORT_PAGES
from kapman.ticker_types import DEFAULT_TYPES
from tests.support import database

pytestmark = pytest.mark.integration

#: A digest of every table's contents, leaving out only what records *when* a row was written.
DIGESTS = {
    "tickers": "id, symbol, name, market, locale, type, primary_exchange, currency_name, cik, composite_figi, "
               "share_class_figi, active, delisted_utc, last_updated_utc",
    "splits": "ticker, execution_date, split_from, split_to, vendor_id",
    "watchlists": "watchlist_id, symbol, active, source, effective_date",
    "ohlcv": "ticker_id, date, open, high, low, close, volume, vwap, transactions",
    "options_chains": "time, ticker_id, expiration_date, strike_price, option_type, contract_symbol, "
                      "shares_per_contract, underlying_price, bid, ask, last, volume, open_interest, "
                      "implied_volatility, delta, gamma, theta, vega",
    "daily_snapshots": "time, ticker_id, technical_indicators_json, price_metrics_json, ta_version, "
                       "dealer_metrics_json, dealer_snapshot_time, dealer_version",
    "ingest_files": "source, key, trading_date, etag, size_bytes, rows_read, rows_loaded, rows_rejected, "
                    "rows_unknown",
}


def digests(url: str) -> dict[str, tuple[int, str]]:
    out = {}
    with psycopg.connect(url) as conn:
        for table, cols in DIGESTS.items():
            row = conn.execute(f"SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) FROM "
                               f"(SELECT concat_ws('|', {cols}) AS r FROM public.{table}) s").fetchone()
            out[table] = (row[0], row[1])
    return out


@pytest.fixture
def scratch(admin_url: str) -> Iterator[str]:
    url = database.create_scratch(admin_url, "e2e_")
    try:
        yield url
    finally:
        database.drop_scratch(admin_url, url)


def test_runbook_end_to_end_with_a_repave(scratch: str, capfd: pytest.CaptureFixture[str],
                                          tmp_path_factory: pytest.TempPathFactory,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_ARCHIVE_DIR", str(tmp_path_factory.mktemp("e2e-archive")))  # empty: no Step 5a
    results = sandbox_runbook(scratch, tickers=200, seed=7, option_days=5, dashboards=True)
    failed = [(r.step.number, r.step.title, r.returncode) for r in results if r.returncode]
    assert not failed, failed
    assert len(results) == 5 + 5 + 4 + 5 + 2       # Step 7 begins with the A2 history
    for page in REPORT_PAGES:
        assert b"Plotly.newPlot" in (PROJECT_ROOT / page).read_bytes()
    first = digests(scratch)
    counts = {t: n for t, (n, _) in first.items()}
    # 150 MVP symbols and the 4 shipped indices (data/watchlists/indices.txt, issue 27)
    assert counts["tickers"] > 150 and counts["watchlists"] == 154
    assert counts["splits"] == 2                # NVDA 10-for-1 and a 1-for-10 reverse split
    assert counts["ohlcv"] > 150 * 450 and counts["options_chains"] > 150 * 5 * 100
    with psycopg.connect(scratch) as conn:
        statuses = dict(conn.execute(
            "SELECT dealer_metrics_json->>'status', count(*) FROM daily_snapshots "
            "WHERE dealer_metrics_json IS NOT NULL GROUP BY 1").fetchall())
        a2_dates = conn.execute("SELECT count(DISTINCT time) FROM daily_snapshots "
                                "WHERE technical_indicators_json IS NOT NULL").fetchone()[0]
        bar_dates = conn.execute("SELECT count(DISTINCT date) FROM ohlcv").fetchone()[0]
        reference = conn.execute("SELECT id, symbol, type, active, delisted_utc FROM tickers").fetchall()
        inactive_in_scope = conn.execute(
            "SELECT count(*) FROM tickers t WHERE NOT t.active AND (EXISTS (SELECT 1 FROM options_chains oc "
            "WHERE oc.ticker_id = t.id) OR EXISTS (SELECT 1 FROM daily_snapshots ds WHERE ds.ticker_id = t.id "
            "AND ds.dealer_metrics_json IS NOT NULL))").fetchone()[0]
    # Ticker ids are the v5 UUIDs of the symbols as listed; delisted tickers are kept inactive with
    # their delisting time, and options and dealer metrics leave them out.
    assert all(tid == ticker_id(symbol) for tid, symbol, *_ in reference)
    assert {kind for _, _, kind, _, _ in reference} <= {*DEFAULT_TYPES, "INDEX"}
    assert all(delisted is not None for _, _, _, active, delisted in reference if not active)
    assert any(not active for _, _, _, active, _ in reference) and inactive_in_scope == 0
    assert sum(statuses.values()) == 154 * 5 and statuses.get("FULL", 0) > 100
    assert a2_dates == bar_dates > 450        # the history: every date with bars in the window
    out = capfd.readouterr().out
    assert "== dealer metrics" in out.lower() or "dealer" in out.lower()
    assert "(output appended to " in out       # the dashboards' hundreds of lines went to a file
    summary = dict(report(scratch))
    assert summary["A3 rows"].startswith("770 rows") and "I:SPX FULL" in summary["index A3 (newest)"]
    with psycopg.connect(scratch) as conn:
        # Step 2 ran without a terminal (--yes) and its run opened the new ledger; the sandbox's
        # frozen clock is the one the lifecycle follows.
        rebuilds = conn.execute("SELECT status FROM ingest_runs WHERE job = 'rebuild'").fetchall()
        clock = conn.execute("SELECT mode, frozen_at FROM lifecycle_clock").fetchone()
    assert rebuilds == [("ok",)]
    assert clock is not None and clock[0] == "frozen" and clock[1].date().isoformat() == "2025-12-19"

    # Repave: Step 0-2 destroy everything; the same steps, with Step 5a restoring the snapshots the
    # first pass archived, must rebuild the same contents.
    # The database holds data now: without a terminal only Step 2's --yes lets the repave through.
    again = sandbox_runbook(scratch, tickers=200, seed=7, option_days=5, dashboards=False, quiet=True)
    assert not [r for r in again if r.returncode]
    assert [r.step.number for r in again][:7] == ["2", "3", "3b", "4", "5", "5a", "6"]
    assert digests(scratch) == first
