"""Option-chain snapshots of the watchlist underlyings into ``public.options_chains``.

One snapshot time per run, shared by every symbol.  ``concurrency`` worker threads share one
PolygonHTTP (one connection pool, one rate limiter, one set of counters); each fetches and
normalises a whole chain, page by page.  Writes happen on the calling thread over its one
connection, one transaction per symbol (a binary COPY into the table, or on a replay into staging
and a merge on the table's key): the run ledger shares that connection, there is no per-worker
connection to manage, and since every symbol is submitted up front, fetching never waits for the
writer (finished chains, ~1 MB each, wait in memory instead).  The single writer is the run's
serial stage: see bench/bench_options.py.

Failures: a 401 stops the run (nothing else can succeed; what is written stays), a lost
database connection too; anything else fails only its symbol.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg import sql

from kapman.db import bulk, retention, runs, schema
from kapman.db.errors import wrap
from kapman.errors import AuthError, KapManError
from kapman.ingest.options_normalise import COLUMNS, DROP_REASONS, TYPES, ChainNormaliser, NormalisedChain
from kapman.ingest.options_report import OptionsResult, SymbolOutcome
from kapman.ingest.options_scope import Scope
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient

log = logging.getLogger(__name__)

#: First key of the per-(underlying, snapshot) advisory lock: "op" for options.
LOCK_CLASS = 0x6F70
_TABLE = sql.Identifier("public", "options_chains")
#: The cyclic collector's young-generation threshold during a run (CPython's default: 700).
GC_YOUNG_THRESHOLD = 20_000

__all__ = ["OptionsResult", "SymbolOutcome", "ingest_options", "plan_options", "write_chain"]


class _Stopped(Exception):
    """The run was stopped (401, lost database) before this symbol finished fetching."""


@dataclass
class _Fetched:
    chain: NormalisedChain
    pages: int
    seconds: float


def _fetch(
    client: PolygonClient, symbol: str, ticker_id: UUID, snapshot: datetime, stop: threading.Event
) -> _Fetched:
    started = time.perf_counter()
    normaliser = ChainNormaliser(snapshot, ticker_id)
    pages = 0
    if stop.is_set():
        raise _Stopped
    try:
        for page in client.option_chain_pages(symbol):
            normaliser.add(page)  # while the page is warm; its dicts are freed before the next
            pages += 1
            if stop.is_set():
                raise _Stopped
    except AuthError:
        stop.set()  # at once, so no worker starts another symbol with a key that is refused
        raise
    return _Fetched(normaliser.finish(), pages, time.perf_counter() - started)


def write_chain(conn: psycopg.Connection, rows: list[tuple]) -> bulk.MergeCounts:
    """One symbol's rows in one transaction, under a per-(snapshot time, underlying) advisory lock.

    The first write of a (snapshot time, underlying) is a binary COPY straight into the table:
    nothing of that pair exists yet and the rows are unique on the key, so nothing can conflict,
    and one pass is cheaper than a COPY into staging plus an INSERT from it.  A replay COPYs into
    staging and merges on the key, updating only changed rows.  The lock keeps two runs of the
    same snapshot time from racing between the check and the write.
    """
    snapshot, ticker_id = rows[0][0], rows[0][1]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, f"{ticker_id}@{snapshot}"))
        present = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM public.options_chains WHERE time = %s AND ticker_id = %s)",
            (snapshot, ticker_id),
        ).fetchone()
        if present and present[0]:
            staging = bulk.create_staging(cur, "options_stage", "options_chains", COLUMNS)
            bulk.copy_rows(cur, staging, COLUMNS, TYPES, rows)
            return bulk.merge(
                cur, target="options_chains", staging=staging, key=schema.OPTIONS_KEY, columns=COLUMNS
            )
        bulk.copy_rows(cur, _TABLE, COLUMNS, TYPES, rows)
        return bulk.MergeCounts(inserted=len(rows), updated=0)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Raise the collector's young-generation threshold for the run, then restore it.

    A page decodes into ~2,500 dicts that live for a few milliseconds.  At the default threshold
    of 700 the collector runs several times per page, promotes the pages in flight to the older
    generations, and the full collections that follow traverse every row waiting for the writer:
    a third of the run's CPU, all of it under the GIL.  At 20,000 the pages die (by reference
    counting, as before) between collections.  Nothing is kept longer: only reference cycles,
    which a run hardly creates, wait for a later collection.  Left alone when collection is off
    or already less frequent.
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


def plan_options(scope: Scope, snapshot: datetime, concurrency: int) -> OptionsResult:
    """What a run would do (``--dry-run``): nothing fetched, nothing written."""
    result = OptionsResult(
        snapshot_time=snapshot, concurrency=concurrency, dry_run=True, skipped=dict(scope.skipped)
    )
    result.outcomes = {s: SymbolOutcome(status="planned") for s in scope.tickers}
    return result


class _Run:
    """One run's mutable state, shared by the consuming loop's helpers."""

    def __init__(
        self, conn: psycopg.Connection, client: PolygonClient, result: OptionsResult, progress: Progress
    ) -> None:
        self.conn, self.client, self.result, self.progress = conn, client, result, progress
        self.stop = threading.Event()
        self.stats0 = (client.http.stats.requests, client.http.stats.retries)

    def halt(self, error: KapManError, futures: dict[Future, str]) -> None:
        if self.result.error is None:
            self.result.error = error
            self.result.stopped = error.message
        self.stop.set()
        for future in futures:
            future.cancel()

    def consume(self, future: Future, symbol: str, futures: dict[Future, str]) -> None:
        outcome = self.result.outcomes[symbol]
        try:
            fetched: _Fetched = future.result()
        except (CancelledError, _Stopped):
            outcome.status, outcome.reason = "not_attempted", f"run stopped: {self.result.stopped}"
            return
        except AuthError as exc:
            outcome.status, outcome.reason = "failed", exc.message
            self.halt(exc, futures)
            return
        except KapManError as exc:
            outcome.status, outcome.reason = "failed", exc.message
            log.warning("%s: %s", symbol, exc.message)
            return
        except Exception as exc:  # a bug or an unforeseen payload must not stop the other symbols
            outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.error("%s: unexpected error", symbol, exc_info=True)
            return
        chain = fetched.chain
        outcome.pages, outcome.contracts, outcome.rows = fetched.pages, chain.contracts, len(chain.rows)
        outcome.dropped = {k: chain.dropped[k] for k in DROP_REASONS if chain.dropped[k]}
        outcome.samples, outcome.seconds = chain.samples, round(fetched.seconds, 3)
        if not chain.rows:
            outcome.status = "empty"
            outcome.reason = (
                "no contracts" if not chain.contracts else f"all {chain.contracts} contracts dropped"
            )
            return
        started = time.perf_counter()
        try:
            counts = write_chain(self.conn, chain.rows)
        except psycopg.Error as exc:
            error = wrap(exc, f"writing {symbol}")
            outcome.status, outcome.reason = "failed", error.message
            if error.transient:  # the server is going away: stop, a rerun resumes
                self.halt(error, futures)
            return
        finally:
            self.result.write_seconds += time.perf_counter() - started
        outcome.status = "ok"
        outcome.inserted, outcome.updated = counts.inserted, counts.updated
        outcome.unchanged = len(chain.rows) - counts.inserted - counts.updated

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
    progress: Progress | None = None,
    enforce_retention: bool = True,
) -> OptionsResult:
    """Fetch, normalise and write every symbol of ``scope`` under one snapshot time."""
    progress = progress or NullProgress()
    started = time.perf_counter()
    result = OptionsResult(snapshot_time=snapshot, concurrency=concurrency, skipped=dict(scope.skipped))
    result.outcomes = {s: SymbolOutcome() for s in scope.tickers}
    run = _Run(conn, client, result, progress)
    result.run_id = runs.start_run(
        conn, "options", {"symbols": list(scope.tickers), "concurrency": concurrency}, snapshot_time=snapshot
    )
    progress.start(len(scope.tickers), "options", unit="symbol")
    try:
        with _fewer_collections(), ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="options"
        ) as pool:
            futures = {
                pool.submit(_fetch, client, s, tid, snapshot, run.stop): s for s, tid in scope.tickers.items()
            }
            try:
                for future in as_completed(futures):
                    run.consume(future, futures[future], futures)
                    progress.advance(
                        1,
                        contracts=sum(o.rows for o in result.outcomes.values()),
                        requests=client.http.stats.requests - run.stats0[0],
                        retries=client.http.stats.retries - run.stats0[1],
                    )
            except BaseException:
                run.stop.set()  # e.g. Ctrl-C: let running workers end at their next page
                for future in futures:
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
