"""A2's indicator history: every date with bars in the retention window, resumable by date."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
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


# A forced history (a KapMan update changed an indicator) stopped part-way resumes where it stopped.

def at_minute(monkeypatch: pytest.MonkeyPatch, market: Market, minute: int) -> datetime:
    """KapMan's clock for the next run, after the last close: its rows' ta_computed_at tell the runs apart."""
    now = datetime.fromisoformat(f"{market.end_date}T22:{minute:02d}:00+00:00")
    monkeypatch.setenv("KAPMAN_NOW", now.isoformat())
    return now


def old_history(url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every date computed by a KapMan whose indicators differed from this one's (each value + 1)."""
    from kapman.jobs import a2_local_ta

    real = a2_local_ta.compute_cells

    def older(*args: object) -> tuple[np.ndarray, np.ndarray]:
        ta, pm = real(*args)  # type: ignore[arg-type]
        return ta + 1.0, pm

    monkeypatch.setattr(a2_local_ta, "compute_cells", older)
    code, out = a2(url, capsys, "--history")
    monkeypatch.setattr(a2_local_ta, "compute_cells", real)
    assert code == 0 and out["rows_inserted"] > 0, out


def stopped(url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, after: int,
            *args: str) -> list[datetime]:
    """A run of ``args`` stopped by SIGTERM after ``after`` dates were written; the dates it wrote."""
    import signal

    from kapman import signals
    from kapman.jobs import a2_local_ta, snapshots

    real_write, writes = snapshots.write, []

    def write(*a: object, **kw: object) -> object:
        if len(writes) == after:
            raise signals.Terminated(signal.SIGTERM)
        writes.append(kw["time"])
        return real_write(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(a2_local_ta.snapshots, "write", write)
    code = cli.run_main(run_a2_local_ta.main, [*args, "--db-url", url, "--json", "-q", "--workers", "1"])
    monkeypatch.setattr(a2_local_ta.snapshots, "write", real_write)
    assert code == 143 and json.loads(capsys.readouterr().out)["status"] == "interrupted"
    return writes


def computed_at(url: str) -> dict[datetime, set[datetime]]:
    """Per date, the ta_computed_at of its rows."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT time, array_agg(DISTINCT ta_computed_at) FROM daily_snapshots GROUP BY time")
        return {t: set(at) for t, at in rows}


def rows_on(url: str, times: list[datetime]) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM daily_snapshots WHERE time = ANY(%s)", (times,)).fetchone()[0]


def same_as_a_whole_forced_history(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An uninterrupted forced history (the newest forced history has finished: no resume) changes no row."""
    code, again = a2(url, capsys, "--history", "--force")
    assert code == 0 and again["dates_resumed"] == 0 and again["rows_updated"] == again["rows_inserted"] == 0
    with psycopg.connect(url) as conn:
        assert again["rows_unchanged"] == conn.execute("SELECT count(*) FROM daily_snapshots").fetchone()[0] > 0


@pytest.fixture
def old_values(bars_only: tuple[str, Market], capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch) -> tuple[str, Market, list[datetime]]:
    """A history of an older KapMan's values; the closes of its dates."""
    url, market = bars_only
    at_minute(monkeypatch, market, 0)
    old_history(url, capsys, monkeypatch)
    return url, market, [close_of(d) for d in market.trading_days]


def test_a_forced_history_stopped_part_way_resumes_where_it_stopped(
        old_values: tuple[str, Market, list[datetime]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A rerun of --history --force recomputed every date again, and one without --force kept the old
    values of the dates the stopped run had not reached."""
    url, market, closes = old_values
    first = at_minute(monkeypatch, market, 10)
    done = stopped(url, capsys, monkeypatch, 7, "--history", "--force")
    second = at_minute(monkeypatch, market, 20)
    code, resumed = a2(url, capsys, "--history", "--force")
    assert code == 0, resumed
    left = [t for t in closes if t not in done]
    assert resumed["dates_resumed"] == 7 and resumed["rows_written"] == resumed["rows_updated"] == rows_on(url, left)
    assert resumed["notes"] == [f"resuming the forced history stopped at {first_run_start(url)} UTC (interrupted): "
                                f"7 dates already recomputed, {len(closes) - 7} left"]
    assert computed_at(url) == {t: {first if t in done else second} for t in closes}
    same_as_a_whole_forced_history(url, capsys)


def first_run_start(url: str) -> str:
    with psycopg.connect(url) as conn:
        started = conn.execute("SELECT started_at FROM ingest_runs WHERE status = 'interrupted' "
                               "ORDER BY started_at LIMIT 1").fetchone()[0]
    return f"{started.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def test_a_resumed_forced_history_stopped_again_resumes_from_both(
        old_values: tuple[str, Market, list[datetime]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url, market, closes = old_values
    at_minute(monkeypatch, market, 10)
    done = stopped(url, capsys, monkeypatch, 5, "--history", "--force")
    at_minute(monkeypatch, market, 20)
    done += stopped(url, capsys, monkeypatch, 6, "--history", "--force")
    at_minute(monkeypatch, market, 30)
    code, resumed = a2(url, capsys, "--history", "--force")
    assert code == 0 and resumed["dates_resumed"] == 11 == len(set(done))
    assert resumed["rows_written"] == rows_on(url, [t for t in closes if t not in done])
    same_as_a_whole_forced_history(url, capsys)


def test_a_forced_history_killed_outright_resumes_from_the_dates_it_committed(
        old_values: tuple[str, Market, list[datetime]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """kill -9 (or a reboot) writes no summary at the end: the rerun recomputed every date again.  Each
    date now enters the ledger row as it commits, and the dead run's row, marked abandoned, is resumed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    url, market, closes = old_values
    first = at_minute(monkeypatch, market, 10)
    child = subprocess.Popen([sys.executable, "-m", "scripts.run_a2_local_ta", "--history", "--force",
                              "--db-url", url, "-q", "--workers", "1"],
                             env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recorded: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        while child.poll() is None and len(recorded) < 3:
            row = conn.execute("SELECT summary -> 'recomputed' FROM ingest_runs WHERE status = 'running'").fetchone()
            recorded = (row and row[0]) or []
            time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    with psycopg.connect(url) as conn:
        status, summary = conn.execute("SELECT status, summary FROM ingest_runs "
                                       "WHERE args ->> 'force' = 'true'").fetchone()
    assert status == "running" and summary["ta_version"]
    done = sorted(close_of(date.fromisoformat(d)) for d in summary["recomputed"])
    assert 3 <= len(done) < len(closes)
    assert {t for t, at in computed_at(url).items() if at == {first}} == set(done)   # exactly what committed
    at_minute(monkeypatch, market, 20)
    code, resumed = a2(url, capsys, "--history", "--force")
    assert code == 0, resumed
    assert resumed["dates_resumed"] == len(done)
    assert resumed["rows_written"] == resumed["rows_updated"] == rows_on(url, [t for t in closes if t not in done])
    assert resumed["notes"][0].endswith(f"UTC (abandoned): {len(done)} dates already recomputed, "
                                        f"{len(closes) - len(done)} left")
    same_as_a_whole_forced_history(url, capsys)


def test_later_runs_without_force_leave_the_resume_to_recompute_what_they_did_not(
        old_values: tuple[str, Market, list[datetime]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A later run without --force skips the dates holding old values: the resume still recomputes every
    date the stopped run did not, and a date of the stopped run whose rows are gone since."""
    url, market, closes = old_values
    at_minute(monkeypatch, market, 10)
    done = stopped(url, capsys, monkeypatch, 7, "--history", "--force")
    at_minute(monkeypatch, market, 20)
    code, later = a2(url, capsys, "--history")
    assert code == 0 and later["rows_written"] == 0 and later["dates_complete"] == len(closes)
    with psycopg.connect(url, autocommit=True) as conn:   # a date of the stopped run lost and recomputed
        conn.execute("DELETE FROM daily_snapshots WHERE time = %s", (done[0],))
    code, later = a2(url, capsys, "--date", str(market.trading_days[closes.index(done[0])]))
    assert code == 0 and later["rows_inserted"] > 0
    with psycopg.connect(url, autocommit=True) as conn:   # and one lost since
        conn.execute("DELETE FROM daily_snapshots WHERE time = %s", (done[1],))
    at_minute(monkeypatch, market, 30)
    code, resumed = a2(url, capsys, "--history", "--force")
    assert code == 0 and resumed["dates_resumed"] == 6
    assert resumed["rows_written"] == rows_on(url, [t for t in closes if t not in done[2:] and t != done[0]])
    same_as_a_whole_forced_history(url, capsys)


@pytest.mark.parametrize("case", ["forced range", "forced history since", "another version", "patterns asked now",
                                  "patterns asked then", "other symbols"])
def test_what_a_forced_history_does_not_resume(case: str, old_values: tuple[str, Market, list[datetime]],
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Each recomputes every date: the stopped run's dates are not the ones this run would write."""
    from kapman.jobs import a2_local_ta

    url, market, closes = old_values
    first, last = market.trading_days[0], market.trading_days[-1]
    then: list[str] = {"forced range": ["--start-date", str(first), "--end-date", str(last)],
                       "patterns asked then": ["--history", "--enable-pattern-indicators"],
                       "other symbols": ["--history", "--symbols", ",".join(market.symbols[:30])],
                       }.get(case, ["--history"])
    now = ["--history", "--force", *(["--enable-pattern-indicators"] if case == "patterns asked now" else [])]
    if case == "another version":
        monkeypatch.setattr(a2_local_ta, "VERSION", "a2-0")
    stopped(url, capsys, monkeypatch, 7, *then, "--force")
    monkeypatch.setattr(a2_local_ta, "VERSION", "a2-1")
    if case == "forced history since":
        assert a2(url, capsys, "--history", "--force")[0] == 0
    code, rerun = a2(url, capsys, *now)
    assert code == 0 and rerun["dates_resumed"] == 0 and rerun["notes"] == []
    assert rerun["rows_written"] == rows_on(url, closes) and rerun["done"] == len(closes)
    if case == "patterns asked now":
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT bool_and(technical_indicators_json ? 'pattern_recognition') "
                                "FROM daily_snapshots").fetchone() == (True,)
