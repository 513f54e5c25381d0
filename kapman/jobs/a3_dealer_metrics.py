"""A3: dealer positioning metrics per (watchlist symbol, trading date) into daily_snapshots.

For each date D the input of a symbol is its latest options snapshot taken on D (New York date
of ``options_chains.time``); spot is that snapshot's underlying price, else D's close.  All
contracts of all requested dates come in one bulk read; the kernel is vectorised per chain.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from kapman import clock
from kapman.db import bulk
from kapman.errors import UsageError
from kapman.ingest.watchlists import resolve_scope
from kapman.jobs import snapshots
from kapman.metrics.dealer import DealerParams, compute_dealer_metrics
from kapman.metrics.dealer_chain import ChainArrays
from kapman.progress import NullProgress, Progress

log = logging.getLogger(__name__)
VERSION = "a3-1"
SPOT_FROM_SNAPSHOT, SPOT_FROM_CLOSE, SPOT_NONE = "snapshot_underlying_price", "ohlcv_close", "none"


@dataclass
class A3Params:
    dates: list[date]
    symbols: list[str] | None = None
    workers: int = 2
    force: bool = False
    dealer: DealerParams = field(default_factory=DealerParams)


@dataclass(kw_only=True)
class A3Result(snapshots.WrittenRows):
    dates: list[date]
    symbols: int = 0
    statuses: Counter = field(default_factory=Counter)
    dates_without_snapshots: list[date] = field(default_factory=list)
    skipped_existing: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    contracts: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        span = f"{self.dates[0]}" if len(self.dates) == 1 else f"{self.dates[0]}..{self.dates[-1]}"
        status = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "none"
        rate = f", {self.contracts / self.seconds:,.0f} contracts/s" if self.seconds and self.contracts else ""
        lines = [f"a3 {span}: {self.symbols} symbols, {self.rows_written} rows ({self.rows_inserted} new, "
                 f"{self.rows_updated} updated, {self.rows_unchanged} unchanged); status {status}; "
                 f"{self.skipped_existing} already computed (skipped; --force recomputes), {len(self.failed)} failed; "
                 f"{self.contracts} contracts, {self.seconds:.1f}s{rate}"]
        if self.dates_without_snapshots:
            lines.append("  no options snapshot for any symbol on: "
                         + ", ".join(map(str, self.dates_without_snapshots)) + " (skipped)")
        lines += [f"  failed {k}: {v}" for k, v in sorted(self.failed.items())]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"dates": self.dates, "symbols": self.symbols, "statuses": dict(self.statuses),
                "dates_without_snapshots": self.dates_without_snapshots, "skipped_existing": self.skipped_existing,
                "failed": self.failed, **self.rows_dict(), "contracts": self.contracts,
                "seconds": round(self.seconds, 3)}


@dataclass
class Chains:
    """The latest snapshot per (symbol, date): contract columns plus group boundaries."""

    ticker: np.ndarray
    day: np.ndarray            # New York date of the snapshot, datetime64[D]
    snap: np.ndarray           # snapshot time, datetime64[us] UTC
    cols: dict[str, np.ndarray]


_NUMERIC = ("strike", "open_interest", "volume", "implied_volatility", "delta", "gamma", "shares_per_contract",
            "underlying_price")


def read_chains(conn: psycopg.Connection, ids: list[uuid.UUID], first: date, last: date) -> Chains:
    """Every contract of the latest snapshot per (ticker, New York date) in [first, last]."""
    lo = datetime.combine(first, datetime.min.time(), tzinfo=clock.NEW_YORK)
    hi = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=clock.NEW_YORK)
    nan = sql.SQL("'NaN'::float8")
    query = sql.SQL("""
        WITH k AS (SELECT id, (n - 1)::int4 AS n FROM unnest({ids}::uuid[]) WITH ORDINALITY AS u(id, n)),
        latest AS (
            SELECT ticker_id, max(time) AS time FROM public.options_chains
            WHERE time >= {lo} AND time < {hi} AND ticker_id = ANY({ids}::uuid[])
            GROUP BY ticker_id, (time AT TIME ZONE 'America/New_York')::date)
        SELECT k.n, ((oc.time AT TIME ZONE 'America/New_York')::date), oc.time, oc.expiration_date,
               (oc.option_type = 'C')::int4, oc.strike_price::float8,
               coalesce(oc.open_interest::float8, {nan}), coalesce(oc.volume::float8, {nan}),
               coalesce(oc.implied_volatility, {nan}), coalesce(oc.delta, {nan}), coalesce(oc.gamma, {nan}),
               coalesce(oc.shares_per_contract::float8, {nan}), coalesce(oc.underlying_price, {nan})
        FROM public.options_chains oc
        JOIN latest l ON l.ticker_id = oc.ticker_id AND l.time = oc.time
        JOIN k ON k.id = oc.ticker_id""").format(ids=sql.Literal(ids), lo=sql.Literal(lo), hi=sql.Literal(hi),
                                                   nan=nan)
    types = ["int4", "date", "timestamptz", "date", "int4"] + ["float8"] * len(_NUMERIC)
    with conn.cursor() as cur:
        ticker, day, snap, expiration, is_call, *numbers = bulk.read_fixed(cur, query, types)
    order = np.lexsort((day, ticker))
    cols = {name: values[order] for name, values in zip(_NUMERIC, numbers, strict=True)}
    cols["expiration"], cols["is_call"] = expiration[order], is_call[order].astype(bool)
    return Chains(ticker[order], day[order], snap[order], cols)


def closes(conn: psycopg.Connection, ids: list[uuid.UUID], days: list[date]) -> dict[tuple[int, date], float]:
    rows = conn.execute("SELECT k.n - 1, o.date, o.close FROM public.ohlcv o "
                        "JOIN unnest(%s::uuid[]) WITH ORDINALITY AS k(id, n) ON k.id = o.ticker_id "
                        "WHERE o.date = ANY(%s)", (ids, days)).fetchall()
    return {(int(n), d): float(c) for n, d, c in rows}


def _arrays(cols: dict[str, np.ndarray], sel: slice) -> ChainArrays:
    mult = cols["shares_per_contract"][sel]
    is_call = cols["is_call"][sel]
    return ChainArrays(expiration=cols["expiration"][sel], strike=cols["strike"][sel], is_call=is_call,
                       is_put=~is_call, open_interest=np.nan_to_num(cols["open_interest"][sel], nan=0.0),
                       volume=np.nan_to_num(cols["volume"][sel], nan=0.0),
                       implied_volatility=cols["implied_volatility"][sel], delta=cols["delta"][sel],
                       gamma=cols["gamma"][sel], multiplier=np.where(mult > 0, mult, 100.0))


def run(conn: psycopg.Connection, params: A3Params, progress: Progress | None = None) -> A3Result:
    progress = progress or NullProgress()
    started = time.perf_counter()
    if not params.dates:
        raise UsageError("no trading dates in the requested range")
    result = A3Result(dates=sorted(params.dates))
    symbols = list(resolve_scope(conn, params.symbols, work="dealer metrics").tickers.items())
    result.symbols = len(symbols)
    ids = [i for _, i in symbols]
    chains = read_chains(conn, ids, result.dates[0], result.dates[-1])
    result.contracts = len(chains.ticker)
    spot_close = closes(conn, ids, result.dates)
    # Group boundaries of (ticker, day) runs in the sorted arrays.
    key = chains.ticker.astype(np.int64) * 100_000 + chains.day.astype(np.int64)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.empty(0, dtype=np.intp)
    bounds = {(int(chains.ticker[s]), chains.day[s].astype(object)): slice(int(s), int(e))
              for s, e in zip(starts, np.r_[starts[1:], len(key)], strict=True)}
    days_with = {d for _, d in bounds}
    computed_at = clock.now()
    progress.start(len(result.dates) * len(symbols), "a3 symbol-dates", unit="sym")
    for day in result.dates:
        if day not in days_with:
            result.dates_without_snapshots.append(day)
            progress.advance(len(symbols))
            continue
        t = clock.close_of(day)
        done = set() if params.force else snapshots.existing(conn, [t], "dealer_metrics_json")
        todo = [(n, s, i) for n, (s, i) in enumerate(symbols) if (t, i) not in done]
        result.skipped_existing += len(symbols) - len(todo)

        def one(item: tuple[int, str, uuid.UUID], day: date = day) -> tuple[str, uuid.UUID, dict | None, str | None]:
            n, symbol, tid = item
            try:
                return symbol, tid, _metrics(chains, bounds.get((n, day)), spot_close.get((n, day)), day, params), None
            except Exception as exc:  # one bad chain must not stop the others
                log.exception("a3 %s %s failed", symbol, day)
                return symbol, tid, None, f"{type(exc).__name__}: {exc}"

        rows = []
        with ThreadPoolExecutor(max_workers=max(1, params.workers)) as pool:
            for symbol, tid, payload, error in pool.map(one, todo):
                progress.advance(1)
                if error is not None or payload is None:
                    result.failed[f"{symbol} {day}"] = error or "no result"
                    continue
                result.statuses[payload["status"]] += 1
                snap = payload["snapshot_time"]
                rows.append((t, tid, json.dumps(payload, allow_nan=False),
                             datetime.fromisoformat(snap) if snap else None, computed_at, VERSION))
        if rows:
            counts = snapshots.write(conn, snapshots.A3_COLUMNS, snapshots.encode(snapshots.A3_COLUMNS, rows),
                                     compare=("dealer_metrics_json", "dealer_snapshot_time"), time=t)
            result.tally(counts, len(rows))
    progress.close()
    result.seconds = time.perf_counter() - started
    log.info("%s", result.summary())
    return result


def _metrics(chains: Chains, sel: slice | None, close: float | None, day: date, params: A3Params) -> dict:
    if sel is None:
        return compute_dealer_metrics(_arrays(chains.cols, slice(0, 0)), spot=close,
                                      spot_source=SPOT_FROM_CLOSE if close else SPOT_NONE, as_of=day,
                                      snapshot_time=None, params=params.dealer)
    underlying = chains.cols["underlying_price"][sel]
    finite = underlying[np.isfinite(underlying) & (underlying > 0)]
    spot, source = (float(np.median(finite)), SPOT_FROM_SNAPSHOT) if len(finite) else \
        (close, SPOT_FROM_CLOSE if close else SPOT_NONE)
    snap = chains.snap[sel.start].astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)
    return compute_dealer_metrics(_arrays(chains.cols, sel), spot=spot, spot_source=source, as_of=day,
                                  snapshot_time=snap, params=params.dealer)
