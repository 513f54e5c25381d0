"""Runbook Step 2: the A5 rebuild and its verification SQL, against a real TimescaleDB."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from kapman.db import schema
from kapman.db.capabilities import server_info
from kapman.db.connect import with_database
from kapman.db.rebuild import rebuild
from kapman.db.validate import validate
from kapman.errors import KapManError
from tests.support import database

pytestmark = pytest.mark.integration


def test_extensions_present(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT extname, extversion FROM pg_extension "
                        "WHERE extname IN ('timescaledb','uuid-ossp') ORDER BY extname;").fetchall()
    assert [r[0] for r in rows] == ["timescaledb", "uuid-ossp"]
    assert rows[0][1].startswith("2.")


def test_table_set_is_exactly_the_schema(conn: psycopg.Connection) -> None:
    rows = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_schema = 'public' ORDER BY table_name;").fetchall()
    assert {r[1] for r in rows} == schema.EXPECTED_TABLES


RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbooks" / "README.md"
WORDS = {15: "fifteen", 25: "twenty-five"}


def test_the_runbook_states_the_rebuilds_checks_and_tables(conn: psycopg.Connection, license_name: str) -> None:
    """Step 2 followed literally: it said twenty-two [ok] lines on the community edition (25 are
    printed), listed ten tables (lifecycle_clock is the eleventh) and 9 migrations."""
    text = " ".join(RUNBOOK.read_text().split())
    checks = len(validate(conn, server_info(conn)).checks)
    apache, community = re.search(r"ends with (\S+) `\[ok\]` lines \((\S+) on the community edition", text).groups()  # type: ignore[union-attr]
    assert (community if license_name == "timescale" else apache) == WORDS[checks]
    listed = re.search(r"Expected: both extensions; the tables `([^`]+)`", text).group(1)  # type: ignore[union-attr]
    assert listed.split(", ") == sorted(schema.EXPECTED_TABLES)
    migrations = conn.execute("SELECT count(*) FROM public.schema_migrations").fetchone()[0]  # type: ignore[index]
    assert f"rebuilt kapman: {migrations} migrations, 15 checks passed" in text


def test_hypertables_and_dimensions(conn: psycopg.Connection) -> None:
    rows = conn.execute("""
        SELECT hypertable_schema, hypertable_name, num_chunks, compression_enabled
        FROM timescaledb_information.hypertables
        WHERE hypertable_schema = 'public' AND hypertable_name IN ('ohlcv', 'options_chains')
        ORDER BY hypertable_name;""").fetchall()
    assert [(r[1], r[2]) for r in rows] == [("ohlcv", 0), ("options_chains", 0)]
    dims = conn.execute("""
        SELECT hypertable_name, column_name, dimension_type, time_interval
        FROM timescaledb_information.dimensions
        WHERE hypertable_schema = 'public' AND hypertable_name IN ('ohlcv','options_chains')
        ORDER BY hypertable_name, dimension_number;""").fetchall()
    assert [(d[0], d[1], d[2], d[3].days) for d in dims] == [
        ("ohlcv", "date", "Time", 30), ("options_chains", "time", "Time", 7)]


def test_no_forbidden_objects(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_name = 'ohlcv_daily';").fetchall() == []
    assert conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='public' "
                        "AND table_name ILIKE '%contract%' ORDER BY table_name;").fetchall() == []
    assert conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'").fetchall() == []


def test_every_data_table_is_empty(conn: psycopg.Connection) -> None:
    for table in sorted(schema.EXPECTED_TABLES - schema.METADATA_TABLES):
        assert conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()[0] == 0, table


def test_migration_ledger_matches_files(conn: psycopg.Connection) -> None:
    from kapman.db.migrations import discover

    ledger = conn.execute("SELECT version, checksum FROM public.schema_migrations ORDER BY version").fetchall()
    assert ledger == [(m.version, m.checksum) for m in discover()]


def test_fingerprint_identical_across_three_rebuilds(admin_url: str) -> None:
    url = database.create_scratch(admin_url, "fp_")
    try:
        result = rebuild(url, iterations=3)
        assert len(result.iterations) == 3
        assert len({i.fingerprint for i in result.iterations}) == 1
        assert all(i.report.ok for i in result.iterations)
    finally:
        database.drop_scratch(admin_url, url)


def test_rebuild_destroys_existing_data(admin_url: str) -> None:
    url = database.create_scratch(admin_url, "wipe_")
    try:
        first = rebuild(url)
        with psycopg.connect(url) as c:
            c.execute("INSERT INTO public.tickers (id, symbol) VALUES (uuid_generate_v4(), 'ZZZ')")
        second = rebuild(url)  # terminates sessions, drops, recreates: the row is gone
        assert second.fingerprint == first.fingerprint
        with psycopg.connect(url) as c:
            assert c.execute("SELECT count(*) FROM public.tickers").fetchone()[0] == 0
    finally:
        database.drop_scratch(admin_url, url)


def test_rebuild_terminates_other_sessions(admin_url: str) -> None:
    url = database.create_scratch(admin_url, "busy_")
    try:
        rebuild(url)
        idle = psycopg.connect(url)
        rebuild(url)
        assert idle.closed or idle.broken or _is_dead(idle)
    finally:
        database.drop_scratch(admin_url, url)


def _is_dead(c: psycopg.Connection) -> bool:
    try:
        c.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_refuses_maintenance_database(admin_url: str) -> None:
    with pytest.raises(KapManError, match="maintenance database"):
        rebuild(with_database(admin_url, "postgres"))


def test_cli_prints_fingerprint_and_never_the_password(admin_url: str) -> None:
    url = database.create_scratch(admin_url, "cli_")
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "scripts.db.a5_deterministic_rebuild", "--iterations", "2",
             "--print-migrations", "--db-url", url], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "identical across 2 rebuild(s)" in proc.stdout
        assert "0005_lifecycle_policies.sql" in proc.stdout
        if password:
            assert password not in proc.stdout + proc.stderr
    finally:
        database.drop_scratch(admin_url, url)


def test_cli_unreachable_server_is_exit_2_with_hint() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.db.a5_deterministic_rebuild",
         "--db-url", "postgresql://kapman:s3cretpw@127.0.0.1:1/kapman"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot connect" in proc.stderr and "hint:" in proc.stderr
    assert "s3cretpw" not in proc.stdout + proc.stderr


def test_symbols_are_case_sensitive_and_validation_checks_it(fresh_db: str) -> None:
    from kapman.db.capabilities import server_info
    from kapman.db.validate import validate
    from kapman.ids import ticker_id

    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert {ch.name: (ch.ok, ch.detail) for ch in validate(c, server_info(c)).checks}[
            "case-sensitive symbols"] == (True, "tickers, watchlists")
        for symbol in ("AAP", "AAp", "TPC", "TpC"):
            c.execute("INSERT INTO tickers (id, symbol) VALUES (%s, %s)", (ticker_id(symbol), symbol))
            c.execute("INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) "
                      "VALUES ('mvp', %s, 'mvp.txt', '2025-12-19')", (symbol,))
        assert c.execute("SELECT symbol FROM tickers ORDER BY symbol COLLATE \"C\"").fetchall() == [
            ("AAP",), ("AAp",), ("TPC",), ("TpC",)]
        for bad in ("", " AAPL"):
            with pytest.raises(psycopg.errors.CheckViolation, match="tickers_symbol_nonblank"):
                c.execute("INSERT INTO tickers (id, symbol) VALUES (uuid_generate_v4(), %s)", (bad,))
            with pytest.raises(psycopg.errors.CheckViolation, match="watchlists_symbol_nonblank"):
                c.execute("INSERT INTO watchlists (watchlist_id, symbol, source, effective_date) "
                          "VALUES ('mvp', %s, 'mvp.txt', '2025-12-19')", (bad,))
        c.execute("DELETE FROM watchlists WHERE symbol <> upper(symbol)")
        c.execute("ALTER TABLE tickers ADD CONSTRAINT tickers_symbol_upper CHECK (symbol = upper(symbol)) NOT VALID")
        check = {ch.name: ch for ch in validate(c, server_info(c), fresh=False).checks}[
            "case-sensitive symbols"]
        assert not check.ok and check.detail == "case-folding checks ['tickers_symbol_upper'], missing []"
