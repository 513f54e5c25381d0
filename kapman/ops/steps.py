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
    from kapman.ingest import ohlcv as step

    return step.run(settings, step.OhlcvParams(mode="backfill", start=start, end=end), progress)


def options(settings: Settings, conn: psycopg.Connection, progress: Progress) -> StepResult:
    """The options step itself (its own connections, ledger and snapshot-time rules)."""
    from kapman.ingest import options as step

    return step.run(settings, step.OptionsParams(), progress)


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
