"""Step 6: option-chain snapshots from the sandbox REST server into a real TimescaleDB."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from kapman import clock
from kapman.config import Settings
from kapman.errors import AuthError, UsageError
from kapman.ingest.options import OptionsResult, ingest_options
from kapman.ingest.options import pipeline as options_pipeline
from kapman.ingest.options import workers as options_workers
from kapman.ingest.options.snapshot import snapshot_time
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.providers.polygon import PolygonClient
from kapman.sandbox import endpoints
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from tests.support import dying

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("market_clock")]

SNAPSHOT = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)  # KAPMAN_NOW=2025-12-19: its 16:00 New York close
FOUR = Decimal("0.0001")
ROW_SQL = """
    SELECT t.symbol, oc.time, oc.expiration_date, oc.strike_price, oc.option_type, oc.contract_symbol,
           oc.shares_per_contract, oc.underlying_price, oc.bid, oc.ask, oc.last, oc.volume, oc.open_interest,
           oc.implied_volatility, oc.delta, oc.gamma, oc.theta, oc.vega
    FROM options_chains oc JOIN tickers t ON t.id = oc.ticker_id
    ORDER BY 1, 3, 4, 5"""


def run(
    url: str,
    client: PolygonClient,
    symbols: list[str],
    *,
    concurrency: int = 2,
    snapshot: datetime = SNAPSHOT,
) -> OptionsResult:
    with psycopg.connect(url) as conn:
        scope = resolve_scope(conn, symbols)
    return ingest_options(url, client, scope, snapshot, concurrency=concurrency)


def expected(market: Market, symbol: str, as_of: datetime, snapshot: datetime = SNAPSHOT) -> dict:
    """The sandbox chain minus expired/other/collisions, keyed like the table, written independently."""
    today = clock.ny_date_of(snapshot)
    keep: dict[tuple, dict] = {}
    for r in market.option_chain(symbol, as_of):
        d = r["details"]
        if d["contract_type"] not in ("call", "put") or date.fromisoformat(d["expiration_date"]) < today:
            continue
        key = (
            date.fromisoformat(d["expiration_date"]),
            Decimal(str(d["strike_price"])).quantize(FOUR),
            d["contract_type"][0].upper(),
        )
        rank = (d["shares_per_contract"] != 100, d["ticker"])
        if key not in keep or rank < (
            keep[key]["details"]["shares_per_contract"] != 100,
            keep[key]["details"]["ticker"],
        ):
            keep[key] = r
    return keep


def rows_by_key(conn: psycopg.Connection, symbol: str) -> dict[tuple, tuple]:
    return {(r[2], r[3], r[4]): r for r in conn.execute(ROW_SQL).fetchall() if r[0] == symbol}


def test_full_chains_values_collisions_and_ledger(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, market: Market, rest: SandboxRestServer
) -> None:
    symbols = ["AAPL", "DIA", "ORCL"]
    result = run(options_url, polygon, symbols)
    assert result.step_result().exit_code == 0 and [result.outcomes[s].status for s in symbols] == ["ok"] * 3
    chain = market.option_chain("AAPL", rest.now)
    assert len(chain) > 5 * 250  # several pages of 250
    assert result.outcomes["AAPL"].pages == math.ceil(len(chain) / 250)
    for symbol in symbols:
        want = expected(market, symbol, rest.now)
        got = rows_by_key(odb, symbol)
        assert (
            set(got) == set(want)
            and result.outcomes[symbol].rows == len(want) == result.outcomes[symbol].inserted
        )
    # AAPL carries an adjusted (150-share) call beside the standard one, and a contract of type other.
    assert result.outcomes["AAPL"].dropped == {"other": 1, "adjusted": 1}
    assert result.dropped == {"expired": 0, "other": 2, "adjusted": 2, "collisions": 0, "malformed": 0}  # DIA too
    summary = result.step_result().summary()
    assert "2 adjusted contracts (deliverable != 100) kept out" in summary
    assert "2 of contract_type other" in summary and "0 expired" not in summary
    adjusted = next(r for r in chain if r["details"]["shares_per_contract"] != 100)
    d = adjusted["details"]
    key = (date.fromisoformat(d["expiration_date"]), Decimal(str(d["strike_price"])).quantize(FOUR), "C")
    kept = rows_by_key(odb, "AAPL")[key]
    assert kept[6] == 100 and kept[5] != d["ticker"] and kept[13] is not None
    # Spot checks, one contract with greeks and one without.
    want = expected(market, "AAPL", rest.now)
    got = rows_by_key(odb, "AAPL")
    with_greeks = next(k for k, r in want.items() if r.get("greeks") and "last_trade" in r)
    without = [k for k, r in want.items() if not r.get("greeks")]
    assert without, "the sandbox omits greeks on some contracts"
    src, row = want[with_greeks], got[with_greeks]
    assert isinstance(row[3], Decimal) and row[3] == Decimal(str(src["details"]["strike_price"])).quantize(
        FOUR
    )
    assert row[1] == SNAPSHOT and row[5] == src["details"]["ticker"] and row[6] == 100
    assert row[7] == src["underlying_asset"]["price"]
    assert (row[8], row[9], row[10]) == (
        src["last_quote"]["bid"],
        src["last_quote"]["ask"],
        src["last_trade"]["price"],
    )
    assert (row[11], row[12]) == (src["day"]["volume"], src["open_interest"])
    assert row[13:] == (
        src["implied_volatility"],
        *(src["greeks"][g] for g in ("delta", "gamma", "theta", "vega")),
    )
    for k in without:
        assert got[k][13:] == (None,) * 5  # NULL, never 0
    null_deltas = odb.execute(
        "SELECT count(*) FROM options_chains oc JOIN tickers t ON t.id = oc.ticker_id "
        "WHERE t.symbol = 'AAPL' AND delta IS NULL"
    ).fetchone()[0]
    assert null_deltas == len(without)
    ledger = odb.execute("SELECT job, status, snapshot_time, summary FROM ingest_runs").fetchall()
    assert len(ledger) == 1 and ledger[0][:3] == ("options", "ok", SNAPSHOT)
    assert (
        ledger[0][3]["outcomes"]["AAPL"]["status"] == "ok"
        and ledger[0][3]["rows_inserted"] == result.rows_inserted
    )
    assert result.requests == sum(o.pages for o in result.outcomes.values()) and result.retries == 0
    assert "retention:" in result.retention
    assert "3 ok" in result.step_result().summary()


def test_rerun_same_snapshot_updates_in_place(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient
) -> None:
    first = run(options_url, polygon, ["ORCL"])
    count = odb.execute("SELECT count(*) FROM options_chains").fetchone()[0]
    odb.execute(
        "UPDATE options_chains SET bid = -1, delta = NULL WHERE ctid IN "
        "(SELECT ctid FROM options_chains WHERE delta IS NOT NULL LIMIT 5)"
    )
    again = run(options_url, polygon, ["ORCL"])
    assert count == first.rows_inserted > 0
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 5, count - 5)
    assert odb.execute("SELECT count(*) FROM options_chains").fetchone()[0] == count
    assert odb.execute("SELECT count(*) FROM options_chains WHERE bid < 0").fetchone()[0] == 0
    assert odb.execute("SELECT count(DISTINCT time) FROM options_chains").fetchone()[0] == 1


def test_concurrency_gives_the_same_rows(options_url: str, odb: psycopg.Connection, polygon: PolygonClient) -> None:
    symbols = ["AAPL", "DIA", "NVDA", "ORCL", "XLV"]
    serial = run(options_url, polygon, symbols, concurrency=1)
    rows = odb.execute(ROW_SQL).fetchall()
    odb.execute("TRUNCATE options_chains")
    parallel = run(options_url, polygon, symbols, concurrency=5)
    assert (
        odb.execute(ROW_SQL).fetchall() == rows
        and len(rows) == serial.rows_inserted == parallel.rows_inserted
    )


def test_faults_fail_only_their_symbols(
    options_url: str, odb: psycopg.Connection,
    polygon: PolygonClient,
    market: Market,
    rest: SandboxRestServer,
    sleeps: list[float],
) -> None:
    rest.faults.rate_limit(times=3, retry_after=2, symbol="DIA")
    rest.faults.rate_limit(times=2, symbol="XLV")  # a 429 storm without Retry-After
    rest.faults.server_error(times=2, html=True, symbol="NVDA")
    rest.faults.slow(seconds=2.5, times=1, symbol="AAPL")  # past the client's 1.5 s read timeout
    rest.faults.pagination_loop("/v3/snapshot/options/ORCL")
    rest.faults.forbid("MSFT")
    symbols = ["AAPL", "DIA", "MSFT", "NVDA", "ORCL", "XLV"]
    result = run(options_url, polygon, symbols, concurrency=3)
    status = {s: o.status for s, o in result.outcomes.items()}
    assert status == {
        "AAPL": "ok",
        "DIA": "ok",
        "MSFT": "failed",
        "NVDA": "ok",
        "ORCL": "failed",
        "XLV": "ok",
    }
    assert "403" in result.outcomes["MSFT"].reason and "not entitled" in result.outcomes["MSFT"].reason
    assert "repeated a pagination cursor" in result.outcomes["ORCL"].reason
    assert result.retries == 3 + 2 + 2 + 1 and result.step_result().exit_code == 1
    assert sorted(sleeps)[-3:] == [2.0, 2.0, 2.0]  # Retry-After honoured
    for symbol in ("AAPL", "DIA", "NVDA", "XLV"):  # nothing lost for the healthy symbols
        assert len(rows_by_key(odb, symbol)) == len(expected(market, symbol, rest.now))
    assert not rows_by_key(odb, "ORCL") and not rows_by_key(odb, "MSFT")
    ledger = odb.execute("SELECT status, summary FROM ingest_runs").fetchone()
    assert ledger[0] == "partial" and ledger[1]["outcomes"]["MSFT"]["status"] == "failed"
    assert "failed MSFT" in result.step_result().summary() and "failed ORCL" in result.step_result().summary()


def test_401_stops_the_run_and_keeps_what_was_written(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer
) -> None:
    pages = polygon.option_chain_bodies

    def revoked_at_dia(underlying: str, **kw: object):  # type: ignore[no-untyped-def]
        if underlying == "DIA":  # the key is revoked mid-run
            polygon.http._headers["Authorization"] = "Bearer revoked-key-000"
        return pages(underlying, **kw)  # type: ignore[arg-type]

    polygon.option_chain_bodies = revoked_at_dia  # type: ignore[method-assign]
    rest.reset_counts()
    with pytest.raises(AuthError, match="401"):
        run(options_url, polygon, ["AAPL", "DIA", "NVDA", "ORCL"], concurrency=1)
    status, error, summary = odb.execute("SELECT status, error, summary FROM ingest_runs").fetchone()
    assert status == "failed" and error.startswith("AuthError: ") and "401" in error
    assert {s: o["status"] for s, o in summary["outcomes"].items()} == {
        "AAPL": "ok",
        "DIA": "failed",
        "NVDA": "not_attempted",
        "ORCL": "not_attempted",
    }
    assert summary["outcomes"]["NVDA"]["reason"].startswith("not attempted, the run stopped: ")
    assert (
        rest.request_count("/v3/snapshot/options/NVDA")
        == rest.request_count("/v3/snapshot/options/ORCL")
        == 0
    )
    assert rows_by_key(odb, "AAPL") and not rows_by_key(odb, "DIA")


def test_expired_contracts_and_empty_chains(
    options_url: str, odb: psycopg.Connection,
    polygon: PolygonClient,
    market: Market,
    rest: SandboxRestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stale vendor snapshot: the server still lists Friday's contracts on Saturday morning.
    rest.set_clock(clock.close_of(date(2025, 12, 18)))
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-20T15:00:00Z")
    odb.execute(
        "INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) "
        "VALUES ('extra', 'EI', 'test', '2025-12-19')"
    )  # an ADR without listed options
    snap = snapshot_time()
    result = run(options_url, polygon, ["EI", "ORCL"], snapshot=snap)
    chain = market.option_chain("ORCL", rest.now)
    expiring = sum(1 for r in chain if r["details"]["expiration_date"] == "2025-12-19")
    assert snap == datetime(2025, 12, 20, 15, 0, tzinfo=UTC) and expiring > 0
    assert result.outcomes["ORCL"].dropped == {"expired": expiring}
    assert (
        result.outcomes["ORCL"].rows == len(chain) - expiring == len(expected(market, "ORCL", rest.now, snap))
    )
    assert result.outcomes["EI"].status == "empty" and result.step_result().exit_code == 0
    assert "empty EI: no contracts" in result.step_result().summary()


def test_scope_and_snapshot_time_rules(odb: psycopg.Connection) -> None:
    with pytest.raises(UsageError, match="not in an active watchlist: zzzz"):  # symbols keep their case
        resolve_scope(odb, ["AAPL", "zzzz"])
    odb.execute(
        "INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) "
        "VALUES ('extra', 'NOTICKER', 'test', '2025-12-19')"
    )
    with pytest.raises(UsageError, match="no ticker: NOTICKER"):
        resolve_scope(odb, ["NOTICKER"])
    scope = resolve_scope(odb)
    assert scope.skipped == {"NOTICKER": "no ticker"} and "AAPL" in scope.tickers and len(scope.tickers) > 100
    assert snapshot_time() == SNAPSHOT
    assert snapshot_time("2025-12-19T20:59:59.75Z") == datetime(2025, 12, 19, 20, 59, 59, tzinfo=UTC)
    with pytest.raises(UsageError, match="not today"):
        snapshot_time("2025-12-18T21:00:00Z")
    with pytest.raises(UsageError, match="in the future"):
        snapshot_time("2025-12-19T22:00:00Z")
    with odb.transaction(force_rollback=True):
        odb.execute("UPDATE watchlists SET active = false")
        with pytest.raises(UsageError, match="no active watchlist") as info:
            resolve_scope(odb)
        assert "python -m scripts.ingest_watchlists" in (info.value.hint or "")
    with odb.transaction(force_rollback=True):
        odb.execute("TRUNCATE tickers")
        with pytest.raises(UsageError, match="tickers is empty") as info:
            resolve_scope(odb)
        assert "python -m scripts.ingest_tickers --force" in (info.value.hint or "")


def test_runbook_step6_verification_sql(options_url: str, odb: psycopg.Connection, polygon: PolygonClient) -> None:
    result = run(options_url, polygon, ["DIA", "ORCL"])
    assert (
        odb.execute("SELECT COUNT(*) AS options_rows FROM public.options_chains;").fetchone()[0]
        == result.rows_inserted
        > 0
    )
    assert odb.execute(
        "SELECT MIN(time) AS min_snapshot_time, MAX(time) AS max_snapshot_time FROM public.options_chains;"
    ).fetchone() == (SNAPSHOT, SNAPSHOT)
    per_symbol = odb.execute("""
        SELECT t.symbol, COUNT(*) AS rows
        FROM public.options_chains oc
        JOIN public.tickers t ON t.id = oc.ticker_id
        GROUP BY t.symbol
        ORDER BY rows DESC
        LIMIT 100;""").fetchall()
    assert dict(per_symbol) == {s: o.rows for s, o in result.outcomes.items()}
    per_expiry = odb.execute("""
        SELECT t.symbol, oc.expiration_date, COUNT(*) AS contracts_in_snapshot
        FROM public.options_chains oc
        JOIN public.tickers t ON t.id = oc.ticker_id
        WHERE oc.time = (SELECT MAX(time) FROM public.options_chains)
        GROUP BY t.symbol, oc.expiration_date
        ORDER BY t.symbol, oc.expiration_date
        LIMIT 100;""").fetchall()
    assert per_expiry == sorted(per_expiry) and {r[0] for r in per_expiry} == {"DIA", "ORCL"}
    assert all(n > 0 for *_, n in per_expiry)
    surface = odb.execute("""
        SELECT oc.time, t.symbol, oc.expiration_date, oc.strike_price, oc.option_type,
               oc.bid, oc.ask, oc.last, oc.volume, oc.open_interest, oc.implied_volatility,
               oc.delta, oc.gamma, oc.theta, oc.vega, oc.created_at
        FROM options_chains AS oc
        JOIN tickers AS t ON t.id = oc.ticker_id
        WHERE t.symbol = 'ORCL'
        ORDER BY oc.time DESC, oc.expiration_date ASC, oc.option_type ASC, oc.strike_price ASC
        LIMIT 1000;""").fetchall()
    assert len(surface) == result.outcomes["ORCL"].rows
    order = [(r[2], r[4], r[3]) for r in surface]
    assert order == sorted(order) and {r[4] for r in surface} == {"C", "P"}
    unique_key = odb.execute("""
        SELECT conname, pg_get_constraintdef(c.oid) AS definition
        FROM pg_constraint c
        JOIN pg_class r ON r.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE n.nspname='public' AND r.relname='options_chains' AND c.contype IN ('p','u')
        ORDER BY c.contype, c.conname;""").fetchall()
    assert unique_key == [
        ("options_chains_pkey", 'PRIMARY KEY ("time", ticker_id, expiration_date, strike_price, option_type)')
    ]
    hypertable = odb.execute("""
        SELECT hypertable_schema, hypertable_name, num_chunks
        FROM timescaledb_information.hypertables
        WHERE hypertable_schema='public' AND hypertable_name='options_chains';""").fetchone()
    assert hypertable == ("public", "options_chains", 1)


def cli_env(rest: SandboxRestServer) -> dict[str, str]:
    """The entrypoint's environment: the sandbox as the API, its market day as today, no .env."""
    return {
        **os.environ,
        "POLYGON_BASE_URL": rest.base_url,
        "POLYGON_API_KEY": rest.api_key,
        "KAPMAN_NOW": "2025-12-19",
        "KAPMAN_ENV_FILE": "/nonexistent",
        "POLYGON_READ_TIMEOUT": "5",
    }


def test_cli_exit_codes_and_no_secret_in_output(
    options_url: str, odb: psycopg.Connection, rest: SandboxRestServer
) -> None:
    env = cli_env(rest)
    base = [sys.executable, "-m", "scripts.ingest_options", "--db-url", options_url, "--symbols", "DIA,ORCL"]

    def cli(*extra: str, **env_over: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            base + list(extra), capture_output=True, text=True, timeout=120, env={**env, **env_over}
        )

    dry = cli("--dry-run")
    assert dry.returncode == 0 and "would fetch 2 symbols" in dry.stdout and "DIA ORCL" in dry.stdout
    assert odb.execute("SELECT count(*) FROM ingest_runs").fetchone() == (0,)
    rest.faults.forbid("DIA")
    partial = cli("--concurrency", "2", "-v", "--debug", "--json")
    summary = json.loads(partial.stdout)
    assert partial.returncode == 1, partial.stderr
    assert summary["outcomes"]["DIA"]["status"] == "failed" and summary["outcomes"]["ORCL"]["status"] == "ok"
    assert summary["snapshot_time"] == "2025-12-19T21:00:00+00:00" and summary["rows_inserted"] > 0
    rest.faults.clear()
    again = cli("--snapshot-time", "2025-12-19T21:00:00Z", "-v")
    assert again.returncode == 0, again.stderr
    assert f"{summary['rows_inserted']} unchanged" in again.stdout and "2 ok" in again.stdout
    bad_key = cli(POLYGON_API_KEY="wrong-secret-555")
    assert bad_key.returncode == 2 and "401" in bad_key.stderr and "POLYGON_API_KEY" in bad_key.stderr
    unknown = cli("--symbols", "ZZZZ")
    assert unknown.returncode == 2 and "ZZZZ" in unknown.stderr
    for proc in (dry, partial, again, bad_key, unknown):
        out = proc.stdout + proc.stderr
        assert rest.api_key not in out and "wrong-secret-555" not in out


def malformed_for(symbol: str, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Serve ``symbol``'s chain with unusable contracts at its end (the last page)."""
    bad: list = [
        {"details": {"contract_type": "call", "ticker": "O:BAD1", "expiration_date": "2026-01-16"}},
        {"details": {"contract_type": "put", "ticker": "O:BAD2", "strike_price": 1e9, "expiration_date": "2026-01-16"}},
        {"details": {"contract_type": "call", "ticker": "O:BAD3", "strike_price": 10, "expiration_date": "soon"}},
        {"details": {"ticker": "O:BAD4", "strike_price": 10, "expiration_date": "2026-01-16"}},
        "not an object",
    ]
    snapshots = endpoints.option_snapshots

    def with_bad(market: Market, underlying: str, query: dict, now: datetime) -> list:
        results = snapshots(market, underlying, query, now)
        return results + bad if underlying == symbol else results

    monkeypatch.setattr(endpoints, "option_snapshots", with_bad)
    return bad


def outcomes(result: OptionsResult) -> dict:
    return {s: {**vars(o), "seconds": None} for s, o in result.outcomes.items()}


@pytest.mark.parametrize("stale", [False, True], ids=["collisions", "expired"])
def test_worker_processes_write_what_in_process_writes(
    stale: bool,
    options_url: str, odb: psycopg.Connection,
    polygon: PolygonClient,
    rest: SandboxRestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if stale:  # the server still lists Friday's contracts on Saturday morning
        rest.set_clock(clock.close_of(date(2025, 12, 18)))
        monkeypatch.setenv("KAPMAN_NOW", "2025-12-20T15:00:00Z")
    bad = malformed_for("ORCL", monkeypatch)
    symbols, snap = ["AAPL", "DIA", "NVDA", "ORCL"], snapshot_time()
    scope = resolve_scope(odb, symbols)
    here = ingest_options(options_url, polygon, scope, snap, concurrency=2, workers=0)
    rows = odb.execute(ROW_SQL).fetchall()
    odb.execute("TRUNCATE options_chains")
    pooled = ingest_options(options_url, polygon, scope, snap, concurrency=2, workers=2)
    assert (here.workers, pooled.workers, pooled.step_result().exit_code) == (0, 2, 0)
    assert odb.execute(ROW_SQL).fetchall() == rows and len(rows) == pooled.rows_inserted > 0
    assert outcomes(pooled) == outcomes(here)
    orcl, aapl = pooled.outcomes["ORCL"], pooled.outcomes["AAPL"]
    assert orcl.dropped["malformed"] == len(bad) and len(orcl.samples) == 3
    if stale:
        assert orcl.dropped["expired"] > 0 and aapl.dropped["expired"] > 0
    else:
        assert aapl.dropped == {"other": 1, "adjusted": 1} and "expired" not in orcl.dropped
    assert odb.execute("SELECT count(*) FROM options_chains WHERE delta IS NULL").fetchone()[0] > 0
    replay = ingest_options(options_url, polygon, scope, snap, concurrency=3, workers=1)
    assert (replay.rows_inserted, replay.rows_updated, replay.rows_unchanged) == (0, 0, len(rows))
    assert not multiprocessing.active_children()


def no_processes(*args: object, **kw: object) -> None:
    raise OSError("no semaphores here")


@pytest.mark.parametrize(
    ("target", "replacement", "warning"),
    [
        ("process_pages", dying.process_pages, "(BrokenProcessPool"),  # each worker dies on its first chain
        ("ProcessPoolExecutor", no_processes, "(OSError: no semaphores here)"),  # none can start
    ],
    ids=["worker-dies", "cannot-start"],
)
def test_without_worker_processes_chains_are_processed_here(
    target: str,
    replacement: object,
    warning: str,
    options_url: str, odb: psycopg.Connection,
    polygon: PolygonClient,
    market: Market,
    rest: SandboxRestServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(options_workers, target, replacement)
    symbols = ["AAPL", "DIA", "NVDA", "ORCL", "XLV"]
    result = ingest_options(options_url, polygon, resolve_scope(odb, symbols), SNAPSHOT, concurrency=3, workers=2)
    assert result.step_result().exit_code == 0 and result.workers == 2
    for symbol in symbols:
        assert len(rows_by_key(odb, symbol)) == len(expected(market, symbol, rest.now)) == result.outcomes[symbol].rows
    assert f"worker processes unavailable {warning}" in caplog.text
    assert not multiprocessing.active_children()


def test_ctrl_c_ends_the_run_and_its_worker_processes(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt  # the operator's Ctrl-C, while the first chain is written

    monkeypatch.setattr(options_pipeline, "write_chain", interrupted)
    started = time.perf_counter()
    scope = resolve_scope(odb, ["AAPL", "DIA", "NVDA", "ORCL", "XLV", "MSFT"])
    with pytest.raises(KeyboardInterrupt):
        ingest_options(options_url, polygon, scope, SNAPSHOT, concurrency=2, workers=2)
    assert time.perf_counter() - started < 30 and not multiprocessing.active_children()
    assert odb.execute("SELECT status FROM ingest_runs").fetchone() == ("interrupted",)
    assert odb.execute("SELECT count(*) FROM options_chains").fetchone() == (0,)


def test_ctrl_c_leaves_the_snapshot_unlisted_for_the_next_run_to_archive(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from kapman.archive import export_snapshots
    from kapman.archive import manifest as mf
    from kapman.archive.live import LiveExport

    real_write, written = options_pipeline.write_chain, []

    def interrupted_after_two(conn: psycopg.Connection, chain: object) -> object:
        if len(written) == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, after two chains are stored
        written.append(chain)
        return real_write(conn, chain)  # type: ignore[arg-type]

    monkeypatch.setattr(options_pipeline, "write_chain", interrupted_after_two)
    settings = Settings(database_url=options_url, archive_location=str(tmp_path / "archive"))
    live = LiveExport(settings, SNAPSHOT)
    scope = resolve_scope(odb, ["AAPL", "DIA", "NVDA", "ORCL", "XLV", "MSFT"])
    with pytest.raises(KeyboardInterrupt):
        ingest_options(options_url, polygon, scope, SNAPSHOT, concurrency=2, workers=0, archive=live)
    assert not (tmp_path / "archive" / mf.manifest_key(SNAPSHOT)).exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("archive")]
    stored = odb.execute("SELECT count(*) FROM options_chains").fetchone()[0]  # type: ignore[index]
    report = export_snapshots(settings, [])  # the next run's catch-up: the two stored chains
    assert report.ok and report.caught_up == [SNAPSHOT.isoformat()] and report.rows == stored > 0
    assert report.files == 2


def test_cli_ctrl_c_stops_promptly_and_leaves_no_process(
    options_url: str, odb: psycopg.Connection, rest: SandboxRestServer
) -> None:
    env = cli_env(rest)
    rest.faults.latency(0.2)  # slow pages: the run is mid-fetch when the key is pressed
    rest.reset_counts()
    argv = [sys.executable, "-m", "scripts.ingest_options", "--db-url", options_url, "--workers", "2",
            "--symbols", "AAPL,DIA,NVDA,ORCL,XLV,MSFT", "--concurrency", "2"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while rest.request_count("/v3/snapshot/options/") < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: the whole process group
        pressed = time.monotonic()
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - pressed < 5
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert rest.api_key not in out + err
    for _ in range(50):  # the session's processes: the job, its workers, multiprocessing's helpers
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the run outlived it")
    assert odb.execute("SELECT status FROM ingest_runs").fetchone() == ("interrupted",)  # closed
