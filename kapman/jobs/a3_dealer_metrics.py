"""A3: dealer positioning metrics per (watchlist symbol, trading date) into daily_snapshots.

For each date D the input of a symbol is its chain of the day: its latest options snapshot taken
on D (New York date of ``options_chains.time``), whatever time that chain carries (a symbol
fetched later in the session keeps its own time); spot is that snapshot's underlying price,
else D's close.  The contracts of up to five consecutive requested dates come in one bulk read
(a range is read window by window, so it holds a window's chains, not the range's); the kernel
is vectorised per chain.

A date an options run is still writing is not computed (the run holds the day's writing lock,
``kapman.ops.lock``): it fails with that reason, and the next nightly computes it.  Without
``--force`` a symbol is recomputed when its stored metrics are not current
(``inventory.A3_CURRENT``, the rule status and the nightly judge by): its chain of the day is not
the one they were computed from (``dealer_snapshot_time``: a chain fetched, or taken again, after
A3 ran), or was rewritten since under the same time (an options run replaying it with changed
quotes or contracts: the chain's contract count, ``counts.total``, or its newest
``updated_at``, recorded as ``snapshot_written_at``, moved).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from kapman import calendar, clock, registry, signals
from kapman.calendar import is_trading_day
from kapman.config import NumberRange, Settings
from kapman.db import bulk, lifecycle
from kapman.errors import UsageError
from kapman.execute import Context, Definition, execute
from kapman.ingest.watchlist_scope import resolve_scope
from kapman.jobs import snapshots
from kapman.jobs.dates import requested_dates
from kapman.metrics.dealer import DealerParams, compute_dealer_metrics
from kapman.metrics.dealer_chain import AM_SETTLED_ROOTS, ChainArrays
from kapman.ops import lock
from kapman.ops.inventory import a3_symbols, scope_of
from kapman.params import WORKERS_RANGE, date_span, in_range
from kapman.progress import NullProgress, Progress
from kapman.step import StepResult
from kapman.symbols import capped, is_index

log = logging.getLogger(__name__)
VERSION = "a3-1"
#: Dates whose chains are read and held at once: a range is computed window by window, so its
#: memory is a window's (150 symbols x 2,000 contracts is about 60 MB a date held), not the range's.
WINDOW_DATES = 5
#: New York dates that have a snapshot, newest first, up to KapMan's today.
SNAPSHOT_DATES = ("SELECT DISTINCT (time AT TIME ZONE 'America/New_York')::date AS d FROM public.options_chains "
                  "WHERE (time AT TIME ZONE 'America/New_York')::date <= %s ORDER BY d DESC LIMIT 31")
SPOT_FROM_SNAPSHOT, SPOT_FROM_CLOSE, SPOT_NONE = "snapshot_underlying_price", "ohlcv_close", "none"


#: The ranges of the dealer parameters a run may ask for.
MAX_DTE_RANGE = NumberRange(0, 3650, integer=True)
MIN_OPEN_INTEREST_RANGE = NumberRange(0, 1e9)
RISK_FREE_RATE_RANGE = NumberRange(-0.1, 0.5)


@dataclass(frozen=True)
class A3Params:
    dates: list[date] | None = None      # explicit trading dates; None: from day/start/end
    day: date | None = None
    start: date | None = None
    end: date | None = None
    symbols: list[str] | None = None
    workers: int = 2
    force: bool = False
    dealer: DealerParams = field(default_factory=DealerParams)

    def validate(self) -> None:
        in_range("--workers", self.workers, WORKERS_RANGE)
        in_range("--max-dte", self.dealer.max_dte, MAX_DTE_RANGE)
        in_range("--min-open-interest", self.dealer.min_open_interest, MIN_OPEN_INTEREST_RANGE)
        in_range("--risk-free-rate", self.dealer.risk_free_rate, RISK_FREE_RATE_RANGE)
        self.dealer.validate()
        date_span(self.day, self.start, self.end)


@dataclass(kw_only=True)
class A3Details(snapshots.WrittenRows):
    """What a run computed beyond the StepResult's counts."""

    dates: list[date] = field(default_factory=list)
    symbols: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    dates_without_snapshots: list[date] = field(default_factory=list)
    dates_done: list[date] = field(default_factory=list)
    adjusted_contracts: Counter[str] = field(default_factory=Counter)  # per symbol, kept out (dealer_chain)
    stale_quotes: Counter[str] = field(default_factory=Counter)        # per symbol, quoted before the session
    #: per symbol, the days before it joined a watchlist on which it had no chain: no row stored there
    not_listed: dict[str, list[date]] = field(default_factory=dict)

    def units_done(self) -> int:
        return len(self.dates_done)

    def as_dict(self) -> dict[str, Any]:
        return {"dates": self.dates, "symbols": self.symbols, "statuses": dict(self.statuses),
                "dates_without_snapshots": self.dates_without_snapshots, "dates_done": self.dates_done,
                "adjusted_contracts": {s: n for s, n in self.adjusted_contracts.items() if n},
                "stale_quotes": {s: n for s, n in self.stale_quotes.items() if n},
                "not_listed": {s: len(days) for s, days in self.not_listed.items()},   # days each: a bounded summary
                **self.rows_dict()}


@dataclass
class Chains:
    """The latest snapshot per (symbol, date): contract columns plus group boundaries."""

    ticker: np.ndarray
    day: np.ndarray            # New York date of the snapshot, datetime64[D]
    snap: np.ndarray           # snapshot time, datetime64[us] UTC
    written: np.ndarray        # the row's updated_at, datetime64[us] UTC
    cols: dict[str, np.ndarray]


_NUMERIC = ("strike", "open_interest", "volume", "implied_volatility", "delta", "gamma", "shares_per_contract",
            "underlying_price", "stale_quote", "settles_at_open")


def read_chains(conn: psycopg.Connection, ids: list[uuid.UUID], first: date, last: date,
                index_ids: Sequence[uuid.UUID] = ()) -> Chains:
    """Every contract of the latest snapshot per (ticker, New York date) in [first, last]; of the
    underlyings ``index_ids``, the contracts of AM-settled roots are marked (``settles_at_open``)."""
    lo = datetime.combine(first, datetime.min.time(), tzinfo=clock.NEW_YORK)
    hi = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=clock.NEW_YORK)
    nan = sql.SQL("'NaN'::float8")
    query = sql.SQL("""
        WITH k AS (SELECT id, (n - 1)::int4 AS n FROM unnest({ids}::uuid[]) WITH ORDINALITY AS u(id, n)),
        latest AS (
            SELECT ticker_id, max(time) AS time FROM public.options_chains
            WHERE time >= {lo} AND time < {hi} AND ticker_id = ANY({ids}::uuid[])
            GROUP BY ticker_id, (time AT TIME ZONE 'America/New_York')::date)
        SELECT k.n, ((oc.time AT TIME ZONE 'America/New_York')::date), oc.time, oc.updated_at, oc.expiration_date,
               (oc.option_type = 'C')::int4, oc.strike_price::float8,
               coalesce(oc.open_interest::float8, {nan}), coalesce(oc.volume::float8, {nan}),
               coalesce(oc.implied_volatility, {nan}), coalesce(oc.delta, {nan}), coalesce(oc.gamma, {nan}),
               coalesce(oc.shares_per_contract::float8, {nan}), coalesce(oc.underlying_price, {nan}),
               coalesce(((oc.quote_updated_at AT TIME ZONE 'America/New_York')::date
                         < (oc.time AT TIME ZONE 'America/New_York')::date)::int4::float8, 0),
               CASE WHEN oc.ticker_id = ANY({index_ids}::uuid[]) AND oc.contract_symbol ~ {am}
                    THEN 1.0::float8 ELSE 0.0::float8 END
        FROM public.options_chains oc
        JOIN latest l ON l.ticker_id = oc.ticker_id AND l.time = oc.time
        JOIN k ON k.id = oc.ticker_id""").format(ids=sql.Literal(ids), lo=sql.Literal(lo), hi=sql.Literal(hi),
                                                   nan=nan, index_ids=sql.Literal(list(index_ids)),
                                                   am=sql.Literal(f"^O:({'|'.join(AM_SETTLED_ROOTS)})[0-9]"))
    types = ["int4", "date", "timestamptz", "timestamptz", "date", "int4"] + ["float8"] * len(_NUMERIC)
    with conn.cursor() as cur:
        ticker, day, snap, written, expiration, is_call, *numbers = bulk.read_fixed(cur, query, types)
    order = np.lexsort((day, ticker))
    cols = {name: values[order] for name, values in zip(_NUMERIC, numbers, strict=True)}
    cols["expiration"], cols["is_call"] = expiration[order], is_call[order].astype(bool)
    return Chains(ticker[order], day[order], snap[order], written[order], cols)


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
                       gamma=cols["gamma"][sel], multiplier=np.where(mult > 0, mult, 100.0),
                       settles_at_open=cols["settles_at_open"][sel] > 0)


def run(settings: Settings, params: A3Params, progress: Progress | None = None) -> StepResult[A3Details]:
    """Step 8: dealer metrics for the requested dates (see kapman.execute)."""
    return execute("a3", settings, params, progress)


def _body(ctx: Context, params: A3Params) -> None:
    ctx.enter(lifecycle.policies_paused(ctx.url, ["daily_snapshots"]))   # as A2's (a range writes old chunks)
    compute(ctx.conn, params, ctx.progress, ctx.result)


STEP = Definition(A3Params, _body, details=A3Details,
                  ledger_args=lambda p: {"dates": p.dates, "date": p.day, "start": p.start, "end": p.end,
                                         "symbols": p.symbols, "workers": p.workers, "force": p.force,
                                         "dealer": asdict(p.dealer)},
                  planned=lambda settings, dates: A3Params(dates=dates))


def resolve_dates(conn: psycopg.Connection, params: A3Params) -> list[date]:
    """The asked dates; by default the newest trading date with a snapshot, by KapMan's clock."""
    if params.dates is not None:
        return sorted(params.dates)
    if params.day and not is_trading_day(params.day):   # a range keeps its trading days; a date must be one
        raise UsageError(f"{params.day} ({params.day:%A}) is not a NYSE trading day, and A3 computes trading "
                         "dates only", hint="pass a trading date, or leave --date out for the newest snapshot's")
    if params.day or params.start or params.end:
        return requested_dates(conn, day=params.day, start=params.start, end=params.end)
    today = lifecycle.warehouse_today(conn)   # as A2's default date and status
    days = [d for (d,) in conn.execute(SNAPSHOT_DATES, (today,)).fetchall()]
    trading = [d for d in days if is_trading_day(d)]
    if trading:
        return [trading[0]]
    if days:
        raise UsageError(f"no options snapshot on a trading day on or before {today} (the newest, {days[0]}, "
                         "is not a trading day, and A3 computes trading dates only)",
                         hint=f"run {registry.command('options')} after a session's close, or pass --date")
    newer = conn.execute("SELECT EXISTS (SELECT 1 FROM public.options_chains)").fetchone()
    if newer and newer[0]:
        raise UsageError(f"every options snapshot is dated after {today}, today by KapMan's clock",
                         hint="check KAPMAN_NOW, or pass --date")
    raise UsageError("public.options_chains is empty: there is no snapshot to compute",
                     hint=f"run {registry.command('options')} first")


def compute(conn: psycopg.Connection, params: A3Params, progress: Progress | None = None,
            result: StepResult[A3Details] | None = None) -> StepResult[A3Details]:
    """Dealer metrics on an open connection; every date is one transaction."""
    progress = progress or NullProgress()
    result = result or StepResult("a3", unit="symbol-dates", details=A3Details())
    dates = resolve_dates(conn, params)
    if not dates:
        raise UsageError("no trading dates in the requested range")
    dates, busy = lock.claim_days(conn, dates)
    try:
        for day in busy:
            result.fail(str(day), "an options run is still writing this day's snapshot; A3 computes it once the run "
                                  "has ended (the next nightly)")
        if dates:
            _compute(conn, params, dates, progress, result)
        elif busy:
            result.details.dates = busy
    finally:
        lock.release_days(conn, dates)
    return result


def _compute(conn: psycopg.Connection, params: A3Params, dates: list[date], progress: Progress,
             result: StepResult[A3Details]) -> StepResult[A3Details]:
    written = result.details
    statuses, without = written.statuses, written.dates_without_snapshots
    written.dates = dates
    adjusted, stale = written.adjusted_contracts, written.stale_quotes
    symbols = list(resolve_scope(conn, params.symbols, work="dealer metrics").tickers.items())
    computed_at = clock.now()
    written.symbols = len(symbols)
    span = f"{dates[0]}" if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
    progress.start(len(dates) * len(symbols), "a3 symbol-dates", unit="sym")
    try:
        for first in range(0, len(dates), WINDOW_DATES):
            _compute_window(conn, params, symbols, dates[first:first + WINDOW_DATES], computed_at, progress, result)
    finally:   # also when stopped (Ctrl-C, SIGTERM): the ledger row counts the rows committed
        progress.close()
        result.written = written.rows_inserted + written.rows_updated
        result.unchanged += written.rows_unchanged
    if len(without) == len(dates):
        result.nothing(f"no options snapshot on {span}: run {registry.command('options')} on a trading day first")
        return result
    late = written.not_listed
    if late and not (written.rows_written or result.unchanged or result.failures):
        days = sorted({d for ds in late.values() for d in ds})
        result.nothing(f"{capped(list(late))} {'was' if len(late) == 1 else 'were'} not on a watchlist on "
                       f"{calendar.spans(days)}, and had no chain there either")
        return result
    if late:
        result.note("not on a watchlist yet (no chain, nothing stored): "
                    + capped([f"{s} ({calendar.spans(ds)})" for s, ds in late.items()]))
    if without:
        result.note("no options snapshot for any symbol on " + calendar.spans(without)
                    + " (nothing to compute there; a snapshot missed on its day cannot be fetched later)")
    if sum(adjusted.values()):
        names = ", ".join(f"{s} {n}" for s, n in adjusted.most_common(10) if n)
        result.note(f"{sum(adjusted.values())} adjusted contracts (deliverable != 100) kept out of every metric "
                    f"(counts.excluded.adjusted_deliverable): {names}")
    if sum(stale.values()):
        names = ", ".join(f"{s} {n}" for s, n in stale.most_common(10) if n)
        result.note(f"{sum(stale.values())} contracts quoted before their snapshot's session (stale quotes, "
                    f"counts.stale_quotes): {names}")
    status = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "none"
    result.headline = (f"{span}: {len(symbols)} symbols, {written.rows_written} rows "
                       f"({written.rows_inserted} new, {written.rows_updated} updated, "
                       f"{written.rows_unchanged} unchanged); status {status}")
    if result.unchanged > written.rows_unchanged:
        result.headline += f"; {result.unchanged - written.rows_unchanged} already computed (--force recomputes)"
    log.info("%s", result.summary())
    return result


def _compute_window(conn: psycopg.Connection, params: A3Params, symbols: list[tuple[str, uuid.UUID]],
                    dates: list[date], computed_at: datetime, progress: Progress,
                    result: StepResult[A3Details]) -> None:
    """Read the chains of ``dates`` (consecutive, at most WINDOW_DATES), then compute and write each
    date in a transaction of its own; the chains go when the window is done."""
    written = result.details
    statuses, without, dates_done = written.statuses, written.dates_without_snapshots, written.dates_done
    adjusted, stale = written.adjusted_contracts, written.stale_quotes
    ids = [i for _, i in symbols]
    chains = read_chains(conn, ids, dates[0], dates[-1], [i for s, i in symbols if is_index(s)])
    result.read += len(chains.ticker)
    spot_close = closes(conn, ids, dates)
    bounds = _groups(chains)
    days_with = {d for _, d in bounds}
    if params.symbols:   # a day whose snapshot lacks the symbols asked for is theirs INVALID, as in a whole run
        days_with |= snapshot_days(conn, [d for d in dates if d not in days_with])
    for day in dates:
        if day not in days_with:
            without.append(day)
            progress.advance(len(symbols))
            continue
        t = clock.close_of(day)
        late = _not_listed_yet(conn, symbols, bounds, day)
        for n in late:
            written.not_listed.setdefault(symbols[n][0], []).append(day)
        progress.advance(len(late))
        current = set() if params.force else {i for i, a3 in a3_symbols(conn, day, ids).items() if a3.current}
        todo = [(n, s, i) for n, (s, i) in enumerate(symbols) if n not in late and i not in current]
        result.unchanged += len(symbols) - len(late) - len(todo)
        result.done += len(symbols) - len(late) - len(todo)

        def one(item: tuple[int, str, uuid.UUID], day: date = day) -> tuple[str, uuid.UUID, dict | None, str | None]:
            n, symbol, tid = item
            try:
                return symbol, tid, _metrics(chains, bounds.get((n, day)), spot_close.get((n, day)), day, params), None
            except Exception as exc:  # one bad chain must not stop the others
                log.debug("a3 %s %s failed", symbol, day, exc_info=True)
                return symbol, tid, None, f"{type(exc).__name__}: {exc}"

        rows = []
        with ThreadPoolExecutor(max_workers=max(1, params.workers)) as pool:
            for symbol, tid, payload, error in pool.map(one, todo):
                progress.advance(1)
                if error is not None or payload is None:
                    result.fail(f"{symbol} {day}", error or "no result")
                    continue
                statuses[payload["status"]] += 1
                adjusted[symbol] += payload["counts"]["excluded"]["adjusted_deliverable"]
                stale[symbol] += payload["counts"]["stale_quotes"]
                snap = payload["snapshot_time"]
                rows.append((t, tid, json.dumps(payload, allow_nan=False),
                             datetime.fromisoformat(snap) if snap else None, computed_at, VERSION))
        with signals.deferred():   # a date committed is a date counted
            if rows:
                counts = snapshots.write(conn, snapshots.A3_COLUMNS, snapshots.encode(snapshots.A3_COLUMNS, rows),
                                         compare=("dealer_metrics_json", "dealer_snapshot_time"), time=t)
                written.tally(counts, len(rows))
                result.done += len(rows)
            dates_done.append(day)


def _not_listed_yet(conn: psycopg.Connection, symbols: list[tuple[str, uuid.UUID]],
                    bounds: dict[tuple[int, Any], slice], day: date) -> set[int]:
    """The positions in ``symbols`` of those that joined a watchlist after ``day`` and have no chain of it:
    no symbol of that day (``inventory.scope_of``, as status and the dealer dashboard count it), so no
    INVALID row is stored for them there."""
    listed = set(scope_of(conn, day).values())
    return {n for n, (_, tid) in enumerate(symbols) if tid not in listed and (n, day) not in bounds}


def snapshot_days(conn: psycopg.Connection, days: list[date]) -> set[date]:
    """Those of ``days`` (New York dates) on which an options snapshot of any symbol was taken: one
    index probe a day, its bounds constants (chunk exclusion on a large table)."""
    found = set()
    for day in days:
        lo = datetime.combine(day, datetime.min.time(), tzinfo=clock.NEW_YORK)
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM public.options_chains WHERE time >= %s AND time < %s)",
                           (lo, lo + timedelta(days=1))).fetchone()
        if row and row[0]:
            found.add(day)
    return found


def _instant(value: np.datetime64) -> datetime:
    return value.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)


def _groups(chains: Chains) -> dict[tuple[int, Any], slice]:
    """The slice of each (ticker, day) run in the sorted contract arrays."""
    if not len(chains.ticker):
        return {}
    key = chains.ticker.astype(np.int64) * 100_000 + chains.day.astype(np.int64)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    return {(int(chains.ticker[s]), chains.day[s].astype(object)): slice(int(s), int(e))
            for s, e in zip(starts, ends, strict=True)}


def _metrics(chains: Chains, sel: slice | None, close: float | None, day: date, params: A3Params) -> dict:
    if sel is None:
        out = compute_dealer_metrics(_arrays(chains.cols, slice(0, 0)), spot=close,
                                     spot_source=SPOT_FROM_CLOSE if close else SPOT_NONE, as_of=day,
                                     snapshot_time=None, params=params.dealer)
        out["counts"]["stale_quotes"] = 0
        out["snapshot_written_at"] = None
        return out
    underlying = chains.cols["underlying_price"][sel]
    finite = underlying[np.isfinite(underlying) & (underlying > 0)]
    spot, source = (float(np.median(finite)), SPOT_FROM_SNAPSHOT) if len(finite) else \
        (close, SPOT_FROM_CLOSE if close else SPOT_NONE)
    out = compute_dealer_metrics(_arrays(chains.cols, sel), spot=spot, spot_source=source, as_of=day,
                                 snapshot_time=_instant(chains.snap[sel.start]), params=params.dealer)
    out["counts"]["stale_quotes"] = int(chains.cols["stale_quote"][sel].sum())
    # the chain's newest write: a rewrite under the same time moves it (inventory.A3_CURRENT)
    out["snapshot_written_at"] = _instant(chains.written[sel].max()).isoformat()
    return out
