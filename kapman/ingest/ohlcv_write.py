"""Write one day's accepted bars and its ledger row, in the caller's transaction.

The rows go through ``bulk.write_group`` (grouped by date): straight COPY into ``ohlcv`` for a
new date, staging and a merge that updates only changed rows when the date has rows already.
After a reload the day's rows equal the file's: rows of tickers the file no longer holds are
deleted and counted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import psycopg

from kapman.db import bulk
from kapman.errors import InputError
from kapman.ingest.daybars import COUNT_LIMIT, ParsedDay
from kapman.ingest.tickermap import TickerMap
from kapman.providers.flatfiles import FileRef

COLUMNS = ("ticker_id", "date", "open", "high", "low", "close", "volume", "transactions", "vwap")
#: Advisory lock class of OHLCV writers (with the date): two runs never write one day at once.
LOCK_CLASS = 0x6F68


@dataclass(frozen=True)
class DayCounts:
    inserted: int
    updated: int
    unchanged: int
    removed: int


def match_rows(tickers: TickerMap, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows with a ticker, in write order; their ticker ids; the symbols without one).  The write
    order is by ticker id, so inserts walk the (ticker_id, date) index leaf pages in order: each row
    is placed at its ticker's precomputed rank, a pass over the map instead of a sort per file."""
    idx = tickers.index_of(symbols)
    known = np.flatnonzero(idx >= 0)
    slot = np.full(len(tickers), -1, dtype=np.intp)
    slot[tickers.id_rank[idx[known]]] = known
    placed = slot[slot >= 0]
    # a symbol twice (the parser rejects such rows, so never in practice) would share a slot: sort
    known = placed if len(placed) == len(known) else known[np.argsort(tickers.id_rank[idx[known]], kind="stable")]
    return known, tickers.ids[idx[known]], symbols[idx < 0]


def encode_day(day: date, ids: np.ndarray, parsed: ParsedDay, rows: np.ndarray) -> bytes:
    """One binary COPY payload of the rows ``rows`` of ``parsed`` (transactions and vwap NULL where
    absent: one part per combination of the two, each column wholly present or NULL)."""
    dates = np.full(len(rows), np.datetime64(day, "D"))
    has_tx = ~np.isnan(parsed.transactions[rows])
    vwap = parsed.vwap if len(parsed.vwap) == len(parsed.close) else np.full(len(parsed.close), np.nan)
    has_vw = ~np.isnan(vwap[rows])
    parts = []
    for tx_ok in (True, False):
        for vw_ok in (True, False):
            mask = (has_tx == tx_ok) & (has_vw == vw_ok)
            if not mask.any():
                continue
            sel = rows[mask]
            tx = _bigint(parsed.transactions[sel]) if tx_ok else None
            parts.append(bulk.encode_binary_copy([
                ("uuid", ids[mask]), ("date", dates[mask]), ("float8", parsed.open[sel]),
                ("float8", parsed.high[sel]), ("float8", parsed.low[sel]), ("float8", parsed.close[sel]),
                ("float8", parsed.volume[sel]), ("int8", tx), ("float8", vwap[sel] if vw_ok else None)]))
    return bulk.concat_copy(parts)


def _bigint(values: np.ndarray) -> np.ndarray:
    """Whole numbers as int64, refusing any outside bigint's range: numpy's cast would wrap them
    to -2**63 without a word (the parser rejects them; this keeps the encoder honest on its own)."""
    if not ((values >= -COUNT_LIMIT) & (values < COUNT_LIMIT)).all():
        raise InputError(f"a transactions value outside bigint's range reached the writer "
                         f"({values[(values < -COUNT_LIMIT) | (values >= COUNT_LIMIT)][0]:g})")
    return values.astype(np.int64)


def _day_has_rows(cur: psycopg.Cursor, day: date) -> bool:
    row = cur.execute("SELECT EXISTS (SELECT 1 FROM public.ohlcv WHERE date = %s)", (day,)).fetchone()
    return bool(row and row[0])


def write_day(cur: psycopg.Cursor, day: date, ids: np.ndarray, payload: bytes,
              keep: np.ndarray | None = None) -> DayCounts:
    """Make the day's rows in ``ohlcv`` exactly those of ``payload`` (``encode_day``), whose ticker
    ids are ``ids``, in order, besides the stored rows of ``keep`` (tickers whose rows the file
    holds but were rejected: a row that failed a check removes nothing)."""
    had_rows = _day_has_rows(cur, day)
    counts = bulk.MergeCounts(0, 0)
    if len(ids):
        counts = bulk.write_group(cur, target="ohlcv", columns=COLUMNS, payload=payload, rows=len(ids),
                                  group={"date": day}, lock_class=LOCK_CLASS, key=("ticker_id", "date"))
    kept = ids if keep is None or not len(keep) else np.concatenate((ids, keep))
    removed = _remove_vanished(cur, day, kept) if had_rows else 0
    return DayCounts(counts.inserted, counts.updated, len(ids) - counts.inserted - counts.updated, removed)


def _remove_vanished(cur: psycopg.Cursor, day: date, ids: np.ndarray) -> int:
    """Delete the day's rows of tickers not in ``ids`` (a hashed anti-join, not a per-row scan).

    Found by a read first, then deleted ticker by ticker: a delete filtered on the date alone (or
    on a list of tickers) decompresses every batch of a compressed chunk, even to delete nothing."""
    kept = [uuid.UUID(bytes=bytes(r)) for r in ids]
    gone = [r[0] for r in cur.execute("""
        SELECT o.ticker_id FROM public.ohlcv o
         WHERE o.date = %s
           AND NOT EXISTS (SELECT 1 FROM unnest(%s::uuid[]) AS k(id) WHERE k.id = o.ticker_id)""",
                                      (day, kept)).fetchall()]
    removed = 0
    for ticker in gone:        # one key each: an equality the compressed batches' metadata can skip by
        cur.execute("DELETE FROM public.ohlcv WHERE date = %s AND ticker_id = %s", (day, ticker))
        removed += cur.rowcount
    return removed


def record_file(cur: psycopg.Cursor, ref: FileRef, etag: str, size: int, source_label: str,
                parsed: ParsedDay, loaded: int, unknown: int, run_id: Any) -> None:
    """The file's ledger row: key, ETag and counts (replacing an earlier load of the same key)."""
    cur.execute("""
        INSERT INTO public.ingest_files (source, key, trading_date, etag, size_bytes, rows_read, rows_loaded,
                                         rows_rejected, rows_unknown, run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (key) DO UPDATE SET source = EXCLUDED.source, etag = EXCLUDED.etag,
            size_bytes = EXCLUDED.size_bytes, rows_read = EXCLUDED.rows_read,
            rows_loaded = EXCLUDED.rows_loaded, rows_rejected = EXCLUDED.rows_rejected,
            rows_unknown = EXCLUDED.rows_unknown, run_id = EXCLUDED.run_id, loaded_at = now()""",
                (source_label, ref.key, ref.day, etag, size, parsed.rows_read, loaded,
                 parsed.rows_rejected, unknown, run_id))
