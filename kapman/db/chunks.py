"""What a hypertable's chunks hold, read from TimescaleDB's catalog rather than from their rows.

Two questions the lifecycle asks often, answered without scanning (or decompressing) whole chunks:

* which of a set of days have no row at all (:func:`days_without_rows`): a day outside every
  chunk has none, without a look; a day inside one is probed in that chunk alone, for its first
  row.  On a compressed chunk the probe reads only the batches whose min/max metadata span the
  day (and stops at the first row), so the cost grows with the number of days, not with the rows;
* which chunks a write left partially compressed (:func:`chunks`, ``partial``), so the lifecycle
  compresses them again.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import sql

#: ``_timescaledb_functions.chunk_status`` bits (TimescaleDB 2.x): compressed, and compressed with
#: rows written since into the chunk's uncompressed part.
STATUS_COMPRESSED = 1
STATUS_PARTIAL = 8


@dataclass(frozen=True)
class Chunk:
    schema: str
    name: str
    start: date          # first day the chunk covers (its UTC date for a timestamptz column)
    end: date            # first day after it
    status: int

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def compressed(self) -> bool:
        return bool(self.status & STATUS_COMPRESSED)

    @property
    def partial(self) -> bool:
        """Compressed, with rows written since outside the compressed batches."""
        return self.compressed and bool(self.status & STATUS_PARTIAL)


def chunks(conn: psycopg.Connection, table: str) -> list[Chunk]:
    """The chunks of ``public.<table>`` in time order, from TimescaleDB's catalog tables (several
    times cheaper than the ``timescaledb_information.chunks`` view, which the ledger pays on every
    ingest).  Ranges are read in UTC: a ``date`` column's chunks start at midnight UTC, so the day
    is exact whatever the session's time zone."""
    rows = conn.execute("""
        SELECT c.schema_name, c.table_name,
               (_timescaledb_functions.to_timestamp(s.range_start) AT TIME ZONE 'UTC')::date,
               (_timescaledb_functions.to_timestamp(s.range_end) AT TIME ZONE 'UTC')::date, c.status
          FROM _timescaledb_catalog.hypertable h
          JOIN _timescaledb_catalog.chunk c ON c.hypertable_id = h.id AND NOT c.dropped
          JOIN _timescaledb_catalog.dimension d ON d.hypertable_id = h.id
          JOIN _timescaledb_catalog.chunk_constraint cc ON cc.chunk_id = c.id
          JOIN _timescaledb_catalog.dimension_slice s ON s.id = cc.dimension_slice_id AND s.dimension_id = d.id
         WHERE h.schema_name = 'public' AND h.table_name = %s
         ORDER BY s.range_start""", (table,)).fetchall()
    return [Chunk(*r) for r in rows]


def covering(found: Sequence[Chunk], starts: Sequence[date], day: date) -> int | None:
    """Index in ``found`` (``chunks``, in time order; ``starts`` their first days) of the chunk that
    covers ``day``, or None."""
    i = bisect.bisect_right(starts, day) - 1
    return i if i >= 0 and day < found[i].end else None


def days_without_rows(conn: psycopg.Connection, table: str, column: str, days: Sequence[date]) -> list[date]:
    """The days of ``days`` on which ``public.<table>`` (partitioned on the date ``column``) holds no row.

    One statement: per chunk, one probe per day of it (``LIMIT 1`` keeps each probe a nested loop
    that stops at the first row, never a hashed scan of the chunk)."""
    found = chunks(conn, table)
    starts = [c.start for c in found]
    by_chunk: dict[int, list[date]] = {}
    missing: list[date] = []
    for day in sorted(set(days)):
        i = covering(found, starts, day)
        if i is not None:
            by_chunk.setdefault(i, []).append(day)
        else:
            missing.append(day)                     # no chunk covers it: no row
    if by_chunk:
        probe = sql.SQL(
            "SELECT d FROM unnest({days}::date[]) AS d "
            "WHERE NOT EXISTS (SELECT FROM (SELECT 1 FROM {chunk} WHERE {col} = d LIMIT 1) AS hit)")
        parts = [probe.format(days=sql.Literal(by_chunk[i]), chunk=found[i].ident, col=sql.Identifier(column))
                 for i in sorted(by_chunk)]
        missing += [r[0] for r in conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()]
    return sorted(missing)
