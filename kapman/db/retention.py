"""Application-enforced retention, for servers whose license has no retention policies.

Mirrors what TimescaleDB's retention policy does: drop every chunk whose whole range lies
before the cutoff (today in New York, by KapMan's clock, minus 730 days).  Deterministic: the
cutoff depends only on the clock, and it reports exactly which chunks went.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import psycopg

from kapman import clock
from kapman.db import schema

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    mode: str                                   # 'policy', 'application' or 'none'
    cutoff: date | None = None
    dropped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def chunks_dropped(self) -> int:
        return sum(len(v) for v in self.dropped.values())

    def describe(self) -> str:
        if self.mode == "policy":
            return "retention: TimescaleDB policies (730 days) manage it"
        if self.mode == "none":
            return "retention: no lifecycle recorded (schema not rebuilt?)"
        return (f"retention: application-enforced, cutoff {self.cutoff}, "
                f"{self.chunks_dropped} chunk(s) dropped")


def lifecycle_modes(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT hypertable_name, retention_mode FROM public.hypertable_lifecycle").fetchall()
    return {name: mode for name, mode in rows}


def enforce_retention(conn: psycopg.Connection, *, today: date | None = None,
                      keep: timedelta = schema.RETENTION) -> RetentionReport:
    """Drop chunks older than the retention window where no policy does it. Commits."""
    modes = lifecycle_modes(conn)
    targets = [t for t in schema.LIFECYCLE_TABLES if modes.get(t) == "application"]
    if not modes:
        return RetentionReport(mode="none")
    if not targets:
        return RetentionReport(mode="policy")
    cutoff = (today or clock.today_ny()) - keep
    report = RetentionReport(mode="application", cutoff=cutoff)
    with conn.transaction():
        for table in targets:
            time_col = schema.HYPERTABLES[table][0]
            # ohlcv is partitioned by a date, options_chains by a timestamptz at midnight New York.
            older_than: date | datetime = cutoff if time_col == "date" else \
                datetime.combine(cutoff, time(0), tzinfo=clock.NEW_YORK)
            rows = conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)",
                                (f"public.{table}", older_than)).fetchall()
            report.dropped[table] = [r[0] for r in rows]
    if report.chunks_dropped:
        log.info("retention dropped %d chunk(s) older than %s", report.chunks_dropped, cutoff)
    return report
