"""Load day bars into ``public.ohlcv``: base, incremental and backfill, from flat files or REST.

A run, in order: reconcile the ledger with the table (files recorded as loaded whose day has no
rows, after dropped chunks, are forgotten and so reloaded), refuse dates older than the retention
cutoff, list the window (an incremental run lists the trailing trading days again, so a
republished file is noticed by its ETag), compare what was listed with the NYSE calendar (a
trading day without a file past its publication time is missing data), then load each new or
republished file in a transaction of its own: parse and validate, write the day through
``bulk.write_group`` so its rows equal the file's (vanished tickers' rows deleted and counted),
and the file's ledger row.  Retention runs only after a run without failures.

Downloads and parsing run ahead of the writers (two connections, ``_Writers``) on a small thread
pool with a bounded window, so memory stays flat however many files there are; a killed run loses
nothing already committed.
"""

from __future__ import annotations

import hashlib
import logging
import queue
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

import numpy as np
import psycopg

from kapman import calendar, clock, registry
from kapman.config import NumberRange, Settings
from kapman.db import lifecycle, retention
from kapman.db.errors import wrap
from kapman.errors import (
    AuthError,
    ConnectionLost,
    EntitlementError,
    InputError,
    KapManError,
    NotFoundError,
    ProviderError,
    UsageError,
)
from kapman.execute import Context, Definition, execute
from kapman.ingest import ohlcv_plan as plan
from kapman.ingest.daybars import ParsedDay, parse_day_file, parse_grouped
from kapman.ingest.ohlcv_write import DayCounts, encode_day, match_rows, record_file, write_day
from kapman.ingest.tickermap import TickerMap, load_ticker_map
from kapman.params import date_span, in_range, not_after_today
from kapman.progress import NullProgress, Progress
from kapman.providers import flatfiles, grouped
from kapman.providers.flatfiles import FileRef, FlatFileSource
from kapman.providers.http import decode_json
from kapman.step import StepResult

log = logging.getLogger(__name__)

#: Files downloaded ahead of the writer: enough to hide S3 latency, few enough to bound memory
#: (a day file is ~200 kB gzipped, ~1 MB parsed).
PREFETCH = 8
#: --workers: threads that download and parse files at once; more than this only queues on S3.
WORKERS_RANGE = NumberRange(1, 32, integer=True)
RECHECK_RANGE = NumberRange(0, 10_000, integer=True)
#: base: calendar days back (a century is more than any retention window).
DAYS_RANGE = NumberRange(1, 36_500, integer=True)
UNKNOWN_SAMPLES = 20
MODES = ("base", "incremental", "backfill")
SOURCES = ("flatfiles", "rest")

__all__ = ["OhlcvParams", "ingest", "run"]


@dataclass(frozen=True)
class OhlcvParams:
    mode: str = "base"
    days: int = 730                       # base: calendar days back
    as_of: date | None = None             # base: last day (default today by KapMan's clock)
    start: date | None = None             # incremental (optional) and backfill
    end: date | None = None
    force: bool = False                   # reload files of the window even when their ETag is unchanged
    workers: int = 4
    recheck_days: int = plan.RECHECK_DAYS  # incremental: trailing trading days listed again
    source: str = "flatfiles"
    retention: bool = True                # enforce retention after a run without failures

    def validate(self) -> None:
        in_range("--workers", self.workers, WORKERS_RANGE)
        in_range("--recheck-days", self.recheck_days, RECHECK_RANGE)
        in_range("--days", self.days, DAYS_RANGE)
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.source not in SOURCES:
            raise UsageError(f"--source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.mode == "backfill":
            if self.start is None or self.end is None:
                raise UsageError("backfill needs --start-date and --end-date")
        date_span(None, self.start, self.end, open_ended=True)   # incremental's ends are optional


def open_source(settings: Settings, kind: str) -> FlatFileSource:
    if kind == "rest":
        from kapman.providers.polygon import PolygonClient

        return grouped.GroupedDailySource(PolygonClient.from_settings(settings))
    return flatfiles.source_from_settings(settings)


def run(settings: Settings, params: OhlcvParams, progress: Progress | None = None) -> StepResult[OhlcvDetails]:
    """The OHLCV step (see kapman.execute)."""
    return execute("ohlcv", settings, params, progress)


def _body(ctx: Context, params: OhlcvParams) -> None:
    source = open_source(ctx.settings, params.source)
    ctx.stack.callback(source.close)
    ctx.result.unit = source.unit
    # Policy jobs that drop or compress ohlcv chunks wait while the load writes.
    ctx.enter(lifecycle.policies_paused(ctx.url, ["ohlcv"]))
    ingest(ctx.conn, source, params, ctx.result, ctx.progress, run_id=ctx.run_id, extra=[ctx.connect()])


STEP = Definition(OhlcvParams, _body, details=lambda: OhlcvDetails(),
                  planned=lambda settings, start, end: OhlcvParams(mode="backfill", start=start, end=end))


def window_for(conn: psycopg.Connection, params: OhlcvParams) -> plan.Window:
    # A window that starts after today lists only files that cannot be published yet.
    today = lifecycle.warehouse_today(conn)
    not_after_today(params.as_of if params.mode == "base" else params.start, today)
    if params.mode == "base":
        return plan.base_window(params.days, params.as_of)
    # ... and one that ends after it is loaded, and said, up to today (not "backfill 2023-12-20..2100-01-01")
    end = min(params.end, today) if params.end else None
    if params.mode == "incremental":
        return plan.incremental_window(conn, start=params.start, end=end, recheck=params.recheck_days)
    assert params.start is not None and end is not None
    return plan.backfill_window(params.start, end)


@dataclass
class OhlcvDetails:
    """What a run did beyond the StepResult's counts, for the summary, --json and the ledger."""

    mode: str | None = None
    source: str | None = None
    start: date | None = None
    end: date | None = None
    newest_before: date | None = None
    files_listed: int = 0
    republished: list[str] = field(default_factory=list)
    ledger_reconciled: list[str] = field(default_factory=list)
    missing_days: list[str] = field(default_factory=list)
    pending_days: list[str] = field(default_factory=list)
    files_loaded: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_removed: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    reject_samples: dict[str, list[str]] = field(default_factory=dict)
    ambiguous_symbols: dict[str, list[str]] = field(default_factory=dict)
    unknown_rows: int = 0
    unknown: set[str] = field(default_factory=set)   # symbols without a ticker (the first thousand)
    retention: str | None = None
    retention_ledger_removed: list[str] = field(default_factory=list)
    forbidden: int = 0    # files S3 refused (403)
    attempted: int = 0    # files the writer took up

    def units_done(self) -> int:
        return self.files_loaded

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("unknown", "forbidden", "attempted")}
        out["rejected_by_reason"] = dict(self.rejected_by_reason)
        out["unknown_symbols_sample"] = sorted(self.unknown)[:UNKNOWN_SAMPLES]
        return out


def ingest(conn: psycopg.Connection, source: FlatFileSource, params: OhlcvParams,
           result: StepResult[OhlcvDetails], progress: Progress | None = None, *,
           run_id: Any = None, extra: Sequence[psycopg.Connection] = ()) -> StepResult[OhlcvDetails]:
    """Everything ``run`` does on a connection it was given (tests and benchmarks use it); files are
    written on it and on the ``extra`` connections at once, each in its own transaction."""
    progress = progress or NullProgress()
    tickers = load_ticker_map(conn)
    if not len(tickers):
        raise UsageError("public.tickers is empty: OHLCV cannot be ingested before tickers exist",
                         hint=f"run {registry.mend('tickers')} first")
    window, refused = plan.refuse_expired(window_for(conn, params), plan.retention_cutoff(conn))
    if refused:
        result.note(refused)
    _reconcile(conn, result)
    first = window.first_listed
    refs = source.list_files(first, window.end) if first <= window.end else []
    known = plan.ledger(conn, first, window.end)
    todo, republished, unchanged = _select(refs, known, window, params.force)
    tally = result.details
    tally.files_unchanged = len(unchanged)
    result.done += len(unchanged)
    _coverage(window, refs, known, result, source.unit)
    _describe_plan(result, window, source, refs, republished)

    noun = "request" if source.format == grouped.FORMAT else "file"
    progress.start(len(todo), _progress_title(window, source, len(todo)), unit=noun)
    writers = _Writers([conn, *extra], source.label, run_id)
    try:
        with writers:
            for ref, written in writers.each(_prefetch(source, todo, params.workers, tickers)):
                tally.attempted += 1
                try:
                    _count(ref, *written.result(), result, tally)
                except EntitlementError as exc:
                    tally.forbidden += 1
                    result.fail(ref.key, exc.message)
                except NotFoundError as exc:
                    _absent(result, ref, exc)
                except (AuthError, ConnectionLost):
                    raise                      # every other file would fail the same way
                except KapManError as exc:     # a bad or unreadable file: record it, load the rest
                    result.fail(ref.key, _without_key(exc, ref.key))
                    log.warning("%s: %s", ref.key, _without_key(exc, ref.key))
                progress.advance(1, rows=result.written + result.unchanged, rejected=result.rejected)
    finally:
        for ref, prepared, counts in writers.committed():
            tally.attempted += 1
            _count(ref, prepared, counts, result, tally)
        progress.close()
        _report(result, tally, window, source)
    if tally.forbidden and tally.forbidden == tally.attempted:
        raise AuthError(f"S3 refused every one of the {tally.forbidden} file(s) it listed (403 AccessDenied)",
                        status=403, hint=flatfiles.CREDENTIALS_HINT)
    if params.retention:       # never as a side effect of a failed run
        report = retention.after_run(conn, succeeded=not result.failures)
        tally.retention = report.describe()
        tally.retention_ledger_removed = [str(d) for d in report.ledger_removed]
        result.note(report.describe())
    return result


def _without_key(exc: KapManError, key: str) -> str:
    """The error's message without the file key it starts with (the failure names the file)."""
    message = exc.message
    if isinstance(exc, InputError) and exc.source == key:
        rest = message.removeprefix(key)
        return f"line {exc.line}{rest.removeprefix(f':{exc.line}')}" if exc.line is not None else rest.lstrip(": ")
    return message.removeprefix(f"{key}: ")


def _select(refs: list[FileRef], known: dict[str, plan.Loaded], window: plan.Window,
            force: bool) -> tuple[list[FileRef], list[FileRef], list[FileRef]]:
    """(to load, of which republished, unchanged): new keys, changed ETags, and with ``force`` every
    file of the window (trailing re-checked days reload only when changed)."""
    todo, republished, unchanged = [], [], []
    for ref in refs:
        entry = known.get(ref.key)
        etag = entry.etag if entry else None
        changed = etag is not None and bool(ref.etag) and etag != ref.etag
        if changed:
            republished.append(ref)
        if etag is None or changed or (force and ref.day >= window.start):
            todo.append(ref)
        else:
            unchanged.append(ref)
    return todo, republished, unchanged


def _reconcile(conn: psycopg.Connection, result: StepResult[OhlcvDetails]) -> None:
    """Forget files recorded as loaded whose day has no rows (dropped chunks): they load again."""
    with conn.transaction():
        days = retention.reconcile_ledger(conn)
    result.details.ledger_reconciled = [str(d) for d in days]
    if days:
        result.note(f"{len(days)} day(s) recorded as loaded had no rows in ohlcv (dropped chunks?): "
                    f"{calendar.spans(days)}; forgotten by the ledger, reloaded when inside the window")


def _coverage(window: plan.Window, refs: list[FileRef], known: dict[str, plan.Loaded],
              result: StepResult[OhlcvDetails],
              unit: str) -> None:
    """Fail the trading days of the window without a file, and re-checked days without one that were never
    loaded either (a re-checked day already loaded keeps its rows whatever the listing says); note the
    days not published yet."""
    listed = refs + [FileRef(k, e.day, "", 0) for k, e in known.items() if e.day < window.start]
    cover = plan.coverage(window.first_listed, window.end, listed) if window.first_listed <= window.end \
        else plan.Coverage([], [])
    what = "no flat file" if unit == "files" else "no session data"
    for day in cover.missing:
        result.fail(str(day), f"{what} for this trading day, due by {plan.due_at(day):%Y-%m-%d %H:%M} New York")
    for day in cover.pending:
        result.note(f"{day}: not published yet (due by {plan.due_at(day):%Y-%m-%d %H:%M} New York)")
    result.details.missing_days = [str(d) for d in cover.missing]
    result.details.pending_days = [str(d) for d in cover.pending]


def _absent(result: StepResult[OhlcvDetails], ref: FileRef, exc: NotFoundError) -> None:
    """A listed day that turned out to have nothing (REST: no results; S3: deleted since listing)."""
    if plan.due_at(ref.day) > clock.now():
        result.note(f"{ref.day}: not published yet (due by {plan.due_at(ref.day):%Y-%m-%d %H:%M} New York)")
        result.details.pending_days.append(str(ref.day))
    else:
        result.fail(str(ref.day), exc.message)
        result.details.missing_days.append(str(ref.day))


def _describe_plan(result: StepResult[OhlcvDetails], window: plan.Window, source: FlatFileSource, refs: list[FileRef],
                   republished: list[FileRef]) -> None:
    d = result.details
    d.mode, d.source, d.newest_before, d.files_listed = window.mode, source.label, window.newest, len(refs)
    d.start, d.end = (None, None) if window.empty else (window.start, window.end)
    d.republished = [r.key for r in republished]
    for ref in republished:
        result.note(f"{ref.day}: republished (new ETag {ref.etag}); reloaded")


def _progress_title(window: plan.Window, source: FlatFileSource, todo: int) -> str:
    title = f"ohlcv {window.describe()}"
    rate = getattr(source, "requests_per_minute", None)
    if rate and todo:
        title += f" ({todo} requests at {rate:g}/min: about {todo / rate:.0f} min)"
    return title


@dataclass(frozen=True)
class _Prepared:
    """One listed file read, parsed, matched to tickers and encoded: all the writer has to send."""

    parsed: ParsedDay
    etag: str
    size: int
    ids: np.ndarray       # ticker ids of the known rows, in write order (by id)
    payload: bytes        # those rows as one binary COPY payload
    unknown: np.ndarray   # symbols without a ticker
    refused: np.ndarray   # ticker ids of rejected rows: their stored rows stay


def _prepare(source: FlatFileSource, ref: FileRef, tickers: TickerMap) -> _Prepared:
    """Runs on the download pool, so the writers only wait on the database."""
    data = source.read(ref)
    etag = ref.etag or hashlib.md5(data).hexdigest()  # noqa: S324 - a version tag, as S3's ETag
    if source.format == grouped.FORMAT:
        parsed, size = _parse_grouped_body(data, ref), len(data)
    else:
        parsed, size = parse_day_file(data, ref.key, ref.day), ref.size or len(data)
    if not parsed.rows_read:  # a header alone would make the day's stored rows "no longer in the file"
        raise InputError("no rows, only a header; not recorded as loaded, the day's stored rows kept", source=ref.key)
    if not len(parsed.symbols):  # recorded as loaded only if its rows were
        reasons = ", ".join(f"{n} {why}" for why, n in parsed.rejected.most_common())
        sample = next(iter(parsed.samples.values()), [""])[0]
        raise InputError(f"every one of its {parsed.rows_read} rows was rejected ({reasons}; e.g. {sample}); "
                         "not recorded as loaded, the day's stored rows kept", source=ref.key)
    known, ids, unknown = match_rows(tickers, parsed.symbols)
    if not len(ids):  # nothing to write, and every stored row of the day would be "no longer in the file"
        raise InputError(f"none of its {len(unknown)} symbols is a known ticker (e.g. {', '.join(unknown[:3])}); "
                         "not recorded as loaded, the day's stored rows kept", source=ref.key)
    refused = match_rows(tickers, parsed.refused)[1]
    return _Prepared(parsed, etag, size, ids, encode_day(ref.day, ids, parsed, known), unknown, refused)


def _parse_grouped_body(data: bytes, ref: FileRef) -> ParsedDay:
    try:  # decoded as the fetch checked it (a NaN literal or a BOM is JSON there, not to orjson)
        body = decode_json(data, ref.key)
    except ProviderError as exc:
        raise InputError(f"grouped-daily {exc.message.removeprefix(ref.key + ': ')}", source=ref.key) from None
    results = body.get("results")
    if not results:
        raise NotFoundError(f"the grouped-daily endpoint returned no bars for {ref.day}", url=ref.key)
    return parse_grouped(results, ref.key, ref.day)


def _prefetch(source: FlatFileSource, refs: list[FileRef], workers: int,
              tickers: TickerMap) -> Iterator[tuple[FileRef, Future[_Prepared]]]:
    """Yield (ref, future) in order, at most PREFETCH files in flight.

    Download, parse, ticker matching and encoding run on the pool (pandas' parser and the socket
    reads release the GIL), so the writers only ever wait on the database.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="flatfile") as pool:
        pending: list[tuple[FileRef, Future]] = []
        queue = iter(refs)
        for ref in queue:
            pending.append((ref, pool.submit(_prepare, source, ref, tickers)))
            if len(pending) >= PREFETCH:
                break
        while pending:
            ref, fut = pending.pop(0)
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_prepare, source, nxt, tickers)))
            yield ref, fut


class _Writers:
    """Files written on several connections at once, each in its own transaction, and handed back
    in the order they were listed, so the run counts and reports them on one thread as before.

    One connection's COPY leaves a 2-core server half idle while the next file is parsed; two
    load the same files about 1.5x faster (the bench's two-stream COPY).  Each file is one day,
    under that day's own lock (``bulk.write_group``), so two files never write the same rows."""

    def __init__(self, conns: list[psycopg.Connection], label: str, run_id: Any) -> None:
        self.label, self.run_id = label, run_id
        self.free: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
        for conn in conns:
            self.free.put(conn)
        self.size = len(conns)
        self.pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="ohlcv-write")
        self.inflight: deque[tuple[FileRef, Future[tuple[_Prepared, DayCounts]]]] = deque()

    def __enter__(self) -> _Writers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)  # a write under way ends before the run does

    def each(self, prepared: Iterator[tuple[FileRef, Future[_Prepared]]]
             ) -> Iterator[tuple[FileRef, Future[tuple[_Prepared, DayCounts]]]]:
        """(ref, its write) in order, with at most one write in flight per connection."""
        for ref, future in prepared:
            self.inflight.append((ref, self.pool.submit(self._write, ref, future)))
            if len(self.inflight) >= self.size:
                yield self._oldest()     # waited for, so the next write has a free connection
        while self.inflight:
            yield self._oldest()

    def _oldest(self) -> tuple[FileRef, Future[tuple[_Prepared, DayCounts]]]:
        """The oldest write, once it ended.  It stays in flight while waited for: an interrupt then
        (it mostly comes while the run waits for a commit) leaves it to ``committed``."""
        self.inflight[0][1].exception()
        return self.inflight.popleft()

    def committed(self) -> Iterator[tuple[FileRef, _Prepared, DayCounts]]:
        """After a run stopped early (an interrupt, a lost connection): the writes still in flight,
        waited for, that committed; the run counts them as the ledger does."""
        while self.inflight:
            ref, written = self.inflight.popleft()
            if not written.cancel() and written.exception() is None:
                yield (ref, *written.result())

    def _write(self, ref: FileRef, future: Future[_Prepared]) -> tuple[_Prepared, DayCounts]:
        prepared = future.result()      # a download or parse error is this file's, raised here
        conn = self.free.get()
        try:
            return prepared, _load(conn, ref, prepared, self.label, self.run_id)
        finally:
            self.free.put(conn)


def _load(conn: psycopg.Connection, ref: FileRef, prepared: _Prepared, label: str, run_id: Any) -> DayCounts:
    """One file in one transaction: the day's rows, then its ledger row."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            counts = write_day(cur, ref.day, prepared.ids, prepared.payload, prepared.refused)
            record_file(cur, ref, prepared.etag, prepared.size, label, prepared.parsed, len(prepared.ids),
                        len(prepared.unknown), run_id)
    except psycopg.Error as exc:
        raise wrap(exc, f"loading {ref.key}") from exc
    return counts


def _count(ref: FileRef, prepared: _Prepared, counts: DayCounts, result: StepResult[OhlcvDetails],
           tally: OhlcvDetails) -> None:
    """A written file's part of the run's counts, samples and notes."""
    parsed, unknown = prepared.parsed, prepared.unknown
    tally.files_loaded += 1
    result.done += 1
    result.read += parsed.rows_read
    result.written += counts.inserted + counts.updated
    result.unchanged += counts.unchanged
    result.removed += counts.removed
    result.rejected += parsed.rows_rejected
    tally.rows_inserted += counts.inserted
    tally.rows_updated += counts.updated
    tally.rejected_by_reason.update(parsed.rejected)
    for reason, samples in parsed.samples.items():
        kept = tally.reject_samples.setdefault(reason, [])
        kept.extend(f"{ref.key} {s}" for s in samples[: 3 - len(kept)])
    if parsed.ambiguous:
        tally.ambiguous_symbols[str(ref.day)] = list(parsed.ambiguous)
        for sample in parsed.samples.get("duplicate_symbol", []):
            result.note(f"{ref.day}: {sample}")
    if counts.removed:
        result.note(f"{ref.day}: {counts.removed} row(s) of tickers no longer in the file removed")
    for note in parsed.notes:
        result.note(note)
    tally.unknown_rows += len(unknown)
    if len(tally.unknown) < 1000:
        tally.unknown.update(unknown.tolist())


def _report(result: StepResult[OhlcvDetails], tally: OhlcvDetails, window: plan.Window,
            source: FlatFileSource) -> None:
    unit = source.unit
    loaded = f"{tally.files_loaded} {unit} loaded"
    if tally.files_loaded and result.read:
        loaded += f" ({result.read / max(result.elapsed, 1e-3):,.0f} rows/s)"
    parts = [f"{window.describe()} from {source.label}: {loaded}", f"{tally.files_unchanged} unchanged"]
    if tally.republished:
        parts.append(f"{len(tally.republished)} republished")
    if tally.missing_days:
        parts.append(f"{len(tally.missing_days)} trading day(s) missing")
    if not tally.files_loaded and not result.failures:
        parts.append("up to date")
    result.headline = ", ".join(parts)
    for reason, count in sorted(tally.rejected_by_reason.items()):
        if reason != "duplicate_symbol":
            result.note(f"rejected {reason}: {count} (e.g. {'; '.join(tally.reject_samples.get(reason, []))})")
    if tally.unknown_rows:
        sample = " ".join(sorted(tally.unknown)[:UNKNOWN_SAMPLES])
        result.note(f"{tally.unknown_rows} rows of {len(tally.unknown)} symbols not in public.tickers "
                    f"(e.g. {sample})")
    tally.files_failed, tally.rows_unchanged, tally.rows_removed = len(result.failures), result.unchanged, \
        result.removed
