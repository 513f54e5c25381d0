"""The migration runner: raw SQL files in ``db/migrations/`` applied in order, with a ledger.

Files are named ``NNNN_name.sql``; each is applied in its own transaction and recorded in
``public.schema_migrations`` with its SHA-256.  A file edited after it was applied is drift and
an error, never silently ignored.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from kapman import registry
from kapman.config import shipped
from kapman.db.errors import wrap
from kapman.errors import KapManError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = shipped("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(KapManError):
    """A migration file is misnamed, duplicated, failed to apply, or drifted."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def filename(self) -> str:
        return self.path.name


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in version order; misnamed or duplicate versions are errors."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files must be named NNNN_lower_snake.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version:04d} also used by {found[version].filename}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        found[version] = Migration(version, match.group(2), path, digest)
    if not found:
        raise MigrationError(f"no migrations in {directory}")
    return [found[v] for v in sorted(found)]


def applied(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) from the ledger (empty when the ledger does not exist)."""
    exists = conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, name, checksum FROM public.schema_migrations").fetchall()
    return {v: (n, c) for v, n, c in rows}


def check_drift(migrations: list[Migration], ledger: dict[int, tuple[str, str]]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(ledger.items()):
        current = by_version.get(version)
        if current is None:
            raise MigrationError(f"migration {version:04d}_{name} is applied but its file is gone",
                                 hint="restore the file; applied migrations are never removed")
        if current.checksum != checksum:
            raise MigrationError(
                f"{current.filename} was edited after it was applied (checksum "
                f"{checksum[:12]} in the ledger, {current.checksum[:12]} on disk)",
                hint=f"revert the edit and add a new migration, or repave with {registry.mend('rebuild')}")


def apply_pending(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every migration not yet in the ledger, each in its own transaction."""
    migrations = migrations if migrations is not None else discover()
    with conn.transaction():
        conn.execute(LEDGER_DDL)
    ledger = applied(conn)
    check_drift(migrations, ledger)
    done: list[Migration] = []
    for migration in migrations:
        if migration.version in ledger:
            continue
        log.info("applying %s", migration.filename)
        try:
            with conn.transaction():
                conn.execute(migration.sql)  # type: ignore[arg-type]  # trusted file, multi-statement
                conn.execute(
                    "INSERT INTO public.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum))
        except psycopg.Error as exc:
            raise MigrationError(f"{migration.filename}: {wrap(exc, 'applying migration').message}") from exc
        done.append(migration)
    return done
