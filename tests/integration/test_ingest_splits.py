"""Step 3b against the sandbox REST server and a real TimescaleDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import psycopg
import pytest

from kapman.errors import PaginationError, UsageError
from kapman.ingest.splits import default_since, ingest_splits
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer

pytestmark = pytest.mark.integration
SINCE = date(2023, 12, 20)   # the retention window's start at the sandbox's clock


def stored(db: psycopg.Connection) -> list[tuple[str, str, float, float]]:
    return [(t, d.isoformat(), f, to) for t, d, f, to in db.execute(
        "SELECT ticker, execution_date, split_from, split_to FROM splits ORDER BY execution_date, ticker")]


def served(market: Market) -> list[tuple[str, str, float, float]]:
    return [(s["ticker"], s["execution_date"], float(s["split_from"]), float(s["split_to"])) for s in market.splits]


def test_loads_the_markets_splits_forward_and_reverse(reference_db: psycopg.Connection, polygon: PolygonClient,
                                                      market: Market, market_clock: None) -> None:
    assert default_since() == SINCE
    result = ingest_splits(reference_db, polygon)
    assert stored(reference_db) == served(market)
    assert ("NVDA", "2024-06-07", 1.0, 10.0) in stored(reference_db)
    assert result.outcome.value == "ok" and result.written == len(market.splits) == 2
    assert result.details.reverse == 1 and not result.details.unknown_tickers
    again = ingest_splits(reference_db, polygon)
    assert (again.written, again.unchanged, again.removed) == (0, 2, 0)


def test_since_narrows_and_a_withdrawn_split_is_removed(reference_db: psycopg.Connection,
                                                        polygon: PolygonClient, market: Market) -> None:
    reference_db.execute("INSERT INTO splits (ticker, execution_date, split_from, split_to) VALUES "
                         "('AAPL', '2025-01-02', 1, 4), ('AAPL', '2019-08-30', 1, 4)")
    result = ingest_splits(reference_db, polygon, since=date(2025, 1, 1))
    assert result.removed == 1                                   # withdrawn inside the range read
    rows = stored(reference_db)
    assert ("AAPL", "2019-08-30", 1.0, 4.0) in rows              # older than the range: left alone
    assert [r for r in rows if r[0] != "AAPL"] == [r for r in served(market) if r[1] >= "2025-01-01"]


def test_a_malformed_record_is_refused_and_removes_no_stored_split(reference_db: psycopg.Connection,
                                                                   polygon: PolygonClient, rest: SandboxRestServer,
                                                                   market: Market, market_clock: None) -> None:
    """A split the vendor lists with a broken field is not 'withdrawn': its stored row stays (it was
    deleted as no longer listed, and A2 then computed that ticker's history unadjusted)."""
    ingest_splits(reference_db, polygon)
    before = stored(reference_db)
    rest.faults.patch("execution_date", "20240607", path_prefix="/v3/reference/splits")
    result = ingest_splits(reference_db, polygon)
    assert result.rejected == 1 and result.removed == 0 and stored(reference_db) == before
    assert any("execution_date '20240607'" in note for note in result.notes)
    assert "1 record(s) refused: no stored split is removed as withdrawn this run" in result.notes
    again = ingest_splits(reference_db, polygon)   # a clean listing withdraws as before
    assert again.rejected == 0 and stored(reference_db) == before


@pytest.mark.parametrize("results", [[], None])
def test_an_empty_listing_removes_no_stored_split(reference_db: psycopg.Connection, polygon: PolygonClient,
                                                  rest: SandboxRestServer, market_clock: None,
                                                  results: list | None) -> None:
    """A 200 listing no split at all used to delete every stored split of the window as
    withdrawn (A2 then computed every history unadjusted)."""
    ingest_splits(reference_db, polygon)
    before = stored(reference_db)
    rest.faults.reshape({"results": results}, path_prefix="/v3/reference/splits")
    result = ingest_splits(reference_db, polygon)
    assert result.removed == 0 and stored(reference_db) == before and len(before) == 2
    assert f"the API listed no split executed since {SINCE}: no stored split is removed as withdrawn" in result.notes


def test_a_split_of_a_ticker_not_in_tickers_is_reported_not_fatal(reference_db: psycopg.Connection,
                                                                  polygon: PolygonClient,
                                                                  market: Market, market_clock: None) -> None:
    reverse = next(s["ticker"] for s in market.splits if s["split_from"] > s["split_to"])
    reference_db.execute("DELETE FROM tickers WHERE symbol = %s", (reverse,))
    result = ingest_splits(reference_db, polygon)
    assert result.exit_code == 0 and result.written == 2
    assert result.details.unknown_tickers == [reverse]
    assert any(reverse in note and "not in public.tickers" in note for note in result.notes)


def test_pages_retries_and_loop_guard(reference_db: psycopg.Connection, rest: SandboxRestServer,
                                      sleeps: list[float], market: Market, market_clock: None) -> None:
    http = PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000, max_retries=4, sleep=sleeps.append)
    client = PolygonClient(http)
    rest.faults.rate_limit(times=1, retry_after=2, path_prefix="/v3/reference/splits")
    rest.faults.server_error(times=1, html=True, path_prefix="/v3/reference/splits")
    original = client.split_pages
    # One split a page: the cursor is followed to the end.
    client.split_pages = lambda **kw: http.paginate("/v3/reference/splits", {"limit": 1})  # type: ignore[method-assign]
    result = ingest_splits(reference_db, client)
    assert result.done == 2 and result.details.retries == 2 and 2.0 in sleeps
    assert stored(reference_db) == served(market)
    rest.faults.pagination_loop("/v3/reference/splits")
    with pytest.raises(PaginationError, match="repeated a pagination cursor"):
        ingest_splits(reference_db, client)
    client.split_pages = original  # type: ignore[method-assign]


def test_refuses_before_tickers_exist(db: psycopg.Connection, polygon: PolygonClient) -> None:
    with pytest.raises(UsageError, match="before tickers exist"):
        ingest_splits(db, polygon)


def test_cli_json_ledger_and_no_secret(reference_db: psycopg.Connection, fresh_db: str,
                                       rest: SandboxRestServer) -> None:
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": "2025-12-19"}
    cmd = [sys.executable, "-m", "scripts.ingest_splits", "--db-url", fresh_db, "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "ok" and summary["since"] == SINCE.isoformat() and summary["splits"] == 2
    row = reference_db.execute("SELECT status, summary->>'splits' FROM ingest_runs WHERE job = 'splits'").fetchone()
    assert row == ("ok", "2")
    plain = subprocess.run(cmd[:-1] + ["--since", "2025-01-01"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert plain.returncode == 0 and "1 splits executed since 2025-01-01 (1 reverse)" in plain.stdout
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env={**env, "POLYGON_API_KEY": "nope-secret-555"})
    assert bad.returncode == 2 and "401" in bad.stdout
    for out in (proc.stdout + proc.stderr, bad.stdout + bad.stderr):
        assert rest.api_key not in out and "nope-secret-555" not in out


def test_a_since_after_kapmans_clock_is_refused_and_removes_nothing(reference_db: psycopg.Connection,
                                                                  polygon: PolygonClient, fresh_db: str,
                                                                  rest: SandboxRestServer) -> None:
    """No split executes after today: a later --since is a typo, not "0 splits" answered ok."""
    ingest_splits(reference_db, polygon)
    before, requests = stored(reference_db), rest.request_count()
    env = {**os.environ, "POLYGON_API_KEY": rest.api_key, "POLYGON_BASE_URL": rest.base_url,
           "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": "2025-12-19"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_splits", "--db-url", fresh_db, "--since",
                           "2026-01-05"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --since 2026-01-05 is after today (2025-12-19 by KapMan's clock)"
    assert stored(reference_db) == before and before and rest.request_count() == requests
    today = subprocess.run([sys.executable, "-m", "scripts.ingest_splits", "--db-url", fresh_db, "--since",
                            "2025-12-19"], capture_output=True, text=True, env=env, timeout=120)
    assert today.returncode == 0, today.stderr   # today itself is a date a split may execute on
