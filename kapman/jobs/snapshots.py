"""Writing A2's and A3's columns of ``daily_snapshots``, each without touching the other's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from kapman.db import bulk

A2_COLUMNS = ("time", "ticker_id", "technical_indicators_json", "price_metrics_json", "ta_computed_at",
              "ta_version")
A3_COLUMNS = ("time", "ticker_id", "dealer_metrics_json", "dealer_snapshot_time", "dealer_computed_at",
              "dealer_version")
_TYPES = {"time": "timestamptz", "ticker_id": "uuid", "technical_indicators_json": "jsonb",
          "price_metrics_json": "jsonb", "dealer_metrics_json": "jsonb", "ta_computed_at": "timestamptz",
          "dealer_computed_at": "timestamptz", "dealer_snapshot_time": "timestamptz", "ta_version": "text",
          "dealer_version": "text"}


def _identity(text: str | bytes) -> str | bytes:
    return text


def json_text(text: str | bytes | None) -> Jsonb | None:
    """Already-serialised JSON for a binary COPY into jsonb (no second json.dumps)."""
    return None if text is None else Jsonb(text, dumps=_identity)


def existing(conn: psycopg.Connection, times: Sequence[datetime], column: str) -> set[tuple[datetime, object]]:
    """(time, ticker_id) pairs that already have ``column`` filled."""
    if column not in ("technical_indicators_json", "dealer_metrics_json"):
        raise ValueError(column)
    rows = conn.execute(f"SELECT time, ticker_id FROM public.daily_snapshots "  # noqa: S608 - fixed names
                        f"WHERE time = ANY(%s) AND {column} IS NOT NULL", (list(times),)).fetchall()
    return {(t, i) for t, i in rows}


def write(conn: psycopg.Connection, columns: Sequence[str], rows: Iterable[Sequence[object]],
          compare: Sequence[str]) -> bulk.MergeCounts:
    """One transaction: COPY into staging, merge on (time, ticker_id) updating only ``columns``."""
    with conn.transaction(), conn.cursor() as cur:
        staging = bulk.create_staging(cur, "snapshots_stage", "daily_snapshots", columns)
        bulk.copy_rows(cur, staging, columns, [_TYPES[c] for c in columns], rows)
        return bulk.merge(cur, target="daily_snapshots", staging=staging, key=("time", "ticker_id"),
                          columns=columns, compare=compare)


@dataclass(kw_only=True)
class WrittenRows:
    """What a job's merges did to daily_snapshots; A2's and A3's results extend it."""

    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    def tally(self, counts: bulk.MergeCounts, rows: int) -> None:
        self.rows_inserted += counts.inserted
        self.rows_updated += counts.updated
        self.rows_unchanged += rows - counts.inserted - counts.updated

    def rows_dict(self) -> dict[str, int]:
        return {"rows_written": self.rows_written, "rows_inserted": self.rows_inserted,
                "rows_updated": self.rows_updated, "rows_unchanged": self.rows_unchanged}
