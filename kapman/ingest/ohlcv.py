"""Load day-aggregate flat files into ``public.ohlcv``: base, incremental and backfill.

Per file, in one transaction: parse and validate, binary COPY of the accepted rows, a set-based
merge on (ticker_id, date) that updates only changed rows, and the file's ledger row (key, ETag,
counts).  A rerun skips files whose ETag is unchanged and reloads republished ones; a killed run
loses nothing already committed.  Downloads run ahead of parsing and writing on a small thread
pool with a bounded window, so memory stays flat however many files there are.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from kapman import clock
from kapman.db import bulk, retention, runs
from kapman.db.errors import wrap
from kapman.errors import AuthError, KapManError, UsageError
from kapman.ingest.daybars import ParsedDay, parse_day_file
from kapman.ingest.tickermap import TickerMap, load_ticker_map
from kapman.progress import NullProgress, Progress
from kapman.providers.flatfiles import FileRef, FlatFileSource

log = logging.getLogger(__name__)

#: Files downloaded ahead of the writer: enough to hide S3 latency, few enough to bound memory
#: (a day file is ~200 kB gzipped, ~1 MB parsed).
PREFETCH = 8
#: Transaction-scoped lock so two OHLCV runs never interleave.
LOCK_KEY = 0x6F686C6376  # "ohlcv"
UNKNOWN_SAMPLES = 20

COLUMNS = ("ticker_id", "date", "open", "high", "low", "close", "volume", "transactions")
_WITHOUT_TX = COLUMNS[:-1]


@dataclass
class OhlcvResult:
    mode: str
    start: date
    end: date
    files_listed: int = 0
    files_skipped: int = 0
    files_loaded: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rejected: Counter = field(default_factory=Counter)
    reject_samples: dict[str, list[str]] = field(default_factory=dict)
    unknown_rows: int = 0
    unknown_symbols: set[str] = field(default_factory=set)
    retention: str = ""
    seconds: float = 0.0

    @property
    def rows_loaded(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    def summary(self) -> str:
        rate = self.rows_loaded / self.seconds if self.seconds else 0.0
        lines = [f"ohlcv {self.mode} {self.start}..{self.end}: {self.files_loaded} files loaded, "
                 f"{self.files_skipped} unchanged skipped, {len(self.failed)} failed; "
                 f"{self.rows_loaded} rows ({self.rows_inserted} new, {self.rows_updated} updated, "
                 f"{self.rows_unchanged} unchanged), {sum(self.rejected.values())} rejected, "
                 f"{self.unknown_rows} rows of {len(self.unknown_symbols)} unknown symbols; "
                 f"{self.seconds:.1f}s, {rate:,.0f} rows/s"]
        for reason, count in sorted(self.rejected.items()):
            lines.append(f"  rejected {reason}: {count} (e.g. {'; '.join(self.reject_samples.get(reason, []))})")
        if self.unknown_symbols:
            lines.append(f"  unknown symbols (sample): {' '.join(sorted(self.unknown_symbols)[:UNKNOWN_SAMPLES])}")
        for key, reason in sorted(self.failed.items()):
            lines.append(f"  failed {key}: {reason}")
        if self.retention:
            lines.append(f"  {self.retention}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "start": self.start, "end": self.end, "files_listed": self.files_listed,
                "files_skipped": self.files_skipped, "files_loaded": self.files_loaded, "failed": self.failed,
                "rows_read": self.rows_read, "rows_loaded": self.rows_loaded, "rows_inserted": self.rows_inserted,
                "rows_updated": self.rows_updated, "rows_unchanged": self.rows_unchanged,
                "rejected": dict(self.rejected), "reject_samples": self.reject_samples,
                "unknown_rows": self.unknown_rows,
                "unknown_symbols_sample": sorted(self.unknown_symbols)[:UNKNOWN_SAMPLES],
                "retention": self.retention, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Window:
    mode: str
    start: date
    end: date


def base_window(days: int, as_of: date | None = None) -> Window:
    end = as_of or clock.today_ny()
    if days < 1:
        raise UsageError("--days must be at least 1")
    return Window("base", end - timedelta(days=days), end)


def incremental_window(conn: psycopg.Connection, *, start: date | None = None, end: date | None = None) -> Window:
    if start is None:
        newest = conn.execute("SELECT max(date) FROM public.ohlcv").fetchone()[0]  # type: ignore[index]
        if newest is None:
            raise UsageError("no OHLCV loaded yet, so there is nothing to continue from",
                             hint="run python -m scripts.ingest_ohlcv base first")
        start = newest + timedelta(days=1)
    return Window("incremental", start, end or clock.today_ny())


def backfill_window(start: date, end: date) -> Window:
    if start > end:
        raise UsageError(f"--start {start} is after --end {end}")
    return Window("backfill", start, end)


def _ledger(conn: psycopg.Connection, start: date, end: date) -> dict[str, str]:
    rows = conn.execute("SELECT key, etag FROM public.ingest_files WHERE trading_date BETWEEN %s AND %s",
                        (start, end)).fetchall()
    return {k: e for k, e in rows}


def _fetch_and_parse(source: FlatFileSource, ref: FileRef) -> ParsedDay:
    return parse_day_file(source.read(ref), ref.key)


def _prefetch(source: FlatFileSource, refs: list[FileRef], workers: int) -> Iterator[tuple[FileRef, Future]]:
    """Yield (ref, future ParsedDay) in order, at most PREFETCH files in flight.

    Download and parse run on the pool (pandas' parser and the socket reads release the GIL),
    so the writer thread only ever waits on the database.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="flatfile") as pool:
        pending: list[tuple[FileRef, Future]] = []
        queue = iter(refs)
        for ref in queue:
            pending.append((ref, pool.submit(_fetch_and_parse, source, ref)))
            if len(pending) >= PREFETCH:
                break
        while pending:
            ref, fut = pending.pop(0)
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_fetch_and_parse, source, nxt)))
            yield ref, fut


def index_order(ids: np.ndarray) -> np.ndarray:
    """Row order by ticker id, so inserts walk the (ticker_id, date) index leaf pages in order."""
    words = ids.view(">u8").reshape(len(ids), 2)
    return np.lexsort((words[:, 1], words[:, 0]))


def _write_day(cur: psycopg.Cursor, day: date, ids: np.ndarray, parsed: ParsedDay, rows: np.ndarray,
               fresh: bool) -> bulk.MergeCounts:
    """COPY the accepted, known rows; straight into ohlcv when the date has no rows yet."""
    dates = np.full(len(rows), np.datetime64(day, "D"))
    has_tx = ~np.isnan(parsed.transactions[rows])
    target: sql.Composable = sql.Identifier("public", "ohlcv")
    if not fresh:
        target = bulk.create_staging(cur, "ohlcv_stage", "ohlcv", COLUMNS)
    for mask, columns in ((has_tx, COLUMNS), (~has_tx, _WITHOUT_TX)):
        if not mask.any():
            continue
        sel = rows[mask]
        data = [("uuid", ids[mask]), ("date", dates[mask]), ("float8", parsed.open[sel]),
                ("float8", parsed.high[sel]), ("float8", parsed.low[sel]), ("float8", parsed.close[sel]),
                ("float8", parsed.volume[sel])]
        if columns is COLUMNS:
            data.append(("int8", parsed.transactions[sel].astype(np.int64)))
        bulk.copy_binary(cur, target, columns, bulk.encode_binary_copy(data))
    if fresh:
        return bulk.MergeCounts(inserted=len(rows), updated=0)
    return bulk.merge(cur, target="ohlcv", staging=target, key=("ticker_id", "date"),  # type: ignore[arg-type]
                      columns=COLUMNS)


def load_file(conn: psycopg.Connection, ref: FileRef, parsed: ParsedDay, tickers: TickerMap, source_label: str,
              run_id: Any, result: OhlcvResult) -> None:
    idx = tickers.index_of(parsed.symbols)
    known = np.flatnonzero(idx >= 0)
    known = known[index_order(tickers.ids[idx[known]])]
    unknown = parsed.symbols[idx < 0]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        fresh = not cur.execute("SELECT EXISTS (SELECT 1 FROM public.ohlcv WHERE date = %s)",
                                (ref.day,)).fetchone()[0]  # type: ignore[index]
        counts = _write_day(cur, ref.day, tickers.ids[idx[known]], parsed, known, fresh) if len(known) else \
            bulk.MergeCounts(0, 0)
        cur.execute("""
            INSERT INTO public.ingest_files (source, key, trading_date, etag, size_bytes, rows_read, rows_loaded,
                                             rows_rejected, rows_unknown, run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (key) DO UPDATE SET source = EXCLUDED.source, etag = EXCLUDED.etag,
                size_bytes = EXCLUDED.size_bytes, rows_read = EXCLUDED.rows_read,
                rows_loaded = EXCLUDED.rows_loaded, rows_rejected = EXCLUDED.rows_rejected,
                rows_unknown = EXCLUDED.rows_unknown, run_id = EXCLUDED.run_id, loaded_at = now()""",
                    (source_label, ref.key, ref.day, ref.etag, ref.size, parsed.rows_read, len(known),
                     parsed.rows_rejected, len(unknown), run_id))
    result.files_loaded += 1
    result.rows_read += parsed.rows_read
    result.rows_inserted += counts.inserted
    result.rows_updated += counts.updated
    result.rows_unchanged += len(known) - counts.inserted - counts.updated
    result.rejected.update(parsed.rejected)
    for reason, samples in parsed.samples.items():
        kept = result.reject_samples.setdefault(reason, [])
        kept.extend(f"{ref.key} {s}" for s in samples[: 3 - len(kept)])
    result.unknown_rows += len(unknown)
    if len(result.unknown_symbols) < 1000:
        result.unknown_symbols.update(unknown.tolist())


def ingest_ohlcv(conn: psycopg.Connection, source: FlatFileSource, window: Window, *, force: bool = False,
                 workers: int = 4, progress: Progress | None = None, enforce_retention: bool = True) -> OhlcvResult:
    progress = progress or NullProgress()
    started = time.perf_counter()
    tickers = load_ticker_map(conn)
    if not len(tickers):
        raise UsageError("public.tickers is empty: OHLCV cannot be ingested before tickers exist",
                         hint="run python -m scripts.ingest_tickers --force first")
    result = OhlcvResult(window.mode, window.start, window.end)
    refs = source.list_files(window.start, window.end)
    result.files_listed = len(refs)
    ledger = {} if force else _ledger(conn, window.start, window.end)
    todo = [r for r in refs if ledger.get(r.key) != r.etag]
    result.files_skipped = len(refs) - len(todo)
    run_id = runs.start_run(conn, "ohlcv", {"mode": window.mode, "start": window.start, "end": window.end,
                                            "force": force, "source": source.label})
    progress.start(len(todo), f"ohlcv {window.mode}", unit="file")
    try:
        for ref, future in _prefetch(source, todo, workers):
            try:
                load_file(conn, ref, future.result(), tickers, source.label, run_id, result)
            except psycopg.Error as exc:
                conn.rollback()
                error = wrap(exc, f"loading {ref.key}")
                if error.transient:   # the server is going away: stop, the rerun resumes
                    raise error from exc
                result.failed[ref.key] = error.message
            except AuthError:
                raise                 # every other file would fail the same way
            except KapManError as exc:  # a bad or unreadable file: record it, load the rest
                result.failed[ref.key] = exc.message
                log.warning("%s: %s", ref.key, exc.message)
            progress.advance(1, rows=result.rows_loaded, rejected=sum(result.rejected.values()))
    finally:
        progress.close()
        result.seconds = time.perf_counter() - started
        status = "ok" if not result.failed else ("partial" if result.files_loaded else "failed")
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        runs.finish_run(conn, run_id, status, result.as_dict())
    if enforce_retention:
        result.retention = retention.enforce_retention(conn).describe()
    result.seconds = time.perf_counter() - started
    return result
