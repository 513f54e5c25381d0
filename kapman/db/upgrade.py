"""Pending migrations applied to a database in place: its data kept, its schema then proved the
same as a fresh rebuild's.

A rebuild drops everything, option snapshots included, so a schema change that only adds to or
tunes the schema (an index, a policy, a column) need not cost a repave.  The upgrade:

1. builds the schema a rebuild would make in a scratch database of its own (dropped afterwards) and
   takes its fingerprint;
2. applies the migrations the database's ledger does not hold, in order, all in one transaction,
   then validates every invariant and takes the fingerprint;
3. commits only when every check passes and the fingerprint is the fresh one's: otherwise nothing
   of it stays.

A ledger holding a migration this checkout does not have (a newer KapMan built the database), or
an applied migration whose file was edited since, is refused before anything is done.  A rebuild
and an upgrade of one database never interleave (the rebuild's lock); a session holding a table the
migrations must lock (a run writing to it) makes the upgrade stop after ``LOCK_WAIT`` with nothing
changed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from kapman import registry
from kapman.db import lifecycle
from kapman.db import migrations as mig
from kapman.db.capabilities import server_info
from kapman.db.connect import connect, database_name, with_database
from kapman.db.errors import wrap
from kapman.db.fingerprint import describe, fingerprint
from kapman.db.rebuild import (
    MAINTENANCE_DB,
    ValidationFailed,
    build_once,
    check_server,
    database_exists,
    rebuild_lock,
)
from kapman.db.validate import ValidationReport, validate
from kapman.errors import DatabaseError, KapManError

#: How long a migration waits for a table another session holds before the upgrade gives up.
LOCK_WAIT = "30s"
REBUILD = registry.mend("rebuild")


@dataclass
class UpgradeResult:
    database: str
    applied: list[mig.Migration]
    migrations: int                      # migrations in the ledger afterwards
    fingerprint: str
    report: ValidationReport | None      # None when nothing was pending (nothing validated anew)
    notes: list[str] = field(default_factory=list)


def upgrade(url: str, migrations: list[mig.Migration] | None = None) -> UpgradeResult:
    """Apply the pending ``migrations`` (default: db/migrations) to the database at ``url`` in place."""
    name = database_name(url)
    migrations = migrations if migrations is not None else mig.discover()
    with connect(with_database(url, MAINTENANCE_DB), autocommit=True) as admin:
        check_server(server_info(admin))
        with rebuild_lock(admin, name):
            return _upgrade(admin, url, name, migrations)


def _upgrade(admin: psycopg.Connection, url: str, name: str, migrations: list[mig.Migration]) -> UpgradeResult:
    if not database_exists(admin, name):
        raise KapManError(f"database {name} does not exist: there is nothing to upgrade",
                          hint=f"build it: {REBUILD}")
    with connect(url) as conn:
        pending = _pending(conn, name, migrations)
        if not pending:
            return UpgradeResult(name, [], len(migrations), fingerprint(conn), None)
    try:
        fresh = _fresh_schema(admin, url, name, migrations)
        with connect(url) as conn:
            return _apply(conn, name, migrations, pending, fresh)
    except mig.MigrationError as exc:
        if isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
            raise DatabaseError(f"another session holds a table of {name} the migrations must lock (a run "
                                f"writing to it?): waited {LOCK_WAIT}; nothing was changed",
                                hint=f"rerun when it ends ({registry.command('status')} names a run under way)"
                                ) from None
        raise mig.MigrationError(f"{exc.message}; nothing was changed") from None


def _pending(conn: psycopg.Connection, name: str, migrations: list[mig.Migration]) -> list[mig.Migration]:
    """The migrations to apply; refuses a database that is not KapMan's, newer than this checkout, or
    whose applied migrations were edited."""
    found = conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetchone()
    if not (found and found[0]):
        raise KapManError(f"database {name} has no migration ledger (public.schema_migrations): it was not "
                          "built by KapMan", hint=f"build it: {REBUILD} (destroys what it holds)")
    ledger = mig.applied(conn)
    known = {m.version for m in migrations}
    newer = sorted(v for v in ledger if v not in known)
    if newer:
        names = ", ".join(f"{v:04d}_{ledger[v][0]}" for v in newer)
        raise KapManError(f"database {name} holds migration(s) this KapMan does not have: {names}",
                          hint="a newer KapMan built it: upgrade KapMan, not the database")
    mig.check_drift(migrations, ledger)
    return [m for m in migrations if m.version not in ledger]


def _fresh_schema(admin: psycopg.Connection, url: str, name: str,
                  migrations: list[mig.Migration]) -> dict[str, list[list[str]]]:
    """The schema a rebuild makes now, described (``fingerprint.describe``) from a scratch database."""
    scratch = f"{name[:40]}_schema_check_{secrets.token_hex(3)}"
    ident = sql.Identifier(scratch)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    except psycopg.Error as exc:
        raise wrap(exc, f"creating the scratch database {scratch} the upgrade compares with") from None
    try:
        scratch_url = with_database(url, scratch)
        build_once(scratch_url, migrations, [])
        with connect(scratch_url) as conn:
            return describe(conn)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def _apply(conn: psycopg.Connection, name: str, migrations: list[mig.Migration], pending: list[mig.Migration],
           fresh: dict[str, list[list[str]]]) -> UpgradeResult:
    notes = []
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
        mig.apply_pending(conn, migrations)
        # a policy a migration added runs on the warehouse's clock: paused while it is frozen (a sandbox)
        lifecycle.set_scheduled(conn, lifecycle.policy_jobs(conn), lifecycle.read_clock(conn).policies_scheduled)
        report = validate(conn, server_info(conn), fresh=False)   # its data and clock stay
        if not report.ok:
            failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
            raise ValidationFailed(f"after the migrations the schema breaks an invariant ({failed}); "
                                   "nothing was changed")
        now = describe(conn)
        differ = sorted(k for k in fresh if k != "extensions" and fresh[k] != now.get(k))
        if differ:
            raise ValidationFailed(f"after the migrations the schema differs from a fresh rebuild's in its "
                                   f"{', '.join(differ)}; nothing was changed",
                                   hint=f"a repave builds it anew: {REBUILD}")
        if fresh.get("extensions") != now.get("extensions"):
            notes.append(f"extension versions differ from a fresh database's: {_versions(now)} here, "
                         f"{_versions(fresh)} in a new one (ALTER EXTENSION ... UPDATE brings them level)")
        digest = fingerprint(conn)
    return UpgradeResult(name, pending, len(migrations), digest, report, notes)


def _versions(described: dict[str, list[list[str]]]) -> str:
    return ", ".join(f"{n} {v}" for n, v in described.get("extensions", []))
