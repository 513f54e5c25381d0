"""The nightly against the sandbox when a step fails: the others still run, the exit code says so; an
interrupted A2 history is resumed."""

from __future__ import annotations

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
    # A2 starts at the newest day whose file is due (the 18th's, due 11:00 today); the mirror
    # already lists the 19th, which is newer, so it is computed too.
    assert [d.isoformat() for d in plan.tasks[5].args["dates"]] == ["2025-12-18", "2025-12-19"]
    assert plan.lost == [] and plan.unpublished == []
    assert "snapshot of 2025-12-19's session" in plan.render()


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
    assert [t.args["dates"] for t in a2] == [owed]
    assert report.check("a2").details["missing"] == owed
