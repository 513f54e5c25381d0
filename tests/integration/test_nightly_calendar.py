"""The nightly by the NYSE calendar and KapMan's clock, against the sandbox: early closes, weekends
and reruns, and status agreeing with the nightly's plan about what is due and what is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from datetime import date
from pathlib import Path

import psycopg
import pytest

from kapman import clock
from kapman.config import load_settings
from kapman.jobs import a2_local_ta
from kapman.ops import inventory, nightly, sessions, status
from kapman.sandbox.rest import SandboxRestServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAPL", "MSFT", "SPY"]
EARLY_CLOSE = date(2025, 11, 28)     # the day after Thanksgiving: the session closes at 13:00 New York


@pytest.fixture
def env(fresh_db: str, rest: SandboxRestServer, mirror_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "core.txt").write_text("\n".join(SYMBOLS) + "\n")
    for name, value in {"DATABASE_URL": fresh_db, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
                        "FLATFILES_MIRROR_DIR": str(mirror_dir), "KAPMAN_WATCHLISTS_DIR": str(tmp_path),
                        "KAPMAN_ENV_FILE": "/nonexistent", "POLYGON_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    return fresh_db


def _at(monkeypatch: pytest.MonkeyPatch, instant: str) -> None:
    """KapMan's clock and the sandbox's at ``instant``, as the demo moves them (the sandbox serves
    the chain as of its own clock)."""
    monkeypatch.setenv("KAPMAN_NOW", instant)
    request = urllib.request.Request(f"{os.environ['POLYGON_BASE_URL']}/_sandbox/clock", method="POST",
                                     data=json.dumps({"now": instant}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _chain_times(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [f"{t:%m-%d %H:%M}" for (t,) in conn.execute(
            "SELECT DISTINCT time AT TIME ZONE 'America/New_York' FROM options_chains ORDER BY 1")]


def _days(task: nightly.Task | None) -> set[date]:
    if task is None:
        return set()
    if "dates" in task.args:
        return set(task.args["dates"])
    return {d for d in (task.args["start"], task.args["end"])} if "start" in task.args else set()


def _agree(url: str) -> nightly.Plan:
    """Status and the nightly's plan, by the same clock, say the same about what is due: each area
    status warns about is a task of the plan, covering the days status names, and the reverse."""
    with psycopg.connect(url) as conn:
        todo = nightly.plan(load_settings(), conn)
        report = status.report(conn, with_archive=False)
    tasks = {t.step: t for t in todo.tasks}
    options = report.check("options").details
    if options:     # none on a warehouse without any snapshot (status: FAIL, "no option snapshots")
        assert (options.get("pending") is not None) == ("options" in tasks), (todo.render(), report.render())
    assert set(todo.lost) <= set(options.get("lost", [])), (todo.render(), report.render())
    missing = report.check("ohlcv").details.get("missing", [])
    if missing:     # holes: in the plan's OHLCV range, or said unpublished
        ohlcv = tasks["ohlcv"].args
        assert all(ohlcv["start"] <= d <= ohlcv["end"] or d in todo.unpublished for d in missing), todo.render()
    a2_owed = set(report.check("a2").details.get("missing", []))
    assert (bool(a2_owed) <= ("a2" in tasks)), (todo.render(), report.render())
    if "a2" in tasks and not tasks["a2"].args.get("history"):
        assert a2_owed <= _days(tasks["a2"]), (todo.render(), report.render())
    a3 = report.check("a3").details
    a3_owed = {*a3.get("missing", []), *(date.fromisoformat(d) for d in a3.get("stale", {}))}
    planned = _days(tasks.get("a3"))
    # The plan adds the session whose snapshot it is about to take.
    assert a3_owed <= planned and planned - a3_owed <= {sessions.snapshot_session(todo.now)}, \
        (todo.render(), report.render())
    return todo


def test_a_snapshot_taken_after_an_early_close_is_the_sessions(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken at 13:45 New York, after the 13:00 close, the snapshot is the session's: it was read from
    16:00 on, so a rerun took it again, status said the session had none and the next morning's
    nightly reported every symbol lost."""
    _at(monkeypatch, "2025-11-28T18:45:00Z")     # 13:45 New York
    first = nightly.run(load_settings())
    assert first.exit_code == 0 and first.details.steps["options"].done == len(SYMBOLS), first.summary()
    with psycopg.connect(env) as conn:
        day = inventory.options_day(conn, EARLY_CLOSE)
    assert day.complete and sorted(day.stored) == SYMBOLS

    _at(monkeypatch, "2025-11-28T19:00:00Z")     # 14:00: the rerun finds nothing due
    _agree(env)
    with psycopg.connect(env) as conn:
        todo = nightly.plan(load_settings(), conn)
        report = status.report(conn, with_archive=False)
    assert todo.tasks == [] and report.check("options").verdict.name == "OK", report.check("options").summary
    again = nightly.run(load_settings())
    assert again.exit_code == 0 and again.headline == "nothing was due"
    assert _chain_times(env) == ["11-28 13:45"]         # one snapshot, not a second one at 14:00

    _at(monkeypatch, "2025-11-29T16:30:00Z")     # Saturday 11:30: nothing lost
    morning = nightly.run(load_settings())
    assert morning.exit_code == 0 and morning.failures == [], morning.summary()
    with psycopg.connect(env) as conn:
        options = status.report(conn, with_archive=False).check("options")
    assert options.verdict.name == "OK" and options.details["lost_symbols"] == {}, options.summary
    # The options dashboard says the same, at 14:00 that Friday and the next morning.
    from tests.integration.test_dashboards import run, table

    for now in ("2025-11-28T19:00:00Z", "2025-11-29T16:30:00Z"):
        verdict = table(run(env, "options_chains_dashboard.sql", f"NOW={now}"), "verdict")[0]
        assert verdict["verdict"] == "OK", (now, verdict)


def test_a_flat_file_source_that_cannot_be_listed_still_leaves_the_snapshot_taken(
        env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 unreachable at 16:30: the plan itself listed the files, so the nightly failed before the
    options step and the session's snapshot, which cannot be fetched later, was lost."""
    _at(monkeypatch, "2025-12-18T21:30:00Z")
    assert nightly.run(load_settings()).exit_code == 0
    monkeypatch.delenv("FLATFILES_MIRROR_DIR")
    for name, value in {"FLATFILES_ENDPOINT": "http://127.0.0.1:9", "FLATFILES_ACCESS_KEY_ID": "key",
                        "FLATFILES_SECRET_ACCESS_KEY": "secret"}.items():
        monkeypatch.setenv(name, value)
    _at(monkeypatch, "2025-12-19T21:30:00Z")
    result = nightly.run(load_settings())
    assert result.exit_code == 1 and sorted(result.details.steps) == ["a3", "options", "splits", "tickers",
                                                                      "watchlists"], result.summary()
    assert [f.unit for f in result.failures] == ["ohlcv"]
    assert result.failures[0].reason.startswith("the flat files cannot be listed: list us_stocks_sip/")
    assert "EndpointConnectionError" in result.failures[0].reason
    with psycopg.connect(env) as conn:
        assert sorted(inventory.options_day(conn, date(2025, 12, 19)).stored) == SYMBOLS
        todo = nightly.plan(load_settings(), conn)
    # Nothing is taken for unpublished: the source said nothing about which files it has.
    assert todo.tasks == [] and todo.unpublished == [] and todo.unlisted is not None
    assert f"  failed     {todo.unlisted}" in todo.render().splitlines()
    dry = nightly.run(load_settings(), dry_run=True)    # nothing else is due: nothing could be planned
    assert (dry.exit_code, dry.outcome.value, [f.unit for f in dry.failures]) == (2, "failed", ["ohlcv"])


def test_a_dry_run_that_cannot_list_the_flat_files_exits_1(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """It printed the plan's "failed" line and exited 0: a dry run watched by a script read as all planned."""
    monkeypatch.delenv("FLATFILES_MIRROR_DIR")
    for name, value in {"FLATFILES_ENDPOINT": "http://127.0.0.1:9", "FLATFILES_ACCESS_KEY_ID": "key",
                        "FLATFILES_SECRET_ACCESS_KEY": "secret"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19T21:30:00Z")
    proc = subprocess.run([sys.executable, "-m", "scripts.nightly", "--dry-run"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ}, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines if line.startswith("  failed")] == [
        "  failed     the flat files cannot be listed", "  failed ohlcv"]
    summary = next(line for line in lines if line.startswith("nightly: "))
    assert summary.startswith("nightly: partial · dry run, nothing changed: tickers, splits, watchlists, options, "
                              "a3; failed: ohlcv · 1 steps failed")
    dry = nightly.run(load_settings(), dry_run=True)
    assert (dry.exit_code, [f.unit for f in dry.failures]) == (1, ["ohlcv"])
    assert dry.failures[0].reason.startswith("the flat files cannot be listed: list us_stocks_sip/")
    with psycopg.connect(env) as conn:    # a dry run records nothing
        assert conn.execute("SELECT count(*) FROM ingest_runs").fetchone() == (0,)


def _a2_of(url: str, day: date) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "SELECT t.symbol, s.technical_indicators_json FROM daily_snapshots s JOIN tickers t ON t.id = s.ticker_id "
            "WHERE s.time = %s AND s.technical_indicators_json IS NOT NULL", (clock.close_of(day),)).fetchall())


def test_a_day_loaded_after_later_days_were_computed_recomputes_their_a2(
        env: str, monkeypatch: pytest.MonkeyPatch, mirror_dir: Path, tmp_path: Path) -> None:
    """The 18th's file fails (corrupt) while the 19th's loads: A2 of the 19th is computed without the
    18th's bars in its look-back window.  The nightly that loads the 18th recomputed only the 18th,
    leaving the 19th's indicators wrong for good while status said A2 was OK."""
    mirror = tmp_path / "mirror"
    shutil.copytree(mirror_dir, mirror)
    monkeypatch.setenv("FLATFILES_MIRROR_DIR", str(mirror))
    _at(monkeypatch, "2025-12-17T21:30:00Z")
    assert nightly.run(load_settings()).exit_code == 0
    eighteenth, nineteenth = date(2025, 12, 18), date(2025, 12, 19)
    good = next(mirror.rglob(f"{eighteenth}.csv.gz"))
    original = good.read_bytes()
    good.write_bytes(b"not gzip")
    _at(monkeypatch, "2025-12-19T21:30:00Z")
    failed = nightly.run(load_settings())
    assert failed.exit_code == 1 and "ohlcv" in [f.unit for f in failed.failures], failed.summary()
    without = _a2_of(env, nineteenth)
    _agree(env)

    good.write_bytes(original)
    _at(monkeypatch, "2025-12-19T21:45:00Z")
    with psycopg.connect(env) as conn:
        todo = nightly.plan(load_settings(), conn)
    a2 = next(t for t in todo.tasks if t.step == "a2")
    assert a2.args == {"dates": [eighteenth, nineteenth], "force": True}
    assert a2.reason == "2 dates, 1 of them recomputed after a late file (2025-12-18..2025-12-19)"
    assert nightly.run(load_settings()).exit_code == 0
    after = _a2_of(env, nineteenth)
    assert after != without and sorted(after) == sorted(without)
    # What the nightly left is what A2 computes now, the 18th's bars in the window.
    a2_local_ta.run(load_settings(), a2_local_ta.A2Params(dates=[nineteenth], force=True))
    assert _a2_of(env, nineteenth) == after


def test_days_missed_are_caught_up_and_their_snapshots_said_lost_once(
        env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Monday's nightly, then none until Friday evening: OHLCV, A2 and A3 catch up, the three
    snapshots that cannot be taken any more are reported lost (named, not counted as failed steps:
    the summary said "3 steps failed" beside "7 of 7 steps done"), status agrees with the plan at
    each point, and a rerun finds nothing due and takes no second snapshot."""
    _at(monkeypatch, "2025-12-15T21:30:00Z")
    _agree(env)
    assert nightly.run(load_settings()).exit_code == 0
    _agree(env)
    _at(monkeypatch, "2025-12-19T21:30:00Z")
    todo = _agree(env)
    lost = [date(2025, 12, 16), date(2025, 12, 17), date(2025, 12, 18)]
    assert todo.lost == lost and todo.unpublished == []
    result = nightly.run(load_settings())
    assert result.exit_code == 1 and result.headline.startswith("7 of 7 steps done"), result.summary()
    assert [(f.unit, f.counted) for f in result.failures] == [(f"options {d}", False) for d in lost]
    first = result.summary().splitlines()[0]
    assert "steps failed" not in first
    assert ", ".join(f"options {d} failed" for d in lost) in first
    assert result.details.steps["ohlcv"].details.files_loaded == 4
    with psycopg.connect(env) as conn:
        options = status.report(conn, with_archive=False).check("options")
    assert options.details["lost_recent"] == lost and options.verdict.name == "WARN"
    assert _agree(env).tasks == []

    _at(monkeypatch, "2025-12-19T22:00:00Z")
    again = nightly.run(load_settings())
    assert again.exit_code == 0 and again.headline == "nothing was due" and again.failures == []
    assert _chain_times(env) == ["12-15 16:30", "12-19 16:30"]     # each taken once


def test_a_holiday_or_weekend_evening_has_nothing_to_snapshot_and_loses_nothing(
        env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    evenings = {"2025-11-26T21:30:00Z": True,     # Wednesday before Thanksgiving
                "2025-11-27T21:30:00Z": False,    # Thanksgiving
                "2025-11-28T21:30:00Z": True,     # Friday, an early close
                "2025-11-29T21:30:00Z": False,    # Saturday
                "2025-11-30T21:30:00Z": False}    # Sunday
    for instant, session in evenings.items():
        _at(monkeypatch, instant)
        todo = _agree(env)
        assert ("options" in [t.step for t in todo.tasks]) is session and todo.lost == [], (instant, todo.render())
        result = nightly.run(load_settings())
        assert result.exit_code == 0 and result.failures == [], result.summary()
    assert _chain_times(env) == ["11-26 16:30", "11-28 16:30"]


def test_a_loss_is_reported_by_the_next_nightly_that_finishes(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Friday's evening nightly missed, Saturday morning's interrupted (SIGTERM, a reboot) before it
    said anything: the loss was never reported by a nightly, since "new since the previous nightly"
    counted from the interrupted one."""
    _at(monkeypatch, "2025-12-18T21:30:00Z")
    assert nightly.run(load_settings()).exit_code == 0

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    _at(monkeypatch, "2025-12-20T16:30:00Z")      # Saturday 11:30
    with monkeypatch.context() as m:
        m.setattr(nightly, "_run_task", interrupted)
        with pytest.raises(KeyboardInterrupt):
            nightly.run(load_settings())
    _at(monkeypatch, "2025-12-20T16:45:00Z")
    result = nightly.run(load_settings())
    assert [f.unit for f in result.failures] == ["options 2025-12-19"], result.summary()
    assert result.exit_code == 1
    # Reported once: the run after it has nothing new to say.
    _at(monkeypatch, "2025-12-20T17:00:00Z")
    assert nightly.run(load_settings()).failures == []


def test_a_stray_kapman_now_never_freezes_a_warehouse_on_real_time(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warehouse holding the live API's snapshots, and a shell left with KAPMAN_NOW: its nightly's
    first load recorded that instant as the database's clock for good, and every scheduled nightly
    (no KAPMAN_NOW) refused from then on ("this database follows a frozen clock"), each session's
    snapshot lost.  Now the nightly refuses in one line, and no load records such a clock."""
    from kapman.db import lifecycle
    from kapman.ingest import ohlcv, tickers

    with psycopg.connect(env, autocommit=True) as conn:     # an options run of the live API, yesterday
        conn.execute("INSERT INTO ingest_runs (run_id, job, started_at, finished_at, status, snapshot_time) "
                     "VALUES (gen_random_uuid(), 'options', now() - interval '1 day', now() - interval '1 day', "
                     "'ok', now() - interval '1 day')")
    _at(monkeypatch, "2025-12-19T21:30:00Z")
    proc = subprocess.run([sys.executable, "-m", "scripts.nightly", "-q", "--log-file", ""], cwd=ROOT,
                          env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: KAPMAN_NOW=2025-12-19T21:30:00Z in this shell, but this database follows real time and holds "
        "option snapshots taken on it; nothing was done",
        "hint: unset KAPMAN_NOW (it replays market days on a sandbox database)"], proc.stderr
    with psycopg.connect(env) as conn:
        assert lifecycle.read_clock(conn) == lifecycle.Clock("real")
        assert conn.execute("SELECT count(*) FROM ingest_runs WHERE job = 'nightly'").fetchone() == (0,)
    # A step run by hand on that clock counts from it for itself, and leaves the database on real time.
    tickers.run(load_settings(), tickers.TickersParams(force=True))
    assert ohlcv.run(load_settings(), ohlcv.OhlcvParams(mode="backfill", start=date(2025, 12, 18),
                                                        end=date(2025, 12, 19))).exit_code == 0
    with psycopg.connect(env) as conn:
        assert lifecycle.read_clock(conn) == lifecycle.Clock("real")


def test_a_reference_step_that_failed_is_planned_again_the_same_day(
        env: str, rest: SandboxRestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Splits failing (a 500 each try) while the tickers were refreshed: the rerun planned neither,
    since the three were planned on the tickers' refresh alone, so A2's adjustment waited a day.
    The rerun's splits arrive after the first run's A2: the rows they adjust are recomputed by it."""
    monkeypatch.setenv("POLYGON_MAX_RETRIES", "0")
    rest.faults.server_error(times=50, path_prefix="/v3/reference/splits")
    _at(monkeypatch, "2025-12-19T21:30:00Z")
    first = nightly.run(load_settings())
    assert first.exit_code == 1 and [f.unit for f in first.failures] == ["splits"], first.summary()
    rest.faults.clear()
    _at(monkeypatch, "2025-12-19T21:45:00Z")
    with psycopg.connect(env) as conn:
        todo = nightly.plan(load_settings(), conn)
    assert [t.step for t in todo.tasks] == ["splits"], todo.render()
    again = nightly.run(load_settings())
    assert again.exit_code == 0 and again.headline == "2 of 2 steps done (splits, a2)", again.summary()
    late = again.details.steps["a2"].details.split_late
    assert late and again.details.steps["a2"].details.rows_written == sum(map(len, late.values()))
    with psycopg.connect(env) as conn:
        assert nightly.plan(load_settings(), conn).tasks == []
        assert inventory.a2_split_stale(conn, date(2000, 1, 1)) == []
