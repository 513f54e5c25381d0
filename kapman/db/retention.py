"""Retention and compression on KapMan's clock, wherever the TimescaleDB policies do not run.

Who enforces the 730/120-day windows (``hypertable_lifecycle``), by edition and clock
(``kapman.db.lifecycle``):

* community edition, real clock: the built-in policies, scheduled; KapMan does nothing;
* community edition, frozen clock: the policies exist but are paused; KapMan drops and compresses
  the same chunks itself, counting from its own clock;
* Apache edition: no policies; KapMan drops (compression is unavailable).

Called by the ingesters after a *successful* run only (:func:`after_run`).  Dropping chunks and
deleting the ``ingest_files`` rows of the days they held happen in one transaction, so the ledger
never claims rows that are gone.  Deterministic: the cutoffs depend only on the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import psycopg

from kapman import clock, registry
from kapman.db import chunks, lifecycle, schema

log = logging.getLogger(__name__)

SKIPPED_LINE = "retention: not run (the run did not succeed; nothing is dropped after a failure)"

#: Of the option snapshot times about to be dropped, those the archive does not hold (default:
#: ``kapman.archive.inventory.unarchived``, this warehouse's configured archive).
Unarchived = Callable[[psycopg.Connection, Collection[datetime]], list[datetime]]


@dataclass(frozen=True)
class Window:
    """One hypertable's lifecycle, as ``hypertable_lifecycle`` records it."""

    table: str
    retention_mode: str        # 'policy' (community edition) or 'application'
    compression_mode: str      # 'policy' or 'unavailable'
    drop_after: timedelta
    compress_after: timedelta


@dataclass
class RetentionReport:
    #: 'policy' (scheduled policies do it), 'paused-policy' (KapMan does it for paused policies),
    #: 'application' (Apache edition), 'skipped' (the run failed), 'ahead' (KapMan's clock is ahead
    #: of real time: nothing dropped) or 'none' (no lifecycle recorded)
    mode: str
    cutoff: date | None = None
    compress_cutoff: date | None = None
    now: lifecycle.Now | None = None
    clock: lifecycle.Clock | None = None
    drop_after: timedelta = schema.RETENTION
    compress_cutoff_days: int = schema.COMPRESS_AFTER.days
    dropped: dict[str, list[str]] = field(default_factory=dict)
    compressed: dict[str, list[str]] = field(default_factory=dict)
    #: trading dates whose ingest_files rows went with the chunks
    ledger_removed: list[date] = field(default_factory=list)
    #: option snapshots older than the window kept because the archive does not hold them
    kept: list[datetime] = field(default_factory=list)

    @property
    def chunks_dropped(self) -> int:
        return sum(len(v) for v in self.dropped.values())

    @property
    def chunks_compressed(self) -> int:
        return sum(len(v) for v in self.compressed.values())

    def describe(self) -> str:
        days = self.drop_after.days
        if self.mode == "skipped":
            return SKIPPED_LINE
        if self.mode == "none":
            return "retention: no lifecycle recorded (schema not rebuilt?)"
        if self.mode == "ahead":
            assert self.now is not None
            return (f"retention: not enforced: KapMan's clock ({self.now.describe()}) is ahead of real time, "
                    "so its cutoff would drop what the window keeps; nothing dropped or compressed")
        ledger = f", {len(self.ledger_removed)} ledger day(s) removed" if self.ledger_removed else ""
        if self.mode == "policy":
            return (f"retention: TimescaleDB policies ({days} days, compression after "
                    f"{self.compress_cutoff_days} days) scheduled on the server's clock, which is KapMan's"
                    + (f"; the days they dropped left the ledger{ledger}" if ledger else "")
                    + (f"; {self.chunks_compressed} chunk(s) written into since compression compressed again"
                       if self.chunks_compressed else ""))
        assert self.now is not None
        done = (f"cutoff {self.cutoff}, {self.chunks_dropped} chunk(s) dropped{ledger}{self._kept()}")
        if self.mode == "paused-policy":
            assert self.clock is not None
            return (f"retention: TimescaleDB policies paused ({self.clock.describe()}); KapMan enforced "
                    f"{days} days on its clock ({self.now.describe()}): {done}; compression cutoff "
                    f"{self.compress_cutoff}, {self.chunks_compressed} chunk(s) compressed")
        return (f"retention: enforced by KapMan ({days} days) on its clock ({self.now.describe()}): "
                f"{done}; compression unavailable (Apache edition)")


    def _kept(self) -> str:
        if not self.kept:
            return ""
        return (f"; {len(self.kept)} option snapshot(s) older than the window KEPT, oldest "
                f"{clock.ny_date_of(self.kept[0])}: the archive does not hold them and nothing fetches them "
                f"again (`{registry.mend('options')} --archive-only` archives them; the next run's "
                "retention then drops them)")


def windows(conn: psycopg.Connection) -> list[Window]:
    if not conn.execute("SELECT to_regclass('public.hypertable_lifecycle') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
        return []
    rows = conn.execute("SELECT hypertable_name, retention_mode, compression_mode, drop_after, compress_after "
                        "FROM public.hypertable_lifecycle ORDER BY 1").fetchall()
    return [Window(*r) for r in rows]


def cutoff(conn: psycopg.Connection, table: str = "ohlcv") -> date | None:
    """The oldest date ``table`` keeps by KapMan's clock (rows before it are dropped), or None when
    no lifecycle is recorded.  Loaders refuse older dates rather than load and drop them."""
    found = {w.table: w for w in windows(conn)}.get(table)
    if found is None:
        return None
    now = lifecycle.effective_now(lifecycle.read_clock(conn))
    return clock.ny_date_of(now.instant) - found.drop_after


def _boundary(table: str, day: date) -> date | datetime:
    # ohlcv is partitioned by a date, options_chains by a timestamptz at midnight New York.
    time_col = schema.HYPERTABLES[table][0]
    return day if time_col == "date" else datetime.combine(day, time(0), tzinfo=clock.NEW_YORK)


def reconcile_ledger(conn: psycopg.Connection, *, before: date | None = None) -> list[date]:
    """Delete the ``ingest_files`` rows of trading days that claim loaded rows while ``ohlcv`` has
    none for that day (dropped by KapMan or by a policy), so those files load again.  Returns the
    days removed.  Runs in the caller's transaction.

    Costs one probe per ledger day (``chunks.days_without_rows``), not a scan of ``ohlcv``: an
    anti-join against the table decompressed every compressed chunk on each run."""
    claimed = [r[0] for r in conn.execute(
        "SELECT DISTINCT trading_date FROM public.ingest_files WHERE rows_loaded > 0 "
        "AND (%(before)s::date IS NULL OR trading_date < %(before)s::date)", {"before": before}).fetchall()]
    gone = chunks.days_without_rows(conn, "ohlcv", "date", claimed) if claimed else []
    if gone:
        conn.execute("DELETE FROM public.ingest_files WHERE rows_loaded > 0 AND trading_date = ANY(%s)", (gone,))
    return gone


def enforce_retention(conn: psycopg.Connection, *, today: date | None = None,
                      unarchived: Unarchived | None = None) -> RetentionReport:
    """Drop (and, for paused policies, compress) what the windows say, on KapMan's clock. Commits.

    Option snapshots cannot be fetched again: one older than the window that the archive does not
    hold (``unarchived``) is kept, with every chunk from its own on, and the report says so.
    ``today`` overrides the clock (tests)."""
    found = windows(conn)
    if not found:
        return RetentionReport(mode="none")
    recorded = lifecycle.adopt_process_clock(conn)
    lifecycle.settle_schedule(conn)
    policies = all(w.retention_mode == "policy" for w in found)
    now = lifecycle.effective_now(recorded)
    if today is None and lifecycle.ahead_of_real_time(now.instant):
        # A date that has not come (KAPMAN_NOW=2052 for 2025) would drop the whole warehouse, the option
        # snapshots with it, in this very run: never from such a clock.
        log.warning("KapMan's clock (%s) is ahead of real time: retention not enforced", now.instant)
        return RetentionReport(mode="ahead", now=now, drop_after=found[0].drop_after)
    day = today or clock.ny_date_of(now.instant)
    if policies and recorded.policies_scheduled:
        # The policy drops on its own schedule and leaves the ledger as it was: mend it here.
        report = RetentionReport(mode="policy", drop_after=found[0].drop_after, now=now,
                                 cutoff=day - found[0].drop_after,
                                 compress_cutoff_days=found[0].compress_after.days)
        with conn.transaction():
            report.ledger_removed = reconcile_ledger(conn, before=report.cutoff)
            for w in found:     # the policy compresses on its schedule; what a write left partial, now
                if w.compression_mode == "policy":
                    report.compressed[w.table] = _compress(conn, w.table, day - w.compress_after, partial_only=True)
        return report
    report = RetentionReport(mode="paused-policy" if policies else "application", now=now, clock=recorded,
                             drop_after=found[0].drop_after, cutoff=day - found[0].drop_after,
                             compress_cutoff=day - found[0].compress_after,
                             compress_cutoff_days=found[0].compress_after.days)
    with conn.transaction():
        for w in found:
            boundary = _boundary(w.table, day - w.drop_after)
            if w.table == "options_chains":
                report.kept = _unarchived_before(conn, boundary, unarchived)
                boundary = min(boundary, report.kept[0]) if report.kept else boundary  # type: ignore[type-var]
            report.dropped[w.table] = _drop(conn, w.table, boundary)
            if w.table == "ohlcv":
                report.ledger_removed = reconcile_ledger(conn, before=day - w.drop_after)
            if w.compression_mode == "policy":
                report.compressed[w.table] = _compress(conn, w.table, day - w.compress_after)
    if report.chunks_dropped or report.chunks_compressed:
        log.info("retention dropped %d chunk(s) older than %s, compressed %d", report.chunks_dropped,
                 report.cutoff, report.chunks_compressed)
    return report


def after_run(conn: psycopg.Connection, *, succeeded: bool) -> RetentionReport:
    """The retention step of an ingestion run: only after it succeeded, never as a side effect of
    a failure.  ``describe()`` of the result is the run's retention line."""
    if not succeeded:
        return RetentionReport(mode="skipped")
    return enforce_retention(conn)


def snapshots_past_window(conn: psycopg.Connection) -> list[datetime]:
    """The stored option snapshots older than the window by KapMan's clock: those retention checks
    against the archive before it drops their chunks."""
    day = cutoff(conn, "options_chains")
    return [] if day is None else _snapshots_before(conn, _boundary("options_chains", day))


def _snapshots_before(conn: psycopg.Connection, boundary: date | datetime) -> list[datetime]:
    return sorted(r[0] for r in conn.execute(
        "SELECT DISTINCT time FROM public.options_chains WHERE time < %s", (boundary,)).fetchall())


def _unarchived_before(conn: psycopg.Connection, boundary: date | datetime,
                       unarchived: Unarchived | None) -> list[datetime]:
    """The stored option snapshots older than ``boundary`` that the archive does not hold, oldest first."""
    going = _snapshots_before(conn, boundary)
    if not going:
        return []
    if unarchived is None:
        from kapman.archive import inventory  # the archive's modules load only when needed
        unarchived = inventory.unarchived
    return sorted(unarchived(conn, going))


def _drop(conn: psycopg.Connection, table: str, boundary: date | datetime) -> list[str]:
    """Drop the chunks wholly older than ``boundary`` (one that holds a row from it on stays)."""
    rows = conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)",
                        (f"public.{table}", boundary)).fetchall()
    return [r[0] for r in rows]


def _compress(conn: psycopg.Connection, table: str, day: date, *, partial_only: bool = False) -> list[str]:
    """Compress the chunks wholly older than ``day`` that are not compressed (unless
    ``partial_only``), or only partially: a write into a compressed chunk leaves its rows beside
    the compressed batches, and ``compress_chunk`` folds them back in.

    One chunk at a time, each in a savepoint: the policy job (real clock) or another run's retention
    may compress the same chunk meanwhile, and ``compress_chunk`` then fails with "already
    compressed" once it has waited for that one, which took the whole retention step (its drops and
    the ledger's repair) with it after a successful run.  Such a chunk is compressed: not counted."""
    rows = conn.execute(
        "SELECT c FROM show_chunks(%s::regclass, older_than => %s) c "
        "WHERE (NOT %s AND _timescaledb_functions.chunk_status(c) & %s = 0) "
        "OR _timescaledb_functions.chunk_status(c) & %s <> 0",
        (f"public.{table}", _boundary(table, day), partial_only, chunks.STATUS_COMPRESSED,
         chunks.STATUS_PARTIAL)).fetchall()
    done = []
    for (chunk,) in rows:
        try:
            with conn.transaction():
                row = conn.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)",
                                   (chunk,)).fetchone()
        except psycopg.errors.DuplicateObject:
            log.info("%s was compressed meanwhile by another session", chunk)
            continue
        if row and row[0] is not None:
            done.append(str(row[0]))
    return done
