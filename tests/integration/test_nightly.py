"""The nightly against the sandbox when a step fails: the others still run, the exit code says so; an
interrupted A2 history is resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest

from kapman.clock import parse_instant
from kapman.config import load_settings
from kapman.jobs import a2_local_ta
from kapman.ops import nightly, status
from kapman.progress import NullProgress
from kapman.sandbox.rest import SandboxRestServer
from kapman.step import Outcome

pytestmark = pytest.mark.integration

EVENING = "2025-12-19T21:30:00Z"     # Friday 16:30 New York, after the close


@pytest.fixture
def env(fresh_db: str, rest: SandboxRestServer, mirror_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "core.txt").write_text("AAPL\nMSFT\nSPY\n")
    for name, value in {"DATABASE_URL": fresh_db, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
                        "FLATFILES_MIRROR_DIR": str(mirror_dir), "KAPMAN_WATCHLISTS_DIR": str(tmp_path),
                        "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_NOW": EVENING}.items():
        monkeypatch.setenv(name, value)
    return fresh_db


def test_a_failing_symbol_leaves_the_other_steps_done(env: str, rest: SandboxRestServer) -> None:
    rest.faults.forbid("MSFT")
    result = nightly.run(load_settings(), NullProgress())
    assert result.outcome is Outcome.PARTIAL and result.exit_code == 1
    assert [f.unit for f in result.failures] == ["options"]
    assert result.failures[0].reason.startswith("1 symbols failed (first MSFT: ")
    steps = result.details.steps
    assert set(steps) == {"tickers", "splits", "watchlists", "ohlcv", "options", "a2", "a3"}
    assert steps["options"].done == 2 and not steps["ohlcv"].failures
    assert result.headline == "6 of 7 steps done (tickers, splits, watchlists, ohlcv, a2, a3); failed: options"
    with psycopg.connect(env) as conn:
        a3 = conn.execute("SELECT count(*) FROM daily_snapshots WHERE dealer_metrics_json IS NOT NULL "
                          "AND time = '2025-12-19 21:00+00'").fetchone()[0]
        report = status.report(conn)
    assert a3 == 3                                  # MSFT's row says INVALID (no snapshot)
    assert report.check("runs").details["options"]["status"] == "partial"
    assert report.check("runs").fix == "python -m scripts.nightly ; python -m scripts.ingest_options"


def test_the_plan_on_an_empty_warehouse_after_the_close(env: str) -> None:
    with psycopg.connect(env) as conn:
        plan = nightly.plan(load_settings(), conn)
    steps = [t.step for t in plan.tasks]
    assert steps == ["tickers", "splits", "watchlists", "ohlcv", "options", "a2", "a3"]
    assert [d.isoformat() for d in plan.tasks[6].args["dates"]] == ["2025-12-19"]   # the snapshot to be taken
    ohlcv = plan.tasks[3]
    assert ohlcv.args["end"].isoformat() == "2025-12-19" and ohlcv.reason.startswith("flat files ")
    # A warehouse without any A2 is owed the indicator history (it used to start at the newest due
    # day, leaving charts of a few points after a repave followed by nightlies): A2's --history,
    # which takes every date with bars when it runs, after this nightly's OHLCV step loaded them.
    a2 = plan.tasks[5]
    assert a2.args == {"history": True}
    assert a2.reason == "the indicator history: every date of the retention window with bars (no A2 yet)"
    assert plan.lost == [] and plan.unpublished == []
    assert "snapshot of 2025-12-19's session" in plan.render()
    assert f"  a2         {a2.reason}" in plan.render().splitlines()


def test_the_plan_without_the_history_starts_a2_at_the_newest_due_day(env: str) -> None:
    with psycopg.connect(env) as conn:
        plan = nightly.plan(load_settings(), conn, history=False)
    a2 = next(t for t in plan.tasks if t.step == "a2")
    # The newest day whose file is due (the 18th's, due 11:00 today); the mirror already lists the
    # 19th, which is newer, so it is computed too.
    assert [d.isoformat() for d in a2.args["dates"]] == ["2025-12-18", "2025-12-19"]
    assert a2.reason == "2 dates with bars and no A2 (2025-12-18..2025-12-19)"


@pytest.mark.parametrize("flags, a2_task", [
    ([], {"step": "a2", "history": True,
          "reason": "the indicator history: every date of the retention window with bars (no A2 yet)"}),
    (["--no-history"], {"step": "a2", "dates": ["2025-12-18", "2025-12-19"],
                        "reason": "2 dates with bars and no A2 (2025-12-18..2025-12-19)"})],
    ids=["history", "no-history"])
def test_the_dry_run_says_which_a2_it_plans(env: str, flags: list[str], a2_task: dict[str, object]) -> None:
    proc = subprocess.run([sys.executable, "-m", "scripts.nightly", "--dry-run", "--json", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads(proc.stdout)["plan"]["tasks"]
    assert [t for t in tasks if t["step"] == "a2"] == [a2_task]
    with psycopg.connect(env) as conn:
        assert conn.execute("SELECT count(*) FROM ingest_runs").fetchone()[0] == 0   # type: ignore[index]


# After a repave, the runbook's Step 7 starts with run_a2_local_ta --history; killed (a real process,
# SIGKILL) before it wrote its first dates and followed by the runbook's dated A2 command, the history is
# still owed: the nightly plans every date of the window with bars and no A2, and status agrees.
SESSION = date(2025, 12, 19)
ROOT = Path(__file__).resolve().parents[2]


def _kill_history_when_it_runs(url: str) -> None:
    """``run_a2_local_ta --history`` as the runbook runs it, killed once its run is in the ledger."""
    proc = subprocess.Popen([sys.executable, "-m", "scripts.run_a2_local_ta", "--history", "-q"], cwd=ROOT,
                            env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with psycopg.connect(url, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM ingest_runs WHERE job = 'a2' AND status = 'running'").fetchone():
                    break
            if proc.poll() is not None:
                pytest.fail(f"the history ended first (exit {proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.05)
        else:
            pytest.fail("the history run never started")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


def test_a_history_killed_early_then_a_dated_run_is_resumed_by_the_nightly(env: str) -> None:
    from kapman.ingest import ohlcv, tickers

    tickers.run(load_settings(), tickers.TickersParams(force=True))
    ohlcv.run(load_settings(), ohlcv.OhlcvParams(mode="backfill", start=date(2025, 9, 1), end=SESSION))
    _kill_history_when_it_runs(env)
    # The runbook's next A2 command: one dated run, which alone would make A2 "begin" on its date.
    a2_local_ta.run(load_settings(), a2_local_ta.A2Params(dates=[SESSION]))
    with psycopg.connect(env) as conn:
        bars = [r[0] for r in conn.execute("SELECT DISTINCT date FROM ohlcv ORDER BY 1")]
        computed = {r[0] for r in conn.execute(
            "SELECT DISTINCT (time AT TIME ZONE 'America/New_York')::date FROM daily_snapshots "
            "WHERE technical_indicators_json IS NOT NULL")}
        todo = nightly.plan(load_settings(), conn)
        report = status.report(conn, parse_instant(EVENING), with_archive=False)
    owed = [d for d in bars if d not in computed]
    assert SESSION in computed and len(owed) >= len(bars) // 2 and owed[0] == date(2025, 9, 2)
    a2 = [t for t in todo.tasks if t.step == "a2"]
    # The session again too: this nightly loads the mirror's August files, in its look-back window.
    assert [t.args for t in a2] == [{"dates": [*owed, SESSION], "force": True}]
    assert report.check("a2").details["missing"] == owed


def test_the_nightly_computes_the_indicator_history_on_a_warehouse_without_a2(env: str) -> None:
    """A repave followed by nightlies only: the first nightly computes A2 for every date with bars
    (it computed the newest due day only, and status said OK), and status agreed beforehand."""
    from kapman.ingest import ohlcv, tickers

    tickers.run(load_settings(), tickers.TickersParams(force=True))
    ohlcv.run(load_settings(), ohlcv.OhlcvParams(mode="backfill", start=date(2025, 10, 1), end=SESSION))
    with psycopg.connect(env) as conn:
        before = status.report(conn, parse_instant(EVENING), with_archive=False).check("a2")
        loaded = [r[0] for r in conn.execute("SELECT DISTINCT date FROM ohlcv ORDER BY 1")]
    assert before.verdict.name == "WARN" and before.details["missing"] == loaded and len(loaded) > 50
    assert before.fix == "python -m scripts.nightly (or python -m scripts.run_a2_local_ta --history)"

    result = nightly.run(load_settings(), NullProgress())
    assert "a2" in result.details.steps and not result.details.steps["a2"].failures
    with psycopg.connect(env) as conn:
        per_date = conn.execute("""
            SELECT o.date, o.n, coalesce(s.n, 0) FROM
              (SELECT date, count(*) AS n FROM ohlcv GROUP BY date) o
              LEFT JOIN (SELECT (time AT TIME ZONE 'America/New_York')::date AS date, count(*) AS n
                         FROM daily_snapshots WHERE technical_indicators_json IS NOT NULL GROUP BY 1) s
                ON s.date = o.date ORDER BY 1""").fetchall()
        ledger = conn.execute("SELECT status, args->>'history' FROM ingest_runs WHERE job = 'a2'").fetchall()
        after = status.report(conn, parse_instant(EVENING), with_archive=False).check("a2")
        again = nightly.plan(load_settings(), conn)
    # The nightly's OHLCV step loaded the mirror's days before October too: the history took them.
    assert per_date[0][0] < loaded[0] and per_date[-1][0] == SESSION
    assert [(d, bars) for d, bars, _ in per_date] == [(d, a2) for d, _, a2 in per_date]
    assert ledger == [("ok", "true")]
    assert after.verdict.name == "OK" and after.details["missing"] == [], after.summary
    assert after.details["history_not_computed"] == 0 and "earlier dates" not in after.summary
    assert "a2" not in [t.step for t in again.tasks]
