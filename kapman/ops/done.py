"""How each step tells whether its work for a trading day is in the warehouse (``Step.done``).

Each answer is the inventory's (``kapman.ops.inventory``), the counts status and the nightly plan
from, read from ``day`` on: a step is asked, never a query of its own.
"""

from __future__ import annotations

from datetime import date

import psycopg

from kapman.ops.inventory import a3_missing, take


def bars_done(conn: psycopg.Connection, day: date) -> bool:
    """OHLCV: the day has bars."""
    return day in take(conn, day).bars


def snapshot_done(conn: psycopg.Connection, day: date) -> bool:
    """Options: a snapshot was taken on the day (New York)."""
    return day in take(conn, day).snapshots


def a2_done(conn: psycopg.Connection, day: date) -> bool:
    """A2: the day's bars have indicators."""
    return day in take(conn, day).a2


def a3_done(conn: psycopg.Connection, day: date) -> bool:
    """A3: the day has a snapshot and it has dealer metrics."""
    inv = take(conn, day)
    return day in inv.snapshots and day not in a3_missing(inv)
