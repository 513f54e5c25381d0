"""kapman migrate: pending migrations applied in place, every row kept, the schema a fresh rebuild's;
anything short of that changes nothing."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from kapman.db import lifecycle, upgrade
from kapman.db.connect import database_name
from kapman.db.fingerprint import fingerprint
from kapman.db.migrations import MIGRATIONS_DIR, Migration, MigrationError, discover
from kapman.db.rebuild import RebuildInProgress, ValidationFailed, build_once, rebuild_lock
from kapman.errors import DatabaseError, KapManError
from tests.support import database

pytestmark = pytest.mark.integration

AT = datetime(2025, 12, 19, 21, tzinfo=UTC)
TICKER = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """A copy of db/migrations the test may add to."""
    for m in discover(MIGRATIONS_DIR):
        shutil.copy(m.path, tmp_path / m.filename)
    return tmp_path


@pytest.fixture
def built_at(admin_url: str) -> Iterator[Callable[[list[Migration]], str]]:
    """``built_at(migrations)``: a scratch database built with just those migrations, holding a snapshot
    row, an option row and an indicator document (dropped afterwards)."""
    made: list[str] = []

    def build(migrations: list[Migration]) -> str:
        url = database.create_scratch(admin_url, "mig_")
        made.append(url)
        build_once(url, migrations, [])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO public.options_chains (time, ticker_id, expiration_date, strike_price, "
                         "option_type, contract_symbol, bid) VALUES (%s, %s, '2026-01-16', 100, 'C', %s, 1.25)",
                         (AT, TICKER, "O:ABC260116C00100000"))
            conn.execute("INSERT INTO public.daily_snapshots (time, ticker_id, technical_indicators_json) "
                         "VALUES (%s, %s, '{\"momentum\": {\"rsi\": {\"rsi\": 41.5}}}')", (AT, TICKER))
        return url

    yield build
    for url in made:
        database.drop_scratch(admin_url, url)


def _rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return [*conn.execute("SELECT time, ticker_id, bid, created_at FROM public.options_chains").fetchall(),
                *conn.execute("SELECT time, ticker_id, technical_indicators_json, created_at "
                              "FROM public.daily_snapshots").fetchall()]


def _ledger(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM public.schema_migrations ORDER BY 1")]


def test_the_pending_migration_is_applied_in_place_every_row_kept(
        built_at: Callable[[list[Migration]], str], rebuilt_db: str, run_main: Callable) -> None:
    every = discover(MIGRATIONS_DIR)
    url = built_at(every[:-1])
    rows = _rows(url)
    status = run_main("scripts.status", "--db-url", url)
    assert f"not applied: {every[-1].filename}" in status.stdout
    assert "fix: python -m scripts.db.migrate" in status.stdout

    ran = run_main("scripts.db.migrate", "--db-url", url)
    assert ran.returncode == 0, ran.stderr
    assert f"applied {every[-1].filename}; {len(every)} migrations" in ran.stdout
    assert "the same as a fresh rebuild's; no data touched" in ran.stdout
    assert _rows(url) == rows and _ledger(url) == [m.version for m in every]
    with psycopg.connect(rebuilt_db) as fresh, psycopg.connect(url) as conn:
        assert fingerprint(conn) == fingerprint(fresh)          # a rebuild's schema, exactly
        recorded = conn.execute("SELECT status, summary->'applied', finished_at - started_at > interval '0.1 s' "
                                "FROM public.ingest_runs WHERE job = 'migrate'").fetchall()
    assert recorded == [("ok", [every[-1].filename], True)]   # from its start (it records once done)

    again = run_main("scripts.db.migrate", "--db-url", url)
    assert again.returncode == 0 and f"is up to date: {len(every)} migrations applied" in again.stdout
    assert "FAIL  schema" not in run_main("scripts.status", "--db-url", url).stdout


def test_a_check_that_fails_after_the_migrations_leaves_everything_as_it_was(
        built_at: Callable[[list[Migration]], str], migrations_dir: Path) -> None:
    url = built_at(discover(MIGRATIONS_DIR))
    (migrations_dir / "0098_probe.sql").write_text("CREATE TABLE public.probe (id int);")
    (migrations_dir / "0099_daily.sql").write_text("CREATE TABLE public.ohlcv_daily (id int);")  # an invariant
    with pytest.raises(ValidationFailed, match=r"no ohlcv_daily.*; nothing was changed"):
        upgrade.upgrade(url, discover(migrations_dir))
    assert _ledger(url) == [m.version for m in discover(MIGRATIONS_DIR)]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('public.probe'), to_regclass('public.ohlcv_daily')").fetchone() \
            == (None, None)


def test_a_migration_that_fails_takes_the_earlier_pending_ones_back_with_it(
        built_at: Callable[[list[Migration]], str], migrations_dir: Path) -> None:
    url = built_at(discover(MIGRATIONS_DIR))
    (migrations_dir / "0098_probe.sql").write_text("CREATE TABLE public.probe (id int);")
    (migrations_dir / "0099_broken.sql").write_text("ALTER TABLE public.no_such_table ADD COLUMN x int;")
    with pytest.raises(MigrationError, match=r"^0099_broken.sql: .*no_such_table.*; nothing was changed$"):
        upgrade.upgrade(url, discover(migrations_dir))
    assert 98 not in _ledger(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('public.probe')").fetchone() == (None,)


def test_a_database_newer_than_this_kapman_or_with_an_edited_migration_is_refused(
        built_at: Callable[[list[Migration]], str], migrations_dir: Path) -> None:
    (migrations_dir / "0099_later.sql").write_text("CREATE TABLE public.later (id int);")
    url = built_at(discover(migrations_dir))
    with pytest.raises(KapManError, match=r"holds migration\(s\) this KapMan does not have: 0099_later"):
        upgrade.upgrade(url, discover(MIGRATIONS_DIR))
    edited = migrations_dir / "0002_reference.sql"
    edited.write_text(edited.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="0002_reference.sql was edited"):
        upgrade.upgrade(url, discover(migrations_dir))


def test_a_table_held_by_another_session_stops_it_after_its_wait_with_nothing_changed(
        built_at: Callable[[list[Migration]], str], monkeypatch: pytest.MonkeyPatch) -> None:
    every = discover(MIGRATIONS_DIR)
    built = [m for m in every if m.version < 13]     # 0013 drops indexes of daily_snapshots
    url = built_at(built)
    monkeypatch.setattr(upgrade, "LOCK_WAIT", "300ms")
    with psycopg.connect(url) as holder:
        holder.execute("SELECT count(*) FROM public.daily_snapshots")   # a reader's lock, to its commit
        with pytest.raises(DatabaseError, match=r"another session holds a table of .* waited 300ms; nothing was"):
            upgrade.upgrade(url, every)
    assert _ledger(url) == [m.version for m in built]
    assert [m.version for m in upgrade.upgrade(url, every).applied] \
        == [m.version for m in every if m.version >= 13]                     # once it is free


def test_a_database_that_kapman_did_not_build_is_refused(admin_url: str) -> None:
    url = database.create_scratch(admin_url, "mig_")
    try:
        with pytest.raises(KapManError, match=r"has no migration ledger .* not built by KapMan"):
            upgrade.upgrade(url)
    finally:
        database.drop_scratch(admin_url, url)


@pytest.mark.community
def test_on_compressed_chunks_the_upgrade_keeps_them_compressed_and_whole(
        built_at: Callable[[list[Migration]], str]) -> None:
    every = discover(MIGRATIONS_DIR)
    url = built_at(every[:-1])
    # The jobs paused as a load pauses them: the scheduled compression job would compress a chunk
    # meanwhile, and compress_chunk fails with "already compressed" once it has waited for it.
    with lifecycle.policies_paused(url), psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('public.daily_snapshots') c")
        conn.execute("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('public.options_chains') c")
    rows = _rows(url)
    assert [m.version for m in upgrade.upgrade(url, every).applied] == [every[-1].version]
    assert _rows(url) == rows
    with psycopg.connect(url) as conn:
        states = conn.execute("SELECT hypertable_name, is_compressed FROM timescaledb_information.chunks "
                              "WHERE hypertable_name IN ('daily_snapshots', 'options_chains') ORDER BY 1").fetchall()
    assert states == [("daily_snapshots", True), ("options_chains", True)]


def test_a_sandbox_warehouse_keeps_its_frozen_clock_whatever_the_shell_runs_on(
        built_at: Callable[[list[Migration]], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock a warehouse recorded is its own: an upgrade from a shell on real time neither fails
    the rebuild's clock check (which asks a new database for the shell's clock) nor changes it."""
    every = discover(MIGRATIONS_DIR)
    monkeypatch.setenv("KAPMAN_NOW", AT.isoformat())
    url = built_at(every[:-1])
    monkeypatch.delenv("KAPMAN_NOW")
    assert [m.version for m in upgrade.upgrade(url, every).applied] == [every[-1].version]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT mode, frozen_at FROM public.lifecycle_clock").fetchall() == [("frozen", AT)]


def test_it_never_runs_beside_a_rebuild_of_the_same_database(
        built_at: Callable[[list[Migration]], str], admin_url: str) -> None:
    every = discover(MIGRATIONS_DIR)
    url = built_at(every[:-1])
    with psycopg.connect(admin_url, autocommit=True) as rebuilding, rebuild_lock(rebuilding, database_name(url)):
        with pytest.raises(RebuildInProgress, match="a rebuild or an upgrade of database .* already running"):
            upgrade.upgrade(url, every)
    assert _ledger(url) == [m.version for m in every[:-1]]


def _decline(loss: object) -> None:
    raise KapManError("not now")


def test_an_upgrade_right_after_a_rebuild_is_not_refused_as_beside_one(
        built_at: Callable[[list[Migration]], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuild's lock was left to its connection's close: on a loaded server the session lingers a
    moment, and the upgrade that followed at once was refused as if a rebuild still ran."""
    from kapman.db import rebuild as rebuild_module
    from tests.support.sessions import slow_to_end

    every = discover(MIGRATIONS_DIR)
    url = built_at(every[:-1])
    opened: list[psycopg.Connection] = []
    try:
        with monkeypatch.context() as patched:
            patched.setattr(rebuild_module, "connect", slow_to_end(opened))
            with pytest.raises(KapManError, match="not now"):   # a rebuild stopped at its prompt
                rebuild_module.rebuild(url, confirm=_decline)
        assert [m.version for m in upgrade.upgrade(url, every).applied] == [every[-1].version]
    finally:
        for conn in opened:
            conn.close()


@pytest.mark.community
def test_a_policy_a_migration_adds_to_a_frozen_warehouse_is_paused_as_its_others(
        built_at: Callable[[list[Migration]], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 0012 adds daily_snapshots' policies; on a sandbox's frozen clock they must wait, as the
    rebuild leaves every policy job (the background jobs would drop and compress on the server's clock)."""
    every = discover(MIGRATIONS_DIR)
    monkeypatch.setenv("KAPMAN_NOW", AT.isoformat())
    url = built_at([m for m in every if m.version < 12])
    monkeypatch.delenv("KAPMAN_NOW")
    assert [m.version for m in upgrade.upgrade(url, every).applied] == [m.version for m in every if m.version >= 12]
    with psycopg.connect(url) as conn:
        jobs = conn.execute("SELECT hypertable_name, scheduled FROM timescaledb_information.jobs "
                            "WHERE hypertable_schema = 'public' ORDER BY 1").fetchall()
    assert ("daily_snapshots", False) in jobs and all(not scheduled for _, scheduled in jobs), jobs
