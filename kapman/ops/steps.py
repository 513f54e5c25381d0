"""The steps the nightly runs: each step's own ``run(settings, params, progress)`` (kapman.step)
with the parameters the nightly's plan decided, so a step run by the nightly behaves, records
and reports exactly as when run by hand."""

from __future__ import annotations

from datetime import date

import psycopg

from kapman.config import Settings
from kapman.progress import Progress
from kapman.step import StepResult


def tickers(settings: Settings, conn: psycopg.Connection, progress: Progress) -> StepResult:
    from kapman.ingest import tickers as step

    return step.run(settings, step.TickersParams(force=True, types=settings.ticker_types), progress)


def splits(settings: Settings, conn: psycopg.Connection, progress: Progress) -> StepResult:
    from kapman.ingest import splits as step

    return step.run(settings, step.SplitsParams(), progress)


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


def a2(settings: Settings, conn: psycopg.Connection, progress: Progress, *, dates: list[date],
       force: bool = False) -> StepResult:
    from kapman.jobs import a2_local_ta as job

    return job.run(settings, job.A2Params(dates=dates, force=force), progress)


def a3(settings: Settings, conn: psycopg.Connection, progress: Progress, *, dates: list[date]) -> StepResult:
    from kapman.jobs import a3_dealer_metrics as job

    return job.run(settings, job.A3Params(dates=dates), progress)
