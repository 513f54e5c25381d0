"""``kapman.data``: the warehouse as pandas DataFrames or Arrow tables (see the README's "Data API").

Every function takes a database (a psycopg connection, a URL, or None for ``DATABASE_URL`` from the
environment or ``.env``), a selection (``symbols`` and/or ``watchlist``; neither: every ticker) and
dates (``date``, or ``start``/``end``, inclusive; trading dates are New York dates), and returns a
DataFrame, or an Arrow table with ``arrow=True``.  Rows come through one COPY each (kapman.data.copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from kapman.clock import NEW_YORK, parse_day, parse_instant
from kapman.config import load_settings
from kapman.data.columns import (
    A2_COLUMNS,
    A3_COLUMNS,
    COLUMNS,
    Column,
    closest,
    detoasted,
    leaf_names,
    resolve,
)
from kapman.data.copy import copy_table, epoch_us
from kapman.db.connect import connect
from kapman.errors import InputError, UsageError
from kapman.jobs.a2_splits import split_factors
from kapman.symbols import capped, case_suggestions

Db: TypeAlias = psycopg.Connection | str | None
Frame: TypeAlias = pd.DataFrame | pa.Table

BAR_SCHEMA = pa.schema([("symbol", pa.string()), ("date", pa.date32()), ("open", pa.float64()),
                        ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()),
                        ("volume", pa.float64()), ("vwap", pa.float64()), ("transactions", pa.int64())])
CHAIN_SCHEMA = pa.schema([
    ("symbol", pa.string()), ("time", pa.timestamp("us", tz="UTC")), ("expiration_date", pa.date32()),
    ("strike_price", pa.float64()), ("option_type", pa.string()), ("contract_symbol", pa.string()),
    ("shares_per_contract", pa.int64()), ("underlying_price", pa.float64()), ("bid", pa.float64()),
    ("ask", pa.float64()), ("last", pa.float64()), ("volume", pa.int64()), ("open_interest", pa.int64()),
    ("implied_volatility", pa.float64()), ("delta", pa.float64()), ("gamma", pa.float64()),
    ("theta", pa.float64()), ("vega", pa.float64())])


@contextmanager
def connection(db: Db) -> Iterator[psycopg.Connection]:
    """The connection given, or one opened (and closed) on a URL or on ``DATABASE_URL``."""
    if isinstance(db, psycopg.Connection):
        yield db
        return
    with connect(db or load_settings().require_database_url()) as conn:
        yield conn


def _day(value: date | str | None, what: str) -> date | None:
    """A New York trading date: a date, a datetime (an aware one taken in New York), or text written
    exactly ``YYYY-MM-DD`` (``20251219`` or ``2025-12-19junk`` is refused, as on every command line)."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return (value.astimezone(NEW_YORK) if value.tzinfo else value).date()
    try:
        return parse_day(str(value))
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


@dataclass(frozen=True)
class Dates:
    """An inclusive range of New York dates; either end open."""

    start: date | None = None
    end: date | None = None

    @classmethod
    def of(cls, day: date | str | None, start: date | str | None, end: date | str | None) -> Dates:
        if day is not None and (start is not None or end is not None):
            raise UsageError("give date, or start and/or end, not both")
        one = _day(day, "date")
        found = cls(one, one) if one else cls(_day(start, "start"), _day(end, "end"))
        if found.start and found.end and found.start > found.end:
            raise UsageError(f"start {found.start} is after end {found.end}")
        return found

    def holds(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    def on(self, column: str) -> sql.Composable:
        """The condition on a ``date`` column."""
        parts = [sql.SQL("{} >= {}").format(sql.SQL(column), sql.Literal(self.start))] if self.start else []
        if self.end:
            parts.append(sql.SQL("{} <= {}").format(sql.SQL(column), sql.Literal(self.end)))
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")

    def on_time(self, column: str) -> sql.Composable:
        """The condition on a timestamptz stored at a trading date's instant: New York day bounds, so the
        time index serves it."""
        parts = []
        if self.start:
            parts.append(sql.SQL("{} >= {}").format(sql.SQL(column), sql.Literal(_ny_midnight(self.start))))
        if self.end:
            parts.append(sql.SQL("{} < {}").format(sql.SQL(column),
                                                  sql.Literal(_ny_midnight(self.end + timedelta(days=1)))))
        return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def _ny_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=NEW_YORK)


def _as_list(symbols: str | Sequence[str] | None) -> list[str] | None:
    if symbols is None:
        return None
    items = [symbols] if isinstance(symbols, str) else list(symbols) if isinstance(symbols, Iterable) else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise UsageError(f"symbols: {symbols!r:.60} is not a symbol or a list of symbols",
                         hint='e.g. "AAPL", "AAPL,MSFT" or ["AAPL", "MSFT"]')
    wanted = sorted({s.strip() for item in items for s in item.split(",") if s.strip()})
    if not wanted:   # an empty variable in a script: not an empty selection that answers with no rows
        raise UsageError(f"symbols: {symbols!r:.60} names no symbol",
                         hint="name one or more (\"AAPL\", \"AAPL,MSFT\", [\"AAPL\"]), or leave symbols out "
                              "for every ticker")
    return wanted


@dataclass(frozen=True)
class Scope:
    """The tickers a selection names (None: every ticker), resolved once: a condition on a ``ticker_id``
    column plans and runs faster across a hypertable's chunks than a join on the symbol."""

    ids: list[Any] | None

    def on(self, column: str) -> sql.Composable:
        if self.ids is None:
            return sql.SQL("true")
        return sql.SQL("{} = ANY({}::uuid[])").format(sql.SQL(column), sql.Literal([str(i) for i in self.ids]))


def scope(conn: psycopg.Connection, symbols: str | Sequence[str] | None = None,
          watchlist: str | None = None) -> Scope:
    """The tickers of a selection, checked first: a symbol not stored (case-sensitive, with "did you mean"
    for a case-only mismatch) or an unknown watchlist is an InputError."""
    wanted = _as_list(symbols)
    if wanted is None and watchlist is None:
        return Scope(None)
    if watchlist is not None and not conn.execute(
            "SELECT 1 FROM public.watchlists WHERE watchlist_id = %s LIMIT 1", (watchlist,)).fetchone():
        known = [r[0] for r in conn.execute("SELECT DISTINCT watchlist_id FROM public.watchlists ORDER BY 1")]
        raise InputError(f"no watchlist {watchlist!r} (known: {', '.join(known) or 'none'})",
                         hint="watchlists come from data/watchlists/*.txt: kapman watchlists")
    # One query: the selected tickers with their symbols, so a symbol not stored is found without another.
    rows = conn.execute("SELECT t.id, t.symbol FROM public.tickers t WHERE (%(symbols)s::text[] IS NULL "
                        "OR t.symbol = ANY(%(symbols)s)) AND (%(watchlist)s::text IS NULL OR t.symbol IN "
                        "(SELECT symbol FROM public.watchlists WHERE watchlist_id = %(watchlist)s AND active))",
                        {"symbols": wanted, "watchlist": watchlist}).fetchall()
    if wanted is not None:
        _check_symbols(conn, wanted, {r[1] for r in rows})
    return Scope([r[0] for r in rows])


def _check_symbols(conn: psycopg.Connection, wanted: list[str], selected: set[str]) -> None:
    """Each wanted symbol is stored (``selected`` holds those also on the watchlist, if one is given)."""
    missing = [s for s in wanted if s not in selected]
    if missing:
        found = {r[0] for r in conn.execute("SELECT symbol FROM public.tickers WHERE symbol = ANY(%s)", (missing,))}
        missing = [s for s in missing if s not in found]
    if not missing:
        return
    near = case_suggestions(conn, missing)
    meant = [f"{s} (did you mean {near[s]}?)" if s in near else s for s in missing]
    raise InputError(f"no ticker {capped(meant)}", hint="symbols are case-sensitive, as the source writes them")


#: The pandas dtype of an Arrow integer column: nullable, so a column's dtype does not turn float64 where
#: some row (or a whole selection) holds a NULL (a bar without ``transactions``, a symbol without A3).
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype()}


def _output(table: pa.Table, arrow: bool) -> Frame:
    return table if arrow else table.to_pandas(date_as_object=False, types_mapper=_PANDAS_TYPES.get)


def bars(db: Db = None, symbols: str | Sequence[str] | None = None, *, watchlist: str | None = None,
         date: date | str | None = None, start: date | str | None = None, end: date | str | None = None,
         adjusted: bool = False, as_of: date | str | None = None, arrow: bool = False) -> Frame:
    """Daily bars (``symbol, date, open, high, low, close, volume, vwap, transactions``), by symbol and date.

    ``adjusted=True``: split-adjusted as of ``as_of`` (default: the range's end, else today's data),
    by A2's rule: a bar before a split executed on or before ``as_of`` has its prices divided by the
    split's ratio and its volume multiplied by it; ``vwap`` is adjusted like the prices."""
    dates = Dates.of(date, start, end)
    with connection(db) as conn:
        query = sql.SQL("SELECT t.symbol, o.date, o.open, o.high, o.low, o.close, o.volume, o.vwap, o.transactions "
                        "FROM public.ohlcv o JOIN public.tickers t ON t.id = o.ticker_id WHERE {} AND {} "
                        "ORDER BY t.symbol, o.date").format(scope(conn, symbols, watchlist).on("o.ticker_id"),
                                                            dates.on("o.date"))
        table = copy_table(conn, query, BAR_SCHEMA)
        if adjusted and table.num_rows:
            table = _adjust(conn, table, _day(as_of, "as_of") or dates.end)
    return _output(table, arrow)


def _adjust(conn: psycopg.Connection, table: pa.Table, as_of: date | None) -> pa.Table:
    symbols = table.column("symbol").to_numpy(zero_copy_only=False)
    days = table.column("date").to_numpy().astype("datetime64[D]")
    rows = conn.execute("SELECT ticker, execution_date, split_to / split_from FROM public.splits "
                        "WHERE ticker = ANY(%s) AND execution_date > %s AND (%s::date IS NULL OR execution_date <= %s) "
                        "ORDER BY ticker, execution_date",
                        (sorted(set(symbols)), days.min().item(), as_of, as_of)).fetchall()
    if not rows:
        return table
    factor = np.ones(table.num_rows)
    by_symbol: dict[str, list[tuple[date, float]]] = {}
    for ticker, day, ratio in rows:
        by_symbol.setdefault(ticker, []).append((day, float(ratio)))
    # The rows come ordered by the server's collation, which is byte order only under C: en_US puts BRKA
    # before BRK.B and AAp before AAPL. Each symbol's rows are found in an order of our own.
    order = np.argsort(symbols, kind="stable")
    ordered = symbols[order]
    for ticker, splits in by_symbol.items():
        mine = order[np.searchsorted(ordered, ticker, "left"):np.searchsorted(ordered, ticker, "right")]
        factor[mine] = split_factors(days[mine], np.array([d for d, _ in splits], dtype="datetime64[D]"),
                                     np.array([r for _, r in splits]))
    # through pyarrow.compute, not numpy: a NULL (a bar without a vwap) stays NULL, not NaN
    ratio = pa.array(factor)
    out = table
    for name in ("open", "high", "low", "close", "vwap", "volume"):
        scale = pc.multiply if name == "volume" else pc.divide
        out = out.set_column(out.schema.get_field_index(name), name, scale(table.column(name), ratio))
    return out


def snapshot_columns(columns: str | Sequence[str] | None = None, *, a2: bool = True, a3: bool = True) -> list[Column]:
    """The flattened columns asked for (full or short names), or every A2 and/or A3 one."""
    if columns is None:
        return [c for c in A2_COLUMNS if a2] + [c for c in A3_COLUMNS if a3]
    chosen = []
    for name in [columns] if isinstance(columns, str) else columns:   # one name is one column, not its letters
        try:
            chosen.append(COLUMNS[resolve(name)])
        except KeyError:
            near = closest(name)
            raise UsageError(f"no column {name!r}" + (f"; did you mean {', '.join(near)}?" if near else ""),
                             hint="the columns are listed in the README's Data API section") from None
    return list(dict.fromkeys(chosen))


def snapshot_query(chosen: Sequence[Column], tickers: Scope, dates: Dates) -> tuple[sql.Composable, pa.Schema]:
    """The flattened ``daily_snapshots`` rows (``symbol, date`` and ``chosen``) of some tickers, and their schema."""
    exprs = sql.SQL("").join(sql.SQL(", " + c.expr) for c in chosen)   # none chosen: symbol and date alone
    where = sql.SQL("{} AND {} AND {}").format(tickers.on("s.ticker_id"), tickers.on("t.id"), dates.on_time("s.time"))
    query = sql.SQL("SELECT d.symbol, (d.time AT TIME ZONE 'America/New_York')::date{} FROM ({} OFFSET 0) d").format(
        exprs, detoasted(chosen, where))
    schema = pa.schema([("symbol", pa.string()), ("date", pa.date32())] + [(c.name, c.type) for c in chosen])
    return query, schema


def snapshots(db: Db = None, symbols: str | Sequence[str] | None = None, *, watchlist: str | None = None,
              date: date | str | None = None, start: date | str | None = None, end: date | str | None = None,
              columns: str | Sequence[str] | None = None, a2: bool = True, a3: bool = True,
              arrow: bool = False) -> Frame:
    """``daily_snapshots`` flattened: ``symbol, date`` and one typed column per stored key (kapman.data.columns),
    null where the key or the whole document is absent.  ``columns`` picks some (``"rsi"`` or
    ``"momentum.rsi.rsi"``, ``"gex_net"``); ``a2=False``/``a3=False`` drops a family."""
    dates = Dates.of(date, start, end)
    chosen = snapshot_columns(columns, a2=a2, a3=a3)
    with connection(db) as conn:
        query, schema = snapshot_query(chosen, scope(conn, symbols, watchlist), dates)
        table = copy_table(conn, query, schema)
    return _output(table, arrow)


def _instant(value: datetime | date | str | None) -> datetime | None:
    """A snapshot bound: an instant as given, a date (or ``YYYY-MM-DD``) the end of that New York day."""
    if isinstance(value, datetime) and value.tzinfo is None:   # the server would read it in its own zone
        raise UsageError(f"snapshot: {value.isoformat()} has no time zone; give an aware datetime, a date or "
                         "an ISO 8601 time with its offset")
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return _ny_midnight(value + timedelta(days=1)) - timedelta(microseconds=1)
    text = str(value).strip()
    if len(text) == 10:
        return _instant(_day(text, "snapshot"))
    try:
        return parse_instant(text)
    except ValueError:
        raise UsageError(f"snapshot: {value!r} is not a date or an ISO timestamp") from None


def chain(db: Db = None, symbols: str | Sequence[str] | None = None, *, watchlist: str | None = None,
          snapshot: datetime | date | str | None = None, arrow: bool = False) -> Frame:
    """Each symbol's option chain as of a snapshot: its latest snapshot at or before ``snapshot`` (an instant,
    or a date meaning the end of that New York day; default: the latest stored), one row per contract."""
    bound = _instant(snapshot)
    columns = ", ".join(f.name for f in CHAIN_SCHEMA)
    with connection(db) as conn:
        where = scope(conn, symbols, watchlist).on("o.ticker_id")
        before = sql.SQL("o.time <= {}").format(sql.Literal(bound)) if bound else sql.SQL("true")
        picked = sql.SQL(
            "WITH pick AS (SELECT o.ticker_id, max(o.time) AS time FROM public.options_chains o "
            "WHERE {where} AND {before} GROUP BY o.ticker_id) "
            "SELECT {columns} FROM (SELECT t.symbol, {time} AS time, o.expiration_date, o.strike_price::float8 "
            "AS strike_price, o.option_type, o.contract_symbol, o.shares_per_contract, o.underlying_price, o.bid, "
            "o.ask, o.last, o.volume, o.open_interest, o.implied_volatility, o.delta, o.gamma, o.theta, o.vega "
            "FROM public.options_chains o JOIN pick p ON p.ticker_id = o.ticker_id AND p.time = o.time "
            "JOIN public.tickers t ON t.id = o.ticker_id "
            "ORDER BY t.symbol, o.expiration_date, o.strike_price, o.option_type) c").format(
                where=where, before=before, columns=sql.SQL(columns), time=sql.SQL(epoch_us("o.time")))
        table = copy_table(conn, picked, CHAIN_SCHEMA)
    return _output(table, arrow)


def describe() -> list[dict[str, Any]]:
    """The flattened columns: name, short name (``rsi``; None where there is none), family (a2 or a3) and Arrow
    type, in order."""
    short = {full: leaf for leaf, full in leaf_names().items()}
    return [{"name": c.name, "short": short.get(c.name), "family": c.family, "type": str(c.type)}
            for c in A2_COLUMNS + A3_COLUMNS]
