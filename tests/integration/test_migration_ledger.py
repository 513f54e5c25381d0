"""The ledger against a real database: pending migrations apply, drift is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from kapman.db.migrations import MIGRATIONS_DIR, MigrationError, apply_pending, discover
from tests.support import database

pytestmark = pytest.mark.integration


def test_apply_pending_is_incremental_and_refuses_drift(admin_url: str, tmp_path: Path) -> None:
    for m in discover(MIGRATIONS_DIR):
        shutil.copy(m.path, tmp_path / m.filename)
    url = database.create_scratch(admin_url, "mig_")
    try:
        with psycopg.connect(url) as conn:
            assert len(apply_pending(conn, discover(tmp_path))) == len(discover(MIGRATIONS_DIR))
            assert apply_pending(conn, discover(tmp_path)) == []          # nothing pending
            (tmp_path / "0099_extra.sql").write_text("CREATE TABLE public.extra_probe (id int);")
            assert [m.version for m in apply_pending(conn, discover(tmp_path))] == [99]
            edited = tmp_path / "0002_reference.sql"
            edited.write_text(edited.read_text() + "\n-- edited\n")
            with pytest.raises(MigrationError, match="0002_reference.sql was edited"):
                apply_pending(conn, discover(tmp_path))
    finally:
        database.drop_scratch(admin_url, url)
