"""A session's option snapshot is complete symbol by symbol, whatever stops a run half-way.

Killed (kill -9, SIGTERM) and overlapping runs are real processes against the sandbox; the next
nightly fetches only what is missing, A3 never reads a snapshot still being written, and a
symbol the session's midnight passed without is reported lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from kapman.clock import parse_instant
from kapman.config import load_settings
from kapman.jobs import a3_dealer_metrics as a3
from kapman.ops import inventory, nightly, status
from kapman.sandbox.rest import SandboxRestServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SESSION = date(2025, 12, 19)
EVENING = "2025-12-19T21:30:00Z"     # Friday 16:30 New York, after the close
LATER = "2025-12-19T21:45:00Z"
SYMBOLS = ["AAPL", "MSFT", "NVDA", "QQQ", "SPY"]
CHAINS = "/v3/snapshot/options/"


@pytest.fixture
def env(fresh_db: str, rest: SandboxRestServer, mirror_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> str:
    watchlists = tmp_path / "watchlists"
    watchlists.mkdir()
    (watchlists / "core.txt").write_text("\n".join(SYMBOLS) + "\n")
    for name, value in {"DATABASE_URL": fresh_db, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
                        "FLATFILES_MIRROR_DIR": str(mirror_dir), "KAPMAN_WATCHLISTS_DIR": str(watchlists),
                        "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": EVENING,
                        "POLYGON_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    return fresh_db


def _nightly(log: Path) -> subprocess.Popen[str]:
    """``python -m scripts.nightly`` as a scheduler starts it, in a process group of its own."""
    return subprocess.Popen([sys.executable, "-m", "scripts.nightly", "-q", "--log-file", str(log)], cwd=ROOT,
                            env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _stored(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(DISTINCT ticker_id) FROM options_chains").fetchone()[0]  # type: ignore[index]


def _reap(proc: subprocess.Popen[str]) -> None:
    """Kill the process if it still runs, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]


def _wait_for(url: str, done: Callable[[psycopg.Connection], bool], proc: subprocess.Popen[str] | None = None,
              seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            if done(conn):
                return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended first (exit {proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
        time.sleep(0.2)
    pytest.fail("timed out")


def _runs(url: str, job: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT status, error, summary FROM ingest_runs WHERE job = %s ORDER BY started_at",
                            (job,)).fetchall()


def _a3(url: str) -> dict[str, tuple[str, datetime | None]]:
    with psycopg.connect(url) as conn:
        return {s: (st, t) for s, st, t in conn.execute(
            "SELECT t.symbol, d.dealer_metrics_json ->> 'status', d.dealer_snapshot_time FROM daily_snapshots d "
            "JOIN tickers t ON t.id = d.ticker_id WHERE d.time = '2025-12-19 21:00+00' "
            "AND d.dealer_metrics_json IS NOT NULL").fetchall()}


def _chain_requests(rest: SandboxRestServer) -> set[str]:
    counts = rest.request_counts()
    return {p.removeprefix(CHAINS).split("?")[0] for p, n in counts.items() if p.startswith(CHAINS) and n}


def test_a_nightly_killed_during_options_is_completed_by_the_next(env: str, rest: SandboxRestServer, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rest.faults.slow(60, symbol="SPY", path_prefix=CHAINS)     # SPY hangs: the kill finds 4 of 5 stored
    proc = _nightly(tmp_path / "nightly.log")
    try:
        _wait_for(env, lambda c: _stored(c) == 4, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    # Another command (status) finds the dead rows and resolves them; the day is not complete.
    with psycopg.connect(env) as conn:
        report = status.report(conn, parse_instant(LATER))
    assert report.check("runs").details["nightly"]["status"] == "abandoned"
    assert report.check("runs").details["options"]["status"] == "abandoned"
    options = report.check("options")
    assert options.verdict.name == "WARN" and options.details["pending_missing"] == ["SPY"]
    assert "4 of 5 symbols stored, missing SPY" in options.summary
    # the killed run writes nothing more: the options area does not wait for it
    assert options.details["writing"] == [] and "still writing" not in options.summary
    assert options.fix is not None and options.fix.startswith("python -m scripts.nightly"), options.fix

    rest.faults.clear()
    rest.reset_counts()
    monkeypatch.setenv("KAPMAN_NOW", LATER)
    with psycopg.connect(env) as conn:
        todo = nightly.plan(load_settings(), conn)
    assert [t.step for t in todo.tasks if t.step in ("options", "a3")] == ["options", "a3"]
    assert "1 of 5 symbols without a chain yet (SPY)" in todo.render()
    result = nightly.run(load_settings())
    assert result.exit_code == 0, result.summary()
    assert result.details.steps["options"].done == 1
    assert _chain_requests(rest) == {"SPY"}                      # only the missing symbol is fetched
    with psycopg.connect(env) as conn:
        day = inventory.options_day(conn, SESSION)
        report = status.report(conn, parse_instant(LATER))
    assert day.complete and day.stored["SPY"] == parse_instant(LATER)      # its own true time
    assert day.stored["AAPL"] == parse_instant(EVENING)
    dealer = _a3(env)
    assert sorted(dealer) == SYMBOLS and "INVALID" not in {s for s, _ in dealer.values()}
    assert dealer["SPY"][1] == parse_instant(LATER)
    assert report.check("options").verdict.name == "OK" and report.check("a3").verdict.name == "OK"


def test_sigterm_is_recorded_as_interrupted_with_what_was_committed(env: str, rest: SandboxRestServer,
                                                                    tmp_path: Path) -> None:
    rest.faults.slow(8, symbol="SPY", path_prefix=CHAINS)
    log = tmp_path / "nightly.log"
    proc = _nightly(log)
    try:
        _wait_for(env, lambda c: _stored(c) == 4, proc)
        proc.send_signal(signal.SIGTERM)            # what systemd and `kill` send
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    (nightly_status, nightly_error, _), = _runs(env, "nightly")
    assert (nightly_status, nightly_error) == ("interrupted", "interrupted by SIGTERM")
    (options_status, options_error, summary), = _runs(env, "options")
    assert (options_status, options_error) == ("interrupted", "interrupted by SIGTERM")
    assert summary["done"] == 4                                 # what it committed
    text = log.read_text()
    assert "nightly: interrupted by SIGTERM; steps done before it: tickers, splits, watchlists, ohlcv" in text


def test_symbols_failing_on_a_500_are_fetched_by_the_next_nightly_and_lost_after_midnight(
        env: str, rest: SandboxRestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nightly, "OPTIONS_RETRY_WAITS", (0.0,))      # one pass again, at once
    for symbol in ("MSFT", "NVDA"):
        rest.faults.server_error(times=50, symbol=symbol, path_prefix=CHAINS)
    rest.faults.server_error(times=1, symbol="QQQ", path_prefix=CHAINS)   # passes: the nightly's second pass
    first = nightly.run(load_settings())
    assert first.exit_code == 1 and [f.unit for f in first.failures] == ["options"]
    options = first.details.steps["options"].as_dict()
    assert options["done"] == 3 and sorted(f["unit"] for f in options["failures"]) == ["MSFT", "NVDA"]
    assert {s for s, (st, _) in _a3(env).items() if st == "INVALID"} == {"MSFT", "NVDA"}
    with psycopg.connect(env) as conn:
        assert inventory.options_day(conn, SESSION).stored["QQQ"] == parse_instant(EVENING)

    rest.faults.clear()
    rest.faults.server_error(times=50, symbol="NVDA", path_prefix=CHAINS)   # NVDA still failing
    rest.reset_counts()
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T22:30:00Z")
    second = nightly.run(load_settings())
    assert second.headline != "nothing was due"
    assert _chain_requests(rest) == {"MSFT", "NVDA"}             # never a second snapshot of the others
    dealer = _a3(env)
    assert dealer["MSFT"][0] != "INVALID" and dealer["MSFT"][1] == parse_instant("2025-12-19T22:30:00Z")
    assert dealer["NVDA"][0] == "INVALID"

    rest.faults.clear()
    rest.reset_counts()
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-20T05:30:00Z")       # 00:30 New York: the session is over
    third = nightly.run(load_settings())
    assert _chain_requests(rest) == set()                        # never taken late under its date
    lost = [f for f in third.failures if f.unit == "options 2025-12-19"]
    assert len(lost) == 1 and lost[0].reason.startswith("1 symbols lost") and "NVDA" in lost[0].reason
    assert third.exit_code == 1


def test_a_session_restored_under_watchlists_loaded_later_is_complete_for_a_plain_run(
        env: str, rest: SandboxRestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman.ingest.options import step as options

    assert nightly.run(load_settings()).exit_code == 0
    # A repave loads its watchlists on the day it runs: every membership is dated after the session
    # whose restored chains are stored. A run completing the session asks about its own scope.
    with psycopg.connect(env) as conn:
        conn.execute("UPDATE watchlists SET effective_date = '2025-12-22'")
    rest.reset_counts()
    monkeypatch.setenv("KAPMAN_NOW", LATER)
    again = options.run(load_settings(), options.OptionsParams())
    assert again.exit_code == 0 and again.done == len(SYMBOLS)
    assert again.headline.startswith("2025-12-19's snapshot is complete: 5 of 5 symbols stored")
    assert _chain_requests(rest) == set()                        # nothing fetched a second time


def test_a3_never_reads_a_snapshot_an_options_run_is_still_writing(env: str, rest: SandboxRestServer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T19:00:00Z")     # 14:00: reference data and bars, no session yet
    assert "options" not in nightly.run(load_settings()).details.steps
    monkeypatch.setenv("KAPMAN_NOW", EVENING)
    rest.faults.slow(10, symbol="SPY", path_prefix=CHAINS)
    manual = subprocess.Popen([sys.executable, "-m", "scripts.ingest_options", "-q", "--no-archive"], cwd=ROOT,
                              env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(env, lambda c: _stored(c) == 4, manual)
        with psycopg.connect(env) as conn:
            todo = nightly.plan(load_settings(), conn)
        assert "options" not in [t.step for t in todo.tasks]
        assert all(SESSION not in t.args.get("dates", []) for t in todo.tasks if t.step == "a3")
        assert todo.waiting and "still writing 2025-12-19's snapshot" in todo.waiting[0]
        direct = a3.run(load_settings(), a3.A3Params(dates=[SESSION]))
        assert direct.exit_code == 2 and "still writing" in direct.failures[0].reason
        assert _a3(env) == {}
        assert manual.wait(timeout=120) == 0, manual.stderr.read()  # type: ignore[union-attr]
    finally:
        _reap(manual)
    result = nightly.run(load_settings())
    assert "a3" in result.details.steps
    dealer = _a3(env)
    assert sorted(dealer) == SYMBOLS and "INVALID" not in {s for s, _ in dealer.values()}


def test_a2_after_a_load_killed_half_way_is_the_history_or_starts_at_the_newest_session(env: str) -> None:
    from kapman.ingest import ohlcv, tickers

    # A base load killed after storing a few days out of order: bars for three old days only.
    tickers.run(load_settings(), tickers.TickersParams(force=True))
    stored = [date(2025, 10, 6), date(2025, 10, 7), date(2025, 10, 8)]
    ohlcv.run(load_settings(), ohlcv.OhlcvParams(mode="backfill", start=stored[0], end=stored[-1]))
    with psycopg.connect(env) as conn:
        todo = nightly.plan(load_settings(), conn)
        quick = nightly.plan(load_settings(), conn, history=False)
        report = status.report(conn, parse_instant(EVENING), with_archive=False)
    # Without any A2 the indicator history is owed (it was not, before the nightly computed it):
    # every date with bars once the nightly's OHLCV step has loaded the rest, the stored days
    # included, and status owes those it has now.
    assert [t.args for t in todo.tasks if t.step == "a2"] == [{"history": True}]
    assert report.check("a2").details["missing"] == stored
    # --no-history: from the newest day whose file is due (the 18th; the sandbox lists the 19th
    # already), never from the newest day the killed load happened to store.
    assert next(t.args["dates"] for t in quick.tasks if t.step == "a2") == [date(2025, 12, 18), SESSION]


def test_status_the_warehouse_page_and_the_plan_share_a_sandbox_databases_clock(
        env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kapman.report import warehouse
    from tests.support.hydrate import hydrate

    frozen = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)
    with psycopg.connect(env, autocommit=True) as conn:
        hydrate(conn)
        # As the demo leaves it: the database follows the sandbox's frozen clock; one old bar
        # that is inside retention by that clock and past it by real time.
        conn.execute("UPDATE lifecycle_clock SET mode = 'frozen', frozen_at = %s", (frozen,))
        conn.execute("INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume) "
                     "SELECT ticker_id, '2024-01-05', open, high, low, close, volume FROM ohlcv LIMIT 1")
    monkeypatch.delenv("KAPMAN_NOW")
    with psycopg.connect(env) as conn:
        report = status.report(conn, with_archive=False)
        cov = warehouse.coverage(conn)
        # Each step's days, as the step registry asks them (by the same clock).
        first, last = date(2025, 12, 1), date(2025, 12, 19)
        options_days = inventory.options_days(conn, first, last)
        a2_days = inventory.a2_days(conn, first, last)
        ohlcv_days = inventory.ohlcv_days(conn, first, last)
        a3_days = inventory.a3_days(conn, first, last)
        window = warehouse.window(conn)
        start = inventory.window_start(conn, frozen)
    assert report.now == frozen and "past retention" not in report.check("schema").summary
    assert options_days.done == {date(2025, 12, 18): 3, SESSION: 2} and options_days.owed == [SESSION]
    assert not options_days.complete(SESSION) and a2_days.owed == [] and a2_days.complete(SESSION)
    assert ohlcv_days.owed == [] and ohlcv_days.done[SESSION] == 4
    assert a3_days.owed == [] and set(a3_days.done) == {date(2025, 12, 18), SESSION}
    assert window == (start, date(2025, 12, 19)) and cov.days[-1] == date(2025, 12, 19)
    assert report.check("ohlcv").details["window"].startswith(str(cov.days[0]))
    ohlcv_gaps = next(g for g in warehouse.gaps(cov) if g.dataset == "OHLCV")
    assert all(end <= date(2025, 12, 19) for _, end, _ in ohlcv_gaps.missing)
    dry = nightly.run(load_settings(), dry_run=True)
    assert dry.exit_code == 0 and dry.details.as_dict()["plan"]["now"] == frozen
    # What is due agrees with status: today's snapshot lacks MSFT and NVDA.
    assert "2 of 4 symbols without a chain yet (MSFT NVDA)" in dry.details.as_dict()["plan_text"]
    assert report.check("options").details["pending_missing"] == ["MSFT", "NVDA"]


def test_two_runs_completing_a_session_at_once_fetch_it_once(env: str, rest: SandboxRestServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The second of two plain runs started together (a scheduled nightly and one by hand) is refused:
    before the first has its snapshot time on its ledger row, it is not yet 'writing', and both fetched
    every missing symbol."""
    from kapman.errors import UsageError
    from kapman.ingest.options import step as options

    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T19:00:00Z")     # reference data and bars, no session yet
    nightly.run(load_settings())
    monkeypatch.setenv("KAPMAN_NOW", EVENING)
    rest.reset_counts()
    rest.faults.slow(6, symbol="AAPL", path_prefix=CHAINS)       # the first run waits on its clock probe
    first = subprocess.Popen([sys.executable, "-m", "scripts.ingest_options", "-q", "--no-archive"], cwd=ROOT,
                             env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(env, lambda c: c.execute("SELECT count(*) FROM ingest_runs WHERE job = 'options' "
                                           "AND status = 'running'").fetchone() == (1,), first)
        time.sleep(1.0)
        with pytest.raises(UsageError, match="another options run is completing 2025-12-19's snapshot"):
            options.run(load_settings(), options.OptionsParams(archive=False))
        assert first.wait(timeout=120) == 0, first.stderr.read()  # type: ignore[union-attr]
    finally:
        _reap(first)
    with psycopg.connect(env) as conn:
        assert inventory.options_day(conn, SESSION).complete
    assert _chain_requests(rest) == set(SYMBOLS)
