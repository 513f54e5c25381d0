"""Step 8: A3 over sandbox options snapshots and A2 rows in a real TimescaleDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from kapman.clock import close_of
from kapman.config import load_settings
from kapman.ingest.options import ingest_options
from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.ingest.watchlists import ingest_watchlists
from kapman.jobs import a2_local_ta
from kapman.jobs import a3_dealer_metrics as a3
from kapman.metrics.dealer import compute_dealer_metrics
from kapman.ops import nightly, status
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox import endpoints
from kapman.sandbox.dbload import load_bars
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from tests.integration.test_dashboards import run, table
from tests.support import database

pytestmark = pytest.mark.integration
D1, D2 = date(2025, 12, 18), date(2025, 12, 19)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hydrated(templates: database.Templates, rest: SandboxRestServer, market: Market,
             tmp_path_factory: pytest.TempPathFactory,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[psycopg.Connection, str]]:
    """Tickers, a 4-symbol watchlist, bars, and snapshots on D1 (all) and D2 (all but MSFT)."""

    def build(url: str) -> None:
        watchlists = tmp_path_factory.mktemp("a3-watchlists")
        (watchlists / "core.txt").write_text("AAPL\nSPY\nMSFT\nORCL\n")
        polygon = PolygonClient(PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000))
        with pytest.MonkeyPatch.context() as mp, psycopg.connect(url, autocommit=True) as conn:
            mp.setenv("KAPMAN_NOW", str(D2))
            ingest_tickers(conn, polygon, force=True)
            ingest_watchlists(conn, watchlists)
            load_bars(conn, market)
            for day, symbols in ((D1, ["AAPL", "SPY", "MSFT", "ORCL"]), (D2, ["AAPL", "SPY", "ORCL"])):
                instant = close_of(day)
                rest.set_clock(instant)
                mp.setenv("KAPMAN_NOW", instant.isoformat())
                ingest_options(url, polygon, resolve_scope(conn, symbols), instant, concurrency=2)
        polygon.close()

    with templates.copy("a3_hydrated", build) as url, psycopg.connect(url, autocommit=True) as conn:
        rest.set_clock(close_of(D2))
        monkeypatch.setenv("KAPMAN_NOW", str(D2))
        yield conn, url


def payloads(conn: psycopg.Connection, day: date) -> dict[str, dict]:
    rows = conn.execute("SELECT t.symbol, ds.dealer_metrics_json FROM daily_snapshots ds "
                        "JOIN tickers t ON t.id = ds.ticker_id WHERE ds.time = %s AND ds.dealer_metrics_json "
                        "IS NOT NULL", (close_of(day),)).fetchall()
    return dict(rows)


def test_metrics_per_symbol_and_date_share_the_a2_row(hydrated: tuple) -> None:
    conn, _ = hydrated
    a2 = a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=[D1, D2]))
    result = a3.compute(conn, a3.A3Params(dates=[D1, D2]))
    assert result.details.rows_written == 8 and not result.failures and result.exit_code == 0
    assert result.details.statuses["INVALID"] == 1              # MSFT on D2: no snapshot that day
    d2 = payloads(conn, D2)
    assert d2["MSFT"]["status"] == "INVALID" and d2["MSFT"]["status_reason"].startswith("no_snapshot")
    assert d2["MSFT"]["snapshot_time"] is None           # D1's snapshot is not reused on D2
    for symbol in ("AAPL", "SPY", "ORCL"):
        p = d2[symbol]
        assert p["status"] in ("FULL", "LIMITED") and p["spot_source"] == "snapshot_underlying_price"
        assert p["snapshot_time"].startswith("2025-12-19T21:00:00")
        assert p["gex_gross"] >= abs(p["gex_net"]) and p["call_wall"] is not None
    assert d2["AAPL"]["status"] == "FULL"
    # One row per (ticker, date): A3 filled the rows A2 wrote, and made none of its own for them.
    total = conn.execute("SELECT count(*) FROM daily_snapshots").fetchone()[0]
    assert total == a2.rows_written
    both = conn.execute("SELECT count(*) FROM daily_snapshots WHERE dealer_metrics_json IS NOT NULL "
                        "AND technical_indicators_json IS NOT NULL").fetchone()[0]
    assert both == 8


def test_a_range_read_window_by_window_computes_what_one_read_does(hydrated: tuple,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    conn, _ = hydrated
    whole = a3.compute(conn, a3.A3Params(dates=[D1, D2]))
    at_once = {day: payloads(conn, day) for day in (D1, D2)}
    monkeypatch.setattr(a3, "WINDOW_DATES", 1)                  # each date read on its own
    windowed = a3.compute(conn, a3.A3Params(dates=[D1, D2], force=True))
    assert windowed.read == whole.read > 0 and windowed.details.statuses == whole.details.statuses
    assert windowed.details.rows_unchanged == 8 and windowed.details.dates_done == [D1, D2]  # equal rows
    assert {day: payloads(conn, day) for day in (D1, D2)} == at_once


def test_job_plumbing_matches_the_kernel_on_a_plain_query(hydrated: tuple) -> None:
    conn, _ = hydrated
    a3.compute(conn, a3.A3Params(dates=[D2], symbols=["AAPL"]))
    stored = payloads(conn, D2)["AAPL"]
    frame = pd.DataFrame(conn.execute("""
        SELECT oc.expiration_date, oc.strike_price AS strike, oc.option_type, oc.open_interest, oc.volume,
               oc.implied_volatility, oc.delta, oc.gamma, oc.shares_per_contract, oc.underlying_price, oc.time
        FROM options_chains oc JOIN tickers t ON t.id = oc.ticker_id
        WHERE t.symbol = 'AAPL' AND oc.time = %s""", (close_of(D2),)).fetchall(),
        columns=["expiration_date", "strike", "option_type", "open_interest", "volume", "implied_volatility",
                 "delta", "gamma", "shares_per_contract", "underlying_price", "time"])
    direct = compute_dealer_metrics(frame, spot=float(frame["underlying_price"].median()),
                                    spot_source="snapshot_underlying_price", as_of=D2,
                                    snapshot_time=frame["time"].iloc[0].to_pydatetime())
    # The job adds what the kernel does not see: contracts quoted before the snapshot's session, and
    # the chain's newest write (a rewrite under the same time moves it).
    stale, written = conn.execute("""
        SELECT count(*) FILTER (WHERE (oc.quote_updated_at AT TIME ZONE 'America/New_York')::date
                                      < (oc.time AT TIME ZONE 'America/New_York')::date), max(oc.updated_at)
        FROM options_chains oc JOIN tickers t ON t.id = oc.ticker_id
        WHERE t.symbol = 'AAPL' AND oc.time = %s""", (close_of(D2),)).fetchone()
    direct["counts"]["stale_quotes"] = stale
    direct["snapshot_written_at"] = written.astimezone(UTC).isoformat()
    assert json.loads(json.dumps(direct)) == stored


def test_rerun_skips_force_recomputes_and_a2_columns_stay(hydrated: tuple) -> None:
    conn, _ = hydrated
    a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=[D2], symbols=["AAPL"]))
    first = a3.compute(conn, a3.A3Params(dates=[D2]))
    again = a3.compute(conn, a3.A3Params(dates=[D2]))
    assert again.details.rows_written == 0 and again.unchanged == first.details.rows_written == 4
    assert again.outcome == "ok" and "4 already computed" in again.headline
    forced = a3.compute(conn, a3.A3Params(dates=[D2], force=True))
    assert (forced.details.rows_inserted, forced.details.rows_updated,
            forced.details.rows_unchanged) == (0, 0, 4)
    ta = conn.execute("SELECT count(*) FROM daily_snapshots WHERE technical_indicators_json IS NOT NULL").fetchone()
    assert ta == (1,)


def test_date_without_any_snapshot_is_reported_and_skipped(hydrated: tuple) -> None:
    conn, _ = hydrated
    result = a3.compute(conn, a3.A3Params(dates=[date(2025, 12, 17), D2]))
    assert result.details.dates_without_snapshots == [date(2025, 12, 17)]
    assert result.outcome == "ok" and "no options snapshot for any symbol on 2025-12-17" in result.summary()
    assert conn.execute("SELECT count(*) FROM daily_snapshots WHERE time = %s",
                        (close_of(date(2025, 12, 17)),)).fetchone() == (0,)


def test_a_symbol_missing_from_the_days_snapshot_is_invalid_when_asked_alone(hydrated: tuple) -> None:
    """D2's snapshot has no MSFT: a whole run stores MSFT INVALID (no_snapshot) there; --symbols MSFT
    alone stores the same, where it said "no options snapshot on 2025-12-19" and exit 2."""
    conn, _ = hydrated
    alone = a3.compute(conn, a3.A3Params(dates=[D2], symbols=["MSFT"]))
    assert alone.outcome == "ok" and alone.details.dates_without_snapshots == []
    assert alone.details.statuses == {"INVALID": 1}
    msft = payloads(conn, D2)["MSFT"]
    assert msft["status"] == "INVALID" and msft["status_reason"].startswith("no_snapshot")
    whole = a3.compute(conn, a3.A3Params(dates=[D2], force=True))
    assert payloads(conn, D2)["MSFT"] == msft and whole.details.statuses["INVALID"] == 1
    none = a3.compute(conn, a3.A3Params(dates=[date(2025, 12, 17)], symbols=["MSFT"]))   # no snapshot at all
    assert none.outcome == "nothing-to-do" and none.nothing_reason.startswith("no options snapshot on 2025-12-17")


def test_the_days_without_a_snapshot_of_a_long_range_are_spans(hydrated: tuple) -> None:
    conn, _ = hydrated
    result = a3.compute(conn, a3.A3Params(dates=[d.date() for d in pd.bdate_range("2025-12-01", "2025-12-19")]))
    assert len(result.details.dates_without_snapshots) == 13
    assert "no options snapshot for any symbol on 2025-12-01..2025-12-17 (" in result.summary()


def test_cli_range_from_the_runbook_and_dashboard(hydrated: tuple) -> None:
    _, url = hydrated
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": str(D2)}
    proc = subprocess.run([sys.executable, "-m", "scripts.run_a3_dealer_metrics", "--start-date", "2025-12-15",
                           "--end-date", "2025-12-19", "--workers", "6", "--db-url", url],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "8 rows" in proc.stdout and "2025-12-15" in proc.stdout
    dash = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-v", "SNAPSHOT_N=1", "-d", url, "-f",
                           str(ROOT / "docs" / "runbooks" / "dealer_metrics_dashboard.sql")],
                          capture_output=True, text=True, timeout=120)
    assert dash.returncode == 0, dash.stderr
    assert "FULL" in dash.stdout and "AAPL" in dash.stdout
    outside = subprocess.run([sys.executable, "-m", "scripts.run_a3_dealer_metrics", "--date", "2025-12-19",
                              "--symbols", "NVDA", "--db-url", url], capture_output=True, text=True, env=env)
    assert outside.returncode == 2 and "NVDA" in outside.stderr


def _a3_cli(url: str, *args: str, now: str = str(D2)) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": now}
    return subprocess.run([sys.executable, "-m", "scripts.run_a3_dealer_metrics", *args, "--db-url", url],
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_date_without_a_snapshot_is_nothing_to_do_in_one_line(hydrated: tuple) -> None:
    conn, url = hydrated
    proc = _a3_cli(url, "--date", "2025-12-12")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout.startswith("a3: nothing-to-do · no options snapshot on 2025-12-12")
    as_json = _a3_cli(url, "--date", "2025-12-12", "--json")
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and data["status"] == "nothing-to-do" and data["exit_code"] == 2
    ledger = conn.execute("SELECT status, finished_at > started_at FROM ingest_runs WHERE job = 'a3' "
                          "ORDER BY started_at").fetchall()
    assert ledger == [("nothing-to-do", True), ("nothing-to-do", True)]


def test_a_saturday_snapshot_alone_is_named_not_called_empty(hydrated: tuple) -> None:
    conn, url = hydrated
    # Only a snapshot taken on Saturday 2025-12-20 remains.
    conn.execute("DELETE FROM options_chains WHERE time < '2025-12-19T20:00:00Z'")
    conn.execute("UPDATE options_chains SET time = time + interval '1 day'")
    proc = _a3_cli(url, now="2025-12-20")
    assert proc.returncode == 2
    assert "newest, 2025-12-20, is not a trading day" in proc.stderr and "empty" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_date_that_is_not_a_trading_day_is_refused_though_it_has_a_snapshot(hydrated: tuple) -> None:
    """A snapshot taken on Saturday 2025-12-20: --date 2025-12-20 stored four rows dated that Saturday
    (a range, and the default date, keep to trading days)."""
    conn, url = hydrated
    conn.execute("UPDATE options_chains SET time = time + interval '1 day' WHERE time >= '2025-12-19T20:00:00Z'")
    proc = _a3_cli(url, "--date", "2025-12-20", now="2025-12-20")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == ("error: 2025-12-20 (Saturday) is not a NYSE trading day, and A3 computes "
                                           "trading dates only")
    assert conn.execute("SELECT count(*) FROM daily_snapshots").fetchone() == (0,)


def test_freshness_is_stored_and_stale_quotes_are_counted(hydrated: tuple, market: Market,
                                                         rest: SandboxRestServer) -> None:
    """The sandbox leaves untraded far strikes with quotes from earlier sessions."""
    from kapman.clock import ny_date_of
    conn, _ = hydrated
    rows = conn.execute(
        "SELECT oc.contract_symbol, oc.quote_updated_at, oc.trade_updated_at, oc.timeframe, oc.day_close, oc.last "
        "FROM options_chains oc JOIN tickers t ON t.id = oc.ticker_id WHERE t.symbol = 'AAPL' AND oc.time = %s",
        (close_of(D2),)).fetchall()
    chain = {r["details"]["ticker"]: r for r in market.option_chain("AAPL", close_of(D2))}
    stale = 0
    for symbol, quoted, traded, timeframe, day_close, last in rows:
        src = chain[symbol]
        assert quoted is not None and int(quoted.timestamp() * 1e6) == src["last_quote"]["last_updated"] // 1000
        assert timeframe == "REAL-TIME" and day_close == src["day"]["close"]
        if "last_trade" in src:
            assert int(traded.timestamp() * 1e6) == src["last_trade"]["sip_timestamp"] // 1000
            assert last == src["last_trade"]["price"]
        else:
            assert traded is None and last is None and day_close is not None   # the close is not lost
        stale += ny_date_of(quoted) < D2
    assert stale > 10
    result = a3.compute(conn, a3.A3Params(dates=[D2], symbols=["AAPL"]))
    payload = payloads(conn, D2)["AAPL"]
    assert payload["counts"]["stale_quotes"] == stale and payload["status"] == "FULL"
    assert result.details.stale_quotes == {"AAPL": stale}
    assert any(f"{stale} contracts quoted before their snapshot's session" in n for n in result.notes)
    from kapman.report.data import load_symbol_day
    from kapman.report.keyvalues import key_values
    a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=[D2], symbols=["AAPL"]))
    shown = {kv.label: kv.text for kv in key_values(load_symbol_day(conn, "AAPL", D2))}
    assert shown["stale quotes"] == f"{stale} of {payload['counts']['total']} (quoted before the session)"


def test_dates_after_today_are_refused_or_left_out_not_called_missed(hydrated: tuple) -> None:
    """KapMan's clock is at D2's close: a date after it holds nothing yet, so it is neither computed
    nor listed with the sessions whose snapshot was missed."""
    _, url = hydrated
    future = _a3_cli(url, "--date", "2025-12-22")
    assert future.returncode == 2 and "Traceback" not in future.stderr
    assert future.stderr.splitlines()[0] == f"error: 2025-12-22 is after today ({D2} by KapMan's clock)"
    across = _a3_cli(url, "--start-date", "2025-12-17", "--end-date", "2026-01-09")
    assert across.returncode == 0, across.stderr
    assert f"2025-12-17..{D2}:" in across.stdout
    assert "no options snapshot for any symbol on 2025-12-17 (" in across.stdout
    weekend = _a3_cli(url, "--start-date", "2025-12-13", "--end-date", "2025-12-14")
    assert weekend.returncode == 2
    assert weekend.stderr.splitlines()[0] == "error: 2025-12-13..2025-12-14 holds no NYSE trading day"


@pytest.mark.parametrize("when", ["before D2's write", "while D1 commits"])
def test_a_range_stopped_by_sigterm_records_the_rows_it_committed(
        hydrated: tuple, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], when: str) -> None:
    """Stopped before a date's write, or (as a signal mostly arrives) while A3 waits for a date's
    commit: the ledger row counts the dates and rows committed."""
    import os
    import signal

    from kapman import cli, signals
    from kapman.jobs import snapshots
    from scripts import run_a3_dealer_metrics

    conn, url = hydrated
    real_write = snapshots.write

    def write(*args: object, **kwargs: object) -> object:
        if when == "before D2's write" and kwargs["time"] == close_of(D2):
            raise signals.Terminated(signal.SIGTERM)
        counts = real_write(*args, **kwargs)  # type: ignore[arg-type]
        if when == "while D1 commits" and kwargs["time"] == close_of(D1):   # committed, not counted yet
            os.kill(os.getpid(), signal.SIGTERM)
        return counts

    monkeypatch.setattr(a3.snapshots, "write", write)
    code = cli.run_main(run_a3_dealer_metrics.main, ["--start-date", str(D1), "--end-date", str(D2), "--db-url", url,
                                                     "-q", "--json"])
    assert code == 143 and json.loads(capsys.readouterr().out)["status"] == "interrupted"
    status, summary = conn.execute("SELECT status, summary FROM ingest_runs WHERE job = 'a3'").fetchone()
    assert status == "interrupted" and len(payloads(conn, D1)) == 4 and payloads(conn, D2) == {}
    assert (summary["status"], summary["exit_code"], summary["counts"]["written"], summary["dates_done"]) == (
        "interrupted", 143, 4, [str(D1)])


def test_a_symbol_added_mid_range_gets_no_row_before_it_joined(hydrated: tuple) -> None:
    """NVDA joined a watchlist on D2: a range over D1..D2 stored it INVALID (no_snapshot) on D1 as well,
    a day it was not on a watchlist (status and the dealer dashboard owe it nothing there), so A3 on D1
    stored a row run that evening would not have."""
    conn, url = hydrated
    conn.execute("UPDATE watchlists SET effective_date = %s", (D1,))
    conn.execute("INSERT INTO watchlists (watchlist_id, symbol, active, source, effective_date) "
                 "VALUES ('late', 'NVDA', true, 'late.txt', %s)", (D2,))
    result = a3.compute(conn, a3.A3Params(dates=[D1, D2]))
    assert result.exit_code == 0 and not result.failures
    assert "NVDA" not in payloads(conn, D1) and payloads(conn, D2)["NVDA"]["status"] == "INVALID"
    assert set(payloads(conn, D1)) == {"AAPL", "SPY", "MSFT", "ORCL"}
    assert "not on a watchlist yet (no chain, nothing stored): NVDA (2025-12-18)" in result.summary()
    assert result.details.as_dict()["not_listed"] == {"NVDA": 1}
    before = _a3_cli(url, "--date", str(D1), "--symbols", "NVDA")
    assert before.returncode == 2, before.stdout + before.stderr
    assert before.stdout.startswith("a3: nothing-to-do · NVDA was not on a watchlist on 2025-12-18")
    assert "NVDA" not in payloads(conn, D1)


# ---- a chain rewritten under the same snapshot time ------------------------------------------

AFTER_D2 = "2025-12-20T10:00:00-05:00"   # the morning after D2's session: no snapshot window open


def _replay(url: str, rest: SandboxRestServer, monkeypatch: pytest.MonkeyPatch,
            change: Callable[[dict], dict | None] | None = None) -> Any:
    """An options run of AAPL under D2's snapshot time again; ``change`` edits (None: drops) each
    contract the sandbox serves."""
    served = endpoints.option_snapshots

    def edited(market: Market, underlying: str, query: dict, now: datetime) -> list:
        results = served(market, underlying, query, now)
        if change is None or underlying != "AAPL":
            return results
        return [r for r in map(change, results) if r is not None]

    monkeypatch.setattr(endpoints, "option_snapshots", edited)
    polygon = PolygonClient(PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return ingest_options(url, polygon, resolve_scope(conn, ["AAPL"]), close_of(D2), concurrency=1)
    finally:
        polygon.close()
        monkeypatch.setattr(endpoints, "option_snapshots", served)


def _doubled_oi(contract: dict) -> dict:
    return {**contract, "open_interest": 2 * contract["open_interest"]}


def _owed(conn: psycopg.Connection, url: str) -> tuple[dict, list[date], dict[str, str]]:
    """What status's a3 area, the nightly's plan and the dealer dashboard's verdict say of A3."""
    a3_area = status.report(conn, with_archive=False).check("a3").details["stale"]
    planned = [t.args["dates"] for t in nightly.plan(load_settings(), conn).tasks if t.step == "a3"]
    verdict = table(run(url, "dealer_metrics_dashboard.sql", f"NOW={AFTER_D2}"), "verdict")[0]
    return a3_area, planned[0] if planned else [], verdict


def _computed(conn: psycopg.Connection) -> dict[str, tuple[datetime, dict]]:
    """D2's dealer metrics per symbol, with when they were computed (by KapMan's clock)."""
    rows = conn.execute("SELECT t.symbol, ds.dealer_computed_at, ds.dealer_metrics_json FROM daily_snapshots ds "
                        "JOIN tickers t ON t.id = ds.ticker_id WHERE ds.time = %s AND ds.dealer_metrics_json "
                        "IS NOT NULL", (close_of(D2),)).fetchall()
    return {s: (at, doc) for s, at, doc in rows}


@pytest.fixture
def computed(hydrated: tuple, monkeypatch: pytest.MonkeyPatch) -> tuple[psycopg.Connection, str]:
    """A3 on D1 and D2, and the clock the morning after D2: nothing owed."""
    conn, url = hydrated
    monkeypatch.setenv("KAPMAN_NOW", AFTER_D2)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    a3.compute(conn, a3.A3Params(dates=[D1, D2]))
    assert _owed(conn, url) == ({}, [], {"verdict": "OK", "reason": "dealer metrics for the newest snapshot "
                                                                    f"({D2}) and every watchlist symbol"})
    return conn, url


def test_a_chain_replayed_with_changed_quotes_under_its_time_owes_a3_until_recomputed(
        computed: tuple, rest: SandboxRestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An options run replays AAPL's D2 snapshot under the same time with every open interest
    doubled: A3 skipped it as already computed, and status, the plan and the dashboard said it was
    current.  Now all three owe it, and a rerun recomputes AAPL alone, from the new rows."""
    conn, url = computed
    before = _computed(conn)
    replay = _replay(url, rest, monkeypatch, _doubled_oi)
    assert replay.rows_updated > 0 and replay.rows_inserted == replay.rows_removed == 0
    a3_area, planned, verdict = _owed(conn, url)
    assert a3_area == {str(D2): ["AAPL"]} and planned == [D2]
    assert verdict == {"verdict": "WARN", "reason": f"1 symbols on {D2} computed before their chain of the day: "
                                                    f"python -m scripts.run_a3_dealer_metrics --date {D2}"}
    rerun = _a3_cli(url, "--date", str(D2), now=AFTER_D2)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 rows (0 new, 1 updated, 0 unchanged)" in rerun.stdout + rerun.stderr
    assert "3 already computed" in rerun.stdout + rerun.stderr
    after = _computed(conn)
    assert {s for s in after if after[s][1] != before[s][1]} == {"AAPL"}
    old, new = before["AAPL"][1], after["AAPL"][1]
    assert new["gex_gross"] == pytest.approx(2 * old["gex_gross"], rel=1e-6) and new["gex_gross"] > 0
    written = conn.execute("SELECT max(oc.updated_at) FROM options_chains oc JOIN tickers t ON t.id = oc.ticker_id "
                           "WHERE t.symbol = 'AAPL' AND oc.time = %s", (close_of(D2),)).fetchone()[0]
    assert datetime.fromisoformat(new["snapshot_written_at"]) == written > datetime.fromisoformat(
        old["snapshot_written_at"])
    assert _owed(conn, url)[0:2] == ({}, []) and _owed(conn, url)[2]["verdict"] == "OK"


def test_a_replay_that_only_removes_contracts_owes_a3(computed: tuple, rest: SandboxRestServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay whose chain lacks an expiration removes its contracts and rewrites nothing else (no
    row carries a new updated_at): the contract count tells A3 is stale."""
    conn, url = computed
    before = _computed(conn)
    first = min(r[0] for r in conn.execute(
        "SELECT expiration_date FROM options_chains oc JOIN tickers t ON t.id = oc.ticker_id "
        "WHERE t.symbol = 'AAPL' AND oc.time = %s", (close_of(D2),)).fetchall()).isoformat()
    replay = _replay(url, rest, monkeypatch, lambda c: None if c["details"]["expiration_date"] == first else c)
    assert replay.rows_removed > 0 and replay.rows_updated == replay.rows_inserted == 0
    a3_area, planned, verdict = _owed(conn, url)
    assert a3_area == {str(D2): ["AAPL"]} and planned == [D2] and verdict["verdict"] == "WARN"
    again = a3.compute(conn, a3.A3Params(dates=[D2]))
    assert (again.details.rows_updated, again.unchanged) == (1, 3)
    after = _computed(conn)["AAPL"][1]
    assert after["counts"]["total"] == before["AAPL"][1]["counts"]["total"] - replay.rows_removed
    assert _owed(conn, url)[0:2] == ({}, [])


def test_an_unchanged_replay_owes_nothing(computed: tuple, rest: SandboxRestServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    conn, url = computed
    replay = _replay(url, rest, monkeypatch)
    assert replay.rows_updated == replay.rows_inserted == replay.rows_removed == 0 and replay.rows_unchanged > 0
    assert _owed(conn, url)[0:2] == ({}, []) and _owed(conn, url)[2]["verdict"] == "OK"
    again = a3.compute(conn, a3.A3Params(dates=[D2]))
    assert again.details.rows_written == 0 and "4 already computed" in again.headline
