"""Archiving an options run's snapshot while the run is still fetching.

The run calls ``committed(ticker_id, changed)`` once an underlying's transaction has committed; a
background thread reads those rows back from the table (the export's binary COPY, so the archive
holds what is stored) a few underlyings at a time and writes their Parquet files.  The archive's
work thus overlaps the run's wait on the API instead of following it.  Its threads run at a
lower CPU priority (Linux), so on a small machine they take the CPU the run leaves idle rather
than slowing the chains' decoding.

``close()`` then archives whatever the snapshot holds that was not exported yet (a rerun's other
underlyings), writes the manifest, and catches up earlier snapshots the archive does not cover.  A
run that is interrupted or meets an archive error writes no manifest for a snapshot it changed, so
the next options run exports that snapshot from the database (``export.catch_up_missing``).

Nothing here raises for the archive's sake: a failure becomes the report's ``error`` and the
database write stands.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from uuid import UUID

import psycopg

from kapman.archive import export, warehouse
from kapman.archive.export import ExportReport, SnapshotFiles
from kapman.archive.manifest import snapshot_dir
from kapman.archive.store import ArchiveError, open_store
from kapman.config import Settings
from kapman.db.connect import connect
from kapman.errors import KapManError

log = logging.getLogger(__name__)

#: How much lower the archive's threads run than the run's own (``nice`` steps): the lowest, so
#: they take only CPU the run leaves idle; they still keep up (bench: ~0.15 s left after the run).
NICENESS = 19
_STOP = None


def _lower_priority() -> None:
    """This thread alone at ``NICENESS`` (Linux gives each thread its own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):
        pass  # elsewhere: the threads run at the run's priority


class LiveExport:
    """One run's archive of one snapshot, fed as the run commits (see the module's docstring)."""

    def __init__(self, settings: Settings, snapshot: datetime) -> None:
        self.snapshot = snapshot
        self.report = ExportReport()
        self._queue: queue.SimpleQueue[UUID | None] = queue.SimpleQueue()
        self._writes: list[Future] = []
        self._abandoned = threading.Event()
        self._closed = False
        self._busy = 0.0   # seconds the background thread spent exporting
        self._conn: psycopg.Connection | None = None
        self._thread: threading.Thread | None = None
        try:
            self.owner = warehouse.of(settings)
            self.store = open_store(settings)
            self.report.location = self.store.location
            self._conn = connect(settings.require_database_url())
            self.files = SnapshotFiles(self.store, snapshot, self.owner)
        except (KapManError, psycopg.Error) as exc:
            self._fail(exc)
            return
        self._thread = threading.Thread(target=self._work, name="archive-live", daemon=True)
        self._thread.start()

    def __enter__(self) -> LiveExport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abandon()  # a no-op once closed

    # ---- fed by the run's writer ----------------------------------------------------------
    def committed(self, ticker_id: UUID, changed: bool) -> None:
        """``ticker_id``'s chain is committed under the snapshot (``changed``: rows were inserted,
        updated or removed, which a rerun's unchanged chain leaves alone)."""
        if self.report.error is not None or self._thread is None:
            return
        if changed:
            try:  # before the old manifest could list rows the table no longer holds
                self.files.withdraw()
            except ArchiveError as exc:
                self._fail(exc)
                return
        self._queue.put(ticker_id)

    # ---- the background thread -------------------------------------------------------------
    def _work(self) -> None:
        _lower_priority()
        with ThreadPoolExecutor(export.WRITERS, thread_name_prefix="archive-write",
                                initializer=_lower_priority) as writers:
            while True:
                batch = [self._queue.get()]
                while len(batch) < export.BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                ids = [i for i in batch if i is not _STOP]
                if ids and self.report.error is None and not self._abandoned.is_set():
                    started = time.perf_counter()
                    self._export(ids, writers)
                    self._busy += time.perf_counter() - started
                if _STOP in batch:
                    break
        self._harvest(wait=True)

    def _export(self, ids: list[UUID], writers: ThreadPoolExecutor) -> None:
        assert self._conn is not None
        try:
            parts = export.read_underlyings(self._conn, self.snapshot, ids)
        except psycopg.Error as exc:
            self._fail(exc)
            return
        try:
            for ticker_id in set(ids) - {p.ticker_id for p in parts}:  # emptied by this run
                self.files.drop(ticker_id)
        except ArchiveError as exc:
            self._fail(exc)
            return
        self._writes += [writers.submit(self.files.write, part, self.report) for part in parts]
        self._harvest(wait=False)

    def _harvest(self, wait: bool) -> None:
        """Settle finished writes (all of them when ``wait``): the first error stops the archive."""
        pending = []
        for future in self._writes:
            if wait or future.done():
                try:
                    future.result()
                except ArchiveError as exc:
                    self._fail(exc)
            else:
                pending.append(future)
        self._writes = pending

    def _fail(self, exc: KapManError | psycopg.Error) -> None:
        if self.report.error is None:
            self.report.error = export.read_back_failed(exc) if isinstance(exc, psycopg.Error) else exc

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    # ---- the end of the run -----------------------------------------------------------------
    def close(self) -> ExportReport:
        """Finish the snapshot and the catch-up; the report's ``seconds`` is what this added
        after the run, ``overlapped`` the export work done while it ran."""
        if self._closed:
            return self.report
        self._closed = True
        started = time.perf_counter()
        self._join()
        try:
            if self.report.error is None and self._conn is not None:
                self._finish(self._conn)
        except (ArchiveError, psycopg.Error) as exc:
            self._fail(exc)
        finally:
            self._disconnect()
        self.report.seconds = time.perf_counter() - started
        self.report.overlapped = self._busy
        return self.report

    def _finish(self, conn: psycopg.Connection) -> None:
        stored = export.underlyings(conn, self.snapshot)
        missing = [i for i in stored if i not in self.files.exported]
        if missing:  # a rerun's underlyings this run did not write, or ones committed before a failure
            export.export_underlyings([conn], self.files, missing, self.report)
        if stored or self.files.old is not None:
            self.files.finish(self.report)
        export.catch_up_missing([conn], self.store, self.owner, self.report, {snapshot_dir(self.snapshot)})

    def abandon(self) -> None:
        """The run was interrupted: stop after the batch in hand; no manifest is written, so a
        snapshot this run changed counts as not archived until the next run exports it.  A no-op
        once closed."""
        if self._closed:
            return
        self._closed = True
        self._abandoned.set()
        self._join()
        self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
