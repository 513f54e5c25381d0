"""Destruction is confirmed (issue 13.5), one rebuild at a time (14.12), the rebuild on the ledger (12)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterator

import psycopg
import pytest

from kapman.archive import archived_snapshot_count
from kapman.db import destruction
from kapman.db.rebuild import RebuildInProgress, rebuild
from tests.support import database

pytestmark = pytest.mark.integration

REBUILD = [sys.executable, "-m", "scripts.db.a5_deterministic_rebuild"]


@pytest.fixture
def filled(new_rebuilt_db: database.NewRebuiltDb) -> Iterator[str]:
    """A rebuilt scratch database with a ticker, two bars and one option snapshot of two contracts."""
    with new_rebuilt_db("conf_") as url:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("INSERT INTO tickers (id, symbol) VALUES ('00000000-0000-0000-0000-000000000001', 'AAA')")
            c.execute("INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume) VALUES "
                      "('00000000-0000-0000-0000-000000000001', '2025-12-18', 1, 1, 1, 1, 1), "
                      "('00000000-0000-0000-0000-000000000001', '2025-12-19', 1, 1, 1, 1, 1)")
            c.execute("INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price, option_type, "
                      "contract_symbol) VALUES "
                      "('2025-12-19 21:00Z', '00000000-0000-0000-0000-000000000001', '2026-01-16', 100, 'C', 'O:1'), "
                      "('2025-12-19 21:00Z', '00000000-0000-0000-0000-000000000001', '2026-01-16', 100, 'P', 'O:2')")
        yield url


def _tickers(url: str) -> int:
    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*) FROM tickers").fetchone()[0]  # type: ignore[index]


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url}


def test_loss_counts_rows_per_table_and_irreplaceable_snapshots(filled: str) -> None:
    name = filled.rsplit("/", 1)[1]
    loss = destruction.measure(filled, name, exists=True, archived=archived_snapshot_count)
    assert {t: n for t, n in loss.rows.items() if n} == {"tickers": 1, "ohlcv": 2, "options_chains": 2}
    assert "schema_migrations" not in loss.rows and loss.holds_data
    # the archive (the session's scratch directory) holds none of them
    assert (loss.snapshots, loss.archived, loss.irreplaceable) == (1, 0, 1)
    assert loss.lines()[-1] == ("  1 of 1 option chains (1 snapshot, a chain per symbol) cannot be fetched again "
                                "(the archive holds 0)")


def test_loss_subtracts_what_the_archive_holds(filled: str) -> None:
    loss = destruction.measure(filled, "x", exists=True, archived=lambda conn: 1)   # the caller's census
    assert (loss.snapshots, loss.archived, loss.irreplaceable) == (1, 1, 0)
    assert destruction.measure(filled, "x", exists=True).archived is None          # no archive asked


def test_without_a_terminal_a_database_with_data_needs_yes(filled: str) -> None:
    proc = subprocess.run(REBUILD, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env=_env(filled))
    assert proc.returncode == 2, proc.stderr
    name = filled.rsplit("/", 1)[1]
    assert (f"error: database {name} holds data (ohlcv 2, options_chains 2, tickers 1 rows; 1 option "
            "chain cannot be fetched again) and the rebuild would destroy it") in proc.stderr
    assert "--yes" in proc.stderr and "Traceback" not in proc.stderr
    assert _tickers(filled) == 1


def test_yes_destroys_and_the_new_ledger_holds_the_rebuild(filled: str) -> None:
    proc = subprocess.run([*REBUILD, "--yes", "--json"], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=_env(filled))
    assert proc.returncode == 0, proc.stderr
    assert _tickers(filled) == 0
    import json

    out = json.loads(proc.stdout)
    assert out["status"] == "ok" and out["destroyed"]["rows"]["ohlcv"] == 2
    with psycopg.connect(filled) as c:
        rows = c.execute("SELECT job, status, finished_at > started_at, args->>'yes', summary->>'fingerprint' "
                         "FROM ingest_runs").fetchall()
    assert rows == [("rebuild", "ok", True, "true", out["fingerprint"])]


def _on_a_terminal(url: str, answer: str) -> tuple[int, str]:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(REBUILD, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_env(url))
        os.write(master, (answer + "\n").encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
    return proc.returncode, out + err


def test_on_a_terminal_typing_the_name_confirms(filled: str) -> None:
    code, output = _on_a_terminal(filled, filled.rsplit("/", 1)[1])
    assert code == 0, output
    assert "holds data that the rebuild destroys" in output and "options_chains" in output
    assert _tickers(filled) == 0


def test_on_a_terminal_anything_else_stops(filled: str) -> None:
    code, output = _on_a_terminal(filled, "kapman")
    assert code == 2
    assert "the rebuild was not confirmed" in output and "unchanged" in output
    assert _tickers(filled) == 1


def test_an_empty_database_needs_no_confirmation(new_rebuilt_db: database.NewRebuiltDb) -> None:
    with new_rebuilt_db("empty_") as url:
        proc = subprocess.run(REBUILD, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                              env=_env(url))
        assert proc.returncode == 0, proc.stderr


def test_a_second_rebuild_of_the_same_database_is_refused(filled: str) -> None:
    """The second rebuild arrives while the first one holds the lock (here: waits in its confirmation)."""
    name = filled.rsplit("/", 1)[1]
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        def hold(loss: destruction.Loss) -> None:
            inside.set()
            release.wait(60)
        try:
            rebuild(filled, confirm=hold)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(60)
        with pytest.raises(RebuildInProgress) as info:
            rebuild(filled)
        assert info.value.message == (f"a rebuild or an upgrade of database {name} is already running in "
                                      "another session")
        proc = subprocess.run([*REBUILD, "--yes"], capture_output=True, text=True, timeout=120, env=_env(filled))
        assert proc.returncode == 2
        assert "is already running" in proc.stderr and "pg_database_datname_index" not in proc.stderr
    finally:
        release.set()
        thread.join()
    assert not errors
    assert _tickers(filled) == 0


def test_two_rebuilds_racing(filled: str) -> None:
    """Started together: each either rebuilds or says another one is running; never a 23505."""
    procs = [subprocess.Popen([*REBUILD, "--yes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(filled)) for _ in range(2)]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        results.append((p.returncode, err))
    for code, err in results:
        assert code == 0 or (code == 2 and "is already running" in err), err
        assert "duplicate key" not in err
    assert any(code == 0 for code, _ in results)
