"""Step 3 against the sandbox REST server and a real TimescaleDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest

from kapman.db import runs
from kapman.errors import AuthError, PaginationError, TransientProviderError
from kapman.ids import ticker_id
from kapman.ingest.tickers import ingest_tickers
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from kapman.ticker_types import DEFAULT_TYPES

pytestmark = pytest.mark.integration


#: The market clock's close (conftest.MARKET_NOW) less the 730-day retention window.
WINDOW_START = "2023-12-20"


def expected(market: Market) -> dict[str, dict]:
    """The newest record per symbol of the kept types, straight from the sandbox: the listed ones
    and those delisted within the 730-day window before the market clock; and every index."""
    best: dict[str, dict] = {}
    for rec in market.tickers:
        if not rec["active"] and rec["delisted_utc"] < WINDOW_START:
            continue
        if rec["ticker"] not in best or rec["last_updated_utc"] > best[rec["ticker"]]["last_updated_utc"]:
            best[rec["ticker"]] = rec
    kept = {s: r for s, r in best.items() if r.get("type") in DEFAULT_TYPES}
    return {**kept, **{r["ticker"]: r for r in market.index_records()}}


def test_loads_latest_record_per_symbol(db: psycopg.Connection, polygon: PolygonClient, market: Market,
                                        market_clock: None) -> None:
    result = ingest_tickers(db, polygon, force=True)
    want = expected(market)
    assert result.details.kept == result.details.inserted == result.written == len(want)
    assert result.details.duplicates >= 1 and result.exit_code == 0
    rows = {r[0]: r[1:] for r in db.execute("SELECT symbol, id, cik, type, name, active FROM tickers").fetchall()}
    assert set(rows) == set(want)
    for symbol, rec in want.items():
        assert rows[symbol][0] == ticker_id(symbol)      # deterministic ids
        assert rows[symbol][1] == rec.get("cik") and rows[symbol][2] == rec["type"]
        assert rows[symbol][4] is rec["active"]
    dup = [r["ticker"] for r in market.tickers]
    twice = {s for s in dup if dup.count(s) > 1} & set(want)
    assert twice, "the sandbox should serve a duplicated symbol"


def test_without_force_does_nothing(db: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer) -> None:
    ingest_tickers(db, polygon, force=True)
    before = rest.request_count()
    result = ingest_tickers(db, polygon)
    assert result.details.skipped and result.details.existing > 0 and result.exit_code == 0
    assert rest.request_count() == before
    assert "--force" in result.summary()


def test_rerun_is_idempotent_and_vanished_tickers_are_deactivated(db: psycopg.Connection,
                                                                 polygon: PolygonClient) -> None:
    first = ingest_tickers(db, polygon, force=True)
    db.execute("INSERT INTO tickers (id, symbol, active) VALUES (%s, 'GONEX', true)", (uuid.uuid4(),))
    second = ingest_tickers(db, polygon, force=True)
    assert (second.details.inserted, second.details.updated, second.unchanged) == (0, 0, first.details.kept)
    assert second.details.deactivated == 1
    assert db.execute("SELECT active FROM tickers WHERE symbol = 'GONEX'").fetchone() == (False,)


def test_rate_limit_storm_with_and_without_retry_after(db: psycopg.Connection, polygon: PolygonClient,
                                                       rest: SandboxRestServer, sleeps: list[float]) -> None:
    rest.faults.rate_limit(times=2, retry_after=3)
    rest.faults.rate_limit(times=1)
    rest.faults.server_error(times=1, html=True)
    result = ingest_tickers(db, polygon, force=True)
    assert result.details.kept > 0 and result.details.retries == 4
    assert len(sleeps) == 4 and sleeps.count(3.0) == 2       # Retry-After honoured, exactly
    others = [s for s in sleeps if s != 3.0]
    assert all(0 <= s <= 4 for s in others)                 # full jitter: at most 0.5 * 2**attempt (attempts 0-3)


def test_gives_up_after_max_retries(db: psycopg.Connection, fresh_db: str, polygon: PolygonClient,
                                    rest: SandboxRestServer) -> None:
    rest.faults.server_error(times=50)
    with (pytest.raises(TransientProviderError, match="gave up after 5 attempts"),
          runs.recorded(fresh_db, "tickers") as ledger):
        ledger.result = ingest_tickers(db, polygon, force=True)
    assert db.execute("SELECT count(*) FROM tickers").fetchone() == (0,)
    status, error = db.execute("SELECT status, error FROM ingest_runs WHERE job = 'tickers'").fetchone()
    assert (status, error) == ("failed", "TransientProviderError: /v3/reference/tickers: 500 Internal Server Error "
                                         "(gave up after 5 attempts)")


def test_slow_response_times_out_and_is_retried(db: psycopg.Connection, polygon: PolygonClient,
                                                rest: SandboxRestServer) -> None:
    rest.faults.slow(seconds=3, times=1)                   # read timeout is 1.5 s
    result = ingest_tickers(db, polygon, force=True)
    assert result.details.retries == 1 and result.details.kept > 0


def test_pagination_loop_is_detected(db: psycopg.Connection, rest: SandboxRestServer) -> None:
    rest.faults.pagination_loop("/v3/reference/tickers")
    http = PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000)
    client = PolygonClient(http)
    original = client.ticker_pages
    client.ticker_pages = lambda **kw: http.paginate(  # type: ignore[method-assign]
        "/v3/reference/tickers", {"market": "stocks", "limit": 50})
    with pytest.raises(PaginationError, match="repeated a pagination cursor"):
        ingest_tickers(db, client, force=True)
    client.ticker_pages = original  # type: ignore[method-assign]


def test_bad_key_is_a_clear_auth_error_without_the_key(db: psycopg.Connection, rest: SandboxRestServer) -> None:
    client = PolygonClient(PolygonHTTP(rest.base_url, "wrong-key-987", rate_limit=1000))
    with pytest.raises(AuthError) as info:
        ingest_tickers(db, client, force=True)
    assert "401" in info.value.message and "wrong-key-987" not in info.value.message
    assert "POLYGON_API_KEY" in (info.value.hint or "")


def test_cli_summary_and_no_secret_in_output(fresh_db: str, rest: SandboxRestServer) -> None:
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent"}
    cmd = [sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db, "-v"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "inserted" in proc.stdout
    again = subprocess.run(cmd[:3] + cmd[4:], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "nothing done" in again.stdout
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env={**env, "POLYGON_API_KEY": "nope-secret-555"})
    assert bad.returncode == 2 and "401" in bad.stderr
    for out in (proc.stdout + proc.stderr, bad.stdout + bad.stderr):
        assert rest.api_key not in out and "nope-secret-555" not in out


def test_realistic_reference_data_is_stored_exactly(db: psycopg.Connection, realistic_polygon: PolygonClient,
                                                    realistic_market: Market, market_clock: None) -> None:
    result = ingest_tickers(db, realistic_polygon, force=True)
    assert result.exit_code == 0
    want = expected(realistic_market)
    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT symbol, id, type, name, cik, composite_figi, share_class_figi, last_updated_utc, active "
        "FROM tickers").fetchall()}
    assert set(rows) == set(want)
    # Case-sensitive symbols: the preferreds beside their upper-case namesakes, each with its own id.
    for symbol, kind in (("AAP", "CS"), ("AAp", "PFD"), ("TPC", "CS"), ("TpC", "PFD")):
        rid, rtype, name, *_ = rows[symbol]
        assert (rid, rtype, name) == (ticker_id(symbol), kind, want[symbol]["name"])
    assert rows["TpC"][2] == "AT&T Inc. 4.750% Depositary Shares, Series C"
    assert rows["TPC"][2] == "Tutor Perini Corporation"
    # ETV and ETS are in the default universe.
    assert (rows["GLD"][1], rows["SLV"][1], rows["NVDL"][1]) == ("ETV", "ETV", "ETS")
    # Records without cik or FIGIs store NULLs; whole-second timestamps store as written.
    assert rows["AAp"][3:6] == (None, None, None)
    missing_cik = [s for s, r in want.items() if "cik" not in r]
    assert missing_cik and all(rows[s][3] is None for s in missing_cik)
    assert all(rows[s][3] == r["cik"] for s, r in want.items() if "cik" in r)
    assert all(rows[s][4] == r.get("composite_figi") and rows[s][5] == r.get("share_class_figi")
               for s, r in want.items())
    for symbol, rec in want.items():
        assert rows[symbol][6] == datetime.fromisoformat(rec["last_updated_utc"].replace("Z", "+00:00"))
        assert rows[symbol][6].microsecond == 0


def test_delisted_within_the_window_are_kept_inactive(db: psycopg.Connection, polygon: PolygonClient,
                                                      market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    # KapMan's clock a year after the market's end: the window (730 days by that clock) then
    # holds some of the sandbox's delistings and not others.
    monkeypatch.setenv("KAPMAN_NOW", "2026-12-18")
    window_start = "2024-12-18"
    result = ingest_tickers(db, polygon, force=True)
    gone = {r["ticker"]: r for r in market.tickers if not r["active"] and r["type"] in DEFAULT_TYPES}
    inside = {s: r for s, r in gone.items() if r["delisted_utc"] >= window_start}
    assert inside and len(inside) < len(gone), "the sandbox should delist inside and before the window"
    rows = {s: (a, d) for s, a, d in db.execute(
        "SELECT symbol, active, delisted_utc FROM tickers WHERE NOT active").fetchall()}
    assert rows == {
        s: (False, datetime.fromisoformat(r["delisted_utc"].replace("Z", "+00:00"))) for s, r in inside.items()}
    assert result.details.delisted_kept == len(inside)
    assert result.details.delisted_outside_window == len(
        {r["ticker"] for r in market.tickers if not r["active"] and r["delisted_utc"] < window_start})


def test_types_from_the_environment_and_exclusions_by_type(fresh_db: str, rest: SandboxRestServer,
                                                           market: Market) -> None:
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_TICKER_TYPES": "CS,ETF", "KAPMAN_NOW": "2025-12-19"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db,
                           "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    with psycopg.connect(fresh_db) as conn:
        types = dict(conn.execute("SELECT type, count(*) FROM tickers GROUP BY 1").fetchall())
    assert set(types) == {"CS", "ETF", "INDEX"} and out["types"] == ["CS", "ETF"]   # indices whatever the types
    assert types["INDEX"] == out["indices"] == 4
    assert out["excluded_by_type"]["ADRC"] >= 1 and out["excluded_by_type"]["WARRANT"] >= 1
    assert sum(types.values()) == out["kept"]
    flag = subprocess.run([sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db,
                           "--types", "CS,ETFF"], capture_output=True, text=True, env=env, timeout=120)
    assert flag.returncode == 2 and flag.stderr.splitlines()[0] == "error: --types: unknown security type 'ETFF'"
    plain = subprocess.run([sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db,
                            "--types", "CS"], capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 0 and "excluded by type: " in plain.stdout and "ETF " in plain.stdout


def test_a_failed_merge_is_recorded_failed_and_is_one_line(fresh_db: str, rest: SandboxRestServer) -> None:
    # A row from elsewhere holding AAPL under another id: the merge violates tickers' unique symbol.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("INSERT INTO tickers (id, symbol, active) VALUES (%s, 'AAPL', true)", (uuid.uuid4(),))
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_tickers", "--force", "--db-url", fresh_db, "-q"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == ('error: a database operation failed: duplicate key value violates unique '
                                           'constraint "tickers_symbol_key" (constraint tickers_symbol_key) '
                                           '[SQLSTATE 23505]')
    with psycopg.connect(fresh_db) as conn:
        status, error = conn.execute("SELECT status, error FROM ingest_runs WHERE job = 'tickers'").fetchone()
        assert conn.execute("SELECT count(*) FROM tickers").fetchone() == (1,)
    assert status == "failed" and error.startswith("UniqueViolation")


def test_an_empty_active_list_changes_nothing(db: psycopg.Connection, polygon: PolygonClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ingest_tickers(db, polygon, force=True)
    before = db.execute("SELECT count(*) FILTER (WHERE active) FROM tickers").fetchone()
    monkeypatch.setattr(polygon, "ticker_pages", lambda **kw: iter([[]]))
    result = ingest_tickers(db, polygon, force=True)
    assert result.exit_code == 2 and "listed no active ticker" in (result.nothing_reason or "")
    assert db.execute("SELECT count(*) FILTER (WHERE active) FROM tickers").fetchone() == before


def test_bars_of_tickers_delisted_in_the_window_are_kept(db: psycopg.Connection, polygon: PolygonClient,
                                                         tmp_path: Path, market_clock: None) -> None:
    from kapman.ingest.ohlcv import OhlcvDetails, OhlcvParams, ingest
    from kapman.providers.flatfiles import MirrorSource
    from kapman.sandbox.mirror import write_mirror
    from kapman.step import StepResult

    # The fixture's universe (it does not depend on the history's length) with 250 days of files:
    # long enough to hold a delisting.
    market = Market(seed=11, n_tickers=250, days=250)
    write_mirror(market, tmp_path)
    ingest_tickers(db, polygon, force=True)
    ingest(db, MirrorSource(tmp_path, "us_stocks_sip/day_aggs_v1"),
           OhlcvParams(mode="backfill", start=market.trading_days[0], end=date(2025, 12, 19)),
           StepResult("ohlcv", details=OhlcvDetails()))
    frame = market.bars_between(market.trading_days[0], market.trading_days[-1])
    gone = [lst for lst in market.listings if lst.delisted and lst.type in DEFAULT_TYPES
            and lst.delisted > market.trading_days[1]]
    assert gone, "the sandbox should delist a ticker during its history"
    for listing in gone:
        want = frame.loc[frame.ticker == listing.symbol, ["date", "close"]]
        got = db.execute("SELECT o.date, o.close FROM ohlcv o JOIN tickers t ON t.id = o.ticker_id "
                         "WHERE t.symbol = %s AND NOT t.active ORDER BY o.date", (listing.symbol,)).fetchall()
        assert got == [(d, c) for d, c in zip(want.date, want.close, strict=True)] and got
        assert got[-1][0] < listing.delisted


def test_a_refresh_that_would_deactivate_a_crowd_leaves_them_active_and_says_so(
        db: psycopg.Connection, polygon: PolygonClient) -> None:
    """A listing the vendor cut short with a clean-looking last page reads as mass delistings; an
    inactive watchlist symbol then gets no option snapshots, which nothing fetches later."""
    ingest_tickers(db, polygon, force=True)
    active = db.execute("SELECT count(*) FROM tickers WHERE active").fetchone()[0]
    missing = max(25, active // 20) + 1              # one more than a refresh may deactivate
    db.execute("INSERT INTO tickers (id, symbol, active) SELECT gen_random_uuid(), 'GONE' || n, true "
               "FROM generate_series(1, %s) n", (missing,))
    db.execute("UPDATE tickers SET name = 'stale' WHERE symbol = (SELECT min(symbol) FROM tickers WHERE symbol "
               "NOT LIKE 'GONE%%' AND name IS NOT NULL)")
    held = ingest_tickers(db, polygon, force=True)
    assert held.exit_code == 1 and held.details.deactivated == 0 and held.details.held_active == missing
    assert [f.unit for f in held.failures] == ["deactivations"]
    assert f"{missing} active tickers are not in today's listing" in held.failures[0].reason
    assert "--allow-deactivations" in held.failures[0].reason
    assert db.execute("SELECT count(*) FROM tickers WHERE active AND symbol LIKE 'GONE%%'").fetchone() == (missing,)
    assert held.details.updated == 1 and db.execute("SELECT count(*) FROM tickers WHERE name = 'stale'"
                                                    ).fetchone() == (0,)   # the listed ones were written
    allowed = ingest_tickers(db, polygon, force=True, allow_deactivations=True)
    assert allowed.exit_code == 0 and allowed.details.deactivated == missing
    assert db.execute("SELECT count(*) FROM tickers WHERE active").fetchone() == (active,)


def test_types_without_force_on_present_tickers_is_refused_as_nothing_done(
        fresh_db: str, rest: SandboxRestServer, db: psycopg.Connection, polygon: PolygonClient) -> None:
    """--types (or --allow-deactivations) asks for a refresh that a run without --force does not do:
    not an "ok" that kept the old types."""
    ingest_tickers(db, polygon, force=True)
    skipped = ingest_tickers(db, polygon, types=("CS",), refresh_flags=("--types",))
    assert skipped.exit_code == 2 and skipped.details.skipped and skipped.written == 0
    assert skipped.nothing_reason is not None and skipped.nothing_reason.startswith("--types without --force")
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent"}
    cmd = [sys.executable, "-m", "scripts.ingest_tickers", "--db-url", fresh_db]
    assert subprocess.run(cmd + ["--force"], capture_output=True, text=True, env=env, timeout=120).returncode == 0
    with psycopg.connect(fresh_db) as conn:
        before = conn.execute("SELECT count(*), count(*) FILTER (WHERE type = 'ETF') FROM tickers").fetchone()
    requests = rest.request_count()
    proc = subprocess.run(cmd + ["--types", "CS", "--allow-deactivations"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("--types and --allow-deactivations without --force change nothing: " in proc.stdout
            and "tickers already present, nothing done (add --force to refresh from the API)" in proc.stdout)
    assert rest.request_count() == requests
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*), count(*) FILTER (WHERE type = 'ETF') FROM tickers").fetchone() == before
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 0 and "nothing done" in plain.stdout   # a bare rerun stays ok
