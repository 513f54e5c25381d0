"""A rebuilt database with a few watchlist symbols taken through the real steps, for the reports.

Tickers from the sandbox REST server, a small watchlist, every sandbox bar, option snapshots on the
last ``option_days`` trading days (the clocks stepped day by day, as the demo does), A2 over the
last ``a2_days`` trading days and A3 on the snapshot days: the same documents the jobs store.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import psycopg

from kapman.clock import close_of
from kapman.ingest.options import ingest_options
from kapman.ingest.tickers import ingest_tickers
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.ingest.watchlists import ingest_watchlists
from kapman.jobs import a2_local_ta
from kapman.jobs import a3_dealer_metrics as a3
from kapman.providers.polygon import PolygonClient
from kapman.sandbox.dbload import load_bars
from kapman.sandbox.market import Market
from kapman.sandbox.rest import SandboxRestServer

WATCHLIST = "core"
SYMBOLS = ["AAPL", "MSFT", "SPY"]


def build(conn: psycopg.Connection, url: str, market: Market, rest: SandboxRestServer, polygon: PolygonClient,
          directory: Path, *, option_days: int = 3, a2_days: int = 30) -> list[date]:
    """Fill the database at ``url`` (``conn`` is one on it, autocommit); returns the option snapshot days."""
    (directory / f"{WATCHLIST}.txt").write_text("\n".join(SYMBOLS) + "\n")
    days = list(market.trading_days)
    saved = os.environ.get("KAPMAN_NOW")
    try:
        os.environ["KAPMAN_NOW"] = str(days[-1])
        ingest_tickers(conn, polygon, force=True)
        ingest_watchlists(conn, directory)
        load_bars(conn, market)
        snapshot_days = days[-option_days:]
        for day in snapshot_days:
            instant = close_of(day)
            rest.set_clock(instant)
            os.environ["KAPMAN_NOW"] = instant.isoformat()
            ingest_options(url, polygon, resolve_scope(conn, SYMBOLS), instant, concurrency=2, workers=0)
        os.environ["KAPMAN_NOW"] = str(days[-1])
        a2_local_ta.compute(conn, a2_local_ta.A2Params(dates=days[-a2_days:], symbols=SYMBOLS, workers=1))
        a3.compute(conn, a3.A3Params(dates=snapshot_days, symbols=SYMBOLS, workers=1))
    finally:
        rest.set_clock(market.now)
        if saved is None:
            os.environ.pop("KAPMAN_NOW", None)
        else:
            os.environ["KAPMAN_NOW"] = saved
    return snapshot_days
