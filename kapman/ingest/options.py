"""Option-chain snapshots of the watchlist underlyings into ``public.options_chains``.

One snapshot time per run, shared by every symbol.  A chain goes through three stages:

- one of ``concurrency`` fetch threads, which share one PolygonHTTP (one connection pool, one rate
  limiter, one set of counters), fetches its pages as raw bodies, reading only each page's
  ``next_url`` (``PolygonHTTP.paginate_raw``);
- one of ``workers`` processes decodes the pages, normalises them and encodes the rows kept as one
  binary COPY payload (``options_encode``).  That is nearly all of a run's CPU, pure Python under
  the GIL: in worker processes it no longer delays the fetch threads and the writer.  With
  ``workers=0``, or when no worker process can start, the fetch threads do it themselves;
- the calling thread writes the payload over its one connection, in one transaction per symbol (a
  COPY into the table, or on a replay into staging and a merge on the table's key): the run ledger
  shares that connection, and there is no per-worker connection to manage.

Every symbol is submitted up front, so fetching never waits for the workers or the writer (raw pages
and payloads, a few MB per chain, wait in memory instead).  The single writer is the run's serial
stage: see bench/bench_options.py.

Failures: a 401 stops the run (nothing else can succeed; what is written stays), a lost
database connection too; anything else fails only its symbol.  Ctrl-C stops the fetch threads at
their next page and shuts the worker processes down (they ignore the signal themselves).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from uuid import UUID

import psycopg

from kapman.db import bulk, retention, runs, schema
from kapman.db.errors import wrap
from kapman.errors import AuthError, KapManError
from kapman.ingest import options_encode
from kapman.ingest.options_encode import GC_YOUNG_THRESHOLD, ChainProcessor, EncodedChain, process_pages
from kapman.ingest.options_normalise import COLUMNS, DROP_REASONS
from kapman.ingest.options_report import OptionsResult, SymbolOutcome
from kapman.ingest.watchlist_scope import Scope
from kapman.progress import NullProgress, Progress
from kapman.providers.http import RawPage
from kapman.providers.polygon import PolygonClient

log = logging.getLogger(__name__)

#: First key of the per-(underlying, snapshot) advisory lock: "op" for options.
LOCK_CLASS = 0x6F70
#: Worker processes by default, fewer on a machine with fewer CPUs (see ``default_workers``).
DEFAULT_WORKERS = 2

__all__ = [
    "GC_YOUNG_THRESHOLD",
    "OptionsResult",
    "SymbolOutcome",
    "default_workers",
    "ingest_options",
    "plan_options",
    "write_chain",
]


def default_workers() -> int:
    """``DEFAULT_WORKERS``, or fewer to leave a CPU to the fetching process and the database: one
    fewer than the CPUs this process may use, at least one.

    On 2 CPUs one worker keeps up with 8 fetch threads at 50 ms a page (bench/bench_options.py:
    the same wall time as two, with one process less to start and schedule).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(DEFAULT_WORKERS, cpus - 1))


class _Stopped(Exception):
    """The run was stopped (401, lost database) before this symbol finished fetching."""


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started (only the main thread can), then restore it.

    A process started with SIGINT ignored keeps it ignored, Python's own handler included, so a
    Ctrl-C while a worker is still booting cannot kill it with a traceback: the parent alone
    handles it, by shutting the pool down.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Processor:
    """Where a chain's pages become an ``EncodedChain``: worker processes, or the calling thread.

    The pool uses the "spawn" start method (forking a process that runs threads is unsafe).  Its
    processes start at once, one no-op task each, so that they boot while the first chains are
    fetched.  If a process cannot start or dies, the pool is given up for the rest of the run and
    chains are processed in the calling thread instead, with a warning.
    """

    def __init__(self, workers: int) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []
        self._given_up = False
        if workers > 0:
            try:
                with _sigint_ignored():  # inherited through exec: Ctrl-C never reaches the workers
                    self._pool = ProcessPoolExecutor(
                        workers, mp_context=multiprocessing.get_context("spawn"), initializer=options_encode.init_worker
                    )
                    for _ in range(workers):
                        self._pool.submit(options_encode.ready)
            except (OSError, ImportError, NotImplementedError, BrokenProcessPool) as exc:
                self.give_up(exc)

    def __enter__(self) -> _Processor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def give_up(self, exc: BaseException) -> None:
        with self._lock:
            if self._given_up:
                return
            self._given_up = True
            pool, self._pool = self._pool, None
            if pool is not None:
                self._retired.append(pool)
        log.warning("worker processes unavailable (%s: %s); processing chains in this process",
                    type(exc).__name__, exc)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def pooled(self) -> bool:
        """Whether chains go to worker processes (else their fetch threads process them)."""
        return self._pool is not None

    def submit(
        self, pages: Sequence[RawPage], snapshot: datetime, ticker_id: UUID, symbol: str
    ) -> Future[EncodedChain]:
        pool = self._pool
        if pool is not None:
            try:
                return pool.submit(process_pages, pages, snapshot, ticker_id, symbol)
            except (BrokenProcessPool, RuntimeError) as exc:  # RuntimeError: given up meanwhile
                self.give_up(exc)
        return self.inline(pages, snapshot, ticker_id, symbol)

    @staticmethod
    def inline(pages: Sequence[RawPage], snapshot: datetime, ticker_id: UUID, symbol: str) -> Future[EncodedChain]:
        return _done(lambda: process_pages(pages, snapshot, ticker_id, symbol))

    def close(self) -> None:
        """Cancel what has not started, wait for what has, and end every worker process."""
        with self._lock:
            pools = [*self._retired, *([self._pool] if self._pool else [])]
            self._pool, self._retired = None, []
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


def _done(work: Callable[[], EncodedChain]) -> Future[EncodedChain]:
    """A future already settled with ``work()``'s result or exception."""
    future: Future[EncodedChain] = Future()
    try:
        future.set_result(work())
    except Exception as exc:
        future.set_exception(exc)
    return future


@dataclass
class _Fetched:
    ticker_id: UUID
    pages: int
    bodies: list[RawPage]  # kept until processed when processing is elsewhere
    seconds: float
    work: Future[EncodedChain]


def _fetch(
    client: PolygonClient,
    symbol: str,
    ticker_id: UUID,
    snapshot: datetime,
    stop: threading.Event,
    processor: _Processor,
) -> _Fetched:
    started = time.perf_counter()
    pages, bodies = 0, []
    # Without worker processes each page is processed as it arrives, as a thread that waits for
    # the next page would, instead of all at once at the end (which holds the GIL for longer).
    here = None if processor.pooled else ChainProcessor(snapshot, ticker_id, symbol)
    if stop.is_set():
        raise _Stopped
    try:
        for page in client.option_chain_bodies(symbol):
            pages += 1
            if here is None:
                bodies.append(page)
            else:
                here.add(page)
            if stop.is_set():
                raise _Stopped
    except AuthError:
        stop.set()  # at once, so no worker starts another symbol with a key that is refused
        raise
    if here is not None:
        return _Fetched(ticker_id, pages, [], time.perf_counter() - started - here.seconds, _done(here.finish))
    seconds = time.perf_counter() - started
    return _Fetched(ticker_id, pages, bodies, seconds, processor.submit(bodies, snapshot, ticker_id, symbol))


def write_chain(conn: psycopg.Connection, chain: EncodedChain) -> bulk.MergeCounts:
    """One symbol's rows in one transaction: a straight COPY on the first write of a (snapshot
    time, underlying), staging and a merge on a replay (``bulk.write_group``)."""
    with conn.transaction(), conn.cursor() as cur:
        if conn.info.encoding != "utf-8":
            cur.execute("SET LOCAL client_encoding TO 'UTF8'")  # the payload's text is UTF-8
        return bulk.write_group(
            cur, target="options_chains", columns=COLUMNS, payload=chain.payload, rows=chain.rows,
            group={"time": chain.snapshot_time, "ticker_id": chain.ticker_id}, lock_class=LOCK_CLASS,
            key=schema.OPTIONS_KEY,
        )


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the collector's young-generation threshold for the run, then restore it.

    For chains processed in this process (``workers=0``, or no worker process could start): see
    ``options_encode.GC_YOUNG_THRESHOLD``, which the worker processes apply to themselves.  Left
    alone when collection is off or already less frequent.
    """
    young, *older = gc.get_threshold()
    if young == 0 or young >= GC_YOUNG_THRESHOLD:
        yield
        return
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
    try:
        yield
    finally:
        if gc.get_threshold()[0] == GC_YOUNG_THRESHOLD:  # unless someone else changed it meanwhile
            gc.set_threshold(young, *older)


def plan_options(scope: Scope, snapshot: datetime, concurrency: int, workers: int = 0) -> OptionsResult:
    """What a run would do (``--dry-run``): nothing fetched, nothing written."""
    result = OptionsResult(
        snapshot_time=snapshot,
        concurrency=concurrency,
        workers=min(workers, len(scope.tickers)),
        dry_run=True,
        skipped=dict(scope.skipped),
    )
    result.outcomes = {s: SymbolOutcome(status="planned") for s in scope.tickers}
    return result


class _Run:
    """One run's mutable state, shared by the consuming loop's helpers.

    ``pending`` maps what the loop waits for to its symbol: first the fetch (a ``_Fetched``), then
    the processing (an ``EncodedChain``); a symbol is settled when either fails or when it is written.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        client: PolygonClient,
        result: OptionsResult,
        progress: Progress,
    ) -> None:
        self.conn, self.client, self.result, self.progress = conn, client, result, progress
        self.processor: _Processor | None = None  # set once the worker processes are starting
        self.stop = threading.Event()
        self.stats0 = (client.http.stats.requests, client.http.stats.retries)
        self.pending: dict[Future, str] = {}
        self.fetched: dict[Future, _Fetched] = {}  # by the processing future

    def halt(self, error: KapManError) -> None:
        if self.result.error is None:
            self.result.error = error
            self.result.stopped = error.message
        self.stop.set()
        for future in self.pending:
            future.cancel()

    def step(self, future: Future) -> bool:
        """Take one finished future; True when its symbol is settled."""
        symbol = self.pending.pop(future)
        fetched = self.fetched.pop(future, None)
        if fetched is None:
            work = self._fetched(future, symbol)
            if work is None:
                return True
            self.pending[work] = symbol
            return False
        self._processed(future, symbol, fetched)
        return True

    def _failed(self, symbol: str, exc: BaseException) -> None:
        outcome = self.result.outcomes[symbol]
        if isinstance(exc, CancelledError | _Stopped):
            outcome.status, outcome.reason = "not_attempted", f"run stopped: {self.result.stopped}"
        elif isinstance(exc, AuthError):
            outcome.status, outcome.reason = "failed", exc.message
            self.halt(exc)
        elif isinstance(exc, KapManError):
            outcome.status, outcome.reason = "failed", exc.message
            log.warning("%s: %s", symbol, exc.message)
        else:  # a bug or an unforeseen payload must not stop the other symbols
            outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.error("%s: unexpected error", symbol, exc_info=exc)

    def _fetched(self, future: Future, symbol: str) -> Future | None:
        """A chain's pages are in: the processing future to wait for, or None when the fetch failed."""
        try:
            fetched: _Fetched = future.result()
        except Exception as exc:
            self._failed(symbol, exc)
            return None
        self.result.outcomes[symbol].pages = fetched.pages
        self.fetched[fetched.work] = fetched
        return fetched.work

    def _processed(self, future: Future, symbol: str, fetched: _Fetched) -> None:
        outcome = self.result.outcomes[symbol]
        try:
            try:
                chain: EncodedChain = future.result()
            except BrokenProcessPool as exc:  # a worker process died: this chain again, here
                assert self.processor is not None
                self.processor.give_up(exc)
                chain = self.processor.inline(
                    fetched.bodies, self.result.snapshot_time, fetched.ticker_id, symbol
                ).result()
        except Exception as exc:
            self._failed(symbol, exc)
            return
        outcome.contracts, outcome.rows = chain.contracts, chain.rows
        outcome.dropped = {k: chain.dropped[k] for k in DROP_REASONS if chain.dropped[k]}
        outcome.samples, outcome.seconds = chain.samples, round(fetched.seconds + chain.seconds, 3)
        if not chain.rows:
            outcome.status = "empty"
            outcome.reason = (
                "no contracts" if not chain.contracts else f"all {chain.contracts} contracts dropped"
            )
            return
        started = time.perf_counter()
        try:
            counts = write_chain(self.conn, chain)
        except psycopg.Error as exc:
            error = wrap(exc, f"writing {symbol}")
            outcome.status, outcome.reason = "failed", error.message
            if error.transient:  # the server is going away: stop, a rerun resumes
                self.halt(error)
            return
        finally:
            self.result.write_seconds += time.perf_counter() - started
        outcome.status = "ok"
        outcome.inserted, outcome.updated = counts.inserted, counts.updated
        outcome.unchanged = chain.rows - counts.inserted - counts.updated

    def tally(self) -> None:
        result = self.result
        result.rows_inserted = sum(o.inserted for o in result.outcomes.values())
        result.rows_updated = sum(o.updated for o in result.outcomes.values())
        result.rows_unchanged = sum(o.unchanged for o in result.outcomes.values())
        result.pages = sum(o.pages for o in result.outcomes.values())
        result.contracts = sum(o.contracts for o in result.outcomes.values())
        dropped: Counter = Counter()
        for o in result.outcomes.values():
            dropped.update(o.dropped)
        result.dropped = {k: dropped[k] for k in DROP_REASONS}
        stats = self.client.http.stats
        result.requests, result.retries = stats.requests - self.stats0[0], stats.retries - self.stats0[1]

def ingest_options(
    conn: psycopg.Connection,
    client: PolygonClient,
    scope: Scope,
    snapshot: datetime,
    *,
    concurrency: int = 4,
    workers: int | None = None,
    progress: Progress | None = None,
    enforce_retention: bool = True,
) -> OptionsResult:
    """Fetch, normalise and write every symbol of ``scope`` under one snapshot time.

    ``workers``: processes that decode, normalise and encode the chains (default
    ``default_workers()``, never more than there are symbols); 0 does it in the fetch threads.
    """
    progress = progress or NullProgress()
    started = time.perf_counter()
    workers = min(default_workers() if workers is None else workers, len(scope.tickers))
    result = OptionsResult(
        snapshot_time=snapshot, concurrency=concurrency, workers=workers, skipped=dict(scope.skipped)
    )
    result.outcomes = {s: SymbolOutcome() for s in scope.tickers}
    result.run_id = runs.start_run(
        conn,
        "options",
        {"symbols": list(scope.tickers), "concurrency": concurrency, "workers": workers},
        snapshot_time=snapshot,
    )
    progress.start(len(scope.tickers), "options", unit="symbol")
    run = _Run(conn, client, result, progress)
    try:
        with _fewer_collections(), _Processor(workers) as processor, ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="options"
        ) as pool:
            run.processor = processor
            for symbol, ticker_id in scope.tickers.items():
                future = pool.submit(_fetch, client, symbol, ticker_id, snapshot, run.stop, processor)
                run.pending[future] = symbol
            try:
                while run.pending:
                    done, _ = wait(run.pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        if run.step(future):
                            progress.advance(
                                1,
                                contracts=sum(o.rows for o in result.outcomes.values()),
                                requests=client.http.stats.requests - run.stats0[0],
                                retries=client.http.stats.retries - run.stats0[1],
                            )
            except BaseException:
                run.stop.set()  # e.g. Ctrl-C: let running fetches end at their next page
                for future in run.pending:
                    future.cancel()
                raise
    finally:
        progress.close()
        run.tally()
        result.seconds = time.perf_counter() - started
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        runs.finish_run(conn, result.run_id, result.status(), result.as_dict())
    if enforce_retention and result.error is None:
        result.retention = retention.enforce_retention(conn).describe()
    result.seconds = time.perf_counter() - started
    return result
