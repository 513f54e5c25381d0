"""What an options run covers: which underlyings, and under which snapshot time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg

from kapman import clock
from kapman.errors import UsageError

#: A --snapshot-time a little ahead of our clock is tolerated (clocks of two hosts disagree).
CLOCK_SKEW = timedelta(seconds=60)


@dataclass
class Scope:
    #: symbol -> ticker id, in symbol order.
    tickers: dict[str, UUID] = field(default_factory=dict)
    #: Active watchlist symbols left out, with the reason (no ticker).
    skipped: dict[str, str] = field(default_factory=dict)


def snapshot_time(requested: str | None = None) -> datetime:
    """The run's one snapshot time: now by KapMan's clock (UTC, whole seconds), or a replay.

    The endpoint returns the chain as it is now, so a replay may only reuse a time of the same
    New York day that is not in the future; storing today's chain under a past date would be a lie.
    """
    now = clock.now().astimezone(UTC).replace(microsecond=0)
    if requested is None:
        return now
    try:
        when = clock.parse_instant(requested).replace(microsecond=0)
    except ValueError:
        raise UsageError(
            f"--snapshot-time {requested!r} is not an ISO timestamp",
            hint="use e.g. --snapshot-time 2025-12-19T21:00:00Z",
        ) from None
    if when > now + CLOCK_SKEW:
        raise UsageError(
            f"--snapshot-time {when:%Y-%m-%dT%H:%M:%SZ} is in the future (now {now:%Y-%m-%dT%H:%M:%SZ})",
            hint="omit --snapshot-time to use now",
        )
    if clock.ny_date_of(when) != clock.ny_date_of(now):
        raise UsageError(
            f"--snapshot-time {when:%Y-%m-%dT%H:%M:%SZ} is not today in New York "
            f"({clock.ny_date_of(now)}): option snapshots describe the chain now and "
            "cannot be stored under a past date",
            hint="--snapshot-time only replays a run of today; omit it to use now",
        )
    return when


def _count(conn: psycopg.Connection, query: str) -> int:
    return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def resolve_scope(conn: psycopg.Connection, symbols: list[str] | None = None) -> Scope:
    """Active watchlist symbols with their ticker ids; ``symbols`` narrows to a subset."""
    if not _count(conn, "SELECT count(*) FROM public.tickers"):
        raise UsageError(
            "public.tickers is empty: options cannot be ingested before tickers exist",
            hint="run python -m scripts.ingest_tickers --force first",
        )
    if not _count(conn, "SELECT count(*) FROM public.watchlists WHERE active"):
        raise UsageError(
            "no active watchlist symbols: the options scope is the watchlists",
            hint="run python -m scripts.ingest_watchlists first",
        )
    rows = conn.execute("""
        SELECT w.symbol, t.id
        FROM (SELECT DISTINCT symbol FROM public.watchlists WHERE active) w
        LEFT JOIN public.tickers t ON t.symbol = w.symbol
        ORDER BY w.symbol""").fetchall()
    active = {symbol: tid for symbol, tid in rows}
    if symbols is not None:
        wanted = sorted({s.strip().upper() for s in symbols if s.strip()})
        if not wanted:
            raise UsageError("--symbols is empty", hint="pass e.g. --symbols AAPL,MSFT")
        outside = [s for s in wanted if s not in active]
        unresolved = [s for s in wanted if s in active and active[s] is None]
        if outside or unresolved:
            parts = ([f"not in an active watchlist: {' '.join(outside)}"] if outside else []) + (
                [f"no ticker: {' '.join(unresolved)}"] if unresolved else []
            )
            raise UsageError(
                f"--symbols names symbols outside the options scope ({'; '.join(parts)})",
                hint="add them to data/watchlists/*.txt and run python -m scripts.ingest_watchlists"
                + (", and python -m scripts.ingest_tickers --force" if unresolved else ""),
            )
        active = {s: active[s] for s in wanted}
    scope = Scope()
    for symbol, tid in active.items():
        if tid is None:
            scope.skipped[symbol] = "no ticker"
        else:
            scope.tickers[symbol] = tid
    return scope
