"""What the warehouse holds per trading day: the one answer the nightly's plan, status and the
warehouse page share.

``take`` counts every table per day over a window (the retention window by default): one query
per table, grouped by day, so a full market (11,000 tickers, two years) is a handful of index
scans rather than a loop.  Beside it, each step says what is done for a day as a plain function
``(conn, day or range) -> typed result``:

- ``options_day``: a session's snapshot symbol by symbol.  It is complete when every symbol of the
  watchlist scope has a stored chain of that session (taken between the close and midnight New
  York), or the provider listed no contracts for it, and no options run is still writing it.  A
  symbol fetched later in the session keeps its own snapshot time: a session's chains may carry
  several times, and A3 uses each symbol's latest chain of the day.
- ``a2_first`` / ``a2_missing``: where A2 begins and which dates with bars have none.  The
  indicator history is owed, and A2 begins at the window's first date with bars, once it was asked
  for (``a2 --history``, a repave's Step 7: a history interrupted before it reached its first dates
  is owed, not a backfill) and on a warehouse without any A2 (a repave followed by nightlies only:
  the nightly computes it).
- ``a3_day`` / ``a3_missing``: A3 per symbol of a day, INVALID counted, and stale where the
  symbol's chain of the day is not the one A3 was computed from, or was rewritten since under the
  same time (``A3_CURRENT``: the rule the A3 job skips by).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from uuid import UUID

import psycopg

from kapman import calendar, clock
from kapman.db import lifecycle
from kapman.ops import sessions
from kapman.ops.checks import span

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
    a2_history: bool = False                               # an A2 run was asked for the indicator history
    split_stale: list[SplitStale] = field(default_factory=list)  # A2 rows computed before a split was loaded

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
    inv.a2_history = a2_history_asked(conn)
    inv.split_stale = a2_split_stale(conn, start)
    inv.watchlist_symbols = conn.execute(
        "SELECT count(DISTINCT w.symbol) FROM public.watchlists w JOIN public.tickers t ON t.symbol = w.symbol "
        "WHERE w.active").fetchone()[0]  # type: ignore[index]
    return inv


#: A day with fewer bars than this share of its usual count is a partial file.
THIN_DAY_SHARE = 0.5


def usual_bars(inv: Inventory) -> dict[date, float]:
    """Each day's usual bar count: the median of the 20 days with bars before it (the first day has
    none).  Recent days, not the window's: the universe drifts as tickers list and delist."""
    days = sorted(inv.bars)
    return {day: statistics.median(inv.bars[d] for d in days[max(0, i - 20):i]) for i, day in enumerate(days) if i}


def thin_days(inv: Inventory) -> list[date]:
    """Days whose bar count is under THIN_DAY_SHARE of their usual count: partial flat files."""
    return [d for d, usual in usual_bars(inv).items() if inv.bars[d] < THIN_DAY_SHARE * usual]


def a2_history_asked(conn: psycopg.Connection) -> bool:
    """Whether an A2 run (finished or not) was asked for the indicator history, ``--history``."""
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM public.ingest_runs WHERE job = 'a2' "
                             "AND args->>'history' = 'true')").fetchone()[0])  # type: ignore[index]


def a2_first(inv: Inventory, now: datetime, *, history: bool = True) -> date | None:
    """The first date A2 owes.  The window's first date with bars while the indicator history is
    owed: once it was asked for (an interrupted ``--history`` is resumed from wherever it stopped,
    even before its first date) or on a warehouse without any A2.  Else where A2 first ran.  With
    ``history=False`` (``nightly --no-history``: the history is left to a run by hand), or without
    bars, a warehouse without any A2 begins at the newest trading day whose flat file is due by
    ``now`` (the calendar's answer, never whichever day a killed load happened to store last)."""
    if history and inv.bars and (inv.a2_history or not inv.a2):
        return min(inv.bars)
    if inv.a2:
        return min(inv.a2)
    due = sessions.ohlcv_due_days(max(inv.start, clock.ny_date_of(now) - timedelta(days=10)), now)
    return due[-1] if due else None


def a2_missing(inv: Inventory, now: datetime, *, history: bool = True) -> list[date]:
    """Dates with bars and no A2, from ``a2_first`` on: on a warehouse whose A2 began later without
    the history being asked for, the dates before it are a backfill the user asks for (``a2
    --history``), not a gap."""
    first = a2_first(inv, now, history=history)
    if first is None:
        return []
    return sorted(d for d in inv.bars if d >= first and d not in inv.a2)


@dataclass(frozen=True)
class SplitStale:
    """A ticker's A2 rows computed before a split of it, executed on or before their dates, was loaded."""

    symbol: str
    ticker_id: UUID
    executed: date             # the earliest such split's execution date
    dates: tuple[date, ...]    # the stale rows' dates, oldest first

    def line(self) -> str:
        return f"{self.symbol} {len(self.dates)} dates {span(list(self.dates))} (split of {self.executed})"


#: One probe of daily_snapshots' (ticker_id, time) index per split loaded since KapMan keeps the
#: time (``splits.loaded_at``): bounded by the splits table, which is small.  A row's date is on or
#: after the execution date exactly when its close (16:00 New York) is after that date's UTC midnight;
#: a row is computed once its date's bars exist, after its close, so a date closing more than a day
#: after the split was loaded cannot have been computed before it: each probe spans the days from
#: the execution date to the load, whatever the history behind them.
_SPLIT_STALE = """
SELECT t.symbol, t.id, min(s.execution_date), array_agg(DISTINCT r.day ORDER BY r.day)
FROM public.splits s JOIN public.tickers t ON t.symbol = s.ticker
CROSS JOIN LATERAL (
    SELECT (d.time AT TIME ZONE 'America/New_York')::date AS day FROM public.daily_snapshots d
    WHERE d.ticker_id = t.id AND d.time >= (s.execution_date::timestamp AT TIME ZONE 'UTC')
      AND d.time >= %(since)s AND d.time <= s.loaded_at + interval '1 day'
      AND d.technical_indicators_json IS NOT NULL AND d.ta_computed_at < s.loaded_at
    OFFSET 0) r   -- kept a subquery: a probe per split, never a join over the whole hypertable
WHERE s.loaded_at IS NOT NULL AND (%(symbols)s::text[] IS NULL OR t.symbol = ANY(%(symbols)s::text[]))
GROUP BY t.symbol, t.id ORDER BY t.symbol
"""


def a2_split_stale(conn: psycopg.Connection, start: date, symbols: list[str] | None = None) -> list[SplitStale]:
    """A2 rows dated from ``start`` (of ``symbols``, when given) whose ``ta_computed_at`` is before the
    ``loaded_at`` of a split of their ticker executed on or before their date: computed on bars not
    adjusted for it.  One rule for status, the nightly's plan and A2, which recomputes them and
    stamps them computed (even where the values come out the same: a record A2 does not apply)."""
    if not conn.execute("SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('public.splits') "
                        "AND attname = 'loaded_at' AND NOT attisdropped)").fetchone()[0]:  # type: ignore[index]
        return []   # a schema before migration 0015 (status says it is pending): no load time kept
    since = clock.close_of(start) - timedelta(days=1)
    with conn.transaction():
        # The planner prices a probe per split over every chunk high enough to JIT-compile it: 4 s
        # of compiling for 0.3 s of probes (1,000 splits, 100 chunks).
        conn.execute("SET LOCAL jit = off")
        rows = conn.execute(_SPLIT_STALE, {"since": since, "symbols": symbols}).fetchall()
    return [SplitStale(symbol, tid, executed, tuple(days)) for symbol, tid, executed, days in rows]


def split_stale_dates(stale: list[SplitStale]) -> list[date]:
    return sorted({d for s in stale for d in s.dates})


# -- options: a session's snapshot, symbol by symbol ----------------------------------------------

@dataclass(frozen=True)
class OptionsDay:
    """What a session's option snapshot holds, symbol by symbol."""

    day: date
    expected: dict[str, UUID]                 # the watchlist scope of the day: symbol -> ticker id
    stored: dict[str, datetime]               # symbol -> time of its latest chain of the session
    empty: frozenset[str] = frozenset()       # the provider listed no contracts (a run of the session said)
    writing: tuple[UUID, ...] = ()            # options runs of the day still running

    @property
    def missing(self) -> list[str]:
        return [s for s in self.expected if s not in self.stored and s not in self.empty]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.writing

    @property
    def taken(self) -> int:
        return len(self.expected) - len(self.missing)

    def line(self) -> str:
        text = f"{self.day}: {self.taken} of {len(self.expected)} symbols stored"
        if self.missing:
            text += f", missing {_names(self.missing)}"
        if self.writing:
            text += f"; an options run is still writing it (run {self.writing[0]})"
        return text


def _names(symbols: list[str], shown: int = 8) -> str:
    return " ".join(symbols[:shown]) + (f" and {len(symbols) - shown} more" if len(symbols) > shown else "")


def scope_of(conn: psycopg.Connection, day: date) -> dict[str, UUID]:
    """The active watchlist symbols with an active ticker that were on a watchlist by ``day``."""
    return dict(conn.execute("""
        SELECT w.symbol, t.id FROM public.watchlists w JOIN public.tickers t ON t.symbol = w.symbol
        WHERE w.active AND t.active GROUP BY w.symbol, t.id HAVING min(w.effective_date) <= %s
        ORDER BY w.symbol""", (day,)).fetchall())


#: A ticker's newest chain time in [lo, hi) (``k.id``): one probe of (ticker_id, time DESC).
#: Ordered by that index's own keys: written as ``max(time)`` the planner may take a chunk's
#: (time, ...) key instead and filter on the ticker, a walk through the whole day's chains per
#: symbol (3-5 s a day on a full watchlist, against a few ms).
_LATEST_CHAIN = """SELECT o.time FROM public.options_chains o
                   WHERE o.ticker_id = k.id AND o.time >= %(lo)s AND o.time < %(hi)s
                   ORDER BY o.ticker_id, o.time DESC LIMIT 1"""


def latest_chains(conn: psycopg.Connection, ids: list[UUID], lo: datetime, hi: datetime) -> dict[UUID, datetime]:
    """Each ticker's newest chain time in [lo, hi) (``_LATEST_CHAIN``)."""
    return {tid: t for tid, t in conn.execute(
        f"SELECT k.id, l.time FROM unnest(%(ids)s::uuid[]) AS k(id) LEFT JOIN LATERAL ({_LATEST_CHAIN}) l ON true",
        {"ids": ids, "lo": lo, "hi": hi}).fetchall()
        if t is not None}


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    """Midnight to midnight New York: the chains named by ``day``."""
    return (datetime.combine(day, datetime.min.time(), tzinfo=clock.NEW_YORK),
            sessions.snapshot_window_end(day))


def options_writing(conn: psycopg.Connection, day: date) -> tuple[UUID, ...]:
    """Options runs of ``day`` still running (call ``runs.resolve_abandoned`` first: the rest are alive)."""
    lo, hi = _day_bounds(day)
    return tuple(r for (r,) in conn.execute(
        "SELECT run_id FROM public.ingest_runs WHERE job = 'options' AND status = 'running' "
        "AND snapshot_time >= %s AND snapshot_time < %s ORDER BY started_at", (lo, hi)).fetchall())


def _empty_symbols(conn: psycopg.Connection, lo: datetime, hi: datetime) -> frozenset[str]:
    rows = conn.execute("""
        SELECT DISTINCT o.key FROM public.ingest_runs r,
             jsonb_each(CASE WHEN jsonb_typeof(r.summary -> 'outcomes') = 'object' THEN r.summary -> 'outcomes'
                             ELSE '{}'::jsonb END) AS o
        WHERE r.job = 'options' AND r.snapshot_time >= %s AND r.snapshot_time < %s
          AND o.value ->> 'status' = 'empty'""", (lo, hi)).fetchall()
    return frozenset(s for (s,) in rows)


def options_day(conn: psycopg.Connection, day: date, scope: dict[str, UUID] | None = None) -> OptionsDay:
    """``day``'s session snapshot: chains taken from its close (13:00 on an early-close day,
    ``clock.session_close``) to midnight New York, for the symbols of ``scope`` (default: the
    watchlist scope of the day, ``scope_of``).  A run completing the session passes its own scope:
    symbols added to a watchlist after ``day`` (a repave's watchlists are all dated the day they
    were loaded) are due as well."""
    expected = scope_of(conn, day) if scope is None else scope
    lo, hi = clock.session_close(day), sessions.snapshot_window_end(day)
    latest = latest_chains(conn, list(expected.values()), lo, hi)
    by_id = {tid: s for s, tid in expected.items()}
    stored = {by_id[tid]: t for tid, t in latest.items()}
    empty = _empty_symbols(conn, lo, hi) - stored.keys()
    return OptionsDay(day, expected, stored, frozenset(empty & expected.keys()), options_writing(conn, day))


# -- A3 -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class A3Symbol:
    """One symbol's A3 of a date against its chain of the day."""

    chain: datetime | None   # the time of its chain of the day (None: no chain that day)
    computed: bool           # it has dealer metrics
    current: bool            # ... computed from its chain of the day as stored now (``A3_CURRENT``)
    invalid: bool            # ... whose status is INVALID


#: Per symbol (``k.id``) of a date: its chain of the day, its dealer metrics, and whether those are
#: current.  They are when computed from a chain of the same time (or from none, the symbol having
#: none) that still holds as many contracts (``counts.total``) and whose newest write
#: (``options_chains.updated_at``, set by every writer on a row it changes or adds) is the one the
#: metrics recorded (``snapshot_written_at``): an options run replaying the same snapshot time
#: with changed rows moves the newest write, one removing contracts lowers the count, and an
#: unchanged replay writes nothing (metrics that recorded no newest write, computed before it was
#: recorded, are not current).  Only a chain of the recorded time is counted (its rows,
#: one index range each), so the check costs a read of the chains A3 read: it is made for the
#: last session closed by KapMan's clock alone (``%(rewrites)s``, ``rewrites_checked``), the only
#: one a replay under the same time can rewrite in operation (a snapshot time is always of KapMan's
#: New York day); over the ten sessions status looks at, it took a second on a full watchlist.  The A3 job's skip,
#: status, the nightly's plan and the warehouse page all ask this; the dealer dashboard's
#: verdict mirrors it.
A3_CURRENT = f"""
    SELECT k.id, l.time, d.ticker_id IS NOT NULL,
           coalesce(d.ticker_id IS NOT NULL AND d.dealer_snapshot_time IS NOT DISTINCT FROM l.time
                    AND (l.time IS NULL OR NOT %(rewrites)s
                         OR (c.n = (d.dealer_metrics_json #>> '{{counts,total}}')::bigint
                             AND c.written = (d.dealer_metrics_json ->> 'snapshot_written_at')::timestamptz)),
                    false),
           coalesce(d.dealer_metrics_json ->> 'status' = 'INVALID', false)
    FROM unnest(%(ids)s::uuid[]) AS k(id)
    LEFT JOIN public.daily_snapshots d ON d.time = %(t)s AND d.ticker_id = k.id AND d.dealer_metrics_json IS NOT NULL
    LEFT JOIN LATERAL ({_LATEST_CHAIN}) l ON true
    LEFT JOIN LATERAL (SELECT count(*) AS n, max(o.updated_at) AS written FROM public.options_chains o
                       WHERE %(rewrites)s AND o.ticker_id = k.id AND o.time = l.time
                         AND o.time = d.dealer_snapshot_time AND o.time >= %(lo)s AND o.time < %(hi)s) c ON true"""


def rewrites_checked(day: date, now: datetime | None = None) -> bool:
    """Whether ``day``'s chains are checked for a rewrite under the same time (``A3_CURRENT``): it is
    the last session closed by KapMan's clock (``now``)."""
    now = now or clock.now()
    return day == (sessions.snapshot_session(now) or calendar.previous_trading_day(clock.ny_date_of(now)))


def a3_symbols(conn: psycopg.Connection, day: date, ids: list[UUID]) -> dict[UUID, A3Symbol]:
    """The A3 of ``day`` of each of ``ids`` against its chain of the day (``A3_CURRENT``)."""
    lo, hi = _day_bounds(day)
    rows = conn.execute(A3_CURRENT, {"ids": ids, "t": clock.close_of(day), "lo": lo, "hi": hi,
                                     "rewrites": rewrites_checked(day)}).fetchall()
    return {tid: A3Symbol(chain, computed, current, invalid) for tid, chain, computed, current, invalid in rows}


@dataclass(frozen=True)
class A3Day:
    """A3 of a trading date, symbol by symbol, against each symbol's chain of the day."""

    day: date
    invalid: int                       # symbols of the scope whose metrics say INVALID
    stale: tuple[str, ...]             # computed, but not from the symbol's chain of the day as stored
    uncomputed: tuple[str, ...]        # no dealer metrics although the symbol has a chain of the day

    @property
    def due(self) -> bool:
        return bool(self.stale or self.uncomputed)


def a3_day(conn: psycopg.Connection, day: date) -> A3Day:
    expected = scope_of(conn, day)
    found = a3_symbols(conn, day, list(expected.values()))
    stale = [s for s, tid in expected.items() if found[tid].computed and not found[tid].current]
    uncomputed = [s for s, tid in expected.items() if found[tid].chain is not None and not found[tid].computed]
    invalid = sum(1 for tid in expected.values() if found[tid].invalid)
    return A3Day(day, invalid, tuple(stale), tuple(uncomputed))


def snapshot_days(inv: Inventory) -> list[date]:
    """Trading days with chains: those A3 computes (an options run by hand on a weekend or a holiday
    stores its chains under that date, which A3 refuses)."""
    return sorted(d for d in inv.snapshots if calendar.is_trading_day(d))


def a3_missing(inv: Inventory) -> list[date]:
    """Trading dates with an option snapshot and no A3."""
    return [d for d in snapshot_days(inv) if d not in inv.a3]


def a3_due(conn: psycopg.Connection, inv: Inventory, recent: list[date]) -> list[date]:
    """Dates A3 owes: those with a snapshot and no A3, and, among ``recent`` dates, those where a
    symbol's A3 is not current (``A3_CURRENT``: a chain fetched after A3 ran, or rewritten since under
    the same time)."""
    due = set(a3_missing(inv))
    due.update(d for d in recent if d in inv.snapshots and d not in due and a3_day(conn, d).due)
    return sorted(due)


# -- per step, over a range: what the step registry asks ---------------------------------------

@dataclass(frozen=True)
class StepDays:
    """What one step has done over a range of trading days, and what it owes there."""

    step: str
    done: dict[date, int]          # units stored per day (bars, A2 rows, A3 rows, symbols with a chain)
    owed: list[date]               # days the step still owes, by the warehouse's clock

    def complete(self, day: date) -> bool:
        return day in self.done and day not in self.owed


def _range(conn: psycopg.Connection, start: date, end: date) -> tuple[Inventory, datetime]:
    now = min(lifecycle.warehouse_now(conn), sessions.snapshot_window_end(end))
    return take(conn, start), now


def ohlcv_days(conn: psycopg.Connection, start: date, end: date) -> StepDays:
    """Bars per day; owed: trading days whose flat file is due and that have none, after the oldest
    day with bars (history before it is a base load the user asks for)."""
    inv, now = _range(conn, start, end)
    oldest = min(inv.bars, default=None)
    owed = [d for d in sessions.ohlcv_due_days(start, now) if oldest is not None and d > oldest and d not in inv.bars]
    return StepDays("ohlcv", {d: n for d, n in inv.bars.items() if d <= end}, owed)


def a2_days(conn: psycopg.Connection, start: date, end: date) -> StepDays:
    inv, now = _range(conn, start, end)
    return StepDays("a2", {d: n for d, n in inv.a2.items() if d <= end},
                    [d for d in a2_missing(inv, now) if d <= end])


def options_days(conn: psycopg.Connection, start: date, end: date) -> StepDays:
    """Symbols with a chain of each session (``options_day``); owed: sessions whose window is open
    now and that are not complete (a closed window's gaps are lost, not owed)."""
    inv, now = _range(conn, start, end)
    days = {d: options_day(conn, d) for d in sessions.closed_sessions(start, now) if d <= end and d in inv.snapshots}
    today = sessions.snapshot_session(now)
    owed = [today] if today is not None and today <= end and not options_day(conn, today).complete else []
    return StepDays("options", {d: o.taken for d, o in days.items()}, owed)


#: Chains that change after A3 ran (fetched later, or rewritten under the same time) are looked
#: for over this many recent sessions (both happen within the session's snapshot window; older
#: days would cost a probe per symbol each).
STALE_A3_SESSIONS = 10


def a3_days(conn: psycopg.Connection, start: date, end: date) -> StepDays:
    inv, now = _range(conn, start, end)
    recent = [d for d in sessions.closed_sessions(start, now) if d <= end][-STALE_A3_SESSIONS:]
    return StepDays("a3", {d: n for d, n in inv.a3.items() if d <= end},
                    [d for d in a3_due(conn, inv, recent) if d <= end])
