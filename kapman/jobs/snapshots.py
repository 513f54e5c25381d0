"""Writing A2's and A3's columns of ``daily_snapshots``, each without touching the other's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from kapman.db import bulk, chunks

A2_COLUMNS = ("time", "ticker_id", "technical_indicators_json", "price_metrics_json", "ta_computed_at",
              "ta_version")
A3_COLUMNS = ("time", "ticker_id", "dealer_metrics_json", "dealer_snapshot_time", "dealer_computed_at",
              "dealer_version")
#: First key of the per-date advisory lock of every daily_snapshots writer: "ds".
LOCK_CLASS = 0x6473
_TYPES = {"time": "timestamptz", "ticker_id": "uuid", "technical_indicators_json": "jsonb",
          "price_metrics_json": "jsonb", "dealer_metrics_json": "jsonb", "ta_computed_at": "timestamptz",
          "dealer_computed_at": "timestamptz", "dealer_snapshot_time": "timestamptz", "ta_version": "text",
          "dealer_version": "text"}


def encode(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> tuple[bytes, int]:
    """Rows of ``columns`` (None for NULL, JSON as serialised text) as a binary COPY stream, and their count.

    Built without a connection (``bulk.encode_binary_rows``), so a job can encode one date while
    others are being sent.
    """
    listed = rows if isinstance(rows, list) else list(rows)
    return bulk.encode_binary_rows([_TYPES[c] for c in columns], listed), len(listed)


#: The placeholder's ticker id: no ticker has it (ids are v4/v5 uuids).
_NIL = uuid.UUID(int=0)


def create_chunks(conn: psycopg.Connection, times: Sequence[datetime]) -> int:
    """Create the chunks that ``times`` fall in and that do not exist yet, before several writers start.

    TimescaleDB creates a chunk under a lock on the hypertable that the creating transaction holds to
    its end: a writer whose date needs a chunk another writer's open transaction is creating waits for
    that whole transaction (a date's COPY, about a second on a full market), so writers of consecutive
    new dates took turns at every new week (a 40-date full-market range: 48 s, 43 s with its chunks made
    first).  A placeholder row inserted and deleted in one short transaction of its own makes each
    chunk; no other transaction can see it.  Needs an idle connection (that transaction must commit);
    returns how many times had no chunk."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return 0
    found = chunks.chunks(conn, "daily_snapshots")
    starts = [c.start for c in found]
    missing = sorted({t for t in times if chunks.covering(found, starts, t.astimezone(UTC).date()) is None})
    if missing:
        with conn.transaction():
            conn.execute("INSERT INTO public.daily_snapshots (time, ticker_id) SELECT t, %s "
                         "FROM unnest(%s::timestamptz[]) AS t ON CONFLICT DO NOTHING", (_NIL, missing))
            conn.execute("DELETE FROM public.daily_snapshots WHERE ticker_id = %s AND time = ANY(%s)",
                         (_NIL, missing))
    return len(missing)


def existing(conn: psycopg.Connection, times: Sequence[datetime], column: str,
             holding: str | None = None) -> set[tuple[datetime, object]]:
    """(time, ticker_id) pairs that already have ``column`` filled (and, given ``holding``, whose
    document has that top-level key: A2's candlestick patterns are computed only when asked for)."""
    if column not in ("technical_indicators_json", "dealer_metrics_json"):
        raise ValueError(column)
    key = f" AND {column} ? %s" if holding else ""
    rows = conn.execute(f"SELECT time, ticker_id FROM public.daily_snapshots "  # noqa: S608 - fixed names
                        f"WHERE time = ANY(%s) AND {column} IS NOT NULL{key}",
                        (list(times), *([holding] if holding else []))).fetchall()
    return {(t, i) for t, i in rows}


def write(conn: psycopg.Connection, columns: Sequence[str], payload: tuple[bytes, int], compare: Sequence[str],
          time: datetime, then: Callable[[psycopg.Cursor], None] | None = None) -> bulk.MergeCounts:
    """One transaction for the rows of one ``time`` (``encode``d), updating only ``columns``.

    A new trading date (the nightly case) is COPYed straight into the table, a date with rows is
    merged on (time, ticker_id) (``bulk.write_group``).  A2 and A3 take the same per-date lock,
    so neither races the other between that check and the write.  ``then`` runs last in the same
    transaction (a record of the date that commits with its rows or not at all).
    """
    data, rows = payload
    with conn.transaction(), conn.cursor() as cur:
        fast_toast_compression(cur)
        counts = bulk.write_group(cur, target="daily_snapshots", columns=columns, payload=data, rows=rows,
                                  group={"time": time}, lock_class=LOCK_CLASS, key=("time", "ticker_id"),
                                  compare=compare)
        if then is not None:
            then(cur)
        return counts


def fast_toast_compression(cur: psycopg.Cursor) -> None:
    """Compress this transaction's large JSON documents with lz4 where the server was built with it.

    A2's indicator documents (~3 kB each, ~35 MB per date) are TOAST-compressed on the way in;
    the default pglz makes that most of the cost of a date's write, lz4 does it several times
    faster.  Stored values read back the same either way; without lz4 the default stays.
    """
    row = cur.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                      "WHERE name = 'default_toast_compression'").fetchone()
    if row and row[0]:
        cur.execute("SET LOCAL default_toast_compression = lz4")


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
