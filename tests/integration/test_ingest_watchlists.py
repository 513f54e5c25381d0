"""Step 4: watchlist reconciliation against a real TimescaleDB."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from kapman.errors import InputError
from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlists import ingest_watchlists
from kapman.providers.polygon import PolygonClient

pytestmark = pytest.mark.integration


def state(db: psycopg.Connection) -> dict[tuple[str, str], bool]:
    return {(w, s): a for w, s, a in db.execute("SELECT watchlist_id, symbol, active FROM watchlists").fetchall()}


def test_reconcile_adds_deactivates_reactivates(db: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nMSFT\nNVDA\n")
    (tmp_path / "etf.txt").write_text("SPY\nQQQ\n")
    first = ingest_watchlists(db, tmp_path, effective_date=date(2025, 12, 1))
    assert (first.lists["core"].added, first.lists["core"].active) == (3, 3)
    assert first.lists["etf"].added == 2
    (tmp_path / "core.txt").write_text("AAPL\nNVDA\nORCL\n")   # MSFT removed, ORCL added
    second = ingest_watchlists(db, tmp_path, effective_date=date(2025, 12, 2))
    core = second.lists["core"]
    assert (core.added, core.deactivated, core.reactivated, core.active) == (1, 1, 0, 3)
    (tmp_path / "core.txt").write_text("AAPL\nNVDA\nORCL\nMSFT\n")  # MSFT back
    third = ingest_watchlists(db, tmp_path, effective_date=date(2025, 12, 3))
    assert (third.lists["core"].reactivated, third.lists["core"].added) == (1, 0)
    (tmp_path / "etf.txt").unlink()                              # deleted file: list deactivated
    fourth = ingest_watchlists(db, tmp_path)
    assert (fourth.lists["etf"].deactivated, fourth.lists["etf"].active) == (2, 0)
    s = state(db)
    assert s[("etf", "SPY")] is False and s[("core", "MSFT")] is True and len(s) == 6   # nothing deleted
    row = db.execute("SELECT effective_date, source FROM watchlists WHERE symbol = 'MSFT'").fetchone()
    assert row[0] == date(2025, 12, 3) and row[1] == "core.txt"


def test_rerun_changes_nothing(db: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nMSFT\n")
    ingest_watchlists(db, tmp_path)
    again = ingest_watchlists(db, tmp_path)
    o = again.lists["core"]
    assert (o.added, o.reactivated, o.deactivated, o.active) == (0, 0, 0, 2)


def test_invalid_file_writes_nothing(db: psycopg.Connection, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nMSFT\n")
    ingest_watchlists(db, tmp_path)
    (tmp_path / "core.txt").write_text("AAPL\nNOT A SYMBOL\n")
    with pytest.raises(InputError, match="core.txt:2"):
        ingest_watchlists(db, tmp_path)
    assert state(db) == {("core", "AAPL"): True, ("core", "MSFT"): True}


def test_unresolved_symbols_are_reported(db: psycopg.Connection, polygon: PolygonClient, tmp_path: Path) -> None:
    ingest_tickers(db, polygon, force=True)
    (tmp_path / "core.txt").write_text("AAPL\nZZZQX\n")
    result = ingest_watchlists(db, tmp_path)
    assert result.unresolved == ["ZZZQX"]
    assert "ZZZQX" in result.summary()


def test_mvp_watchlist_resolves_fully_on_the_sandbox(reference_db: psycopg.Connection) -> None:
    # The runbook's Step 3 check: 0 rows.
    rows = reference_db.execute("""
        SELECT w.symbol FROM public.watchlists w LEFT JOIN public.tickers t ON t.symbol = w.symbol
        WHERE w.active = true AND t.id IS NULL ORDER BY w.symbol LIMIT 50;""").fetchall()
    assert rows == []
    count = reference_db.execute("SELECT COUNT(*) FROM public.watchlists WHERE active = true;").fetchone()[0]
    assert count >= 120


def test_cli(fresh_db: str, tmp_path: Path) -> None:
    (tmp_path / "core.txt").write_text("AAPL\nAAPL\n")
    env = {**os.environ, "KAPMAN_ENV_FILE": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_watchlists", "--db-url", fresh_db,
                           "--dir", str(tmp_path), "--effective-date", "2025-12-19"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "core: 1 active (1 added" in proc.stdout and "duplicates AAPL" in proc.stdout
    assert "1 active symbols have no ticker: AAPL" in proc.stdout
