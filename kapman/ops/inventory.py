"""What the warehouse holds per trading day: set-based counts that status and nightly share.

One query per table, grouped by day, over a window (the retention window by default), so a
full market (11,000 tickers, two years) is a handful of index scans rather than a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg

from kapman import clock

#: The retention window when hypertable_lifecycle has no row for ohlcv (schema not rebuilt).
DEFAULT_WINDOW = timedelta(days=730)

_NY_DATE = "(time AT TIME ZONE 'America/New_York')::date"


@dataclass(frozen=True)
class LedgerFile:
    key: str
    etag: str
    rows_loaded: int


@dataclass
class Inventory:
    start: date                                            # first day looked at
    bars: dict[date, int] = field(default_factory=dict)    # ohlcv rows per date
    ledger: dict[date, list[LedgerFile]] = field(default_factory=dict)
    snapshots: dict[date, list[datetime]] = field(default_factory=dict)  # option snapshot times per NY date
    a2: dict[date, int] = field(default_factory=dict)      # daily_snapshots rows with A2 per date
    a3: dict[date, int] = field(default_factory=dict)      # ... with A3 per date
    watchlist_symbols: int = 0                             # active watchlist symbols with a ticker

    def ledger_etags(self) -> dict[str, str]:
        return {f.key: f.etag for files in self.ledger.values() for f in files}


def retention_window(conn: psycopg.Connection) -> timedelta:
    row = conn.execute("SELECT drop_after FROM public.hypertable_lifecycle WHERE hypertable_name = 'ohlcv'"
                       ).fetchone()
    return row[0] if row else DEFAULT_WINDOW


def window_start(conn: psycopg.Connection, now: datetime) -> date:
    """The first day of the retention window ending today (New York), as ``ingest_ohlcv base``."""
    return clock.ny_date_of(now) - retention_window(conn)


def take(conn: psycopg.Connection, start: date) -> Inventory:
    inv = Inventory(start=start)
    since = clock.close_of(start) - timedelta(days=1)
    inv.bars = dict(conn.execute("SELECT date, count(*) FROM public.ohlcv WHERE date >= %s GROUP BY date",
                                 (start,)).fetchall())
    for day, key, etag, loaded in conn.execute(
            "SELECT trading_date, key, etag, rows_loaded FROM public.ingest_files WHERE trading_date >= %s",
            (start,)).fetchall():
        inv.ledger.setdefault(day, []).append(LedgerFile(key, etag, loaded))
    # DISTINCT on the leading key column is a skip scan on the hypertable's time index.
    for (instant,) in conn.execute("SELECT DISTINCT time FROM public.options_chains WHERE time >= %s "
                                   "ORDER BY time", (since,)).fetchall():
        inv.snapshots.setdefault(clock.ny_date_of(instant), []).append(instant)
    for day, a2, a3 in conn.execute(
            f"SELECT {_NY_DATE}, count(*) FILTER (WHERE technical_indicators_json IS NOT NULL), "
            "count(*) FILTER (WHERE dealer_metrics_json IS NOT NULL) "
            "FROM public.daily_snapshots WHERE time >= %s GROUP BY 1", (since,)).fetchall():
        if a2:
            inv.a2[day] = a2
        if a3:
            inv.a3[day] = a3
    inv.watchlist_symbols = conn.execute(
        "SELECT count(DISTINCT w.symbol) FROM public.watchlists w JOIN public.tickers t ON t.symbol = w.symbol "
        "WHERE w.active").fetchone()[0]  # type: ignore[index]
    return inv


def a2_missing(inv: Inventory) -> list[date]:
    """Dates with bars and no A2, from the first date A2 was computed (or the newest bar date when
    A2 never ran): history before A2 began is a backfill the user asks for, not a gap."""
    if not inv.bars:
        return []
    first = min(inv.a2) if inv.a2 else max(inv.bars)
    return sorted(d for d in inv.bars if d >= first and d not in inv.a2)


def a3_missing(inv: Inventory) -> list[date]:
    """Dates with an option snapshot and no A3."""
    return sorted(d for d in inv.snapshots if d not in inv.a3)
