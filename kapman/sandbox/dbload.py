"""Put a sandbox market straight into a KapMan database, bypassing the ingesters.

For benchmarks and tests of the jobs that read what ingestion wrote (A2, A3): they need a
large, known ``ohlcv`` fast.  The runbook path always goes through the ingesters.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import numpy as np
import psycopg
from psycopg import sql

from kapman.db import bulk
from kapman.ids import ticker_id
from kapman.sandbox.market import Market

#: What a flat file carries (no vwap).
_COLUMNS = ("ticker_id", "date", "open", "high", "low", "close", "volume", "transactions")


def load_tickers(conn: psycopg.Connection, market: Market) -> int:
    symbols = sorted(set(market.symbols))
    with conn.transaction(), conn.cursor() as cur:
        bulk.copy_rows(cur, sql.Identifier("public", "tickers"), ("id", "symbol"), ("uuid", "text"),
                       ((ticker_id(s), s) for s in symbols))
    return len(symbols)


def load_bars(conn: psycopg.Connection, market: Market, days: Iterable[date] | None = None) -> int:
    """The market's bars for ``days`` (default all) into ohlcv, one COPY per day; returns rows."""
    ids: dict[str, np.ndarray] = {}
    total = 0
    for day in days if days is not None else market.trading_days:
        bars = market.bars(day)
        uid = np.stack([ids.setdefault(s, np.frombuffer(ticker_id(s).bytes, dtype=np.uint8))
                        for s in bars["ticker"]])
        payload = bulk.encode_binary_copy([
            ("uuid", uid), ("date", np.full(len(bars), np.datetime64(day, "D"))),
            *(("float8", bars[c].to_numpy(float)) for c in ("open", "high", "low", "close", "volume")),
            ("int8", bars["transactions"].to_numpy(np.int64))])
        with conn.transaction(), conn.cursor() as cur:
            bulk.copy_binary(cur, sql.Identifier("public", "ohlcv"), _COLUMNS, payload)
        total += len(bars)
    return total
