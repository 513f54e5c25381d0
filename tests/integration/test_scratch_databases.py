"""The suite's own databases: a copy of the session's migrated template (``fresh_db`` and the
fixtures built on ``new_rebuilt_db``) is what a rebuild at the same moment leaves."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from kapman.db import lifecycle
from kapman.db.capabilities import server_info
from kapman.db.fingerprint import fingerprint
from kapman.db.rebuild import rebuild
from kapman.db.validate import validate
from tests.support import database

pytestmark = pytest.mark.integration


def state(url: str) -> dict[str, Any]:
    """Everything a test could tell a rebuilt database by: schema fingerprint, validation, the
    recorded clock, per-database settings, rows per table, the migration ledger."""
    with psycopg.connect(url) as c:
        tables = [r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                          "ORDER BY 1").fetchall()]
        return {
            "fingerprint": fingerprint(c),
            "checks": [(ch.name, ch.ok, ch.detail) for ch in validate(c, server_info(c)).checks],
            "clock": lifecycle.read_clock(c),
            "settings": [[x for x in config if x != database.SCRATCH_SETTING] for (config,) in c.execute(
                "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d "
                "ON d.oid = s.setdatabase WHERE d.datname = current_database()").fetchall()],
            "rows": {t: c.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(t))).fetchone()
                     for t in tables},
            "ledger": c.execute("SELECT version, name, checksum FROM public.schema_migrations ORDER BY 1").fetchall(),
        }


def settings(url: str) -> list[str]:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                        "WHERE d.datname = current_database() AND s.setrole = 0").fetchone()
    return list(row[0]) if row else []


@pytest.mark.parametrize("now", [None, "2025-12-19"], ids=["real-clock", "frozen-clock"])
def test_a_copy_of_the_template_is_what_a_rebuild_leaves(
        now: str | None, new_rebuilt_db: database.NewRebuiltDb, admin_url: str, dropper: database.Dropper,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if now is None:
        monkeypatch.delenv("KAPMAN_NOW", raising=False)
    else:
        monkeypatch.setenv("KAPMAN_NOW", now)
    rebuilt = database.scratch_url(admin_url, "rebuilt_")
    try:
        rebuild(rebuilt)
        with new_rebuilt_db("copy_") as copy:
            assert state(copy) == state(rebuilt)
            # beside the suite's own setting, which the rebuilt database does not carry
            assert database.SCRATCH_SETTING in settings(copy) and database.SCRATCH_SETTING not in settings(rebuilt)
        with psycopg.connect(rebuilt) as c:
            assert lifecycle.read_clock(c).mode == ("real" if now is None else "frozen")
    finally:
        dropper.drop(rebuilt)


def test_the_template_takes_no_connections(migrated_template: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(migrated_template, connect_timeout=5).close()
