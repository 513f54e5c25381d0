"""Load stock splits from the reference API into ``public.splits`` (for A2's adjustment).

Pages ``/v3/reference/splits`` for every split executed on or after ``since`` (default: the
start of the 730-day retention window; an older split changes no stored bar), validates each
record, keeps one per (ticker, execution date), and merges them in one transaction.  A split
the API no longer lists in that range (a vendor correction) is removed, unless the listing
refused a record or listed no split at all.  Splits of symbols that
are not in ``public.tickers`` are stored too (the ticker may be loaded later) and reported, and so
are the records A2 will not apply (``kapman.jobs.split_checks``: a ratio the bars do not show, or
one split recorded twice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from kapman import clock, registry
from kapman.config import Settings
from kapman.db import bulk, lifecycle, schema
from kapman.errors import UsageError
from kapman.execute import Context, Definition, execute
from kapman.jobs import split_checks
from kapman.params import not_after_today
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient
from kapman.step import StepResult
from kapman.symbols import is_symbol

log = logging.getLogger(__name__)

COLUMNS = ("ticker", "execution_date", "split_from", "split_to", "vendor_id")
TYPES = ("text", "date", "float8", "float8", "text")
#: Written with the record (KapMan's clock), compared with nothing: a record read again unchanged
#: keeps the time it was first loaded, and A2 rows computed before it are stale
#: (``kapman.ops.inventory.a2_split_stale``).
LOADED_AT = "loaded_at"
#: Invalid records and unknown symbols named in the summary, at most.
SAMPLES = 5


@dataclass(frozen=True)
class Split:
    ticker: str
    execution_date: date
    split_from: float
    split_to: float
    vendor_id: str | None

    @property
    def key(self) -> tuple[str, date]:
        return self.ticker, self.execution_date

    def row(self) -> tuple[Any, ...]:
        return self.ticker, self.execution_date, self.split_from, self.split_to, self.vendor_id


@dataclass(frozen=True)
class SplitsParams:
    #: First execution date to load (default: the start of the retention window).
    since: date | None = None

    def validate(self) -> None:
        """Any date will do: one before the retention window only loads splits no bar needs."""


@dataclass
class SplitsDetails:
    since: str = ""
    splits: int = 0
    reverse: int = 0
    duplicates: int = 0
    inserted: int = 0
    updated: int = 0
    unknown_tickers: list[str] = field(default_factory=list)
    not_applied: int = 0             # split records A2 leaves out (kapman.jobs.split_checks)
    requests: int = 0
    retries: int = 0


def _headline(since: date, kept: int, reverse: int, duplicates: int, pages: int) -> str:
    return (f"{kept} splits executed since {since} ({reverse} reverse) from {pages} pages, "
            f"{duplicates} duplicates")


def default_since(today: date | None = None) -> date:
    """The first day of the retention window: a split executed before it adjusts no stored bar."""
    return (today or clock.today_ny()) - schema.RETENTION


#: The largest sane split_from or split_to: real splits are a few to a few hundred shares; a
#: term of 1e308 would make every adjusted price infinite.
MAX_RATIO_TERM = 1e6


def parse_split(record: dict[str, Any]) -> Split:
    """One API record as a Split; ValueError naming the bad field.  The ticker is a symbol as the
    tickers step takes one (a JSON true is no "True"), the date exactly YYYY-MM-DD (not 20250602)."""
    if not isinstance(record, dict):
        raise ValueError(f"a record that is not an object ({type(record).__name__})")
    ticker = record.get("ticker")
    if type(ticker) is not str or not is_symbol(ticker):
        raise ValueError(f"ticker {ticker!r}")
    raw_day = record.get("execution_date")
    try:
        day = clock.parse_day(raw_day) if type(raw_day) is str and raw_day.isascii() else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError(f"{ticker}: execution_date {raw_day!r}")
    ratio = []
    for name in ("split_from", "split_to"):
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_RATIO_TERM:
            raise ValueError(f"{ticker} {day}: {name} {value!r}")
        ratio.append(float(value))
    vendor_id = record.get("id")
    return Split(ticker, day, ratio[0], ratio[1], None if vendor_id is None else str(vendor_id))


def _unknown(conn: psycopg.Connection, symbols: list[str]) -> list[str]:
    known = {r[0] for r in conn.execute("SELECT symbol FROM public.tickers WHERE symbol = ANY(%s)", (symbols,))}
    return sorted(set(symbols) - known)


def run(settings: Settings, params: SplitsParams, progress: Progress | None = None) -> StepResult[SplitsDetails]:
    return execute("splits", settings, params, progress)


def _body(ctx: Context, params: SplitsParams) -> StepResult[SplitsDetails]:
    return ingest_splits(ctx.conn, ctx.client(), since=params.since, progress=ctx.progress)


STEP = Definition(SplitsParams, _body, planned=lambda settings: SplitsParams())


def ingest_splits(conn: psycopg.Connection, client: PolygonClient, *, since: date | None = None,
                  progress: Progress | None = None) -> StepResult[SplitsDetails]:
    progress = progress or NullProgress()
    # No split has executed after today: a later --since is a typo, not "no splits" (nor withdrawn ones).
    not_after_today(since, lifecycle.warehouse_today(conn), flag="--since")
    if not int(conn.execute("SELECT count(*) FROM public.tickers").fetchone()[0]):  # type: ignore[index]
        raise UsageError("public.tickers is empty: splits cannot be ingested before tickers exist",
                         hint=f"run {registry.mend('tickers')} first")
    since = since or default_since()
    result = StepResult("splits", unit="pages", details=SplitsDetails())
    stats = client.http.stats
    requests0, retries0 = stats.requests, stats.retries
    kept: dict[tuple[str, date], Split] = {}
    duplicates = invalid = 0
    progress.start(None, "split pages", unit="page")
    try:
        for page in client.split_pages(executed_from=since.isoformat()):
            result.done += 1
            for record in page:
                result.read += 1
                try:
                    split = parse_split(record)
                except ValueError as exc:
                    invalid += 1
                    if invalid <= SAMPLES:
                        result.note(f"invalid record on page {result.done}: {exc}")
                    continue
                if split.execution_date < since:   # the server filters; never trust it blindly
                    continue
                duplicates += split.key in kept
                kept[split.key] = split
            progress.advance(1, records=result.read)
    finally:
        progress.close()
    result.rejected = invalid
    loaded_at = lifecycle.warehouse_now(conn)
    with conn.transaction(), conn.cursor() as cur:
        staging = bulk.create_staging(cur, "splits_stage", "splits", (*COLUMNS, LOADED_AT))
        bulk.copy_rows(cur, staging, (*COLUMNS, LOADED_AT), (*TYPES, "timestamptz"),
                       ((*s.row(), loaded_at) for _, s in sorted(kept.items())))
        counts = bulk.merge(cur, target="splits", staging=staging, key=schema.SPLITS_KEY,
                            columns=(*COLUMNS, LOADED_AT), compare=[c for c in COLUMNS if c not in schema.SPLITS_KEY])
        # What the vendor no longer lists in the range just read in full was withdrawn; not when a
        # record was refused: it may be a stored split's, which a malformed listing must not remove.
        if not kept:  # as the tickers step: an empty listing is no evidence that every split was withdrawn
            result.note(f"the API listed no split executed since {since}: no stored split is removed as withdrawn")
        elif not invalid:
            cur.execute(sql.SQL("DELETE FROM public.splits s WHERE s.execution_date >= %s AND NOT EXISTS "
                                "(SELECT 1 FROM {} g WHERE g.ticker = s.ticker "
                                "AND g.execution_date = s.execution_date)").format(staging), (since,))
            result.removed = cur.rowcount
        else:
            result.note(f"{invalid} record(s) refused: no stored split is removed as withdrawn this run")
    result.written = counts.inserted + counts.updated
    result.unchanged = len(kept) - result.written
    unknown = _unknown(conn, sorted({s.ticker for s in kept.values()}))
    if unknown:
        more = f" and {len(unknown) - SAMPLES} more" if len(unknown) > SAMPLES else ""
        result.note(f"{len(unknown)} split tickers are not in public.tickers (stored; A2 uses them once the "
                    f"ticker is loaded): {', '.join(unknown[:SAMPLES])}{more}")
    left_out = [s for s in split_checks.checked(conn, since - timedelta(days=1), clock.today_ny()) if not s.applied]
    for s in left_out[:SAMPLES]:
        result.note(f"not applied by A2: {s.symbol} {s.label()} ({s.verdict}: {s.reason})")
    if len(left_out) > SAMPLES:
        result.note(f"... and {len(left_out) - SAMPLES} more split records not applied "
                    f"({registry.command('show')} SYMBOL lists a ticker's)")
    reverse = sum(s.split_from > s.split_to for s in kept.values())
    result.headline = _headline(since, len(kept), reverse, duplicates, result.done)
    result.details = SplitsDetails(since.isoformat(), len(kept), reverse, duplicates, counts.inserted,
                                   counts.updated, unknown, len(left_out), stats.requests - requests0,
                                   stats.retries - retries0)
    result.stop_clock()
    log.info("%s", result.summary())
    return result
