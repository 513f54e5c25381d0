"""A2's indicator history: every date with bars in the retention window, resumable by date."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from kapman import cli
from kapman.clock import close_of
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market
from scripts import run_a2_local_ta

pytestmark = pytest.mark.integration


@pytest.fixture
def bars_only(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Market]]:
    """A repaved warehouse: tickers and bars, no A2 at all."""
    market = Market(seed=5, n_tickers=60, days=90)
    monkeypatch.setenv("KAPMAN_NOW", str(market.end_date))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        load_tickers(conn, market)
        load_bars(conn, market)
    yield fresh_db, market


def a2(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = run_a2_local_ta.main([*args, "--db-url", url, "--json", "-q", "--workers", "1"])
    return code, json.loads(capsys.readouterr().out)


def test_history_computes_every_date_with_bars_and_resumes(bars_only: tuple[str, Market],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    url, market = bars_only
    with psycopg.connect(url, autocommit=True) as conn:
        pairs = conn.execute("SELECT count(*), count(DISTINCT date) FROM ohlcv").fetchone()
        code, first = a2(url, capsys, "--history")
        assert code == 0, first
        stored = conn.execute("SELECT count(*), count(DISTINCT time) FROM daily_snapshots "
                              "WHERE technical_indicators_json IS NOT NULL").fetchone()
        assert stored == pairs and pairs[1] == len(market.trading_days)
        # interrupted after some dates: a rerun computes only the dates not stored
        lost = [close_of(d) for d in market.trading_days[-3:]]
        conn.execute("DELETE FROM daily_snapshots WHERE time = ANY(%s)", (lost,))
        code, second = a2(url, capsys, "--history")
        assert code == 0 and second["rows_written"] == conn.execute(
            "SELECT count(*) FROM ohlcv WHERE date = ANY(%s)", (market.trading_days[-3:],)).fetchone()[0]
        assert second["skipped_existing"] == pairs[0] - second["rows_written"]
        code, third = a2(url, capsys, "--history")
        assert code == 0 and third["rows_written"] == 0 and "up to date" in third.get("headline", "up to date")


def test_history_takes_no_dates(bars_only: tuple[str, Market], capsys: pytest.CaptureFixture[str]) -> None:
    url, market = bars_only
    code = cli.run_main(run_a2_local_ta.main, ["--history", "--date", str(market.end_date), "--db-url", url])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == ("error: --history is every date of the retention window: "
                                                        "give it without dates")


def test_history_on_a_frozen_database_without_kapman_now_covers_the_window_status_counts(
        fresh_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A sandbox database follows its recorded clock: status counts the window back from it, and so
    does the history (it counted back from the real date, leaving out every date older than that
    window although status listed them as owed)."""
    from kapman.db import lifecycle
    from kapman.ops import inventory

    market = Market(seed=5, n_tickers=12, days=470)
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        # first: on the community edition a frozen clock pauses the policies, which would otherwise drop
        # these bars, older than the real clock's window, while they load
        lifecycle.record_clock(conn, lifecycle.Clock("frozen", close_of(market.end_date)))
        load_tickers(conn, market)
        load_bars(conn, market)
        start = inventory.window_start(conn, lifecycle.warehouse_now(conn))
        assert start < market.trading_days[0]   # every bar is in the window of the database's clock
        code, summary = a2(fresh_db, capsys, "--history")
        assert code == 0, summary
        assert summary["dates"][0] == str(market.trading_days[0])
        assert conn.execute("SELECT count(DISTINCT time) FROM daily_snapshots").fetchone() == (
            len(market.trading_days),)


@pytest.mark.community
def test_the_daily_snapshots_policies_wait_while_a2_writes(fresh_db: str, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """On the real clock the compression policy takes every daily_snapshots chunk older than 120 days: one
    running while a history wrote into such a chunk deadlocked with its COPY. A2 pauses them as a bulk
    load does, and puts them back on schedule after."""
    from kapman.jobs import a2_local_ta

    market = Market(seed=5, n_tickers=12, days=40)
    monkeypatch.delenv("KAPMAN_NOW", raising=False)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        load_tickers(conn, market)
        load_bars(conn, market)
    jobs = "SELECT bool_or(scheduled) FROM timescaledb_information.jobs WHERE hypertable_name = 'daily_snapshots'"
    during: list[bool] = []
    real_compute = a2_local_ta.compute

    def compute(conn: psycopg.Connection, *args: object, **kwargs: object) -> object:
        with psycopg.connect(fresh_db) as c:
            during.append(c.execute(jobs).fetchone()[0])
        return real_compute(conn, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(a2_local_ta, "compute", compute)
    code, out = a2(fresh_db, capsys, "--date", str(market.end_date))
    assert code == 0, out
    with psycopg.connect(fresh_db) as conn:
        assert during == [False] and conn.execute(jobs).fetchone()[0] is True


def test_a_history_stopped_by_sigterm_records_what_it_committed_and_resumes_by_date(
        bars_only: tuple[str, Market], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The ledger row of a stopped history said status ok, exit_code 0, 0 dates done and 0 rows written
    beside 'interrupted', whatever it had committed."""
    import signal

    from kapman import signals
    from kapman.jobs import a2_local_ta, snapshots

    url, market = bars_only
    real_write, writes = snapshots.write, []

    def write(*args: object, **kwargs: object) -> object:
        if len(writes) == 7:
            raise signals.Terminated(signal.SIGTERM)   # as the signal arrives: the eighth date is not written
        writes.append(kwargs["time"])
        return real_write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(a2_local_ta.snapshots, "write", write)
    code = cli.run_main(run_a2_local_ta.main, ["--history", "--db-url", url, "--json", "-q", "--workers", "1"])
    assert code == 143 and json.loads(capsys.readouterr().out)["status"] == "interrupted"
    monkeypatch.setattr(a2_local_ta.snapshots, "write", real_write)
    with psycopg.connect(url, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT time) FROM daily_snapshots").fetchone()
        status, error, summary = conn.execute("SELECT status, error, summary FROM ingest_runs").fetchone()
    assert stored[1] == len(writes) == 7
    assert (status, error) == ("interrupted", "interrupted by SIGTERM")
    assert (summary["status"], summary["exit_code"], summary["done"], summary["counts"]["written"]) == (
        "interrupted", 143, 7, stored[0])
    code, resumed = a2(url, capsys, "--history")
    assert code == 0 and resumed["dates_complete"] == 7 and resumed["skipped_existing"] == stored[0]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(DISTINCT time) FROM daily_snapshots").fetchone() == (
            len(market.trading_days),)
