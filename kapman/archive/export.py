"""Archive what the database stores for a snapshot: read it back, write Parquet, update the manifest.

The export reads the table itself once the rows are committed (a binary COPY of a few
underlyings at a time, decoded by ``kapman.archive.decode``), so the archive holds exactly what is
stored (a replay's updates included), whatever the ingester did to produce it.  Each underlying's
rows go to one zstd Parquet file (``table.to_file``: with its symbol, readable without KapMan); a
file whose bytes are those the manifest already lists is not written again.  The manifest records
each file's content hash: the SHA-256 of the rows' bytes as the COPY sent them.  Every stored
snapshot that could need archiving (``checkpoint``) and that the archive does not cover
(``coverage``) is exported too, so a run after a failed or interrupted archive write, or after a
run with ``--no-archive``, catches up.  An options run exports while it fetches
(``kapman.archive.live``); this module serves it and exports whole snapshots.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import threading
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
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from kapman.archive import checkpoint, coverage, decode, table, warehouse
from kapman.archive.manifest import Entry, Manifest, file_name, manifest_key, snapshot_dir
from kapman.archive.store import ArchiveError, Store, open_store
from kapman.archive.warehouse import Warehouse
from kapman.config import Settings
from kapman.db import bulk, retention
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
    seconds: float = 0.0   # the export's wall time (after an options run: what it added to the run)
    overlapped: float = 0.0  # export work done while the options run was still fetching
    caught_up: list[str] = field(default_factory=list)  # earlier snapshots archived by this run
    replaced: int = 0      # archived files whose rows differed from the stored ones, written anew
    examined: int = 0      # stored snapshots the catch-up checked (``kapman.archive.checkpoint``)
    checked_through: datetime | None = None  # after a catch-up: every snapshot up to it is archived
    error: KapManError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.error is not None:
            hint = f" ({self.error.hint})" if self.error.hint else ""
            then = "" if isinstance(self.error, KeptManifest) else "; the next options run archives it"
            return f"archive: NOT written, the database write is kept: {self.error.message}{hint}{then}"
        extra = f", {len(self.caught_up)} earlier snapshots caught up" if self.caught_up else ""
        if self.replaced:
            extra += (f"; {self.replaced} archived files REPLACED: they held other rows than the database "
                      "(a replay, or a warehouse repaved without a restore)")
        during = f" ({self.overlapped:.1f}s of it while fetching)" if self.overlapped else ""
        return (f"archive: {self.snapshots} snapshot(s), {self.files} files ({self.unchanged} unchanged), "
                f"{self.rows:,} rows, {self.bytes / 1e6:.1f} MB at {self.location} in "
                f"{self.seconds + self.overlapped:.1f}s{during}{extra}")

    def count(self, entry: Entry, same: bool, *, replaced: bool = False) -> None:
        self.files += 1
        self.unchanged += same
        self.replaced += replaced
        self.rows += entry.rows
        self.bytes += entry.size

    def as_dict(self) -> dict[str, Any]:
        return {"location": self.location, "ok": self.ok, "snapshots": self.snapshots, "files": self.files,
                "unchanged": self.unchanged, "rows": self.rows, "bytes": self.bytes,
                "seconds": round(self.seconds, 3), "overlapped": round(self.overlapped, 3), "caught_up": self.caught_up,
                "replaced": self.replaced,
                "examined": self.examined,
                checkpoint.KEY: self.checked_through.isoformat() if self.ok and self.checked_through else None,
                "error": self.error.message if self.error else None}


class KeptManifest(ArchiveError):
    """The snapshot's manifest is not overwritten (one that cannot be read: it may be another
    warehouse's): no later run overwrites it either."""


class ForeignManifest(KeptManifest):
    """The snapshot's manifest belongs to another warehouse."""


def read_back_failed(exc: psycopg.Error) -> ArchiveError:
    """What the report says when the table could not be read back."""
    return ArchiveError(f"reading the snapshot back failed: {type(exc).__name__}: {exc}".strip())


def parquet_bytes(part: pa.Table) -> bytes:
    """One zstd Parquet file.  Dictionary encoding only where a chain repeats values
    (``table.REPEATING``): on prices, greeks and contract symbols it would be tried and given up,
    for a third of the encoder's CPU and slightly larger files."""
    sink = pa.BufferOutputStream()
    pq.write_table(part, sink, compression=COMPRESSION, compression_level=LEVEL,
                   use_dictionary=list(table.REPEATING))
    return bytes(sink.getvalue().to_pybytes())


def underlyings(conn: psycopg.Connection, snapshot: datetime) -> list[UUID]:
    return [r[0] for r in conn.execute("SELECT DISTINCT ticker_id FROM public.options_chains WHERE time = %s "
                                       "ORDER BY 1", (snapshot,)).fetchall()]


@dataclass(frozen=True)
class Part:
    """One underlying's stored rows of a snapshot, as read back."""

    ticker_id: UUID
    symbol: str | None
    rows: pa.Table      # of ``table.SCHEMA``
    content: str        # SHA-256 of the rows' bytes in the table's binary COPY (``manifest``)

    @property
    def updated(self) -> datetime | None:
        return pc.max(self.rows.column("updated_at")).as_py()


def copy_snapshot(conn: psycopg.Connection, snapshot: datetime, ids: list[UUID] | None = None) -> bytearray:
    """The binary COPY of one snapshot's rows (of ``ids``, or all), ordered by underlying and key."""
    where = sql.SQL("time = {}").format(sql.Literal(snapshot))
    if ids is not None:
        where = sql.SQL("{} AND ticker_id = ANY({}::uuid[])").format(where, sql.Literal(ids))
    return bulk.copy_out(conn, table.export_query(where).as_bytes(conn))


def symbols_of(conn: psycopg.Connection, ids: list[UUID], known: dict[UUID, str] | None = None) -> dict[UUID, str]:
    """The symbols of ``ids``: from ``known`` when it has them all, else every ticker's, read once
    into ``known`` (one query per export rather than one per batch)."""
    known = {} if known is None else known
    if any(i not in known for i in ids):
        known.update(conn.execute("SELECT id, symbol FROM public.tickers").fetchall())
    return known


def read_underlyings(conn: psycopg.Connection, snapshot: datetime, ids: list[UUID],
                     symbols: dict[UUID, str] | None = None) -> list[Part]:
    """Every stored row of one snapshot for these underlyings, one part each, in key order
    (``symbols``: a cache for ``symbols_of``)."""
    rows, body, starts = decode.decoded(copy_snapshot(conn, snapshot, ids), snapshot)
    if not len(starts):
        return []
    symbols = symbols_of(conn, ids, symbols)
    return [Part(tid, symbols.get(tid), rows.slice(first, end - first),
                 hashlib.sha256(decode.row_bytes(body, starts, first, end)).hexdigest())
            for tid, first, end in table.runs(decode.ticker_ids(body, starts))]


def _existing(store: Store, snapshot: datetime, owner: Warehouse) -> Manifest | None:
    """The snapshot's manifest, if any.  Raises KeptManifest when another warehouse wrote it, or
    when it cannot be read."""
    if manifest_key(snapshot) not in store.keys(snapshot_dir(snapshot)):
        return None
    try:
        found = Manifest.load(store, manifest_key(snapshot))  # its own snapshot's, or ValueError
    except ValueError as exc:  # whose it is cannot be told: writing over it could replace another's files
        raise KeptManifest(f"{store.location}/{manifest_key(snapshot)}: {exc}; not overwritten, nor its files",
                           hint="restore it from a copy of the archive, or move the snapshot's directory aside "
                                "if it is this warehouse's (the next options run archives it anew)") from None
    if found.warehouse is not None and found.warehouse != owner.name:
        raise ForeignManifest(f"{store.location}/{manifest_key(snapshot)} belongs to warehouse {found.warehouse}, "
                              f"not {owner.name}; not overwritten",
                              hint="give each warehouse its own KAPMAN_ARCHIVE_DIR (unset, it is archive/<warehouse>)")
    return found


class SnapshotFiles:
    """One snapshot's files while they are written: the manifest found (``old``) and the next one.

    A snapshot already archived keeps its manifest until something it lists changes; then the
    manifest is withdrawn first (``withdraw``), so that until the new one is written the snapshot
    counts as not archived (the next options run exports it again from the database) rather than
    listing bytes that are no longer there.  Files named in ``rewrite`` (found missing or damaged)
    are written even when the manifest lists their bytes.  Thread-safe: files are written from
    several threads.
    """

    def __init__(self, store: Store, snapshot: datetime, owner: Warehouse,
                 rewrite: frozenset[str] = frozenset()) -> None:
        self.store, self.snapshot, self.owner, self.rewrite = store, snapshot, owner, rewrite
        self.old = _existing(store, snapshot, owner)
        self.files: dict[str, Entry] = dict(self.old.files) if self.old else {}
        self.exported: set[UUID] = set()
        self.symbols: dict[UUID, str] = {}  # symbols_of's cache
        self._withdrawn = False
        self._lock = threading.Lock()

    def withdraw(self) -> None:
        with self._lock:
            if self.old is None or self._withdrawn:
                return
            self._withdrawn = True
        self.store.delete(manifest_key(self.snapshot))

    def write(self, part: Part, report: ExportReport) -> None:
        """One underlying's file, unless the manifest lists these very bytes already."""
        blob = parquet_bytes(table.to_file(part.rows, part.ticker_id, part.symbol))
        name = file_name(part.ticker_id)
        entry = Entry(part.ticker_id, part.rows.num_rows, len(blob), hashlib.sha256(blob).hexdigest(),
                      part.symbol, part.content, part.updated)
        before = self.old.files.get(name) if self.old is not None else None
        same = before == entry and name not in self.rewrite
        if not same:
            self.withdraw()
            self.store.put(f"{snapshot_dir(self.snapshot)}/{name}", blob)
        with self._lock:
            self.files[name] = entry
            self.exported.add(part.ticker_id)
            # other rows than the archive held (a replay, or a warehouse repaved without a restore)
            report.count(entry, same, replaced=before is not None and before.content not in (None, entry.content))

    def drop(self, ticker_id: UUID) -> None:
        """An underlying whose snapshot a rerun emptied: the manifest stops listing it."""
        with self._lock:
            self.exported.add(ticker_id)
            if self.files.pop(file_name(ticker_id), None) is None:
                return
        self.withdraw()

    def finish(self, report: ExportReport) -> None:
        """The manifest, written after every file it lists (unless nothing changed)."""
        if self.old is None or self._withdrawn or self.files != self.old.files or self.old.warehouse is None:
            self.store.put(manifest_key(self.snapshot), Manifest(
                self.snapshot, dict(self.files), self.owner.name, self.owner.source).to_bytes())
        report.snapshots += 1


def export_underlyings(conns: list[psycopg.Connection], files: SnapshotFiles, ids: list[UUID],
                       report: ExportReport) -> None:
    """Archive these underlyings of ``files``' snapshot as stored now, in batches over ``conns`` (the
    server sends one batch while another is decoded, compressed and written).  Raises
    ArchiveError (store) or psycopg.Error (read)."""
    free: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
    for conn in conns:
        free.put(conn)

    def read(batch: list[UUID]) -> list[Part]:
        conn = free.get()
        try:
            return read_underlyings(conn, files.snapshot, batch, files.symbols)
        finally:
            free.put(conn)

    def write(part: Part) -> None:
        files.write(part, report)

    batches = [ids[i:i + BATCH] for i in range(0, len(ids), BATCH)]
    with ThreadPoolExecutor(len(conns), thread_name_prefix="archive-read") as readers, \
            ThreadPoolExecutor(WRITERS, thread_name_prefix="archive-write") as writers:
        written = [writers.map(write, parts) for parts in readers.map(read, batches)]
        for _ in itertools.chain.from_iterable(written):  # re-raises a write's error
            pass


def export_snapshot(conns: list[psycopg.Connection], store: Store, snapshot: datetime, owner: Warehouse,
                    report: ExportReport, rewrite: frozenset[str] = frozenset()) -> None:
    """Archive one snapshot as stored now.  Raises ArchiveError (store) or psycopg.Error (read)."""
    ids = underlyings(conns[0], snapshot)
    if not ids:  # nothing stored under this time (a run that wrote nothing)
        return
    files = SnapshotFiles(store, snapshot, owner, rewrite)
    export_underlyings(conns, files, ids, report)
    files.finish(report)


def catch_up_missing(conns: list[psycopg.Connection], store: Store, owner: Warehouse, report: ExportReport,
                     done: set[datetime], *, everything: bool = False) -> None:
    """Export every stored snapshot that could need archiving (``checkpoint.window``) whose chains
    the archive does not cover (``coverage.Depth.ROWS``: no manifest of this warehouse, a chain it
    does not list or lists with another row count or update, a file missing or of another size),
    but those in ``done``; such files are written again.  Then every snapshot up to the newest
    examined is archived: the report's ``checked_through``, which the run's ledger row keeps.
    A snapshot whose manifest is kept (``KeptManifest``) is passed over and the others caught up;
    the first such error is raised at the end.
    ``everything`` (``--archive-only``): every stored snapshot is examined, whatever the checkpoint
    says, every archived file hashed (``Depth.FILES``: a file damaged in place is written again), and
    the snapshots past the retention window compared row by row (``Depth.CONTENT``), as retention
    compares them before it drops their chunks (``inventory.unarchived``): a file edited with its
    manifest, which retention keeps its snapshot for and names this command for, is written again
    too.  Rows are compared only there: reading every stored row of a full warehouse takes minutes."""
    scope = checkpoint.EVERYTHING if everything else checkpoint.window(conns[0], store)
    found = coverage.check(conns[0], store, owner, coverage.Depth.FILES if everything else coverage.Depth.ROWS,
                           skip=done, scope=scope)
    past = [t for t in retention.snapshots_past_window(conns[0]) if t not in done] if everything else []
    if past:
        deep = coverage.check(conns[0], store, owner, coverage.Depth.CONTENT, scope=checkpoint.Window.only(past))
        for snapshot, problems in deep.problems.items():
            found.problems.setdefault(snapshot, {}).update(problems)
    report.examined = found.snapshots
    kept: KeptManifest | None = None
    for snapshot, problems in sorted(found.problems.items()):
        try:
            export_snapshot(conns, store, snapshot, owner, report, frozenset(file_name(t) for t in problems))
        except KeptManifest as exc:  # that snapshot waits for the operator; the later ones need not
            kept = kept or exc
            continue
        report.caught_up.append(snapshot.isoformat())
    report.checked_through = checkpoint.checked_through(scope, found.checked, done)
    if kept is not None:
        raise kept


def export_snapshots(settings: Settings, snapshots: Iterable[datetime], *, catch_up: bool = True,
                     everything: bool = False) -> ExportReport:
    """Archive ``snapshots`` and (``catch_up``) every stored snapshot the archive lacks: of those the
    checkpoint leaves to examine, or (``everything``) of all.

    Never raises for the archive's sake: a failure is the report's ``error``.
    """
    started = time.perf_counter()
    report = ExportReport()
    try:
        owner = warehouse.of(settings)
        store = open_store(settings)
        report.location = store.location
        url = settings.require_database_url()
        with ExitStack() as stack:
            conns = [stack.enter_context(connect(url)) for _ in range(READERS)]
            wanted = list(snapshots)
            for snapshot in wanted:
                export_snapshot(conns, store, snapshot, owner, report)
            if catch_up:
                catch_up_missing(conns, store, owner, report, set(wanted), everything=everything)
    except KapManError as exc:  # the store, or no warehouse to archive for
        report.error = exc
    except psycopg.Error as exc:
        report.error = read_back_failed(exc)
    report.seconds = time.perf_counter() - started
    return report
