"""A2: technical indicators and price metrics for every ticker with a bar on the requested dates.

Read once in bulk (binary COPY decoded by numpy), adjust for the splits executed by each date
(``kapman.jobs.a2_splits``), compute with the vectorised kernels on (bars x tickers) panels in
ticker chunks, write one transaction per date (``snapshots.write``: a straight COPY for a new
date, else COPY into staging and a merge), several dates at once.  A ticker with no bar on D gets
no row for D.  See ``kapman.jobs.a2_window`` for the look-back rule and docs/a2_indicators.md for
how the job reads and writes.

``run`` is the step (its own connections, the run ledger, the outcome); ``compute`` is the work
on connections it is given, for tests and benchmarks.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from kapman import calendar, clock
from kapman.config import NumberRange, Settings
from kapman.db import bulk, lifecycle
from kapman.errors import UsageError
from kapman.execute import Context, Definition, execute
from kapman.jobs import a2_splits, snapshots
from kapman.jobs.a2_window import group_by_anchor, read_batches
from kapman.jobs.dates import history_dates, requested_dates
from kapman.jobs.payload import JsonTemplate
from kapman.jobs.tuning import keep_freed_memory, release_freed_memory
from kapman.metrics.indicators import TECHNICAL_KEYS, compute_technical_cells
from kapman.metrics.patterns import PATTERN_CATEGORY
from kapman.metrics.price import PRICE_KEYS, compute_price_metrics
from kapman.ops.inventory import SplitStale, a2_split_stale, split_stale_dates, window_start
from kapman.params import WORKERS_RANGE, date_span, in_range
from kapman.progress import NullProgress, Progress
from kapman.step import StepResult
from kapman.symbols import capped, case_suggestions, is_index

log = logging.getLogger(__name__)

VERSION = "a2-1"
#: Connections the bulk read is split over: the server's COPY is most of the read, and two
#: backends keep a 2-core server busy while the client decodes.
READ_CONNECTIONS = 2
#: Tickers per kernel call.  Wide chunks spread the kernels' per-bar recursions (one numpy call per
#: bar, whatever the width) over more tickers: 500 a chunk is ~30 % slower than 2,000.  A chunk
#: keeps only the wanted cells of each indicator family as it goes (``compute_technical_cells``),
#: so at 2,000 tickers it peaks near 300 MB, two chunks at a time (4,000: twice that, no faster).
DEFAULT_CHUNK = 2000
CHUNK_RANGE = NumberRange(1, 1_000_000, integer=True)
#: At least the two the bulk read is split over... and one is enough for a single date.
CONNECTIONS_RANGE = NumberRange(1, 16, integer=True)


@dataclass(frozen=True)
class A2Params:
    #: The trading dates to compute; when empty, ``run`` resolves them from day/start/end
    #: (default: the newest date with OHLCV).
    dates: list[date] = field(default_factory=list)
    day: date | None = None
    start: date | None = None
    end: date | None = None
    symbols: list[str] | None = None
    workers: int = max(1, min(4, os.cpu_count() or 1))
    ticker_chunk_size: int = DEFAULT_CHUNK
    force: bool = False
    patterns: bool = False
    #: every date with bars in the retention window (the indicator history after a repave)
    history: bool = False
    #: Connections the step opens in all: bars are read over two of them, and the dates of a
    #: range are written over all of them at once.
    connections: int = 4

    def validate(self) -> None:
        in_range("--workers", self.workers, WORKERS_RANGE)
        in_range("--ticker-chunk-size", self.ticker_chunk_size, CHUNK_RANGE)
        in_range("connections", self.connections, CONNECTIONS_RANGE)
        date_span(self.day, self.start, self.end)
        if self.history and (self.day or self.start or self.end or self.dates):
            raise UsageError("--history is every date of the retention window: give it without dates")


@dataclass(kw_only=True)
class A2Result(snapshots.WrittenRows):
    dates: list[date]
    tickers: int = 0
    skipped_existing: int = 0
    #: Dates whose every row was already computed: skipped before reading (``--force`` recomputes).
    dates_complete: int = 0
    no_bar: dict[str, int] = field(default_factory=dict)
    dates_without_bars: list[date] = field(default_factory=list)
    #: Tickers whose window held a split, computed on bars adjusted as of each date.
    split_adjusted: int = 0
    #: Split records of the windows not applied ("SYM date a-for-b": "verdict: reason").
    splits_not_applied: dict[str, str] = field(default_factory=dict)
    #: Rows recomputed because a split of their ticker was loaded after they were computed
    #: (``inventory.a2_split_stale``): symbol -> their dates.
    split_late: dict[str, list[date]] = field(default_factory=dict)
    bars_read: int = 0
    #: Dates finished: written (committed), or with nothing to write.
    dates_done: int = 0
    #: Dates a stopped forced history had recomputed, not recomputed again by this rerun (``Resume``).
    dates_resumed: int = 0
    #: A forced history's dates finished so far, the stopped run's it resumed included: its ledger
    #: summary keeps them for a rerun to resume from (None: not a forced history).
    recomputed: list[date] | None = None
    read_seconds: float = 0.0
    compute_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    def units_done(self) -> int:
        return self.dates_done

    def headline(self) -> str:
        span = f"{self.dates[0]}" if len(self.dates) == 1 else f"{self.dates[0]}..{self.dates[-1]}"
        per = f", {1000 * self.seconds / self.rows_written:.2f} ms/row" if self.rows_written else ""
        no_bar = sum(self.no_bar.values())
        resumed = f", {self.dates_resumed} dates recomputed by the stopped run" if self.dates_resumed else ""
        return (f"{span}: {self.rows_written} rows for {self.tickers} tickers ({self.rows_inserted} new, "
                f"{self.rows_updated} updated, {self.rows_unchanged} unchanged), {self.skipped_existing} "
                f"already computed ({self.dates_complete} whole dates; skipped, --force recomputes){resumed}, "
                f"{no_bar} ticker-dates without a bar, "
                f"{self.split_adjusted} split-adjusted; read {self.read_seconds:.1f}s, compute "
                f"{self.compute_seconds:.1f}s, write {self.write_seconds:.1f}s{per}")

    def as_dict(self) -> dict[str, Any]:
        return {"dates": self.dates, "tickers": self.tickers, **self.rows_dict(),
                "skipped_existing": self.skipped_existing, "dates_complete": self.dates_complete,
                "dates_resumed": self.dates_resumed,
                "no_bar": self.no_bar, "dates_without_bars": self.dates_without_bars,
                "split_adjusted": self.split_adjusted, "splits_not_applied": self.splits_not_applied,
                "split_late": self.split_late,
                "read_seconds": round(self.read_seconds, 3), "compute_seconds": round(self.compute_seconds, 3),
                "write_seconds": round(self.write_seconds, 3), "seconds": round(self.seconds, 3),
                **self._resumable()}

    def _resumable(self) -> dict[str, Any]:
        """A forced history's dates done so far, for a rerun to resume from (``stopped_history``)."""
        return {} if self.recomputed is None else {"recomputed": sorted(self.recomputed), "ta_version": VERSION}


@dataclass(frozen=True)
class Resume:
    """A forced history that stopped part-way, as its ledger row tells it."""

    started_at: datetime
    status: str
    #: the dates it (and any stopped run it resumed) had recomputed
    dates: list[date]


#: The newest forced history before this run: its outcome, arguments and summary.
_LAST_FORCED_HISTORY = """
    SELECT status, started_at, args, summary FROM public.ingest_runs
     WHERE job = 'a2' AND run_id IS DISTINCT FROM %s
       AND args->>'history' = 'true' AND args->>'force' = 'true'
     ORDER BY started_at DESC LIMIT 1"""


#: How a run that did not finish ends in the ledger: stopped by a signal, failed, or killed outright
#: (its process gone, marked by the next command: ``runs.resolve_abandoned``).
STOPPED = ("interrupted", "failed", "abandoned")

#: A forced history's summary gains each date in that date's own transaction, so that a run
#: killed outright (kill -9, a reboot: nothing writes its summary at the end) is resumed from what
#: it committed.  Appended in SQL: two writers' dates commit one after the other on the row's lock.
_RECOMPUTED = """
    UPDATE public.ingest_runs
       SET summary = jsonb_build_object('ta_version', %s::text, 'recomputed',
                                        coalesce(summary -> 'recomputed', '[]'::jsonb) || %s::jsonb)
     WHERE run_id = %s"""


def stopped_history(conn: psycopg.Connection, params: A2Params, run_id: uuid.UUID | None) -> Resume | None:
    """The forced history a ``--history --force`` resumes: the newest one before it, when it stopped
    (``STOPPED``) asking for the same symbols and patterns, under this ``VERSION``.

    Its ledger summary names the dates it committed: their rows' ``ta_computed_at`` cannot, as a
    recomputed row whose documents are unchanged keeps the time it was first written."""
    row = conn.execute(_LAST_FORCED_HISTORY, (run_id,)).fetchone()
    if row is None:
        return None
    status, started_at, args, summary = row
    if status not in STOPPED or not summary or summary.get("ta_version") != VERSION:
        return None   # a forced history since finished, or one by another KapMan: everything is owed
    if args.get("patterns") != params.patterns or args.get("symbols") != params.symbols:
        return None
    recomputed = summary.get("recomputed")   # absent: it stopped before it computed
    return Resume(started_at, status, [date.fromisoformat(d) for d in recomputed]) if recomputed else None


@dataclass
class Bars:
    """A window of bars for many tickers, in no particular order."""

    ids: np.ndarray        # (N, 16) uint8, one row per ticker
    ticker: np.ndarray     # per bar: column index into ids
    date: np.ndarray       # per bar: datetime64[D]
    values: dict[str, np.ndarray]
    by_date: bool = False  # the bars are in date order (a window is then a slice: ``_cut``)

    def in_date_order(self) -> Bars:
        """The same bars sorted by date (one copy, after which the unsorted read can be freed)."""
        order = np.argsort(self.date, kind="stable")
        return Bars(ids=self.ids, ticker=self.ticker[order], date=self.date[order],
                    values={k: v[order] for k, v in self.values.items()}, by_date=True)


def _match_ids(ids: np.ndarray, uid: np.ndarray) -> np.ndarray:
    """Per bar, the row of its uuid in ``ids`` (both (n, 16) uint8), or -1 for a ticker not listed.

    A hash lookup on each uuid's first 8 bytes, then the other 8 compared: 2.8M bars in ~0.1 s.
    """
    if not len(ids):
        return np.full(len(uid), -1, dtype=np.intp)
    known, bars = ids.view(np.uint64), uid.view(np.uint64)   # (n, 2): the two halves of each uuid
    index = pd.Index(known[:, 0])
    if index.is_unique:
        pos = index.get_indexer(bars[:, 0])
    else:  # two tickers share 64 bits of a uuid: astronomically rare, but then match on all 128
        pos = pd.MultiIndex.from_arrays([known[:, 0], known[:, 1]]).get_indexer(
            pd.MultiIndex.from_arrays([bars[:, 0], bars[:, 1]]))
    pos = pos.astype(np.intp, copy=False)
    pos[known[pos, 1] != bars[:, 1]] = -1
    return pos


def _read_split(conn: psycopg.Connection, start: date, end: date, filter_: sql.Composable,
                readers: list[psycopg.Connection]) -> list[list[np.ndarray]]:
    """Read [start, end] over ``conn`` plus ``readers``, each a contiguous slice of dates.

    The server produces COPY rows at roughly a million a second per backend, which is most of
    A2's read time; extra connections put the other cores to work on their own date slices.
    """
    conns = [conn, *readers]
    span = (end - start).days + 1
    bounds = [start + timedelta(days=span * i // len(conns)) for i in range(len(conns) + 1)]

    def one(i: int) -> list[np.ndarray]:
        hi = bounds[i + 1] - timedelta(days=1)
        query = sql.SQL("SELECT ticker_id, date, open, high, low, close, volume FROM public.ohlcv "
                        "WHERE date >= {} AND date <= {}{}").format(sql.Literal(bounds[i]), sql.Literal(hi), filter_)
        with conns[i].cursor() as cur:
            return bulk.read_fixed(cur, query, ["uuid", "date"] + ["float8"] * 5)

    if len(conns) == 1:
        return [one(0)]
    with ThreadPoolExecutor(max_workers=len(conns)) as pool:
        return list(pool.map(one, range(len(conns))))


def read_bars(conn: psycopg.Connection, start: date, end: date, symbols: list[str] | None,
              readers: list[psycopg.Connection] | None = None) -> Bars:
    """Every bar in [start, end] in one binary COPY decoded by numpy.

    Plain date bounds (chunk exclusion, index-friendly), no join: uuids are matched to the
    ticker list on the client (see _match_ids).
    """
    where = sql.SQL(" WHERE symbol = ANY({})").format(sql.Literal(symbols)) if symbols else sql.SQL("")
    ids = sorted(r[0] for r in conn.execute(sql.SQL("SELECT id FROM public.tickers{}").format(where)))
    raw = np.frombuffer(b"".join(i.bytes for i in ids), dtype=np.uint8).reshape(len(ids), 16)
    filter_ = sql.SQL(" AND ticker_id = ANY({}::uuid[])").format(sql.Literal(ids)) if symbols else sql.SQL("")
    columns = _read_split(conn, start, end, filter_, readers or [])
    parts = columns[0] if len(columns) == 1 else [np.concatenate(p) for p in zip(*columns, strict=True)]
    uid, dates, o, h, lo, c, v = parts
    ticker = _match_ids(raw, uid)
    if (ticker >= 0).all():    # the usual case: no copy
        return Bars(ids=raw, ticker=ticker, date=dates, values={"open": o, "high": h, "low": lo, "close": c,
                                                                "volume": v})
    keep = np.flatnonzero(ticker >= 0)   # bars of tickers outside the list (a narrowed run) drop out here
    return Bars(ids=raw, ticker=ticker[keep], date=dates[keep],
                values={"open": o[keep], "high": h[keep], "low": lo[keep], "close": c[keep], "volume": v[keep]})


def panels(bars: Bars) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Left-aligned (T, N) panels and each bar's row position in its ticker's column.

    Bars arrive in any order; a bar's position is the number of its ticker's bars on earlier
    dates, counted with one cumulative sum over a (calendar day x ticker) grid: no sort.
    """
    if not len(bars.ticker):
        return {name: np.empty((0, len(bars.ids))) for name in bars.values}, np.empty(0, dtype=np.intp)
    day = (bars.date - bars.date.min()).astype(np.int64)
    present = np.zeros((int(day.max()) + 1, len(bars.ids)), dtype=np.int32)
    present[day, bars.ticker] = 1
    np.cumsum(present, axis=0, out=present)
    pos = present[day, bars.ticker].astype(np.intp) - 1
    depth = int(present[-1].max())
    out = {}
    for name, values in bars.values.items():
        panel = np.full((depth, len(bars.ids)), np.nan)
        panel[pos, bars.ticker] = values
        out[name] = panel
    return out, pos


def _compute_chunk(p: dict[str, np.ndarray], cols: np.ndarray, rows: np.ndarray, local: np.ndarray,
                   patterns: bool) -> tuple[np.ndarray, np.ndarray]:
    """Kernel outputs for the wanted (row, column) cells of one ticker chunk."""
    sub = {k: np.ascontiguousarray(v[:, cols]) for k, v in p.items()}
    ta = compute_technical_cells(sub["open"], sub["high"], sub["low"], sub["close"], sub["volume"], rows, local)
    if patterns:
        from kapman.metrics.patterns import compute_patterns
        found = compute_patterns(sub["open"], sub["high"], sub["low"], sub["close"])
        ta = np.concatenate([ta, np.stack([found[k][rows, local] for k in found], axis=1)], axis=1)
    price = compute_price_metrics(sub["close"], sub["volume"])
    pm = np.stack([price[k][rows, local] for k in PRICE_KEYS], axis=1)
    return ta, pm


def run(settings: Settings, params: A2Params, progress: Progress | None = None) -> StepResult[A2Result]:
    """The A2 step (see kapman.execute)."""
    return execute("a2", settings, params, progress)


def _body(ctx: Context, params: A2Params) -> None:
    """Resolves the dates and symbols, then computes over the step's connections."""
    step: StepResult[A2Result] = ctx.result
    # Policy jobs that compress or drop daily_snapshots chunks wait while the dates are written: a
    # history writes chunks older than the compression window, which a running job would lock.
    ctx.enter(lifecycle.policies_paused(ctx.url, ["daily_snapshots"]))
    dates = params.dates or (history_dates(ctx.conn) if params.history else requested_dates(
        ctx.conn, day=params.day, start=params.start, end=params.end))
    late = None
    if not params.force:   # forced, the dates asked for are recomputed whole: no more
        late = _split_stale_in_window(ctx.conn, params.symbols)
        dates = sorted({*dates, *split_stale_dates(late)})
    job = _scope(ctx.conn, replace(params, dates=dates), step)
    if job is None:
        return
    resume = stopped_history(ctx.conn, params, ctx.run_id) if params.force and params.history else None
    extra = [ctx.connect() for _ in range(params.connections - 1)]
    try:
        done = compute(ctx.conn, job, ctx.progress, extra=extra, into=step.details, resume=resume,
                       run_id=ctx.run_id, late=late)
    finally:   # also when stopped (Ctrl-C, SIGTERM): the ledger row counts the dates committed
        _count(step.details, step)
        if resume is not None:
            step.note(_resumed(resume, step.details))
    _report(done, step, chosen=bool(job.symbols))


#: The nightly's task: its dates, or (on a warehouse without any A2) the indicator history.
STEP = Definition(A2Params, _body, details=lambda: A2Result(dates=[]),
                  planned=lambda settings, dates=(), force=False, history=False: A2Params(
                      dates=list(dates), force=force, history=history))


def _split_stale_in_window(conn: psycopg.Connection, symbols: list[str] | None) -> list[SplitStale]:
    """The rows of the retention window computed before a split of their ticker was loaded
    (``inventory.a2_split_stale``): their dates join the run, where only those tickers' rows are
    recomputed."""
    return a2_split_stale(conn, window_start(conn, lifecycle.warehouse_now(conn)), symbols)


def _scope(conn: psycopg.Connection, params: A2Params, step: StepResult[A2Result]) -> A2Params | None:
    """What there is to compute, or None; says why not (nothing-to-do) or what is left out."""
    if not params.dates:
        step.nothing("no trading dates in the requested range")
        return None
    if params.symbols:
        known = {r[0] for r in conn.execute("SELECT symbol FROM public.tickers WHERE symbol = ANY(%s)",
                                            (params.symbols,))}
        near = case_suggestions(conn, [s for s in params.symbols if s not in known])
        unknown = capped([f"{s} (did you mean {near[s]}?)" if s in near else s
                          for s in params.symbols if s not in known])
        if not known:
            step.nothing(f"no such ticker in public.tickers: {unknown}")
            return None
        if unknown:
            step.note(f"not in public.tickers, skipped: {unknown}")
        indices = sorted(s for s in known if is_index(s))
        if indices and len(indices) == len(known):
            step.nothing(f"{capped(indices)}: an index has no daily bars, and A2 computes from bars")
            return None
        if indices:
            step.note(f"indices have no daily bars, skipped: {capped(indices)}")
        params = replace(params, symbols=sorted(known - set(indices)))
    with_bars = _dates_with_bars(conn, params.dates, params.symbols)
    missing = [d for d in params.dates if d not in with_bars]
    # the symbols asked for may lack a bar on a date others traded (halted, not yet listed)
    whose = f" of {capped(params.symbols)}" if params.symbols else ""
    if len(missing) == len(params.dates):
        days = ", ".join(f"{d} ({d:%A})" for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
        why = "no trade that day, " if params.symbols else ""
        step.nothing(f"no OHLCV bars{whose} on {days}: {why}not a trading day, or not loaded yet (Step 5)")
        return None
    if missing:
        step.note(f"no OHLCV bars{whose} on {calendar.spans(missing)}: skipped")
        params = replace(params, dates=[d for d in params.dates if d in with_bars])
    return params


def _dates_with_bars(conn: psycopg.Connection, dates: list[date], symbols: list[str] | None) -> set[date]:
    """Of ``dates``, those with a bar (of ``symbols``, when given)."""
    if not symbols:
        return {r[0] for r in conn.execute("SELECT DISTINCT date FROM public.ohlcv WHERE date = ANY(%s)", (dates,))}
    return {r[0] for r in conn.execute(
        "SELECT DISTINCT o.date FROM public.ohlcv o JOIN public.tickers t ON t.id = o.ticker_id "
        "WHERE o.date = ANY(%s) AND t.symbol = ANY(%s)", (dates, symbols))}


def _count(done: A2Result, step: StepResult[A2Result]) -> None:
    """The step's counts: the dates and rows committed so far."""
    step.read, step.done = done.bars_read, done.dates_done
    step.written, step.unchanged = done.rows_inserted + done.rows_updated, done.rows_unchanged


def _resumed(resume: Resume, done: A2Result) -> str:
    return (f"resuming the forced history stopped at {resume.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
            f"({resume.status}): {done.dates_resumed} dates already recomputed, "
            f"{len(done.dates) - done.dates_resumed} left")


def _report(done: A2Result, step: StepResult[A2Result], *, chosen: bool) -> None:
    """``chosen``: the run's tickers are the ``--symbols`` asked for (counted by ``_count``)."""
    step.details = done
    if not done.rows_written and done.skipped_existing:
        step.headline = (f"up to date: {done.skipped_existing} rows already computed for "
                         f"{len(done.dates)} date(s) (--force recomputes)")
    else:
        step.headline = done.headline()
    for split, why in done.splits_not_applied.items():
        step.note(f"split record not applied: {split} ({why})")
    for symbol, days in done.split_late.items():
        step.note(f"recomputed {symbol} on {len(days)} dates {calendar.spans(days)}: computed before a split "
                  "of it was loaded")
    if done.dates_without_bars:
        whose = "the symbols asked for" if chosen else "any ticker"
        step.note(f"no bars of {whose} on: {calendar.spans(done.dates_without_bars)}")


def compute(conn: psycopg.Connection, params: A2Params, progress: Progress | None = None, *,
            extra: Sequence[psycopg.Connection] = (), into: A2Result | None = None,
            resume: Resume | None = None, run_id: uuid.UUID | None = None,
            late: list[SplitStale] | None = None) -> A2Result:
    """Compute and write ``params.dates`` over ``conn`` (and ``extra`` connections, if any), counting
    into ``into`` as it goes (a lost connection then says how many dates were done).  A forced history
    given the ``resume`` of a stopped one leaves out the dates that one recomputed; with its ledger
    row's ``run_id`` it records each date there as the date commits (``_RECOMPUTED``).  ``late``: the
    split-stale rows (``inventory.a2_split_stale``) when the caller has read them already."""
    progress = progress or NullProgress()
    started = time.perf_counter()
    if not params.dates:
        raise UsageError("no trading dates in the requested range")
    keep_freed_memory()
    result = into or A2Result(dates=[])
    result.dates = sorted(params.dates)
    if params.force and params.history:
        result.recomputed = []
    try:
        _Job(conn, list(extra), params, result, progress, resume, run_id, late).run()
    finally:
        progress.close()
    result.seconds = time.perf_counter() - started
    log.info("a2 %s", result.headline())
    return result


class _Job:
    """One run: read the bars of a batch of look-back windows once, then per window pick the wanted
    cells and compute them while the previous window's dates are being written (``_Writer``)."""

    def __init__(self, conn: psycopg.Connection, extra: list[psycopg.Connection], params: A2Params,
                 result: A2Result, progress: Progress, resume: Resume | None = None,
                 run_id: uuid.UUID | None = None, late: list[SplitStale] | None = None) -> None:
        self.conn, self.extra, self.params, self.result, self.progress = conn, extra, params, result, progress
        self.resume = resume
        #: the ledger row a forced history records its dates in as they commit
        self.ledger = run_id if result.recomputed is not None else None
        keys = list(TECHNICAL_KEYS)
        if params.patterns:
            from kapman.metrics.patterns import PATTERN_KEYS
            keys += list(PATTERN_KEYS)
        self.ta_json, self.pm_json = JsonTemplate(keys), JsonTemplate(PRICE_KEYS, nested=False)
        #: a row computed without the patterns asked for now is not done
        self.holding = PATTERN_CATEGORY if params.patterns else None
        self.computed_at = clock.now()
        self.tickers: set[bytes] = set()
        #: tickers computed on split-adjusted bars: counted once, though several windows may hold the split
        self.split_tickers: set[bytes] = set()
        #: per date's close, the tickers whose rows were computed before a split of theirs was loaded
        self.stale: dict[datetime, set[uuid.UUID]] = {}
        self.late = late
        self.lock = threading.Lock()   # counters shared with the writer thread

    def finished(self, days: Sequence[date], counts: bulk.MergeCounts | None = None, rows: int = 0) -> None:
        """Count ``days`` done (with their write's ``counts`` of ``rows``), from either thread."""
        with self.lock:
            if counts is not None:
                self.result.tally(counts, rows)
            self.result.dates_done += len(days)
            if self.result.recomputed is not None:
                self.result.recomputed.extend(days)
            self.progress.advance(len(days), rows=self.result.rows_written)

    def recorded(self, cur: psycopg.Connection | psycopg.Cursor, days: list[date]) -> None:
        """Add ``days`` to a forced history's ledger summary (``_RECOMPUTED``), in ``cur``'s transaction."""
        if self.ledger is not None and days:
            cur.execute(_RECOMPUTED, (VERSION, json.dumps([d.isoformat() for d in days]), self.ledger))

    def stamp(self, cur: psycopg.Connection | psycopg.Cursor, at: datetime, ids: list[uuid.UUID]) -> None:
        """Stamp the split-stale rows ``ids`` of ``at`` computed now, in ``cur``'s transaction: the merge
        leaves a row whose documents came out the same (a split record A2 does not apply) as it was."""
        if ids:
            cur.execute("UPDATE public.daily_snapshots SET ta_computed_at = %(at)s WHERE time = %(day)s "
                        "AND ticker_id = ANY(%(ids)s) AND ta_computed_at < %(at)s",
                        {"at": self.computed_at, "day": at, "ids": ids})

    def _split_stale(self) -> None:
        """The rows of the run's dates computed before a split of their ticker was loaded."""
        days = set(self.result.dates)
        late = self.late if self.late is not None else \
            a2_split_stale(self.conn, self.result.dates[0], self.params.symbols)
        for s in late:
            mine = [d for d in s.dates if d in days]
            for d in mine:
                self.stale.setdefault(clock.close_of(d), set()).add(s.ticker_id)
            if mine:
                self.result.split_late[s.symbol] = mine

    def run(self) -> None:
        self._split_stale()
        todo = self._todo()
        if len(self.extra) > 1:   # parallel writers of new dates: make their chunks first (create_chunks)
            snapshots.create_chunks(self.conn, [clock.close_of(d) for d in todo])
        self.progress.start(len(todo), "a2 dates", unit="date")   # its ETA: over the dates left
        # Writes go over the extra connections, leaving ``conn`` to this thread's per-window
        # queries; with none, the one connection is shared and each window waits for the last.
        shared = not self.extra
        with _Writer(self, self.extra or [self.conn]) as writer:
            for batch in read_batches(group_by_anchor(todo)):
                writer.drain()   # the batch's read uses connections the writes use
                first, last = next(iter(batch)), batch[next(reversed(batch))][-1]
                t0 = time.perf_counter()
                bars: Bars | None = read_bars(self.conn, first, last, self.params.symbols,
                                              self.extra[:READ_CONNECTIONS - 1])
                if len(batch) > 1:   # each window a slice of one sorted copy, not a copy of its own
                    bars = bars.in_date_order()   # type: ignore[union-attr]
                self.result.read_seconds += time.perf_counter() - t0
                for i, (anchor, days) in enumerate(batch.items()):
                    if shared:
                        writer.drain()
                    window = _cut(bars, anchor, days[-1])   # type: ignore[arg-type]
                    if i == len(batch) - 1:
                        bars = None   # the last window holds what it needs of the read
                    work = self._window(window, anchor, days)
                    del window
                    if work is not None:
                        writer.put(work)
        self.result.tickers = len(self.tickers)

    def _todo(self) -> list[date]:
        """The dates to compute: those not complete; forced, every date, less the dates a stopped
        forced history recomputed (``resume``) whose rows are all still there."""
        days = self.result.dates
        if not self.params.force:
            return self._not_complete(days)
        if self.resume is None:
            return days
        asked = set(days)
        resumed = self._complete([d for d in self.resume.dates if d in asked])
        self.result.dates_resumed = len(resumed)
        self.result.dates_done += len(resumed)
        if self.result.recomputed is not None:   # carried on: a rerun resumes from this run's summary
            self.result.recomputed.extend(resumed)
            self.recorded(self.conn, sorted(resumed))
        log.info("a2 resuming the forced history stopped at %s: %d dates already recomputed",
                 self.resume.started_at, len(resumed))
        return [d for d in days if d not in resumed]

    def _not_complete(self, days: list[date]) -> list[date]:
        """``days`` less those where every ticker with a bar already has A2's values: counted as
        done and skipped before anything is read (a stopped --history resumes at its first
        missing date).  A date done only in part is computed, its stored cells skipped."""
        complete = {d: n for d, n in self._complete(days).items() if clock.close_of(d) not in self.stale}
        self.result.skipped_existing += sum(complete.values())
        self.result.dates_complete += len(complete)
        self.result.dates_done += len(complete)
        return [d for d in days if d not in complete]

    def _complete(self, days: list[date]) -> dict[date, int]:
        """Of ``days``, those where every ticker with a bar has a row holding what this run computes,
        with their rows."""
        at = {clock.close_of(d): d for d in days}
        # the usual case (a new date, a range never computed) costs one index lookup, no join
        started = [at[t] for (t,) in self.conn.execute(sql.SQL(
            "SELECT DISTINCT time FROM public.daily_snapshots s WHERE time = ANY(%s) AND {}").format(self._done()),
            (list(at),))]
        if not started:
            return {}
        times = [clock.close_of(d) for d in started]
        where = sql.SQL(" AND t.symbol = ANY({})").format(sql.Literal(self.params.symbols)) \
            if self.params.symbols else sql.SQL("")
        rows = self.conn.execute(sql.SQL(
            "SELECT d.day, count(*), count(s.ticker_id) "
            "FROM unnest({d}::date[], {t}::timestamptz[]) AS d(day, at) "
            "JOIN public.ohlcv o ON o.date = d.day AND o.date = ANY({d}::date[]) "   # constants: chunk exclusion
            "JOIN public.tickers t ON t.id = o.ticker_id{w} "
            "LEFT JOIN public.daily_snapshots s ON s.time = d.at AND s.time = ANY({t}::timestamptz[]) "
            "AND s.ticker_id = o.ticker_id AND {done} GROUP BY d.day").format(
                d=sql.Literal(started), t=sql.Literal(times), w=where, done=self._done())).fetchall()
        return {d: bars for d, bars, stored in rows if bars == stored}

    def _done(self) -> sql.Composable:
        """Over ``s``, a stored row: whether it holds what this run computes."""
        done = sql.SQL("s.technical_indicators_json IS NOT NULL")
        if not self.holding:
            return done
        return done + sql.SQL(" AND s.technical_indicators_json ? {}").format(sql.Literal(self.holding))

    def _window(self, bars: Bars, anchor: date, days: list[date]) -> _Written | None:
        """The cells of ``days`` not yet stored, computed on ``bars`` (their window), to be written."""
        result, params = self.result, self.params
        t0 = time.perf_counter()
        split_ids, split_days, ratios, left_out = a2_splits.read(self.conn, anchor, days[-1])
        for s in left_out:
            result.splits_not_applied.setdefault(f"{s.symbol} {s.label()}", f"{s.verdict}: {s.reason}")
        splits = a2_splits.window_splits(_match_ids(bars.ids, split_ids), split_days, ratios)
        p, pos = panels(bars)
        result.bars_read += len(bars.ticker)
        result.read_seconds += time.perf_counter() - t0
        times = {d: clock.close_of(d) for d in days}
        done = set() if params.force else snapshots.existing(self.conn, list(times.values()),
                                                              "technical_indicators_json", self.holding)
        done -= {(at, tid) for at in times.values() for tid in self.stale.get(at, ())}
        in_window = len(np.unique(bars.ticker))
        want_rows, want_cols, want_day = [], [], []
        for i, d in enumerate(days):
            on_day = np.flatnonzero(bars.date == np.datetime64(d, "D"))
            if not len(on_day):
                result.dates_without_bars.append(d)
                continue
            cols = bars.ticker[on_day]
            result.no_bar[str(d)] = in_window - len(on_day)   # traded in the window, not on D
            if done:
                fresh = np.array([(times[d], _uuid(bars.ids[c])) not in done for c in cols], dtype=bool)
                result.skipped_existing += int((~fresh).sum())
                on_day, cols = on_day[fresh], cols[fresh]
            want_rows.append(pos[on_day])
            want_cols.append(cols)
            want_day.append(np.full(len(cols), i))
        if not sum(len(c) for c in want_cols):
            self.finished(days)
            return None
        rows, cols, day_idx = (np.concatenate(a) for a in (want_rows, want_cols, want_day))
        t1 = time.perf_counter()
        cell_days = np.array(days, dtype="datetime64[D]")[day_idx]
        p, source = a2_splits.adjust(p, splits, bars.ticker, bars.date, pos, cols, cell_days)
        adjusted = np.unique(splits.col[np.isin(splits.col, cols)])
        self.split_tickers.update(bars.ids[adjusted].view("V16").ravel().tolist())
        result.split_adjusted = len(self.split_tickers)
        ta, pm = compute_cells(p, rows, source, params)
        del p, source
        release_freed_memory()   # what the kernels kept for reuse, before the next window's overlap
        result.compute_seconds += time.perf_counter() - t1
        # the cells are in date order: each date's rows are a slice (a view, not a copy)
        bounds = np.searchsorted(day_idx, np.arange(len(days) + 1))
        batches = [(d, times[d], cols[a:b], ta[a:b], pm[a:b])
                   for d, a, b in zip(days, bounds[:-1], bounds[1:], strict=True) if b > a]
        if len(days) > len(batches):
            written = {b[0] for b in batches}
            self.finished([d for d in days if d not in written])
        return _Written(bars.ids, batches)


def _cut(bars: Bars, start: date, end: date) -> Bars:
    """The bars dated [start, end] (one window) of a read that may span several."""
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    if bars.by_date:
        a, b = int(np.searchsorted(bars.date, lo, side="left")), int(np.searchsorted(bars.date, hi, side="right"))
        return Bars(ids=bars.ids, ticker=bars.ticker[a:b], date=bars.date[a:b],
                    values={k: v[a:b] for k, v in bars.values.items()}, by_date=True)
    keep = (bars.date >= lo) & (bars.date <= hi)
    if keep.all():
        return bars
    at = np.flatnonzero(keep)
    return Bars(ids=bars.ids, ticker=bars.ticker[at], date=bars.date[at],
                values={k: v[at] for k, v in bars.values.items()})


@dataclass
class _Written:
    """One window's computed dates: (date, close time, panel columns, indicator rows, price-metric rows)."""

    ids: np.ndarray
    dates: list[tuple[date, datetime, np.ndarray, np.ndarray, np.ndarray]]


_DRAIN, _STOP = object(), object()


class _Writer:
    """Writes windows' dates on a thread of its own while the caller computes the next window.

    One transaction per date, up to one date per connection in flight.  A date's write is mostly
    server work (parsing and compressing ~35 MB of JSON), so with the next window computing here
    meanwhile a range keeps both the client and the server busy.  The documents are rendered and
    encoded on this thread, one date at a time while earlier dates are being sent; the sending
    threads only send (rendering holds the GIL for tens of milliseconds at a stretch, and a
    sending thread that cannot get it leaves its server process waiting).  At most one computed
    window waits here, so memory holds two windows' cells and a few encoded dates.
    """

    def __init__(self, job: _Job, conns: list[psycopg.Connection]) -> None:
        self.job, self.conns = job, conns
        self.todo: queue.Queue[object] = queue.Queue(maxsize=1)
        self.free: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
        for c in conns:
            self.free.put(c)
        self.pool = ThreadPoolExecutor(max_workers=len(conns), thread_name_prefix="a2-write")
        self.inflight: deque[tuple[Future[bulk.MergeCounts], date, int, np.ndarray]] = deque()
        self.error: BaseException | None = None
        self.abort = False
        self.thread = threading.Thread(target=self._loop, name="a2-render", daemon=True)

    def __enter__(self) -> _Writer:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.abort = kind is not None   # stopping: dates not yet sent stay unwritten
        self.todo.put(_STOP)
        self.thread.join()
        self.pool.shutdown(wait=True)
        if self.error is not None and kind is None:
            raise self.error

    def put(self, work: _Written) -> None:
        """Queue a window's dates; waits while the one before it is still being rendered."""
        self._check()
        self.todo.put(work)

    def drain(self) -> None:
        """Wait until every queued date is written (its connections are then free)."""
        self.todo.put(_DRAIN)
        self.todo.join()
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        while True:
            item = self.todo.get()
            try:
                if item is _STOP:
                    self._settle(0)
                    return
                if item is _DRAIN:
                    self._settle(0)
                elif self.error is None and not self.abort:
                    t = time.perf_counter()
                    self._send(item)  # type: ignore[arg-type]
                    self.job.result.write_seconds += time.perf_counter() - t
            except BaseException as e:   # noqa: BLE001 - handed to the caller's thread
                self.error = self.error or e
            finally:
                self.todo.task_done()

    def _send(self, work: _Written) -> None:
        job = self.job
        for day, at, cols, ta, pm in work.dates:
            if self.abort or self.error is not None:
                return
            ta_docs, pm_docs = job.ta_json.render_many(ta), job.pm_json.render_many(pm)
            records = ((at, _uuid(work.ids[c]), t, m, job.computed_at, VERSION)
                       for c, t, m in zip(cols, ta_docs, pm_docs, strict=True))
            payload = snapshots.encode(snapshots.A2_COLUMNS, records)
            stale = job.stale.get(at, set())
            late = [u for u in map(_uuid, work.ids[cols]) if u in stale] if stale else []
            self._settle(len(self.conns) - 1)
            self.inflight.append((self.pool.submit(self._write, day, at, payload, late), day, len(cols),
                                  work.ids[cols]))

    def _settle(self, keep: int) -> None:
        """Wait for the oldest writes until at most ``keep`` are in flight, counting each."""
        t = time.perf_counter()
        while len(self.inflight) > keep:
            future, day, rows, ids = self.inflight.popleft()
            try:
                counts = future.result()
            except BaseException as e:   # noqa: BLE001 - the first failure is the run's error
                self.error = self.error or e
                continue
            self.job.tickers.update(ids.view("V16").ravel().tolist())
            self.job.finished([day], counts, rows)
        if keep == 0:
            self.job.result.write_seconds += time.perf_counter() - t

    def _write(self, day: date, at: datetime, payload: tuple[bytes, int], late: list[uuid.UUID]) -> bulk.MergeCounts:
        conn = self.free.get()

        def then(cur: psycopg.Cursor) -> None:
            self.job.recorded(cur, [day])
            self.job.stamp(cur, at, late)

        try:
            return snapshots.write(conn, snapshots.A2_COLUMNS, payload,
                                   compare=("technical_indicators_json", "price_metrics_json"), time=at, then=then)
        finally:
            self.free.put(conn)


def compute_cells(p: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray,
                  params: A2Params) -> tuple[np.ndarray, np.ndarray]:
    """Indicators and price metrics at the (row, column) cells of the panels ``p``.

    The kernels run over whole columns in chunks of ``ticker_chunk_size`` tickers (threads: numpy
    releases the GIL); only the wanted cells of each chunk's outputs are kept.
    """
    needed = np.unique(cols)
    chunks = [needed[i:i + params.ticker_chunk_size] for i in range(0, len(needed), params.ticker_chunk_size)]

    def one(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mask = np.isin(cols, chunk)
        sel = np.flatnonzero(mask)
        local = np.searchsorted(chunk, cols[sel])
        ta, pm = _compute_chunk(p, chunk, rows[sel], local, params.patterns)
        return sel, ta, pm

    ta_all = pm_all = np.empty((0, 0))
    with ThreadPoolExecutor(max_workers=max(1, min(params.workers, len(chunks)))) as pool:
        for n, (sel, ta, pm) in enumerate(pool.map(one, chunks)):   # each chunk's cells put in place as it
            if not n:                                                # comes, not concatenated at the end
                ta_all, pm_all = np.empty((len(cols), ta.shape[1])), np.empty((len(cols), pm.shape[1]))
            ta_all[sel], pm_all[sel] = ta, pm
    return ta_all, pm_all


def _uuid(raw: np.ndarray) -> uuid.UUID:
    return uuid.UUID(bytes=raw.tobytes())
