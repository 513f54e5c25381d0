"""Option-chain snapshots of the watchlist underlyings into ``public.options_chains``.

One snapshot time per run, shared by every symbol.  ``concurrency`` worker threads share one
PolygonHTTP (one connection pool, one rate limiter, one set of counters); each fetches and
normalises a whole chain.  Writes happen on the calling thread over its one connection, one
transaction per symbol (binary COPY into staging, then insert or merge on the table's key): the
run ledger shares that connection, there is no per-worker connection to manage, and since every
symbol is submitted up front, fetching never waits for the writer (finished chains, ~1 MB each,
wait in memory instead).  The single writer is the run's serial stage: see bench/bench_options.py.

Failures: a 401 stops the run (nothing else can succeed; what is written stays), a lost
database connection too; anything else fails only its symbol.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from kapman.db import bulk, retention, runs, schema
from kapman.db.errors import wrap
from kapman.errors import AuthError, KapManError
from kapman.ingest.options_normalise import COLUMNS, DROP_REASONS, TYPES, NormalisedChain, normalise_chain
from kapman.ingest.options_report import OptionsResult, SymbolOutcome
from kapman.ingest.options_scope import Scope
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient

log = logging.getLogger(__name__)

#: First key of the per-(underlying, snapshot) advisory lock: "op" for options.
LOCK_CLASS = 0x6F70

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
    results: list[Any] = []
    pages = 0
    if stop.is_set():
        raise _Stopped
    try:
        for page in client.option_chain_pages(symbol):
            results.extend(page)
            pages += 1
            if stop.is_set():
                raise _Stopped
    except AuthError:
        stop.set()  # at once, so no worker starts another symbol with a key that is refused
        raise
    return _Fetched(normalise_chain(results, snapshot, ticker_id), pages, time.perf_counter() - started)


def write_chain(conn: psycopg.Connection, rows: list[tuple]) -> bulk.MergeCounts:
    """One symbol's rows in one transaction: binary COPY into staging, then into the table.

    The first write of a (snapshot time, underlying) is a plain INSERT from staging: nothing can
    conflict, and skipping the ON CONFLICT arbiter roughly doubles throughput.  A replay merges
    on the key, updating only changed rows.  The advisory lock keeps two runs of the same snapshot
    time from racing between the check and the insert.
    """
    snapshot, ticker_id = rows[0][0], rows[0][1]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, f"{ticker_id}@{snapshot}"))
        staging = bulk.create_staging(cur, "options_stage", "options_chains", COLUMNS)
        bulk.copy_rows(cur, staging, COLUMNS, TYPES, rows)
        present = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM public.options_chains WHERE time = %s AND ticker_id = %s)",
            (snapshot, ticker_id),
        ).fetchone()
        if present and present[0]:
            return bulk.merge(
                cur, target="options_chains", staging=staging, key=schema.OPTIONS_KEY, columns=COLUMNS
            )
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        cur.execute(
            sql.SQL("INSERT INTO public.options_chains ({cols}) SELECT {cols} FROM {staging}").format(
                cols=cols, staging=staging
            )
        )
        return bulk.MergeCounts(inserted=cur.rowcount, updated=0)


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
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="options") as pool:
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
