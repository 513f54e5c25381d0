"""The steps the nightly runs, each called as ``run(settings, conn, progress, ...) -> StepResult``.

Until every step is on the step contract (``run(settings, params, progress)``, kapman.step), this
module calls each one through its current library function and turns its own result into a
StepResult.  Each adapter goes once its step exposes the contract.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import psycopg

from kapman.config import Settings
from kapman.progress import Progress
from kapman.step import StepResult


def _adapted(step: str, unit: str, legacy: Any, done: int, failures: dict[str, str],
             started: float) -> StepResult:
    result = StepResult(step=step, unit=unit, done=done, headline=legacy.summary().splitlines()[0],
                        details={"result": legacy.as_dict()}, started=started)
    for what, reason in sorted(failures.items()):
        result.fail(what, reason)
    return result.stop_clock()


def tickers(settings: Settings, conn: psycopg.Connection, progress: Progress) -> StepResult:
    from kapman.ingest import tickers as step

    return step.run(settings, step.TickersParams(force=True, types=settings.ticker_types), progress)


def watchlists(settings: Settings, conn: psycopg.Connection, progress: Progress) -> StepResult:
    from kapman.ingest import watchlists as step

    return step.run(settings, step.WatchlistsParams(settings.watchlists_dir), progress)


def ohlcv(settings: Settings, conn: psycopg.Connection, progress: Progress, *, start: date,
          end: date) -> StepResult:
    started = time.perf_counter()
    from kapman.ingest.ohlcv import backfill_window, ingest_ohlcv
    from kapman.providers.flatfiles import source_from_settings

    legacy = ingest_ohlcv(conn, source_from_settings(settings), backfill_window(start, end), progress=progress)
    result = _adapted("ohlcv", "files", legacy, legacy.files_loaded, legacy.failed, started)
    result.read, result.written, result.unchanged = legacy.rows_read, legacy.rows_inserted + legacy.rows_updated, \
        legacy.rows_unchanged
    return result


def options(settings: Settings, conn: psycopg.Connection, progress: Progress) -> StepResult:
    started = time.perf_counter()
    from kapman import archive
    from kapman.ingest.options import default_workers, ingest_options
    from kapman.ingest.options_report import SUCCEEDED
    from kapman.ingest.options_scope import snapshot_time
    from kapman.ingest.watchlist_scope import resolve_scope
    from kapman.providers.polygon import PolygonClient

    concurrency = 4
    scope = resolve_scope(conn, None)
    client = PolygonClient.from_settings(settings, pool_size=concurrency)
    try:
        legacy = ingest_options(conn, client, scope, snapshot_time(None), concurrency=concurrency,
                                workers=default_workers(), progress=progress)
    finally:
        client.close()
    archived = archive.archive_run(settings, legacy.snapshot_time)  # what was stored, archived (kapman.archive)
    if legacy.error is not None:
        raise legacy.error
    failed = {s: o.reason or o.status for s, o in legacy.outcomes.items() if o.status not in SUCCEEDED}
    result = _adapted("options", "symbols", legacy, len(legacy.outcomes) - len(failed), failed, started)
    result.written = legacy.rows_written
    if archived.ok:
        result.note(archived.line())
    else:
        result.fail("archive", archived.line())
    return result


def a2(settings: Settings, conn: psycopg.Connection, progress: Progress, *, dates: list[date]) -> StepResult:
    started = time.perf_counter()
    from kapman.jobs import a2_local_ta

    params = a2_local_ta.A2Params(dates=dates, db_url=settings.require_database_url())
    legacy = a2_local_ta.run(conn, params, progress=progress)
    result = _adapted("a2", "dates", legacy, len(dates) - len(legacy.dates_without_bars), {}, started)
    result.written = legacy.rows_written
    return result


def a3(settings: Settings, conn: psycopg.Connection, progress: Progress, *, dates: list[date]) -> StepResult:
    from kapman.jobs import a3_dealer_metrics as job

    return job.run(settings, job.A3Params(dates=dates), progress)
