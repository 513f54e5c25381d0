"""The commands that mend what status finds, named once."""

from __future__ import annotations

from datetime import date

NIGHTLY = "python -m scripts.nightly"
REBUILD = "python -m scripts.db.a5_deterministic_rebuild"
TICKERS = "python -m scripts.ingest_tickers --force"
WATCHLISTS = "python -m scripts.ingest_watchlists"
OHLCV_BASE = "python -m scripts.ingest_ohlcv base"
OPTIONS = "python -m scripts.ingest_options"
A2 = "python -m scripts.run_a2_local_ta"
A3 = "python -m scripts.run_a3_dealer_metrics"

#: ingest_runs.job -> the command that reruns it.
BY_JOB = {"tickers": TICKERS, "watchlists": WATCHLISTS, "ohlcv": "python -m scripts.ingest_ohlcv incremental",
          "options": OPTIONS, "a2": A2, "a3": A3, "nightly": NIGHTLY}


def ohlcv_reload(start: date, end: date) -> str:
    return f"python -m scripts.ingest_ohlcv backfill --start {start} --end {end} --force"


def dated(command: str, days: list[date]) -> str:
    """An A2/A3 command for a date or a range of dates."""
    if len(days) == 1:
        return f"{command} --date {days[0]}"
    return f"{command} --start-date {days[0]} --end-date {days[-1]}"
