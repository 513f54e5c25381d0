"""One options run: every symbol of a scope fetched, processed and written under one snapshot time.

A chain goes through three stages (``fetch``, ``process`` in ``workers``, ``write``): one of
``concurrency`` fetch threads fetches its pages; one of ``workers`` processes decodes, normalises
and encodes them as one binary COPY payload; the calling thread writes the payload over the run's
one connection, in one transaction per symbol.  Every symbol is submitted up front, so fetching
never waits for the workers or the writer (raw pages and payloads, a few MB per chain, wait in
memory instead).  The single writer is the run's serial stage: see bench/bench_options.py.

Failures: a 401 stops the run (nothing else can succeed; what is written stays), a lost
database connection too (``ConnectionLost``); the run's deadline fails the symbol that meets it
and leaves the rest not attempted; anything else fails only its symbol.  Ctrl-C stops the fetch
threads at their next page and shuts the worker processes down (they ignore the signal
themselves).  The run ledger (``runs.recorded``) gets the outcome in every case.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from kapman import clock
from kapman.db import retention, runs
from kapman.db.connect import connect
from kapman.db.errors import wrap
from kapman.errors import AuthError, ConnectionLost, DeadlineError, KapManError
from kapman.ingest.options.fetch import Fetched, Stopped, fetch
from kapman.ingest.options.normalise import DROP_REASONS
from kapman.ingest.options.process import EncodedChain
from kapman.ingest.options.report import OptionsResult, SymbolOutcome
from kapman.ingest.options.workers import Processor, default_workers, fewer_collections
from kapman.ingest.options.write import clear_chain, removes, write_chain
from kapman.ingest.watchlist_scope import Scope
from kapman.ops import lock
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient

if TYPE_CHECKING:  # the archive (and pyarrow) load only when a run archives
    from kapman.archive.live import LiveExport

log = logging.getLogger(__name__)


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

    ``pending`` maps what the loop waits for to its symbol: first the fetch (a ``Fetched``), then
    the processing (an ``EncodedChain``); a symbol is settled when either fails or when it is written.
    """

    def __init__(self, conn: psycopg.Connection, client: PolygonClient, result: OptionsResult,
                 archive: LiveExport | None = None) -> None:
        self.conn, self.client, self.result, self.archive = conn, client, result, archive
        self.processor: Processor | None = None  # set once the worker processes are starting
        self.stop = threading.Event()
        self.stats0 = (client.http.stats.requests, client.http.stats.retries)
        self.pending: dict[Future, str] = {}
        self.fetched: dict[Future, Fetched] = {}  # by the processing future
        self.written = 0  # symbols written so far

    def halt(self, error: KapManError) -> None:
        if self.result.error is None and not self.result.stopped:
            if not isinstance(error, DeadlineError):  # a deadline ends the run, not as an error
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
        if isinstance(exc, CancelledError | Stopped):
            outcome.status = "not_attempted"  # why is known once the stop is settled (``tally``)
        elif isinstance(exc, AuthError) or isinstance(exc, DeadlineError) and exc.run:
            outcome.status, outcome.reason = "failed", exc.message
            self.halt(exc)
        elif isinstance(exc, KapManError):
            outcome.status, outcome.reason = "failed", exc.message
            outcome.retryable = exc.transient or isinstance(exc, DeadlineError)
            log.warning("%s: %s", symbol, exc.message)
        else:  # a bug or an unforeseen payload must not stop the other symbols
            outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.error("%s: unexpected %s: %s", symbol, type(exc).__name__, exc)
            log.debug("%s: the unexpected error's traceback", symbol, exc_info=exc)  # only with --debug

    def _fetched(self, future: Future, symbol: str) -> Future | None:
        """A chain's pages are in: the processing future to wait for, or None when the fetch failed."""
        try:
            fetched: Fetched = future.result()
        except Exception as exc:
            self._failed(symbol, exc)
            return None
        self.result.outcomes[symbol].pages = fetched.pages
        self.fetched[fetched.work] = fetched
        return fetched.work

    def _processed(self, future: Future, symbol: str, fetched: Fetched) -> None:
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
        outcome.unpriced, outcome.unquoted = chain.unpriced, chain.unquoted
        outcome.not_numbers, outcome.not_number_examples = chain.not_numbers, chain.not_number_examples
        outcome.dropped = {k: chain.dropped[k] for k in DROP_REASONS if chain.dropped[k]}
        outcome.samples, outcome.seconds = chain.samples, round(fetched.seconds + chain.seconds, 3)
        started = time.perf_counter()
        try:
            if chain.rows:
                counts = write_chain(self.conn, chain)
                outcome.inserted, outcome.updated, outcome.removed = counts.inserted, counts.updated, counts.removed
                outcome.held = counts.held
            elif removes(chain):  # a rerun may have found the chain empty: the snapshot is then empty too
                outcome.removed = clear_chain(self.conn, chain.snapshot_time, chain.ticker_id)
        except psycopg.Error as exc:
            error = wrap(exc, f"writing {symbol}")
            if isinstance(error, ConnectionLost):  # the server went away: stop, a rerun resumes
                error = ConnectionLost(done=self.written, unit="symbols")  # the row this run records says so
            outcome.status, outcome.reason = "failed", error.message
            if error.transient:
                self.halt(error)
            return
        finally:
            self.result.write_seconds += time.perf_counter() - started
        self.written += 1
        if self.archive is not None:
            changed = bool(outcome.inserted or outcome.updated or outcome.removed)
            self.archive.committed(chain.ticker_id, changed=changed)
        if not chain.rows:
            outcome.status = "empty"
            outcome.reason = "no contracts" if not chain.contracts else f"all {chain.contracts} contracts dropped"
            return
        outcome.status = "ok"
        outcome.unchanged = chain.rows - counts.inserted - counts.updated

    def tally(self) -> None:
        result, outcomes = self.result, self.result.outcomes.values()
        for o in outcomes:
            if o.status == "not_attempted":
                o.retryable = True
                if not o.reason:
                    o.reason = f"not attempted, the run stopped: {result.stopped or 'interrupted'}"
        result.rows_inserted = sum(o.inserted for o in outcomes)
        result.rows_updated = sum(o.updated for o in outcomes)
        result.rows_unchanged = sum(o.unchanged for o in outcomes)
        result.rows_removed = sum(o.removed for o in outcomes)
        result.pages = sum(o.pages for o in outcomes)
        result.contracts = sum(o.contracts for o in outcomes)
        dropped: Counter = Counter()
        for o in outcomes:
            dropped.update(o.dropped)
        result.dropped = {k: dropped[k] for k in DROP_REASONS}
        stats = self.client.http.stats
        result.requests, result.retries = stats.requests - self.stats0[0], stats.retries - self.stats0[1]

    def consume(self, pool: ThreadPoolExecutor, processor: Processor, scope: Scope, progress: Progress) -> None:
        """Submit every symbol, then settle each as its futures finish."""
        self.processor = processor
        client, snapshot = self.client, self.result.snapshot_time
        for symbol, ticker_id in scope.tickers.items():
            self.pending[pool.submit(fetch, client, symbol, ticker_id, snapshot, self.stop, processor)] = symbol
        try:
            while self.pending:
                done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
                for future in done:
                    if self.step(future):
                        progress.advance(
                            1,
                            contracts=sum(o.rows for o in self.result.outcomes.values()),
                            requests=client.http.stats.requests - self.stats0[0],
                            retries=client.http.stats.retries - self.stats0[1],
                        )
        except BaseException:
            self.stop.set()  # e.g. Ctrl-C: let running fetches end at their next page
            for future in self.pending:
                future.cancel()
            raise


def ingest_options(
    db_url: str,
    client: PolygonClient,
    scope: Scope,
    snapshot: datetime,
    *,
    concurrency: int = 4,
    workers: int | None = None,
    progress: Progress | None = None,
    deadline: float | None = None,
    enforce_retention: bool = True,
    args: Mapping[str, Any] | None = None,
    archive: LiveExport | None = None,
    ledger: runs.Run | None = None,
) -> OptionsResult:
    """Fetch, normalise and write every symbol of ``scope`` under one snapshot time, recorded in the
    run ledger; raises the error that stopped the run (a 401, ``ConnectionLost``) once recorded.

    ``workers``: processes that decode, normalise and encode the chains (default
    ``default_workers()``, never more than there are symbols); 0 does it in the fetch threads.
    ``deadline``: seconds the run may fetch for; then the symbol that meets it fails with that
    reason and those not yet fetched are not attempted.  ``args``: the ledger's record of the request.
    ``archive``: fed each underlying as it commits and closed before retention runs (so a snapshot
    about to expire is archived first); its outcome is part of the run's.  Abandoned when the run
    stops before that (Ctrl-C, a 401 or a lost connection raised).  ``ledger``: the run's row,
    opened by ``kapman.execute`` for the options step (the snapshot time and the resolved scope are
    written on it here); without it the pipeline records a row of its own.
    """
    progress = progress or NullProgress()
    started = time.perf_counter()
    workers = min(default_workers() if workers is None else workers, len(scope.tickers))
    result = OptionsResult(
        snapshot_time=snapshot, concurrency=concurrency, workers=workers, skipped=dict(scope.skipped)
    )
    result.outcomes = {s: SymbolOutcome() for s in scope.tickers}
    ledger_args = {"symbols": list(scope.tickers), "concurrency": concurrency, "workers": workers,
                   "deadline": deadline, **(args or {})}
    # The archive is closed once the chains are in; a run that stops before that abandons it.
    # The writing lock of the snapshot's New York day keeps A3 off the chains until the run ends.
    if ledger is not None:
        ledger.decided(snapshot_time=snapshot, args=ledger_args)
    recording = nullcontext(ledger) if ledger is not None else runs.recorded(db_url, "options", ledger_args,
                                                                          snapshot_time=snapshot)
    with archive or nullcontext(), recording as ledger, \
            lock.writing_snapshot(db_url, clock.ny_date_of(snapshot)), connect(db_url) as conn:
        result.run_id = ledger.run_id
        run = _Run(conn, client, result, archive)
        progress.start(len(scope.tickers), "options", unit="symbol")
        client.http.run_deadline = None if deadline is None else time.monotonic() + deadline
        try:
            with fewer_collections(), Processor(workers) as processor, ThreadPoolExecutor(
                max_workers=concurrency, thread_name_prefix="options"
            ) as pool:
                run.consume(pool, processor, scope, progress)
        finally:
            client.http.run_deadline = None
            progress.close()
            run.tally()
            result.seconds = time.perf_counter() - started
            ledger.result = result.step_result()
        if archive is not None:
            result.archive = archive.close()
        if enforce_retention and result.error is None:
            result.retention = retention.enforce_retention(conn).describe()
        result.seconds = time.perf_counter() - started
        ledger.result = result.step_result()
        if result.error is not None:
            raise result.error
    return result
