"""Load archived option snapshots into the database, through the ingester's own writer.

Only this warehouse's archive is restored (``kapman.archive.warehouse``): an archive that another
warehouse wrote, or a sandbox's into a live warehouse, is refused in one line unless
``from_warehouse`` names it.  Each archived file (one snapshot of one underlying) is checked before
anything is written: its SHA-256 and size against the manifest, a readable Parquet file with the
archive's columns and types (format 2, or format 1's), the manifest's row count, snapshot time,
underlying and symbol, one row per contract, values a chain can hold (``table.PLAUSIBLE``), and
its rows against the content hash the manifest recorded when they were archived.  It is then
written in one transaction by ``bulk.write_group``, under the options writer's lock: a straight
COPY when the database has no row of that snapshot and underlying, else staging and a merge that
adds only the rows the database lacks.  Rows keep their archived ``created_at``/``updated_at``, so a
restored table is the archived table.

Resumable: a file whose snapshot and underlying already hold the manifest's row count and latest
``updated_at`` is counted unchanged without being read (``force`` reads and merges it anyway).  A
stored row is never changed: a file whose rows differ from the stored chain's (another version of
it) is refused and the stored rows kept.  A bad file is reported with its name and skipped; the
rest are restored (exit 1).
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kapman import registry, signals
from kapman.archive import table, warehouse
from kapman.archive.manifest import Entry, Manifest, partition_date, snapshot_dir
from kapman.archive.store import ArchiveError, Store, open_store
from kapman.archive.warehouse import Warehouse
from kapman.config import Settings
from kapman.db import bulk, lifecycle, retention
from kapman.db.errors import wrap
from kapman.errors import UsageError
from kapman.execute import Context, Definition, execute
from kapman.params import date_span
from kapman.progress import Progress
from kapman.step import StepResult

log = logging.getLogger(__name__)

#: The options writer's lock class ("op"), so a restore and an ingest of one group never race.
LOCK_CLASS = 0x6F70
#: Files being read and encoded while one is written (Arrow's reader and numpy release the GIL).
PREPARERS, AHEAD = 2, 3


@dataclass(frozen=True)
class RestoreParams:
    day: date | None = None          # one snapshot date (New York)
    start: date | None = None        # or a range of them, inclusive; either end may be left open
    end: date | None = None
    force: bool = False              # read and merge files that look restored already
    #: Restore an archive written by this other warehouse (or a sandbox's into a live one); "any":
    #: whatever wrote it, format-1 archives (which name no warehouse) included.
    from_warehouse: str | None = None

    def validate(self) -> None:
        date_span(self.day, self.start, self.end, open_ended=True)

    @property
    def first(self) -> date | None:
        return self.day or self.start

    @property
    def last(self) -> date | None:
        return self.day or self.end


@dataclass
class RestoreDetails:
    location: str = ""
    warehouse: str = ""
    snapshots: int = 0


class BadFile(Exception):
    """An archived file that cannot be restored; the message says why."""


def manifests(store: Store, params: RestoreParams) -> list[str]:
    """Manifest keys of the snapshots in the date range, oldest first."""
    out = []
    for key in store.keys(table.TABLE):
        day = partition_date(key)
        if day is None or (params.first and day < params.first) or (params.last and day > params.last):
            continue
        out.append(key)
    return sorted(out)


def _within_window(conn: psycopg.Connection, keys: list[str], result: StepResult[RestoreDetails]) -> list[str]:
    """The manifests of snapshots the retention window keeps: an older one stays in the archive (restored,
    the next run's retention would drop it again), said in a note, or as the run's reason if it is all."""
    oldest = retention.cutoff(conn, "options_chains")
    if oldest is None:
        return keys
    kept = [k for k in keys if (partition_date(k) or oldest) >= oldest]
    older = len(keys) - len(kept)
    if older:
        said = (f"{older} archived snapshot(s) before the retention window (option snapshots are kept from "
                f"{oldest} by KapMan's clock) stay in the archive, not restored: retention would drop them again")
        if kept:
            result.note(said)
        else:
            result.nothing(said)
    return kept


def read_file(store: Store, key: str, entry: Entry) -> tuple[pa.Table, str | None]:
    """One archived file's rows (``table.SCHEMA``) and the symbol it names, its bytes verified
    against its manifest entry.  Raises BadFile."""
    data = store.get(key)
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        raise BadFile(f"checksum mismatch ({len(data)} bytes, manifest says {entry.size} and another SHA-256)")
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        problem = table.file_schema_problem(parquet.schema_arrow)
        if problem:
            raise BadFile(problem)
        rows, symbol = table.from_file(parquet.read(use_threads=False))  # the restore runs files in parallel
    except (pa.ArrowException, OSError) as exc:
        raise BadFile(f"unreadable Parquet ({exc})") from None
    except ValueError as exc:
        raise BadFile(str(exc)) from None
    if rows.num_rows != entry.rows:
        raise BadFile(f"{rows.num_rows} rows, manifest says {entry.rows}")
    return rows, symbol


def check_rows(rows: pa.Table, symbol: str | None, manifest: Manifest, entry: Entry) -> None:
    """The rows are the manifest entry's: its snapshot time, its underlying (id and symbol), one row
    per contract, and values a chain can hold.  Raises BadFile naming the first thing that differs."""
    times = pc.unique(rows.column("time")).to_pylist()
    if times and times != [manifest.snapshot_time]:
        raise BadFile(f"rows of snapshot {', '.join(t.isoformat() for t in times[:2])}, "
                      f"manifest says {manifest.snapshot_time.isoformat()}")
    ids = {UUID(bytes=b) for b in pc.unique(rows.column("ticker_id").combine_chunks().storage).to_pylist()}
    if ids and ids != {entry.ticker_id}:
        raise BadFile(f"rows of underlying {', '.join(sorted(map(str, ids))[:2])}, manifest says {entry.ticker_id}")
    if entry.symbol is not None and symbol != entry.symbol:
        raise BadFile(f"rows of symbol {symbol}, manifest says {entry.symbol}")
    contracts = rows.group_by(list(table.KEY[2:])).aggregate([]).num_rows
    if contracts != rows.num_rows:  # the table's key: the COPY would fail on it, or a merge write one row twice
        raise BadFile(f"{rows.num_rows - contracts} duplicate contract row(s) (same expiration, strike and type)")
    problem = table.implausible(rows)
    if problem:
        raise BadFile(f"implausible value ({problem})")


def _stored(conn: psycopg.Connection, manifest: Manifest) -> dict[UUID, tuple[int, datetime]]:
    """Rows stored and their latest ``updated_at`` per underlying for the manifest's snapshot."""
    return {tid: (int(n), updated) for tid, n, updated in conn.execute(
        "SELECT ticker_id, count(*), max(updated_at) FROM public.options_chains WHERE time = %s "
        "GROUP BY ticker_id", (manifest.snapshot_time,)).fetchall()}


def _restored(stored: tuple[int, datetime] | None, entry: Entry) -> bool:
    """The stored chain looks restored from ``entry`` already (what a resumed restore skips): its row
    count and, where the manifest records it, its latest ``updated_at`` (a restore keeps the archived
    stamps; a chain written since, or another version of it, has another)."""
    return stored is not None and stored[0] == entry.rows and entry.updated in (None, stored[1])


class StoredDiffers(BadFile):
    """The snapshot's stored chain is another version than the archived one: it is kept as stored."""


def _keep_stored(diff: bulk.Diff) -> None:
    """Refuse a file whose rows would change stored ones (``write_group``'s ``vet``): a stored row is
    as irreplaceable as an archived one, and the restore only adds what the database lacks."""
    if diff.changed or (diff.absent and diff.new):
        stored = diff.changed + diff.unchanged + diff.absent
        raise StoredDiffers(f"the database holds another version of this chain ({diff.changed} of {stored} stored "
                            f"rows differ, {diff.absent} not archived, {diff.new} archived not stored): the stored "
                            "rows are kept, nothing written (delete them to load the archived ones)")


def prepare(store: Store, key: str, manifest: Manifest, entry: Entry) -> tuple[int, bytes]:
    """One verified file as (rows, the binary COPY payload to write): its bytes, its rows against the
    manifest entry (``check_rows``), and the payload's rows against the entry's content hash (the
    rows the table held when they were archived).  Raises BadFile or ArchiveError."""
    rows, symbol = read_file(store, key, entry)
    check_rows(rows, symbol, manifest, entry)
    try:
        payload = table.to_payload(rows)
    except ValueError as exc:
        raise BadFile(str(exc)) from None
    if entry.content is not None and table.content_hash(payload) != entry.content:
        raise BadFile("rows differ from those archived (content hash mismatch)")
    return rows.num_rows, payload


def write_payload(conn: psycopg.Connection, manifest: Manifest, entry: Entry, rows: int,
                  payload: bytes) -> bulk.MergeCounts:
    """One file's rows in one transaction, as the options writer writes a chain."""
    with conn.transaction(), conn.cursor() as cur:
        if conn.info.encoding != "utf-8":
            cur.execute("SET LOCAL client_encoding TO 'UTF8'")  # the payload's text is UTF-8
        return bulk.write_group(
            cur, target=table.TABLE, columns=table.NAMES, payload=payload, rows=rows,
            group={"time": manifest.snapshot_time, "ticker_id": entry.ticker_id}, lock_class=LOCK_CLASS,
            key=table.KEY, compare=table.COMPARE, touch=None, vet=_keep_stored)


def _restore_snapshot(conn: psycopg.Connection, store: Store, key: str, params: RestoreParams,
                      result: StepResult, progress: Progress, pool: ThreadPoolExecutor, here: Warehouse,
                      unknown: set[str]) -> None:
    try:
        manifest = Manifest.load(store, key)
    except (ValueError, ArchiveError) as exc:
        result.fail(key, str(exc))
        return
    # read again here: one the first pass could not read (a store that failed once) is checked now
    owner = foreign(manifest, here, params.from_warehouse)
    if owner is not None:
        result.fail(key, f"a snapshot of {owner}; this is warehouse {here.describe()}: not restored")
        return
    unknown |= _unknown(conn, manifest)
    stored = {} if params.force else _stored(conn, manifest)
    todo: list[tuple[str, Entry]] = []
    for name, entry in sorted(manifest.files.items()):
        if _restored(stored.get(entry.ticker_id), entry):
            result.unchanged += entry.rows
            result.done += 1
            progress.advance(1, rows=result.written)
        else:
            todo.append((manifest.key(name), entry))
    # Files are read, verified and encoded AHEAD of the one being written: the writer waits on the
    # server, and the next payloads are ready when it is done.
    pending: deque[tuple[str, Entry, Future[tuple[int, bytes]]]] = deque()
    upcoming = iter(todo)
    def fill() -> None:
        while len(pending) < AHEAD:
            item = next(upcoming, None)
            if item is None:
                return
            pending.append((*item, pool.submit(prepare, store, item[0], manifest, item[1])))

    fill()
    while pending:
        file_key, entry, work = pending.popleft()
        fill()
        try:
            rows, payload = work.result()
            result.read += rows
            with signals.deferred():   # a file committed is a file counted
                counts = write_payload(conn, manifest, entry, rows, payload)
                result.written += counts.inserted + counts.updated
                result.unchanged += rows - counts.inserted - counts.updated
                result.done += 1
        except (BadFile, ArchiveError) as exc:
            result.fail(file_key, str(exc))
            log.warning("%s: %s; skipped", file_key, exc)
        except psycopg.Error as exc:
            error = wrap(exc, f"restoring {file_key}")
            if error.transient:    # the server is going away (kapman.execute says how far it got)
                for *_, later in pending:
                    later.cancel()
                raise error from exc
            result.fail(file_key, error.message)
        progress.advance(1, rows=result.written)
    result.details.snapshots += 1


def _unknown(conn: psycopg.Connection, manifest: Manifest) -> set[str]:
    """The underlyings of the snapshot that ``public.tickers`` does not list (symbol, else id)."""
    ids = [e.ticker_id for e in manifest.files.values()]
    known = {r[0] for r in conn.execute("SELECT id FROM public.tickers WHERE id = ANY(%s)", (ids,)).fetchall()}
    return {e.symbol or str(e.ticker_id) for e in manifest.files.values() if e.ticker_id not in known}


def _note_unknown(unknown: set[str], result: StepResult) -> None:
    """Their chains are restored (nothing fetches them again; ids come from symbols, so they join once
    the ticker is listed), but no report shows them until then: said once for the run."""
    if unknown:
        names = sorted(unknown)
        result.note(f"{len(names)} underlying(s) not in public.tickers restored all the same, unseen by reports "
                    f"until tickers lists them: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""))


def foreign(m: Manifest, here: Warehouse, allowed: str | None) -> str | None:
    """Whose ``m`` is, when it may not be restored into ``here``: another warehouse's, a format-1
    one's (no warehouse), or a sandbox's into a live warehouse, unless ``allowed`` names it (or is ANY)."""
    if allowed == warehouse.ANY:
        return None
    synthetic = m.source == warehouse.SANDBOX and here.source == warehouse.LIVE
    own_name = m.warehouse == here.name
    # Naming this warehouse admits its own live snapshots, never a sandbox's filed under its name.
    if m.warehouse is not None and allowed == m.warehouse and not (synthetic and own_name):
        return None
    if m.warehouse is None or not own_name or synthetic:
        return f"warehouse {m.warehouse} ({m.source})" if m.warehouse else "no warehouse (an older archive)"
    return None


def refusal(found: list[Manifest], here: Warehouse, location: str, allowed: str | None) -> UsageError | None:
    """Why these manifests may not be restored into ``here`` (``foreign``), naming the first."""
    for m in found:
        owner = foreign(m, here, allowed)
        if owner is None:
            continue
        hint = (f"to restore them here anyway, pass --from-warehouse {m.warehouse or warehouse.ANY}"
                if m.warehouse != here.name else
                f"sandbox snapshots are not mixed into a live warehouse: move the snapshot of "
                f"{m.snapshot_time:%Y-%m-%d %H:%M} UTC out of the archive, or restore the dates around it "
                f"(--start-date/--end-date); --from-warehouse {warehouse.ANY} restores it too")
        return UsageError(f"the archive at {location} holds snapshots of {owner}; this is warehouse "
                          f"{here.describe()}: nothing restored (the first: "
                          f"{m.directory or snapshot_dir(m.snapshot_time)})", hint=hint)
    return None


def restore(conn: psycopg.Connection, settings: Settings, params: RestoreParams, progress: Progress,
            result: StepResult[RestoreDetails]) -> None:
    if not conn.execute("SELECT EXISTS (SELECT 1 FROM public.tickers)").fetchone()[0]:  # type: ignore[index]
        raise UsageError("public.tickers is empty: option snapshots cannot be restored before tickers exist",
                         hint=f"run {registry.mend('tickers')} first (runbook Step 3)")
    here = warehouse.of(settings)
    store = open_store(settings)
    result.details.location = store.location
    result.details.warehouse = here.name
    keys = manifests(store, params)
    if not keys:
        result.nothing(f"no archived snapshots at {store.location}"
                       + (f" between {params.first or '...'} and {params.last or '...'}"
                          if params.first or params.last else ""))
        return
    keys = _within_window(conn, keys, result)
    if not keys:
        return
    total, found = 0, []
    for key in keys:  # the manifests are small: read them twice rather than hold them
        try:
            found.append(Manifest.load(store, key))
            total += len(found[-1].files)
        except (ValueError, ArchiveError):
            pass
    refused = refusal(found, here, store.location, params.from_warehouse)
    if refused is not None:
        raise refused
    progress.start(total, "restore", unit="file")
    unknown: set[str] = set()
    try:
        with ThreadPoolExecutor(PREPARERS, thread_name_prefix="restore") as pool:
            for key in keys:
                _restore_snapshot(conn, store, key, params, result, progress, pool, here, unknown)
    finally:
        progress.close()
        _note_unknown(unknown, result)
    result.headline = f"{result.done} files of {result.details.snapshots} snapshots from {store.location}"


def run(settings: Settings, params: RestoreParams,
        progress: Progress | None = None) -> StepResult[RestoreDetails]:
    """Restore the archived snapshots of ``params``' date range: the step behind the command."""
    return execute("restore-options", settings, params, progress)


def _body(ctx: Context, params: RestoreParams) -> None:
    # archived snapshots go into chunks past the compression window: its jobs wait, as for any bulk load
    ctx.enter(lifecycle.policies_paused(ctx.url, ["options_chains"]))
    restore(ctx.conn, ctx.settings, params, ctx.progress, ctx.result)


STEP = Definition(RestoreParams, _body, details=RestoreDetails)
