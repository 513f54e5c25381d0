"""The warehouse as pandas DataFrames and Arrow tables: ``from kapman import data``.

``data.bars(db, "AAPL", start="2024-01-01", adjusted=True)``, ``data.snapshots(db, watchlist="mvp",
date="2025-12-19")``, ``data.chain(db, "SPY")``; ``arrow=True`` for an Arrow table (polars:
``pl.from_arrow``).  The README's "Data API" section lists the columns.
"""

from kapman.data.api import bars, chain, connection, describe, snapshots
from kapman.data.columns import A2_COLUMNS, A3_COLUMNS, COLUMNS, POSITIONS

__all__ = ["A2_COLUMNS", "A3_COLUMNS", "COLUMNS", "POSITIONS", "bars", "chain", "connection", "describe",
           "snapshots"]
