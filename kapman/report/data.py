"""What a symbol's report shows, read from ``ohlcv`` and ``daily_snapshots`` in a few queries.

Nothing is recomputed here: the indicator lines are the values A2 stored for each date, the
dealer figures the document A3 stored.  When something the report needs is missing, the error
names the runbook step that produces it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import psycopg

from kapman import clock, registry
from kapman.calendar import is_trading_day
from kapman.db import lifecycle
from kapman.errors import UsageError
from kapman.jobs import a2_splits, split_checks
from kapman.jobs.a2_splits import split_factors
from kapman.jobs.a2_window import anchor
from kapman.ops import inventory
from kapman.params import not_after_today, not_before_window
from kapman.symbols import case_suggestions, is_index, is_symbol

#: Indicator series drawn on the charts: column -> path in technical_indicators_json
#: (docs/a2_indicators.md).
SERIES: dict[str, tuple[str, ...]] = {
    "sma_20": ("trend", "sma", "sma_20"),
    "sma_50": ("trend", "sma", "sma_50"),
    "sma_200": ("trend", "sma", "sma_200"),
    "bb_upper": ("volatility", "bbands", "bollinger_hband"),
    "bb_middle": ("volatility", "bbands", "bollinger_mavg"),
    "bb_lower": ("volatility", "bbands", "bollinger_lband"),
    "rsi": ("momentum", "rsi", "rsi"),
    "macd": ("trend", "macd", "macd"),
    "macd_signal": ("trend", "macd", "macd_signal"),
    "macd_diff": ("trend", "macd", "macd_diff"),
}

_NY_DATE = "(time AT TIME ZONE 'America/New_York')::date"


@dataclass(frozen=True)
class Bars:
    """Daily bars, oldest first."""

    dates: list[date] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class History:
    """A3's figures on every stored snapshot date up to the report's, oldest first."""

    dates: list[date] = field(default_factory=list)
    close: list[float | None] = field(default_factory=list)
    gex_net: list[float | None] = field(default_factory=list)
    gamma_flip: list[float | None] = field(default_factory=list)


@dataclass(frozen=True)
class SymbolDay:
    """Everything one report shows for (symbol, trading date)."""

    symbol: str
    day: date
    bars: Bars
    #: date -> {SERIES column: value or None}, the dates of the window A2 has values for.
    indicators: dict[date, dict[str, float | None]]
    technical: dict[str, Any]
    price: dict[str, Any]
    dealer: dict[str, Any]
    history: History
    #: Why the price and A2 sections are empty (an index has no bars in the stock flat files).
    no_bars: str | None = None
    #: section -> one line saying why it is left out and which step fills it (A2, A3)
    missing: dict[str, str] = field(default_factory=dict)


#: What the price and A2 sections say for an index (``I:SPX``).
INDEX_NO_BARS = ("{symbol} is an index: the stock flat files hold no index bars, so there is no price "
                 "history and no A2 indicators; the A3 figures come from its option chain's index value")


def ticker_of(conn: psycopg.Connection, symbol: str) -> tuple[uuid.UUID, str]:
    """(ticker id, symbol) of ``symbol`` exactly as written: symbols are case-sensitive (``AAp`` is not
    ``AAP``), so a name that matches only when case is ignored is answered with "did you mean"."""
    if is_symbol(symbol):
        row = conn.execute("SELECT id, symbol FROM public.tickers WHERE symbol = %s", (symbol,)).fetchone()
        if row is not None:
            return row[0], row[1]
    # ASCII only: a foreign letter that upper-cases to a symbol's ('ıbm') is not a case-only mismatch
    near = case_suggestions(conn, [symbol]) if symbol.isascii() and symbol.strip() else {}
    if near:   # 'i:spx' is no symbol as written, but I:SPX is what was meant
        raise UsageError(f"unknown symbol {symbol}; did you mean {near[symbol]}? (symbols are case-sensitive)")
    if not is_symbol(symbol):
        raise UsageError(f"{symbol!r} is not a ticker symbol",
                         hint="ASCII letters, digits and '.', starting with a letter; an index as I:SPX")
    raise UsageError(f"unknown symbol {symbol}: not in tickers; run {registry.command('tickers')}")


def checked_day(conn: psycopg.Connection, day: date) -> date:
    """A date asked for, if a report can be made of it for any symbol: not after today by the warehouse's clock
    (``lifecycle.warehouse_now``), a trading day, within the retention window."""
    now = lifecycle.warehouse_now(conn)
    today = clock.ny_date_of(now)
    not_after_today(day, today)
    if not is_trading_day(day):
        raise UsageError(f"{day} is not an NYSE trading day")
    not_before_window(day, inventory.window_start(conn, now), today)
    return day


def report_day(conn: psycopg.Connection, ticker: uuid.UUID, symbol: str, day: date | None) -> date:
    """The requested date after checks, or the newest date with a bar, up to today by the warehouse's
    clock (``lifecycle.warehouse_now``)."""
    if day is not None:
        return checked_day(conn, day)
    today = clock.ny_date_of(lifecycle.warehouse_now(conn))
    if is_index(symbol):   # an index has no bars in the stock flat files: its newest A3 date
        newest = conn.execute(
            f"SELECT max({_NY_DATE}) FROM public.daily_snapshots WHERE ticker_id = %s "
            "AND dealer_metrics_json IS NOT NULL AND time <= %s", (ticker, clock.close_of(today))).fetchone()
        if newest is None or newest[0] is None:
            raise UsageError(f"no A3 dealer metrics stored for {symbol}: run {registry.command('options')} and "
                             f"{registry.command('a3')} --symbols {symbol}")
        return newest[0]  # type: ignore[no-any-return]
    newest = conn.execute("SELECT max(date) FROM public.ohlcv WHERE ticker_id = %s AND date <= %s",
                          (ticker, today)).fetchone()
    if newest is None or newest[0] is None:
        raise _no_bars_at_all(symbol)
    return newest[0]  # type: ignore[no-any-return]


def _no_bars_at_all(symbol: str) -> UsageError:
    return UsageError(f"no OHLCV bars stored for {symbol}: run {registry.command('ohlcv')} base")


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to columns; ``width`` empty columns when there are no rows."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def load_bars(conn: psycopg.Connection, ticker: uuid.UUID, start: date, end: date) -> Bars:
    rows = conn.execute("SELECT date, open, high, low, close, volume FROM public.ohlcv WHERE ticker_id = %s "
                        "AND date BETWEEN %s AND %s ORDER BY date", (ticker, start, end)).fetchall()
    return Bars(*_columns(rows, 6))


def adjust_for_splits(conn: psycopg.Connection, ticker: uuid.UUID, bars: Bars, as_of: date) -> Bars:
    """Bars as they would trade after every split executed up to ``as_of``, by the same rule as
    A2 (``kapman.jobs.a2_splits``), so the candles line up with the stored indicators; a split
    after the report date changes nothing on the page."""
    if not bars.dates:
        return bars
    rows = [(s.execution_date, s.ratio) for s in split_checks.applied(conn, bars.dates[0], as_of, ticker)]
    if not rows:
        return bars
    factor = split_factors(np.array(bars.dates, dtype="datetime64[D]"),
                           np.array([r[0] for r in rows], dtype="datetime64[D]"),
                           np.array([float(r[1]) for r in rows]))
    prices = {name: (np.asarray(getattr(bars, name), dtype=float) / factor).tolist() for name in a2_splits.PRICES}
    volume = (np.asarray(bars.volume, dtype=float) * factor).tolist()
    return Bars(list(bars.dates), volume=volume, **prices)


def load_indicators(conn: psycopg.Connection, ticker: uuid.UUID, start: date,
                    end: date) -> dict[date, dict[str, float | None]]:
    columns = list(SERIES)
    # each document detoasted once a row, not once a path (kapman.data.columns.detoasted): a third of the time
    select = ", ".join(["(d #>> %s)::float8"] * len(columns))
    rows = conn.execute(
        f"SELECT day, {select} FROM (SELECT {_NY_DATE} AS day, technical_indicators_json || '{{}}' AS d "
        "FROM public.daily_snapshots WHERE ticker_id = %s AND technical_indicators_json IS NOT NULL "
        "AND time BETWEEN %s AND %s ORDER BY time OFFSET 0) s ORDER BY day",
        [*(list(SERIES[c]) for c in columns), ticker, clock.close_of(start), clock.close_of(end)]).fetchall()
    return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in rows}


def load_history(conn: psycopg.Connection, ticker: uuid.UUID, end: date) -> History:
    rows = conn.execute(
        f"SELECT ds.day, o.close, (ds.doc->>'gex_net')::float8, (ds.doc->>'gamma_flip')::float8 "
        f"FROM (SELECT {_NY_DATE} AS day, dealer_metrics_json AS doc FROM public.daily_snapshots "
        "      WHERE ticker_id = %s AND dealer_metrics_json IS NOT NULL AND time <= %s) ds "
        "LEFT JOIN public.ohlcv o ON o.ticker_id = %s AND o.date = ds.day ORDER BY ds.day",
        (ticker, clock.close_of(end), ticker)).fetchall()
    return History(*_columns(rows, 4))


def _index_day(conn: psycopg.Connection, ticker: uuid.UUID, symbol: str, day: date, bars: Bars) -> SymbolDay:
    """An index's report: the A3 sections only, and why the others are empty."""
    row = conn.execute("SELECT dealer_metrics_json FROM public.daily_snapshots WHERE ticker_id = %s AND time = %s",
                       (ticker, clock.close_of(day))).fetchone()
    if row is None or row[0] is None:
        raise UsageError(f"no A3 dealer metrics for {symbol} on {day}: {_a3_source(conn, ticker, symbol, day)}")
    return SymbolDay(symbol=symbol, day=day, bars=bars, indicators={}, technical={}, price={}, dealer=row[0],
                     history=load_history(conn, ticker, day), no_bars=INDEX_NO_BARS.format(symbol=symbol))


def _a3_source(conn: psycopg.Connection, ticker: uuid.UUID, symbol: str, day: date) -> str:
    """What fills a day's A3: its option snapshot when one is stored, else where a snapshot comes from (the
    options step takes one on its own day only, so it cannot fill a past date; an archived one is restored)."""
    stored = conn.execute(f"SELECT 1 FROM public.options_chains WHERE ticker_id = %s AND {_NY_DATE} = %s LIMIT 1",
                          (ticker, day)).fetchone()
    if stored:
        return f"its option snapshot is stored; {registry.command('a3')} --date {day} --symbols {symbol} fills them"
    return (f"no option snapshot of {symbol} on {day} is stored ({registry.command('options')} takes one on its "
            f"own day, for watchlist symbols; an archived one comes back with {registry.command('restore-options')})")


def _no_bar(conn: psycopg.Connection, ticker: uuid.UUID, symbol: str, day: date) -> UsageError:
    """Why a ticker with bars has none on ``day``, and the command that would load it: a day whose file is
    loaded (other tickers have bars) is skipped by a plain backfill, so it takes --force, and the ticker's
    span of bars says whether it traded then at all."""
    backfill = f"{registry.command('ohlcv')} backfill --start {day} --end {day}"
    if conn.execute("SELECT 1 FROM public.ohlcv WHERE date = %s LIMIT 1", (day,)).fetchone() is None:
        return UsageError(f"no OHLCV bar for {symbol} on {day}: run {backfill}")
    first, last = conn.execute("SELECT min(date), max(date) FROM public.ohlcv WHERE ticker_id = %s",
                               (ticker,)).fetchone() or (None, None)
    if first is None:   # no span to name ('bars run from None to None'): the ticker has none at all
        return _no_bars_at_all(symbol)
    return UsageError(f"no OHLCV bar for {symbol} on {day}: the day's file is loaded without one ({symbol}'s bars "
                      f"run from {first} to {last}); to load the file again: {backfill} --force")


def load_symbol_day(conn: psycopg.Connection, symbol: str, day: date | None = None) -> SymbolDay:
    """Read one report's data: any ticker with a bar on the date.  No bar raises UsageError naming the step
    to run; missing A2 or A3 values leave their sections empty, ``missing`` saying which step fills them."""
    ticker, symbol = ticker_of(conn, symbol)
    day = report_day(conn, ticker, symbol, day)
    start = anchor(day)
    bars = adjust_for_splits(conn, ticker, load_bars(conn, ticker, start, day), day)
    if not bars.dates and is_index(symbol):
        return _index_day(conn, ticker, symbol, day, bars)
    if not bars.dates or bars.dates[-1] != day:
        raise _no_bar(conn, ticker, symbol, day)
    row = conn.execute("SELECT technical_indicators_json, price_metrics_json, dealer_metrics_json "
                       "FROM public.daily_snapshots WHERE ticker_id = %s AND time = %s",
                       (ticker, clock.close_of(day))).fetchone()
    technical, price, dealer = (row[0] or {}, row[1] or {}, row[2] or {}) if row else ({}, {}, {})
    missing: dict[str, str] = {}
    if not technical:
        missing["A2"] = (f"A2 indicators: none stored for {symbol} on {day}; {registry.command('a2')} "
                         f"--date {day} --symbols {symbol} fills them")
    if not dealer:
        missing["A3"] = (f"A3 dealer metrics and options: none stored for {symbol} on {day}; "
                         f"{_a3_source(conn, ticker, symbol, day)}")
    return SymbolDay(symbol=symbol, day=day, bars=bars, indicators=load_indicators(conn, ticker, start, day),
                     technical=technical, price=price, dealer=dealer, history=load_history(conn, ticker, day),
                     missing=missing)
