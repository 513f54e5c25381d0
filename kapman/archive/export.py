"""Archive what the database stores for a snapshot: read it back, write Parquet, update the manifest.

The export runs after the options run's writes are committed and reads the table itself (a
binary COPY per underlying, decoded by ``kapman.archive.decode``), so the archive holds exactly
what is stored (a replay's updates included), whatever the ingester did to
produce it.  Each underlying's rows go to one zstd Parquet file; a file whose bytes are those the
manifest already lists is not written again.  After this run's snapshot, every stored snapshot
that has no manifest yet is exported too, so a run after a failed archive write catches up.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from kapman.archive import decode, inventory, table
from kapman.archive.manifest import MANIFEST, Entry, Manifest, file_name, manifest_key, snapshot_dir
from kapman.archive.store import ArchiveError, Store, open_store
from kapman.config import Settings
from kapman.db import bulk
from kapman.db.connect import connect
from kapman.errors import KapManError

log = logging.getLogger(__name__)

#: zstd level 1: half the CPU of the default level 3 on option chains, for nearly the same size.
COMPRESSION, LEVEL = "zstd", 1
#: Connections reading batches of underlyings at once, and threads compressing and writing files:
#: the server's COPY, Arrow's encoder, fsync and S3 PUTs all leave the GIL to the others.
READERS, WRITERS = 2, 3
#: Underlyings per COPY: few enough that decoding and writing start early, enough that the
#: per-query and per-column costs of decoding are spread over tens of thousands of rows.
BATCH = 4


@dataclass
class ExportReport:
    location: str = ""
    snapshots: int = 0
    files: int = 0
    unchanged: int = 0     # files already archived with the same bytes
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    caught_up: list[str] = field(default_factory=list)  # earlier snapshots archived by this run
    error: KapManError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.error is not None:
            hint = f" ({self.error.hint})" if self.error.hint else ""
            return (f"archive: NOT written, the database write is kept: {self.error.message}{hint}; "
                    "the next options run archives it")
        extra = f", {len(self.caught_up)} earlier snapshots caught up" if self.caught_up else ""
        return (f"archive: {self.snapshots} snapshot(s), {self.files} files ({self.unchanged} unchanged), "
                f"{self.rows:,} rows, {self.bytes / 1e6:.1f} MB at {self.location} in {self.seconds:.1f}s{extra}")

    def as_dict(self) -> dict[str, Any]:
        return {"location": self.location, "ok": self.ok, "snapshots": self.snapshots, "files": self.files,
                "unchanged": self.unchanged, "rows": self.rows, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "caught_up": self.caught_up,
                "error": self.error.message if self.error else None}


def parquet_bytes(part: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(part, sink, compression=COMPRESSION, compression_level=LEVEL)
    return bytes(sink.getvalue().to_pybytes())


def underlyings(conn: psycopg.Connection, snapshot: datetime) -> list[UUID]:
    return [r[0] for r in conn.execute("SELECT DISTINCT ticker_id FROM public.options_chains WHERE time = %s "
                                       "ORDER BY 1", (snapshot,)).fetchall()]


def read_underlyings(conn: psycopg.Connection, snapshot: datetime, ids: list[UUID]) -> list[tuple[UUID, pa.Table]]:
    """Every stored row of one snapshot for these underlyings, one table each, in key order."""
    query = table.export_query(sql.SQL("time = {} AND ticker_id = ANY({}::uuid[])").format(
        sql.Literal(snapshot), sql.Literal(ids)))
    return table.split_by_underlying(decode.from_copy(bulk.copy_out(conn, query.as_bytes(conn)), snapshot))


def _existing(store: Store, snapshot: datetime) -> Manifest | None:
    if manifest_key(snapshot) not in store.keys(snapshot_dir(snapshot)):
        return None
    try:
        return Manifest.from_bytes(store.get(manifest_key(snapshot)))
    except ValueError as exc:  # rewritten from the database below
        log.warning("%s: %s; writing it anew", manifest_key(snapshot), exc)
        return None


def export_snapshot(conns: list[psycopg.Connection], store: Store, snapshot: datetime, report: ExportReport) -> None:
    """Archive one snapshot as stored now, in batches of underlyings over ``conns`` (the server
    sends one batch while another is decoded, compressed and written).  Raises
    ArchiveError (store) or psycopg.Error (read)."""
    ids = underlyings(conns[0], snapshot)
    if not ids:  # nothing stored under this time (a run that wrote nothing)
        return
    old = _existing(store, snapshot)
    current = Manifest(snapshot, dict(old.files) if old else {})
    free: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
    for conn in conns:
        free.put(conn)

    def write(item: tuple[UUID, pa.Table]) -> tuple[str, Entry, bool]:
        ticker_id, part = item
        blob = parquet_bytes(part)
        name = file_name(ticker_id)
        entry = Entry(ticker_id, part.num_rows, len(blob), hashlib.sha256(blob).hexdigest())
        same = old is not None and old.files.get(name) == entry
        if not same:
            store.put(current.key(name), blob)
        return name, entry, same

    def read(batch: list[UUID]) -> list[tuple[UUID, pa.Table]]:
        conn = free.get()
        try:
            return read_underlyings(conn, snapshot, batch)
        finally:
            free.put(conn)

    batches = [ids[i:i + BATCH] for i in range(0, len(ids), BATCH)]
    with ThreadPoolExecutor(len(conns), thread_name_prefix="archive-read") as readers, \
            ThreadPoolExecutor(WRITERS, thread_name_prefix="archive-write") as writers:
        written = [writers.map(write, parts) for parts in readers.map(read, batches)]
        for name, entry, same in itertools.chain.from_iterable(written):
            current.files[name] = entry
            report.unchanged += same
            report.files += 1
            report.rows += entry.rows
            report.bytes += entry.size
    if old is None or current.files != old.files:
        store.put(current.key(MANIFEST), current.to_bytes())
    report.snapshots += 1


def export_snapshots(settings: Settings, snapshots: Iterable[datetime], *, catch_up: bool = True) -> ExportReport:
    """Archive ``snapshots`` and (``catch_up``) every stored snapshot the archive lacks.

    Never raises for the archive's sake: a failure is the report's ``error``.
    """
    started = time.perf_counter()
    report = ExportReport()
    try:
        store = open_store(settings)
        report.location = store.location
        url = settings.require_database_url()
        with ExitStack() as stack:
            conns = [stack.enter_context(connect(url)) for _ in range(READERS)]
            conn = conns[0]
            wanted = list(snapshots)
            for snapshot in wanted:
                export_snapshot(conns, store, snapshot, report)
            if catch_up:
                archived = inventory.archived_dirs(store)
                done = {snapshot_dir(s) for s in wanted}
                for snapshot in inventory.stored_snapshots(conn):
                    directory = snapshot_dir(snapshot)
                    if directory not in archived and directory not in done:
                        export_snapshot(conns, store, snapshot, report)
                        report.caught_up.append(snapshot.isoformat())
    except ArchiveError as exc:
        report.error = exc
    except psycopg.Error as exc:
        report.error = ArchiveError(f"reading the snapshot back failed: {type(exc).__name__}: {exc}".strip())
    report.seconds = time.perf_counter() - started
    return report
