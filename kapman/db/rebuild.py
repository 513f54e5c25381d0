"""A5: drop and recreate the database, apply the A6 migrations, validate, fingerprint (runbook Step 2)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
from psycopg import sql

from kapman import clock
from kapman.config import NumberRange, Settings, mask_url
from kapman.db import lifecycle, runs
from kapman.db import migrations as mig
from kapman.db.capabilities import ServerInfo, server_info
from kapman.db.connect import connect, database_name, with_database
from kapman.db.destruction import ArchivedCount, Loss, confirm, measure
from kapman.db.errors import wrap
from kapman.db.fingerprint import fingerprint
from kapman.db.validate import ValidationReport, validate
from kapman.errors import DatabaseError, KapManError
from kapman.execute import Context, Definition, execute
from kapman.params import in_range
from kapman.progress import Progress
from kapman.step import StepResult

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
                            hint="use the timescale/timescaledb image (docker compose up -d db) "
                                 "or the local server (./dev.sh db up)")
    if not info.preloaded:
        raise DatabaseError("TimescaleDB is installed but not preloaded",
                            hint="add shared_preload_libraries = 'timescaledb' to postgresql.conf and restart")


def hold_rebuild_lock(admin: psycopg.Connection, name: str) -> None:
    """One rebuild per database at a time: a session-level advisory lock on the maintenance
    database, keyed by the name, held until ``admin`` closes."""
    got = admin.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                        (f"kapman:rebuild:{name}",)).fetchone()
    if not got or not got[0]:
        raise RebuildInProgress(f"a rebuild of database {name} is already running in another session",
                                hint="wait for it to finish; it leaves the database freshly built")


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
    Two rebuilds of one database never interleave (:func:`hold_rebuild_lock`)."""
    name = database_name(url)
    if name == MAINTENANCE_DB:
        raise KapManError(f"refusing to drop the maintenance database {name!r}",
                          hint="point DATABASE_URL at the kapman database")
    migrations = mig.discover()
    with connect(with_database(url, MAINTENANCE_DB), autocommit=True) as admin:
        info = server_info(admin)
        check_server(info)
        hold_rebuild_lock(admin, name)
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


# --- the rebuild as a step ------------------------------------------------------------------------

ITERATIONS_RANGE = NumberRange(1, 100, integer=True)


@dataclass(frozen=True)
class RebuildParams:
    iterations: int = 1
    #: destroy a database that holds data without asking (no terminal: scripts, CI, the demo)
    yes: bool = False

    def validate(self) -> None:
        in_range("--iterations", self.iterations, ITERATIONS_RANGE)


@dataclass
class RebuildDetails:
    built: RebuildResult | None = None     # the whole report (kept out of --json and the ledger)
    warnings: list[str] = field(default_factory=list)
    database: str = ""
    migrations: list[str] = field(default_factory=list)
    fingerprint: str = ""
    iterations: int = 0
    lifecycle_mode: str = ""
    lifecycle_clock: str = ""
    server: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    destroyed: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "built"}


def run(settings: Settings, params: RebuildParams, progress: Progress | None = None) -> StepResult[RebuildDetails]:
    """Runbook Step 2 (see kapman.execute)."""
    return execute("rebuild", settings, params, progress)


def _body(ctx: Context, params: RebuildParams) -> None:
    """The old ledger goes with the old database, so the rebuild's own run is the first row of the
    new one's ``ingest_runs``, recorded once the database exists."""
    started_wall, started_clock = datetime.now(UTC), clock.now()
    result: StepResult[RebuildDetails] = ctx.result
    ctx.progress.start(params.iterations, "rebuilds", unit="rebuild")
    # The step composes the database layer with the archive's census (what a repave keeps).
    from kapman.archive import archived_snapshot_count

    try:
        built = rebuild(ctx.url, iterations=params.iterations, confirm=partial(confirm, yes=params.yes),
                        progress=ctx.progress, archived=partial(archived_snapshot_count, settings=ctx.settings))
    finally:
        ctx.progress.close()
    describe_result(result, built)
    with runs.recorded(ctx.url, "rebuild", {"iterations": params.iterations, "yes": params.yes,
                                            "db_url": ctx.url}) as ledger:
        ledger.result = result
    with connect(ctx.url) as conn:   # the run began before its database existed
        conn.execute("UPDATE public.ingest_runs SET started_at = %s, clock_started_at = %s WHERE run_id = %s",
                     (started_wall, started_clock, ledger.run_id))


STEP = Definition(RebuildParams, _body, details=RebuildDetails, ledger=False)


def describe_result(result: StepResult[RebuildDetails], built: RebuildResult) -> None:
    """Fill the step's result from what the rebuild did."""
    report = built.iterations[-1].report
    recorded = report.lifecycle_clock or lifecycle.Clock("real")
    loss = built.loss
    result.done = len(built.iterations)
    result.removed = sum(loss.rows.values()) if loss else 0
    result.headline = (f"rebuilt {built.database}: {len(built.migrations)} migrations, "
                       f"{len(report.checks)} checks passed, lifecycle={report.lifecycle_mode}, "
                       f"clock={recorded.mode}, fingerprint {built.fingerprint[:16]} identical "
                       f"across {len(built.iterations)} rebuild(s)")
    result.note(lifecycle.describe(report.lifecycle_mode, recorded))
    result.details = RebuildDetails(
        built=built, warnings=built.warnings, database=built.database,
        migrations=[m.filename for m in built.migrations], fingerprint=built.fingerprint,
        iterations=len(built.iterations), lifecycle_mode=report.lifecycle_mode, lifecycle_clock=recorded.mode,
        server=built.server.describe(), checks={c.name: c.ok for c in report.checks},
        destroyed=loss.as_dict() if loss and loss.holds_data else None)


def report_lines(built: RebuildResult, *, migrations: bool = False) -> list[str]:
    """The human report before the summary: server, migrations, fingerprints, every check."""
    lines = [f"server: {built.server.describe()}"]
    if migrations:
        lines += [f"  {m.filename}  sha256:{m.checksum[:12]}" for m in built.migrations]
    lines += [f"rebuild {n}: fingerprint {it.fingerprint}  ({it.seconds:.2f}s)"
              for n, it in enumerate(built.iterations, 1)]
    lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in built.iterations[-1].report.checks]
    return lines
