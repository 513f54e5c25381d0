"""symbol -> ticker id lookups, vectorised for whole files of symbols."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg


@dataclass(frozen=True)
class TickerMap:
    index: pd.Index          # symbols
    ids: np.ndarray          # (n, 16) uint8: the uuid bytes, row-aligned with index

    def __len__(self) -> int:
        return len(self.index)

    def index_of(self, symbols: np.ndarray) -> np.ndarray:
        """Row of each symbol in ``ids``, -1 when unknown."""
        return self.index.get_indexer(symbols)


def load_ticker_map(conn: psycopg.Connection) -> TickerMap:
    """Every ticker (active or not: bars of a delisted ticker's last days are still real)."""
    rows = conn.execute("SELECT symbol, id FROM public.tickers ORDER BY symbol").fetchall()
    ids = np.frombuffer(b"".join(r[1].bytes for r in rows), dtype=np.uint8).reshape(len(rows), 16) \
        if rows else np.empty((0, 16), dtype=np.uint8)
    return TickerMap(pd.Index([r[0] for r in rows]), ids)


def case_suggestions(conn: psycopg.Connection, symbols: list[str]) -> dict[str, str]:
    """symbol -> the ticker(s) it matches only when case is ignored ("AAPL", or "AAP or AAp").

    Only a hint for messages: symbols are case-sensitive and never mapped this way.
    """
    if not symbols:
        return {}
    rows = conn.execute("SELECT u.symbol, string_agg(t.symbol, ' or ' ORDER BY t.symbol) "
                        "FROM unnest(%s::text[]) AS u(symbol) "
                        "JOIN public.tickers t ON upper(t.symbol) = upper(u.symbol) AND t.symbol <> u.symbol "
                        "GROUP BY u.symbol", (symbols,)).fetchall()
    return {symbol: near for symbol, near in rows}
