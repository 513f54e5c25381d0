"""A5: drop and recreate the database, apply the A6 migrations, validate, fingerprint (runbook Step 2)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from kapman import registry
from kapman.config import mask_url
from kapman.db import lifecycle
from kapman.db import migrations as mig
from kapman.db.capabilities import ServerInfo, server_info
from kapman.db.connect import connect, database_name, unlock, with_database
from kapman.db.destruction import ArchivedCount, Loss, measure
from kapman.db.errors import wrap
from kapman.db.fingerprint import fingerprint
from kapman.db.validate import ValidationReport, validate
from kapman.errors import DatabaseError, KapManError
from kapman.progress import Progress

log = logging.getLogger(__name__)
MAINTENANCE_DB = "postgres"


class ValidationFailed(KapManError):
    """The rebuilt schema breaks an invariant."""


class RebuildInProgress(KapManError):
    """Another session is rebuilding the same database."""


#: Called with what the rebuild would destroy; returns to go ahead, raises to stop.
Confirm = Callable[[Loss], None]


@dataclass
class Iteration:
    fingerprint: str
    seconds: float
    report: ValidationReport


@dataclass
class RebuildResult:
    database: str
    server: ServerInfo
    migrations: list[mig.Migration]
    iterations: list[Iteration] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    loss: Loss | None = None

    @property
    def fingerprint(self) -> str:
        return self.iterations[-1].fingerprint

    @property
    def deterministic(self) -> bool:
        return len({i.fingerprint for i in self.iterations}) == 1


def check_server(info: ServerInfo) -> None:
    if info.timescaledb_available is None:
        raise DatabaseError("the server has no TimescaleDB extension installed",
                            hint=registry.in_checkout("use the timescale/timescaledb image (docker compose up -d db) "
                                                         "or the local server (./dev.sh db up)",
                                                         "install TimescaleDB on the server (or use the "
                                                         "timescale/timescaledb image)"))
    if not info.preloaded:
        raise DatabaseError("TimescaleDB is installed but not preloaded",
                            hint="add shared_preload_libraries = 'timescaledb' to postgresql.conf and restart")


@contextmanager
def rebuild_lock(admin: psycopg.Connection, name: str) -> Iterator[None]:
    """One rebuild or upgrade (``kapman.db.upgrade``) per database at a time: a session-level advisory
    lock on the maintenance database, keyed by the name, for the block.  Unlocked when the block ends:
    left to ``admin``'s close, it outlived close() a moment on a loaded server, and the upgrade that
    followed a rebuild was refused as if one still ran (the session's end still frees it after a crash)."""
    key = f"kapman:rebuild:{name}"
    got = admin.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
    if not got or not got[0]:
        raise RebuildInProgress(f"a rebuild or an upgrade of database {name} is already running in another "
                                "session", hint=f"wait for it to finish, then look at {registry.command('status')}")
    try:
        yield
    finally:
        unlock(admin, "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


def database_exists(admin: psycopg.Connection, name: str) -> bool:
    return admin.execute("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = %s)", (name,)).fetchone()[0]  # type: ignore[index]


def recreate_database(admin: psycopg.Connection, name: str) -> None:
    """Terminate other sessions on ``name``, drop it and create it empty."""
    ident = sql.Identifier(name)
    try:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseError(f"not allowed to drop/create database {name}: {exc.diag.message_primary}",
                            sqlstate=exc.sqlstate,
                            hint="connect as the database owner or a superuser (the runbook's kapman user)") from None
    except psycopg.errors.UniqueViolation:
        raise RebuildInProgress(f"database {name} was created by another session while this rebuild ran",
                                hint="is another tool rebuilding it? wait for it, then rerun") from None
    except psycopg.errors.ObjectInUse as exc:
        raise DatabaseError(f"database {name} is in use and its sessions could not be terminated",
                            sqlstate=exc.sqlstate, hint="close the other sessions and retry") from None
    except psycopg.Error as exc:
        raise wrap(exc, f"recreating database {name}") from None


def build_once(url: str, migrations: list[mig.Migration], warnings: list[str]) -> tuple[str, ValidationReport]:
    with connect(url) as conn:
        conn.add_notice_handler(lambda d: _on_notice(d, warnings))
        mig.apply_pending(conn, migrations)
        conn.commit()
        lifecycle.record_clock(conn, lifecycle.process_clock())
        report = validate(conn, server_info(conn))
        digest = fingerprint(conn)
        conn.rollback()
    return digest, report


def _on_notice(diag: psycopg.errors.Diagnostic, sink: list[str]) -> None:
    if diag.severity in ("WARNING", "NOTICE") and diag.message_primary and "license" in diag.message_primary:
        if diag.message_primary not in sink:
            sink.append(diag.message_primary)   # the summary says it, as its lifecycle line
            log.info("%s", diag.message_primary)


def rebuild(url: str, *, iterations: int = 1, confirm: Confirm | None = None,
            progress: Progress | None = None, archived: ArchivedCount | None = None) -> RebuildResult:
    """Pave the database ``iterations`` times; every fingerprint must match.

    ``confirm`` sees what would be lost (rows per table, irreplaceable option snapshots) before
    anything is dropped and raises to stop; without it the library rebuilds unasked (tests,
    benchmarks).  ``archived``: the archive's census, so the loss says which snapshots it keeps.
    Two rebuilds of one database never interleave (:func:`rebuild_lock`)."""
    name = database_name(url)
    if name == MAINTENANCE_DB:
        raise KapManError(f"refusing to drop the maintenance database {name!r}",
                          hint="point DATABASE_URL at the kapman database")
    lifecycle.refuse_future_clock("the rebuild")
    migrations = mig.discover()
    with connect(with_database(url, MAINTENANCE_DB), autocommit=True) as admin:
        info = server_info(admin)
        check_server(info)
        with rebuild_lock(admin, name):
            result = RebuildResult(database=name, server=info, migrations=migrations)
            result.loss = measure(url, name, database_exists(admin, name), archived)
            if confirm is not None:
                confirm(result.loss)
            for n in range(iterations):
                started = time.perf_counter()
                log.info("rebuild %d/%d of %s", n + 1, iterations, mask_url(url))
                recreate_database(admin, name)
                digest, report = build_once(url, migrations, result.warnings)
                result.iterations.append(Iteration(digest, time.perf_counter() - started, report))
                if progress is not None:
                    progress.advance(1)
                if not report.ok:
                    failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
                    raise ValidationFailed(f"schema validation failed: {failed}")
    with connect(url) as conn:  # the installed extension version, for the summary
        result.server = server_info(conn)
    if not result.deterministic:
        raise ValidationFailed("schema fingerprints differ between rebuilds: "
                               + ", ".join(i.fingerprint[:12] for i in result.iterations))
    return result


def report_lines(built: RebuildResult, *, migrations: bool = False) -> list[str]:
    """The human report before the summary: server, migrations, fingerprints, every check."""
    lines = [f"server: {built.server.describe()}"]
    if migrations:
        lines += [f"  {m.filename}  sha256:{m.checksum[:12]}" for m in built.migrations]
    lines += [f"rebuild {n}: fingerprint {it.fingerprint}  ({it.seconds:.2f}s)"
              for n, it in enumerate(built.iterations, 1)]
    lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in built.iterations[-1].report.checks]
    return lines
