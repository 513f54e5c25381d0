"""Compression layouts and stored forms, side by side on the same data (community edition only).

    venv/bin/python -m bench.bench_compression [--tickers 600] [--days 1060] [--underlyings 10] [--snapshots 25]

Elsewhere it reports that it skipped and why.  In one scratch database, the sandbox market's bars
(every trading day of ``days``), ``snapshots`` sessions of ``underlyings`` option chains and A2 for
the market's last 73 sessions are loaded once, then copied into one hypertable per candidate (the
table's own columns, indexes and chunk interval), each compressed whole.  A candidate's ratio is
its total size (table, indexes, TOAST) before over after, as ``hypertable_detailed_size`` counts it.
For ``ohlcv`` the figure beside it is one symbol's two years read from the compressed table (warm,
median of 5).  The A2 candidates are the same documents with their values rounded to fewer
significant digits, and the largest relative change that makes.  The migrations' layouts carry the
issue's targets (``ohlcv`` and ``options_chains`` >= 8x, A2 documents >= 5x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

import numpy as np
import orjson
import psycopg
from psycopg import sql

from bench.common import Figure, edition_license, edition_skip, kapman_now, print_table, scratch_database
from kapman.clock import NEW_YORK
from kapman.config import Settings
from kapman.db import bulk
from kapman.ids import ticker_id
from kapman.ingest.options.normalise import COLUMNS as OPTION_COLUMNS
from kapman.ingest.options.normalise import TYPES as OPTION_TYPES
from kapman.ingest.options.normalise import normalise_chain
from kapman.jobs import a2_local_ta as a2
from kapman.jobs import snapshots
from kapman.jobs.payload import JsonTemplate
from kapman.metrics.indicators import TECHNICAL_KEYS
from kapman.sandbox.dbload import load_bars, load_tickers
from kapman.sandbox.market import Market

NAME = "compression"
PRICES = ("open", "high", "low", "close", "vwap")
#: Sessions of A2 (the documents' candidates are re-rendered from them).
A2_SESSIONS = 73
TARGETS = {"ohlcv": 8.0, "options_chains": 8.0, "daily_snapshots": 5.0}


@dataclass(frozen=True)
class Layout:
    table: str
    label: str
    segment_by: str
    order_by: str
    #: compress_chunk_time_interval: several chunks rolled into one compressed chunk
    roll_up: str | None = None
    #: prices as bigint, scaled by 10,000
    scaled_prices: bool = False
    #: the migrations' layout: its ratio carries the target
    chosen: bool = False


LAYOUTS = (
    Layout("ohlcv", "none / ticker_id, date DESC (migration 0012)", "", "ticker_id, date DESC", chosen=True),
    Layout("ohlcv", "by ticker / date DESC", "ticker_id", "date DESC"),
    Layout("ohlcv", "by ticker / date DESC, rolled up to 360 days", "ticker_id", "date DESC", roll_up="360 days"),
    Layout("ohlcv", "prices as bigint x 10,000, none / ticker_id, date DESC", "", "ticker_id, date DESC",
           scaled_prices=True),
    Layout("ohlcv", "prices as bigint x 10,000, by ticker, rolled up to 360 days", "ticker_id", "date DESC",
           roll_up="360 days", scaled_prices=True),
    Layout("options_chains", "by underlying / time DESC, expiration, strike, type (migration 0005)", "ticker_id",
           "time DESC, expiration_date, strike_price, option_type", chosen=True),
    Layout("options_chains", "by underlying / expiration, strike, type, time DESC", "ticker_id",
           "expiration_date, strike_price, option_type, time DESC"),
    Layout("options_chains", "none / ticker_id, time DESC, expiration, strike, type", "",
           "ticker_id, time DESC, expiration_date, strike_price, option_type"),
)
#: Significant digits of the A2 candidates (None: as computed, the shortest round-trip form).
PRECISIONS = (None, 12, 10, 8)


def _at_close(day: date) -> datetime:
    return datetime.combine(day, clock_time(16, 5), tzinfo=NEW_YORK).astimezone(UTC)


def _load(url: str, market: Market, underlyings: int, snapshots: int) -> dict[str, int]:
    """The market's bars, option chains and A2 into the scratch database's own tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        load_tickers(conn, market)
        bars = load_bars(conn, market)
        chains = [s for s in market.symbols if market.option_chain(s, _at_close(market.trading_days[-1]))]
        options = 0
        for day in market.trading_days[-snapshots:]:
            for symbol in chains[:underlyings]:
                chain = normalise_chain(market.option_chain(symbol, _at_close(day)), _at_close(day), ticker_id(symbol))
                with conn.transaction(), conn.cursor() as cur:
                    bulk.copy_rows(cur, sql.Identifier("public", "options_chains"), OPTION_COLUMNS, OPTION_TYPES,
                                   chain.rows)
                options += len(chain.rows)
    days = market.trading_days[-A2_SESSIONS:]
    a2.run(Settings(database_url=url), a2.A2Params(start=days[0], end=days[-1]))
    return {"bars": bars, "options": options, "a2": A2_SESSIONS}


def _sizes(conn: psycopg.Connection, table: str) -> tuple[int, int]:
    """Total bytes of ``table`` before and after compressing every chunk."""
    size = "SELECT total_bytes FROM hypertable_detailed_size(%s)"
    before = conn.execute(size, (table,)).fetchone()[0]  # type: ignore[index]
    conn.execute("SELECT compress_chunk(c) FROM show_chunks(%s) c", (table,))
    after = conn.execute(size, (table,)).fetchone()[0]  # type: ignore[index]
    return int(before), int(after)


def _candidate(conn: psycopg.Connection, name: str, source: str, time_column: str, interval: str, *,
               segment_by: str, order_by: str, roll_up: str | None = None,
               select: sql.Composable | None = None, alter: sql.Composable | None = None) -> tuple[int, int]:
    """A copy of ``source``'s definition filled from it (``select``: its rows rewritten), compressed."""
    table = sql.Identifier(name)
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE public.{} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                         "INCLUDING INDEXES)").format(table, sql.Identifier(source)))
    conn.execute("SELECT create_hypertable(%s, by_range(%s, %s::interval))", (name, time_column, interval))
    if alter is not None:
        conn.execute(sql.SQL("ALTER TABLE {} ").format(table) + alter)
    options = [sql.SQL("timescaledb.compress"),
               sql.SQL("timescaledb.compress_segmentby = {}").format(sql.Literal(segment_by)),
               sql.SQL("timescaledb.compress_orderby = {}").format(sql.Literal(order_by))]
    if roll_up:
        options.append(sql.SQL("timescaledb.compress_chunk_time_interval = {}").format(sql.Literal(roll_up)))
    conn.execute(sql.SQL("ALTER TABLE {} SET ({})").format(table, sql.SQL(", ").join(options)))
    conn.execute(sql.SQL("INSERT INTO {} ").format(table)
                 + (select or sql.SQL("SELECT * FROM public.{}").format(sql.Identifier(source))))
    conn.execute(sql.SQL("ANALYZE {}").format(table))
    return _sizes(conn, name)


def _scaled() -> tuple[sql.Composable, sql.Composable]:
    """ALTERs making the prices bigint, and the SELECT filling them scaled by 10,000."""
    alter = sql.SQL(", ").join(sql.SQL("ALTER COLUMN {} TYPE bigint").format(sql.Identifier(c)) for c in PRICES)
    columns = ["ticker_id", "date", *PRICES, "volume", "transactions", "created_at", "updated_at"]
    values = [sql.SQL("round({} * 10000)::bigint").format(sql.Identifier(c)) if c in PRICES
              else sql.Identifier(c) for c in columns]
    select = sql.SQL("({}) SELECT {} FROM public.ohlcv").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(values))
    return alter, select


def _one_symbol_read(conn: psycopg.Connection, table: str, symbol_id: object, since: date) -> float:
    query = sql.SQL("SELECT * FROM {} WHERE ticker_id = %s AND date >= %s").format(sql.Identifier(table))
    runs = []
    for _ in range(6):
        started = time.perf_counter()
        conn.execute(query, (symbol_id, since)).fetchall()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs[1:])   # the first one warms the cache


def _layouts(conn: psycopg.Connection, market: Market) -> list[Figure]:
    figures = []
    since = market.trading_days[-1] - timedelta(days=730)
    symbol_id = ticker_id(market.symbols[0])
    for n, layout in enumerate(LAYOUTS):
        name = f"candidate_{n}"
        alter, select = _scaled() if layout.scaled_prices else (None, None)
        key, interval = ("date", "30 days") if layout.table == "ohlcv" else ("time", "7 days")
        before, after = _candidate(conn, name, layout.table, key, interval, segment_by=layout.segment_by,
                                   order_by=layout.order_by, roll_up=layout.roll_up, select=select, alter=alter)
        ratio = before / after
        target = TARGETS[layout.table] if layout.chosen else None
        figures.append(Figure(NAME, f"{layout.table}: {layout.label}", ratio, "x",
                              f">= {target:g}" if target else "", ratio >= target if target else None))
        if layout.table == "ohlcv":
            seconds = _one_symbol_read(conn, name, symbol_id, since)
            figures.append(Figure(NAME, "  one symbol's two years, compressed (median of 5)", 1000 * seconds, "ms"))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    return figures


def _significant(values: np.ndarray, digits: int | None) -> np.ndarray:
    if digits is None:
        return values
    with np.errstate(all="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(values))))
        rounded = np.round(values * scale) / scale
    return np.where(np.isfinite(rounded) & (values != 0), rounded, values)


def _a2_matrix(conn: psycopg.Connection) -> tuple[list[tuple], np.ndarray]:
    """The stored A2 rows (all but the indicator document) and their values, keys in TECHNICAL_KEYS order."""
    rows = conn.execute("SELECT time, ticker_id, technical_indicators_json::text, price_metrics_json::text, "
                        "ta_computed_at, ta_version FROM public.daily_snapshots ORDER BY time, ticker_id").fetchall()
    paths = [k.split(".", 2) for k in TECHNICAL_KEYS]

    def value(doc: dict, path: list[str]) -> float:
        for part in path:
            doc = doc[part]
        return np.nan if doc is None else float(doc)  # type: ignore[arg-type]

    documents = [orjson.loads(r[2]) for r in rows]
    return [(r[0], r[1], r[3], r[4], r[5]) for r in rows], \
        np.array([[value(d, p) for p in paths] for d in documents], dtype=float)


def _precisions(conn: psycopg.Connection) -> list[Figure]:
    rows, values = _a2_matrix(conn)
    template = JsonTemplate(list(TECHNICAL_KEYS))
    columns = ("time", "ticker_id", "price_metrics_json", "ta_computed_at", "ta_version", "technical_indicators_json")
    types = ("timestamptz", "uuid", "jsonb", "timestamptz", "text", "jsonb")
    figures = []
    for n, digits in enumerate(PRECISIONS):
        name = f"a2_candidate_{n}"
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE public.daily_snapshots INCLUDING DEFAULTS INCLUDING "
                             "CONSTRAINTS INCLUDING INDEXES)").format(sql.Identifier(name)))
        conn.execute("SELECT create_hypertable(%s, by_range('time', INTERVAL '7 days'))", (name,))
        conn.execute(sql.SQL("ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = '', "
                             "timescaledb.compress_orderby = 'ticker_id, time DESC')").format(sql.Identifier(name)))
        rounded = _significant(values, digits)
        documents = template.render_many(rounded)
        with conn.transaction(), conn.cursor() as cur:
            snapshots.fast_toast_compression(cur)   # as A2 writes them
            bulk.copy_rows(cur, sql.Identifier(name), columns, types,
                           (r + (d.decode(),) for r, d in zip(rows, documents, strict=True)))
        document = conn.execute(sql.SQL("SELECT avg(pg_column_size(technical_indicators_json)) FROM {}").format(
            sql.Identifier(name))).fetchone()[0]  # type: ignore[index]
        before, after = _sizes(conn, name)
        with np.errstate(all="ignore"):
            change = np.nanmax(np.abs(rounded - values) / np.abs(values)) if digits else 0.0
        ratio = before / after
        label = "as computed (shortest round trip)" if digits is None else f"{digits} significant digits"
        target = TARGETS["daily_snapshots"]
        figures += [Figure(NAME, f"daily_snapshots, A2 {label}", ratio, "x", f">= {target:g}" if digits is None
                           else "", ratio >= target if digits is None else None),
                    Figure(NAME, f"  stored document ({label})", float(document), "B"),
                    Figure(NAME, f"  largest relative change ({label})", 1e9 * float(change), "ppb")]
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    return figures


def run(tickers: int = 600, days: int = 1060, underlyings: int = 10, snapshots: int = 25) -> list[Figure]:
    lic = edition_license(NAME)
    if lic != "timescale":
        reason = edition_skip(lic)
        print(f"{NAME}: skipped: {reason}", file=sys.stderr)
        return [Figure(NAME, f"compression ratios (skipped: {reason})", None, "x")]
    market = Market(seed=42, n_tickers=tickers, days=days)
    # KapMan's clock at the market's last day: the scratch database's policies stay paused, so the
    # background jobs neither drop the older bars nor compress the tables the candidates are copied from
    with kapman_now(_at_close(market.trading_days[-1])):
        return _measure(market, underlyings, snapshots)


def _measure(market: Market, underlyings: int, snapshots: int) -> list[Figure]:
    with scratch_database(NAME) as url:
        loaded = _load(url, market, underlyings, snapshots)
        print(f"{NAME}: {loaded['bars']:,} bars, {loaded['options']:,} option rows, {loaded['a2']} A2 sessions",
              file=sys.stderr)
        with psycopg.connect(url, autocommit=True) as conn:
            counts = [Figure(NAME, "bars", loaded["bars"], "rows"),
                      Figure(NAME, "option rows", loaded["options"], "rows")]
            return [*counts, *_layouts(conn, market), *_precisions(conn)]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_compression", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=600)
    parser.add_argument("--days", type=int, default=1060)
    parser.add_argument("--underlyings", type=int, default=10)
    parser.add_argument("--snapshots", type=int, default=25)
    args = parser.parse_args()
    print_table(run(args.tickers, args.days, args.underlyings, args.snapshots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
