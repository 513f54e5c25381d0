"""Step 6's rules against a real TimescaleDB: snapshot times, replaced snapshots, deadlines, a lost
database, killed runs, and what the realistic sandbox's chain shapes store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from kapman.config import load_settings
from kapman.errors import ConnectionLost, UsageError
from kapman.ingest import options
from kapman.ingest.options import pipeline
from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.ingest.watchlists import ingest_watchlists
from kapman.providers.http import PolygonHTTP
from kapman.providers.polygon import PolygonClient
from kapman.sandbox import endpoints
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer
from tests.integration.test_ingest_options import SNAPSHOT, cli_env, rows_by_key, run
from tests.support import database

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("market_clock")]

FOUR = Decimal("0.0001")


def settings_for(url: str, server: SandboxRestServer, monkeypatch: pytest.MonkeyPatch, **env: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KAPMAN_ENV_FILE", "/nonexistent")
    for name, value in {"POLYGON_BASE_URL": server.base_url, "POLYGON_API_KEY": server.api_key,
                        "POLYGON_READ_TIMEOUT": "5", **env}.items():
        monkeypatch.setenv(name, value)
    return load_settings(database_url=url)


# ---- snapshot times ----------------------------------------------------------------------------

@pytest.fixture
def live(market: Market) -> Iterator[SandboxRestServer]:
    """The sandbox's chains served as the live API serves them: without naming itself."""
    with SandboxRestServer(market, api_key="it-secret-key-123", identify=False) as server:
        yield server


def test_a_live_chain_cannot_be_stored_under_a_past_time(
    options_url: str, odb: psycopg.Connection, live: SandboxRestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(options_url, live, monkeypatch, KAPMAN_NOW="2025-12-15")
    with pytest.raises(UsageError) as info:
        options.run(settings, options.OptionsParams(symbols=["ORCL"]))
    assert info.value.message.startswith("KAPMAN_NOW=2025-12-15 puts KapMan's clock at 2025-12-15T21:00:00Z, but ")
    assert "is the live API and now is" in info.value.message and "by its Date header" in info.value.message
    assert "cannot be stored under another time" in info.value.message and "KAPMAN_NOW" in (info.value.hint or "")
    monkeypatch.delenv("KAPMAN_NOW")
    with pytest.raises(UsageError, match=r"--snapshot-time 2025-12-19T21:00:00Z is not now: .* is the live API"):
        options.run(settings, options.OptionsParams(symbols=["ORCL"], snapshot_time="2025-12-19T21:00:00Z"))
    assert odb.execute("SELECT count(*) FROM options_chains").fetchone() == (0,)
    # Nothing stored; each refusal is in the ledger as the failed run it was, with its reason.
    refused = odb.execute("SELECT status, error, snapshot_time FROM ingest_runs WHERE job = 'options' "
                          "ORDER BY started_at").fetchall()
    assert [(status, snapshot) for status, _, snapshot in refused] == [("failed", None), ("failed", None)]
    assert refused[0][1].startswith("UsageError: KAPMAN_NOW=2025-12-15 puts KapMan's clock at")
    assert refused[1][1].startswith("UsageError: --snapshot-time 2025-12-19T21:00:00Z is not now")


def test_a_live_snapshot_is_taken_at_the_servers_real_time(
    options_url: str, odb: psycopg.Connection, live: SandboxRestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAPMAN_NOW")
    settings = settings_for(options_url, live, monkeypatch)
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    result = options.run(settings, options.OptionsParams(symbols=["ORCL"], workers=0))
    after = datetime.now(UTC) + timedelta(seconds=1)
    (stored,) = odb.execute("SELECT snapshot_time FROM ingest_runs").fetchone()
    assert before <= stored <= after and stored.microsecond == 0
    assert result.details.snapshot_time == stored
    # The sandbox's chain is of 2025-12-19: by the real date its near expirations are past.
    assert result.details.outcomes["ORCL"].dropped["expired"] > 0
    assert odb.execute("SELECT count(*) FROM options_chains WHERE time <> %s", (stored,)).fetchone() == (0,)


def test_the_sandbox_keeps_kapmans_clock_and_replays(
    options_url: str, odb: psycopg.Connection, rest: SandboxRestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(options_url, rest, monkeypatch)
    first = options.run(settings, options.OptionsParams(symbols=["ORCL"], workers=0))
    replay = options.run(settings, options.OptionsParams(symbols=["ORCL"], workers=0,
                                                         snapshot_time="2025-12-19T21:00:00Z"))
    assert first.details.snapshot_time == replay.details.snapshot_time == SNAPSHOT
    assert replay.unchanged == first.written > 0 and replay.written == replay.removed == 0
    with pytest.raises(UsageError, match="not today in New York"):
        options.run(settings, options.OptionsParams(symbols=["ORCL"], snapshot_time="2025-12-18T21:00:00Z"))


def test_a_sandbox_chain_of_a_later_time_is_not_stored_under_kapmans_earlier_one(
    options_url: str, odb: psycopg.Connection, rest: SandboxRestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox serves the chain as of its own clock: with KapMan's clock moved back alone (the
    runbook's ``KAPMAN_NOW=2025-12-15T21:00:00+00:00 python -m scripts.ingest_options`` with the
    sandbox still at the 19th), the 19th's chain, quotes of the 19th included, was stored as the
    15th's snapshot.  A sandbox behind KapMan's clock (the vendor's Friday chain on Saturday) is
    still taken."""
    settings = settings_for(options_url, rest, monkeypatch, KAPMAN_NOW="2025-12-15T21:00:00+00:00")
    with pytest.raises(UsageError) as info:
        options.run(settings, options.OptionsParams(symbols=["ORCL"], workers=0))
    assert info.value.message == (
        "the sandbox serves its chains as of 2025-12-19T21:00:00Z (its clock), after KapMan's clock "
        "(2025-12-15T21:00:00Z): a chain of that time cannot be stored as an earlier snapshot")
    assert "/_sandbox/clock" in (info.value.hint or "") and "2025-12-15T21:00:00Z" in (info.value.hint or "")
    assert odb.execute("SELECT count(*) FROM options_chains").fetchone() == (0,)
    (refused,) = odb.execute("SELECT status, error FROM ingest_runs WHERE job = 'options'").fetchall()
    assert refused[0] == "failed" and refused[1].startswith("UsageError: the sandbox serves its chains as of")
    rest.set_clock(datetime(2025, 12, 15, 21, tzinfo=UTC))     # both clocks at the 15th's close: taken
    taken = options.run(settings, options.OptionsParams(symbols=["ORCL"], workers=0))
    assert taken.details.snapshot_time == datetime(2025, 12, 15, 21, tzinfo=UTC) and taken.written > 0
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-16T15:00:00Z")   # the sandbox behind: its chain of the 15th
    later = options.run(settings, options.OptionsParams(symbols=["ORCL"], workers=0))
    assert later.details.snapshot_time == datetime(2025, 12, 16, 15, tzinfo=UTC) and later.written > 0


# ---- a rerun replaces the snapshot -------------------------------------------------------------

def test_a_rerun_replaces_the_snapshot_and_counts_what_it_removed(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(options_url, polygon, ["ORCL", "DIA"])
    before = rows_by_key(odb, "ORCL")
    served = endpoints.option_snapshots
    gone = {"2026-01-16"}  # an expiration the provider no longer lists

    def fewer(market: Market, underlying: str, query: dict, now: datetime) -> list:
        results = served(market, underlying, query, now)
        return [r for r in results if underlying != "ORCL" or r["details"]["expiration_date"] not in gone]

    monkeypatch.setattr(endpoints, "option_snapshots", fewer)
    again = run(options_url, polygon, ["ORCL", "DIA"])
    after = rows_by_key(odb, "ORCL")
    vanished = {k for k in before if k[0].isoformat() in gone}
    assert vanished and set(after) == set(before) - vanished
    assert again.outcomes["ORCL"].removed == len(vanished) and again.outcomes["DIA"].removed == 0
    assert again.rows_removed == len(vanished) and again.step_result().removed == len(vanished)
    assert again.outcomes["ORCL"].unchanged == len(after)
    assert first.rows_inserted == again.rows_unchanged + len(vanished)
    assert f"{len(vanished)} removed" in again.step_result().summary()
    # A chain that comes back empty leaves an empty snapshot, not the old one.
    monkeypatch.setattr(endpoints, "option_snapshots", lambda m, u, q, n: [] if u == "ORCL" else served(m, u, q, n))
    empty = run(options_url, polygon, ["ORCL"])
    assert empty.outcomes["ORCL"].status == "empty" and empty.outcomes["ORCL"].removed == len(after)
    assert not rows_by_key(odb, "ORCL") and rows_by_key(odb, "DIA")


# ---- deadlines ---------------------------------------------------------------------------------

def test_retry_after_an_hour_fails_the_symbol_at_once(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, rest: SandboxRestServer, sleeps: list[float]
) -> None:
    rest.faults.rate_limit(times=1, retry_after=3600, symbol="DIA")
    started = time.monotonic()
    result = run(options_url, polygon, ["DIA", "ORCL"])
    assert time.monotonic() - started < 30 and 3600 not in sleeps
    dia = result.outcomes["DIA"]
    assert dia.status == "failed" and result.outcomes["ORCL"].status == "ok" and result.step_result().exit_code == 1
    assert dia.reason.startswith("/v3/snapshot/options/DIA: 429 rate limited, and a retry in 3600s would pass the "
                                 "request deadline of 120s (POLYGON_REQUEST_DEADLINE); gave up after ")
    assert odb.execute("SELECT status FROM ingest_runs").fetchone() == ("partial",)


def test_the_run_deadline_fails_what_it_meets_and_never_leaves_the_ledger_running(
    options_url: str, odb: psycopg.Connection, rest: SandboxRestServer
) -> None:
    http = PolygonHTTP(rest.base_url, rest.api_key, rate_limit=1000, read_timeout=10)
    client = PolygonClient(http)
    rest.faults.latency(0.4)  # a chain of several pages takes seconds
    with psycopg.connect(options_url) as conn:
        scope = resolve_scope(conn, ["AAPL", "DIA", "NVDA", "ORCL", "XLV"])
    started = time.monotonic()
    result = options.ingest_options(options_url, client, scope, SNAPSHOT, concurrency=1, workers=0, deadline=1.5)
    client.close()
    assert time.monotonic() - started < 10
    statuses = {s: o.status for s, o in result.outcomes.items()}
    assert statuses["AAPL"] == "failed" and "would pass the run's deadline" in result.outcomes["AAPL"].reason
    assert {statuses[s] for s in ("DIA", "NVDA", "ORCL", "XLV")} == {"not_attempted"}
    assert result.outcomes["XLV"].reason.startswith("not attempted, the run stopped: /v3/snapshot/options/AAPL: ")
    assert result.step_result().exit_code == 2 and result.step_result().outcome == "failed"
    assert odb.execute("SELECT status FROM ingest_runs").fetchone() == ("failed",)
    assert not rows_by_key(odb, "AAPL")


def test_out_of_range_flags_are_refused_with_their_range(options_url: str, rest: SandboxRestServer) -> None:
    env = cli_env(rest)
    cases = [(["--workers", "10000"], "--workers: '10000' is out of range; expected an integer in [0, 32]"),
             (["--concurrency", "0"], "--concurrency: '0' is out of range; expected an integer in [1, 64]"),
             (["--deadline", "nan"], "--deadline: 'nan' is out of range; expected a number in [10, 86400]"),
             (["--request-deadline", "7200"], "--request-deadline: '7200' is out of range; expected a number in "
                                              "[1, 3600]")]
    for flags, message in cases:
        proc = subprocess.run([sys.executable, "-m", "scripts.ingest_options", "--db-url", options_url, *flags],
                              capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith(
            f"error: argument {message}"), proc.stderr
        assert options_url not in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "scripts.ingest_options", "--db-url", options_url],
                         capture_output=True, text=True, timeout=60, env={**env, "POLYGON_RATE_LIMIT": "0.0001"})
    assert bad.returncode == 2 and "POLYGON_RATE_LIMIT='0.0001' is out of range; expected a number in [0.05, 1000]" \
        in bad.stderr


# ---- a lost database, a killed run -------------------------------------------------------------

def test_a_lost_database_connection_stops_the_run_in_one_line(
    options_url: str, odb: psycopg.Connection, polygon: PolygonClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.write_chain
    calls: list[int] = []

    def server_restarts(conn: psycopg.Connection, chain: object):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:  # every session of the database ends, as in a restart or a rebuild
            with psycopg.connect(options_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return real(conn, chain)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "write_chain", server_restarts)
    with pytest.raises(ConnectionLost) as info:
        run(options_url, polygon, ["DIA", "ORCL", "XLV"], concurrency=1)
    assert info.value.message == "the database connection was lost after 1 symbols; rerun to resume"
    assert info.value.exit_code == 2
    with psycopg.connect(options_url) as fresh:
        status, error, summary = fresh.execute("SELECT status, error, summary FROM ingest_runs").fetchone()
        assert status == "failed" and error == f"ConnectionLost: {info.value.message}"
        assert [o["status"] for o in summary["outcomes"].values()].count("ok") == 1
        assert fresh.execute("SELECT count(DISTINCT ticker_id) FROM options_chains").fetchone() == (1,)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


def _threads(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_the_run_leaves_no_worker_process(
    options_url: str, odb: psycopg.Connection, rest: SandboxRestServer, tmp_path: Path
) -> None:
    rest.faults.latency(0.2)
    rest.reset_counts()
    argv = [sys.executable, "-m", "scripts.ingest_options", "--db-url", options_url, "--workers", "2",
            "--symbols", "AAPL,DIA,NVDA,ORCL,XLV,MSFT", "--concurrency", "2"]
    stderr = (tmp_path / "stderr").open("wb")  # the resource tracker's too, which outlives the run
    proc = subprocess.Popen(argv, env=cli_env(rest), stdout=subprocess.DEVNULL, stderr=stderr,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while time.monotonic() < deadline:  # mid-run: both workers booted (their watchdog thread is up)
            children = _children(proc.pid)
            booted = [pid for pid in children if _threads(pid) >= 2]
            if rest.request_count("/v3/snapshot/options/") >= 6 and len(children) >= 3 and len(booted) >= 2:
                break
            time.sleep(0.05)
        assert len(children) >= 3, children  # two workers and the resource tracker
        os.kill(proc.pid, signal.SIGKILL)  # the run's process only, not its group
        proc.wait(timeout=10)
        until = time.monotonic() + 5
        while any(map(_alive, children)) and time.monotonic() < until:
            time.sleep(0.1)
        assert not [pid for pid in children if _alive(pid)]
        # The tracker unlinked the pool's semaphores without warning of "leaked semaphore objects".
        assert "leaked" not in (tmp_path / "stderr").read_text(), (tmp_path / "stderr").read_text()
    finally:
        stderr.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- the realistic profile's chain shapes, as stored -------------------------------------------

@pytest.fixture(scope="module")
def realistic_db(new_rebuilt_db: database.NewRebuiltDb, realistic_market: Market,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SandboxRestServer]]:
    market = realistic_market
    watch = tmp_path_factory.mktemp("realistic")
    (watch / "core.txt").write_text("AAPL\nSPY\nORCL\n")
    with new_rebuilt_db("optreal_") as url:
        with SandboxRestServer(market, api_key="real-key-1") as server, pytest.MonkeyPatch.context() as mp:
            mp.setenv("KAPMAN_NOW", "2025-12-19")
            client = PolygonClient(PolygonHTTP(server.base_url, server.api_key, rate_limit=1000))
            with psycopg.connect(url, autocommit=True) as conn:
                ingest_tickers(conn, client, force=True)
                ingest_watchlists(conn, watch)
            client.close()
            yield url, server


def test_realistic_chain_shapes_are_stored_as_they_mean(
    realistic_db: tuple[str, SandboxRestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, server = realistic_db
    settings = settings_for(url, server, monkeypatch)
    result = options.run(settings, options.OptionsParams(symbols=["AAPL"]))
    assert result.exit_code == 0
    chain = {(date.fromisoformat(r["details"]["expiration_date"]),
              Decimal(str(r["details"]["strike_price"])).quantize(FOUR), r["details"]["contract_type"][0].upper()): r
             for r in server.market.option_chain("AAPL", server.now)
             if r["details"]["contract_type"] != "other" and r["details"]["shares_per_contract"] == 100}
    with psycopg.connect(url) as conn:
        got = rows_by_key(conn, "AAPL")
    assert set(got) == set(chain)
    shapes = {"int strike": 0, "{} day": 0, "{} last_trade": 0, "{} greeks": 0, "int greeks": 0, "iv > 4": 0}
    for key, row in got.items():
        src = chain[key]
        *_, underlying, bid, ask, last, volume, oi, iv, delta, gamma, theta, vega = row
        assert (underlying, bid, ask) == (None, None, None)  # no underlying_asset.price, no last_quote
        assert "fmv" in src and oi == src["open_interest"]
        if type(src["details"]["strike_price"]) is int:
            shapes["int strike"] += 1
            assert row[3] == Decimal(src["details"]["strike_price"]).quantize(FOUR)
        if src["day"] == {}:
            shapes["{} day"] += 1
            assert volume is None
        else:
            assert volume == src["day"]["volume"]
        if src.get("last_trade") == {}:
            shapes["{} last_trade"] += 1
            assert last is None
        greeks = src.get("greeks")
        if greeks == {}:
            shapes["{} greeks"] += 1
            assert (iv, delta, gamma, theta, vega) == (None,) * 5
        elif greeks and type(greeks["delta"]) is int:
            shapes["int greeks"] += 1
            assert (delta, gamma, theta, vega) == (float(greeks["delta"]), 0.0, 0.0, 0.0)
            assert type(delta) is float and abs(delta) == 1.0 and iv == src["implied_volatility"]
        if src.get("implied_volatility", 0) > 4:
            shapes["iv > 4"] += 1
            assert iv == src["implied_volatility"]
    assert all(shapes.values()), shapes
    assert "no underlying price in the chains of AAPL" in result.summary()
    assert "no last_quote in the chains of AAPL (a plan without quotes): bid and ask stored NULL" in result.summary()
    assert result.details.outcomes["AAPL"].unpriced == result.details.outcomes["AAPL"].rows
