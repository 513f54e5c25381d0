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
    """The options step itself (its own connections, ledger and snapshot-time rules)."""
    from kapman.ingest import options as step

    return step.run(settings, step.OptionsParams(), progress)


def a2(settings: Settings, conn: psycopg.Connection, progress: Progress, *, dates: list[date]) -> StepResult:
    from kapman.jobs import a2_local_ta as job

    return job.run(settings, job.A2Params(dates=dates), progress)


def a3(settings: Settings, conn: psycopg.Connection, progress: Progress, *, dates: list[date]) -> StepResult:
    from kapman.jobs import a3_dealer_metrics as job

    return job.run(settings, job.A3Params(dates=dates), progress)
