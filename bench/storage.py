"""Storage per hypertable before and after compression, from TimescaleDB's own accounting.

``hypertable_detailed_size`` is what a table takes now (a compressed chunk at its compressed size);
``hypertable_compression_stats`` records each compressed chunk's size just before compression, so
the size the table would take uncompressed is read without decompressing anything.  On the Apache
edition nothing is compressed: the tables' sizes are printed, and the compressed figures are one
"skipped" line with the reason, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from bench.common import Figure

TABLES = ("ohlcv", "options_chains", "daily_snapshots")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Storage:
    table: str
    total_bytes: int                 # now: compressed chunks at their compressed size
    chunks: int
    compressed_chunks: int = 0
    before_bytes: int = 0            # the compressed chunks before compression
    after_bytes: int = 0             # ... and after

    @property
    def uncompressed_bytes(self) -> int:
        """What the table would take with no chunk compressed."""
        return self.total_bytes - self.after_bytes + self.before_bytes


def measure(url: str, tables: tuple[str, ...] = TABLES, *, compression: bool) -> list[Storage]:
    """Each table's storage; ``compression`` reads the compression stats (community edition)."""
    out = []
    with psycopg.connect(url) as conn:
        for table in tables:
            name = f"public.{table}"
            total = conn.execute("SELECT coalesce(sum(total_bytes), 0) FROM hypertable_detailed_size(%s)",
                                 (name,)).fetchone()
            count = conn.execute("SELECT count(*) FROM show_chunks(%s)", (name,)).fetchone()
            stats = (0, 0, 0)
            if compression:
                row = conn.execute(
                    "SELECT coalesce(sum(number_compressed_chunks), 0), "
                    "coalesce(sum(before_compression_total_bytes), 0), "
                    "coalesce(sum(after_compression_total_bytes), 0) FROM hypertable_compression_stats(%s)",
                    (name,)).fetchone()
                stats = (int(row[0]), int(row[1]), int(row[2])) if row else stats
            out.append(Storage(table, int(total[0]) if total else 0, int(count[0]) if count else 0, *stats))
    return out


def figures(bench: str, measured: list[Storage], skipped: str | None, compress_after_days: int) -> list[Figure]:
    """Before, after and the ratio per table; with ``skipped`` (the reason compression is not
    available), the sizes as they are and one line saying what was skipped."""
    out = []
    for s in measured:
        if skipped:
            out.append(Figure(bench, f"{s.table} storage ({s.chunks} chunks, uncompressed)",
                              s.total_bytes / MIB, "MiB"))
            continue
        out += [Figure(bench, f"{s.table} storage before compression", s.uncompressed_bytes / MIB, "MiB"),
                Figure(bench, f"{s.table} storage after compression ({s.compressed_chunks} of {s.chunks} "
                       "chunks compressed)", s.total_bytes / MIB, "MiB")]
        if s.compressed_chunks and s.after_bytes:
            out.append(Figure(bench, f"{s.table} compression ratio of its compressed chunks",
                              s.before_bytes / s.after_bytes, "x"))
        else:
            out.append(Figure(bench, f"{s.table} compression ratio (skipped: no chunk older than "
                                     f"{compress_after_days} days)", None, "x"))
    if skipped:
        out.append(Figure(bench, f"compressed storage (skipped: {skipped})", None, "MiB"))
    return out
