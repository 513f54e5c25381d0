"""The nightly against the sandbox when a step fails: the others still run, the exit code says so."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from kapman.config import load_settings
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
