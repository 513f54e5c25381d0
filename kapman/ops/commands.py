"""The commands that mend what status finds, as status names them: each read from the registry."""

from __future__ import annotations

from datetime import date

from kapman import registry

NIGHTLY = registry.mend("nightly")
REBUILD = registry.mend("rebuild")
MIGRATE = registry.mend("migrate")
TICKERS = registry.mend("tickers")
WATCHLISTS = registry.mend("watchlists")
OHLCV_BASE = f"{registry.command('ohlcv')} base"
OPTIONS = registry.mend("options")
A2 = registry.command("a2")
A3 = registry.command("a3")

#: ingest_runs.job -> the command that reruns it (older job names included).
BY_JOB = {job: step.mend for job, step in registry.BY_JOB.items() if step.unit}


def ohlcv_reload(start: date, end: date) -> str:
    return f"{registry.command('ohlcv')} backfill --start {start} --end {end} --force"


def dated(command: str, days: list[date]) -> str:
    """An A2/A3 command for a date or a range of dates."""
    if len(days) == 1:
        return f"{command} --date {days[0]}"
    return f"{command} --start-date {days[0]} --end-date {days[-1]}"
