"""Load the ticker universe from the reference API into ``public.tickers``.

Pages every active stocks record and every delisted one, and the listed indices (``I:SPX``),
keeps the latest record per symbol (the API can return a symbol twice with different
``last_updated_utc``), keeps the configured security types (every index) and the tickers
delisted within the retention window (inactive, with ``delisted_utc``, so the bars of their
last two years are kept), upserts in bulk, and marks tickers that left both
lists inactive.  Nothing is ever deleted.  Symbols are kept exactly as the source writes them:
``TpC`` (a preferred) and ``TPC`` are two tickers.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from kapman import clock
from kapman.config import Settings
from kapman.db import bulk, schema
from kapman.execute import Context, Definition, execute
from kapman.ids import ticker_id
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient
from kapman.step import StepResult
from kapman.symbols import is_index, is_symbol
from kapman.ticker_types import DEFAULT_TYPES, parse_types

log = logging.getLogger(__name__)


COLUMNS = ("id", "symbol", "name", "market", "locale", "type", "primary_exchange", "currency_name", "cik",
           "composite_figi", "share_class_figi", "active", "delisted_utc", "last_updated_utc")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TYPES = ("uuid", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "bool",
         "timestamptz", "timestamptz")


@dataclass(frozen=True)
class TickersParams:
    force: bool = False
    types: tuple[str, ...] = DEFAULT_TYPES
    allow_deactivations: bool = False
    #: The flags given that only a refresh acts on (--types, --allow-deactivations): without
    #: --force on a warehouse that has tickers they change nothing, which the run says (exit 2).
    refresh_flags: tuple[str, ...] = ()

    def validate(self) -> None:
        parse_types(",".join(self.types), source="--types")


@dataclass
class TickersDetails:
    existing: int = 0
    skipped: bool = False
    pages: int = 0
    records: int = 0
    kept: int = 0
    inserted: int = 0
    updated: int = 0
    deactivated: int = 0
    held_active: int = 0             # no longer listed, left active: more than a refresh may deactivate
    duplicates: int = 0
    invalid: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    excluded_by_type: dict[str, int] = field(default_factory=dict)
    delisted_kept: int = 0
    delisted_outside_window: int = 0
    types: list[str] = field(default_factory=list)
    indices: int = 0                 # index tickers (the I: namespace) among those kept
    requests: int = 0
    retries: int = 0


@dataclass
class Selection:
    """What the reference records make of the universe (pure: no I/O)."""

    #: symbol -> latest record, of the kept types: active ones, then those delisted in the window.
    kept: dict[str, dict] = field(default_factory=dict)
    #: every symbol the source still lists (active, any type): not to be marked inactive.
    listed: set[str] = field(default_factory=set)
    duplicates: int = 0
    invalid: int = 0
    #: reason -> records rejected for it (``_invalid``'s reasons), and a few samples naming them.
    invalid_by_reason: Counter[str] = field(default_factory=Counter)
    invalid_samples: dict[str, list[str]] = field(default_factory=dict)
    #: listed records (active or index) whose ticker could not be read: any stored ticker may be theirs.
    unreadable: int = 0
    excluded_by_type: dict[str, int] = field(default_factory=dict)
    delisted_kept: int = 0
    #: delisted before the retention window (or without a delisting time): no bars to keep.
    delisted_outside_window: int = 0
    indices: int = 0


def _timestamp(value: Any) -> datetime | None:
    """A vendor ``*_utc`` field as an aware UTC instant, or None when absent or unreadable.

    The field's name states its zone: a time without an offset, or a bare date (its midnight),
    is UTC.  Comparing a naive value with an aware one used to end the run in a traceback, and so
    did an instant that leaves datetime's range in UTC (``9999-12-31T23:59:59-01:00``): unreadable.
    """
    if not value or not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


#: The record's fields stored as text: each must be absent, null or a string PostgreSQL text can
#: hold (no NUL, nothing UTF-8 cannot encode, such as a lone surrogate from a JSON ``\ud800``); a
#: record with another value is invalid, not the whole run.
TEXT_FIELDS = ("name", "market", "locale", "type", "primary_exchange", "currency_name", "cik",
               "composite_figi", "share_class_figi")
SAMPLES_PER_REASON = 3


def _storable_text(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _invalid(rec: Any) -> tuple[str, str] | None:
    """(reason, sample) when the record cannot be kept, else None.  Reasons: ``not_an_object``;
    ``bad_symbol``, a ticker that is not a string satisfying ``kapman.symbols.is_symbol``
    (``BRK.A``, ``AAp`` and ``I:SPX`` do); ``bad_text``, a ``TEXT_FIELDS`` value text cannot hold."""
    if not isinstance(rec, dict):
        return "not_an_object", f"{type(rec).__name__} {ascii(rec)[:40]}"
    ticker = rec.get("ticker")
    if not isinstance(ticker, str) or not is_symbol(ticker.strip()):
        return "bad_symbol", f"ticker {ascii(ticker)[:40]} is not a symbol"
    odd = [name for name in TEXT_FIELDS if not _storable_text(rec.get(name))]
    if odd:
        return "bad_text", f"{ticker.strip()}: {odd[0]} {ascii(rec.get(odd[0]))[:40]} cannot be stored as text"
    return None


def latest_per_symbol(records: list[dict],
                      samples: dict[str, list[str]] | None = None) -> tuple[dict[str, dict], int, Counter[str]]:
    """symbol (exactly as written) -> the record with the newest last_updated_utc; (duplicates, the
    invalid records by reason), with a few samples per reason added to ``samples`` when given."""
    best: dict[str, dict] = {}
    invalid = Counter[str]()
    for rec in records:
        rejected = _invalid(rec)
        if rejected:
            reason, sample = rejected
            invalid[reason] += 1
            if samples is not None and len(samples.setdefault(reason, [])) < SAMPLES_PER_REASON:
                samples[reason].append(sample)
            continue
        symbol = rec["ticker"].strip()
        current = best.get(symbol)
        rank = (_timestamp(rec.get("last_updated_utc")) or _EPOCH,
                str(rec.get("cik") or ""))
        if current is None or rank > current["_rank"]:
            best[symbol] = {**rec, "_rank": rank, "ticker": symbol}
    duplicates = len(records) - invalid.total() - len(best)
    return best, duplicates, invalid


def _unreadable(invalid: Counter[str]) -> int:
    """Of a listing's invalid records, those that name no symbol (``bad_text`` ones still do)."""
    return invalid["not_an_object"] + invalid["bad_symbol"]


def select(active: list[dict], delisted: list[dict], types: tuple[str, ...], since: datetime) -> Selection:
    """The universe: active records of ``types``, plus those delisted at or after ``since``.

    A symbol both listed and delisted (a ticker reused by a new company) is the listed one.
    """
    samples: dict[str, list[str]] = {}
    listed, dup_a, bad_a = latest_per_symbol(active, samples)
    gone, dup_d, bad_d = latest_per_symbol(delisted, samples)
    # A listed record refused for another field than its symbol is still listed: its stored row is
    # left as it was, not marked inactive for a bad name.
    still_listed = {r["ticker"].strip() for r in active
                    if isinstance(r, dict) and isinstance(r.get("ticker"), str) and is_symbol(r["ticker"].strip())}
    out = Selection(listed=set(listed) | still_listed, duplicates=dup_a + dup_d, invalid=(bad_a + bad_d).total(),
                    invalid_by_reason=bad_a + bad_d, invalid_samples=samples, unreadable=_unreadable(bad_a))
    wanted, excluded = set(types), Counter[str]()
    for symbol, rec in listed.items():
        if rec.get("type") in wanted:
            out.kept[symbol] = {**rec, "active": True}
        else:
            excluded[str(rec.get("type"))] += 1
    for symbol, rec in gone.items():
        if symbol in listed:
            continue
        when = _timestamp(rec.get("delisted_utc"))
        if when is None or when < since:
            out.delisted_outside_window += 1
        elif rec.get("type") not in wanted:
            excluded[str(rec.get("type"))] += 1
        else:
            out.kept[symbol] = {**rec, "active": False}
            out.delisted_kept += 1
    out.excluded_by_type = dict(sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def _row(symbol: str, rec: dict) -> tuple:
    return (ticker_id(symbol), symbol, rec.get("name"), rec.get("market"), rec.get("locale"), rec.get("type"),
            rec.get("primary_exchange"), rec.get("currency_name"), rec.get("cik"), rec.get("composite_figi"),
            rec.get("share_class_figi"), bool(rec["active"]), _timestamp(rec.get("delisted_utc")),
            _timestamp(rec.get("last_updated_utc")))


def count_tickers(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM public.tickers").fetchone()[0])  # type: ignore[index]


@dataclass
class _Fetched:
    active: list[dict] = field(default_factory=list)
    delisted: list[dict] = field(default_factory=list)
    indices: list[dict] = field(default_factory=list)
    pages: int = 0

    @property
    def records(self) -> int:
        return len(self.active) + len(self.delisted) + len(self.indices)


def _fetch(client: PolygonClient, progress: Progress) -> _Fetched:
    """Every listed record, then every delisted one (the API lists them apart: active=false)."""
    fetched = _Fetched()
    progress.start(None, "reference pages", unit="page")
    try:
        for active, records in ((True, fetched.active), (False, fetched.delisted)):
            for page in client.ticker_pages(active=active):
                records.extend(page)
                fetched.pages += 1
                progress.advance(1, records=fetched.records)
        for page in client.ticker_pages(market="indices"):
            fetched.indices.extend(page)
            fetched.pages += 1
            progress.advance(1, records=fetched.records)
    finally:
        progress.close()
    return fetched


def add_indices(chosen: Selection, records: list[dict]) -> None:
    """The listed indices (the ``I:`` namespace: ``I:SPX``, ``I:VIX``), whatever their type: their
    option chains are the largest gamma books; they have no stock bars."""
    listed, duplicates, invalid = latest_per_symbol(records, chosen.invalid_samples)
    chosen.duplicates += duplicates
    chosen.invalid += invalid.total()
    chosen.invalid_by_reason.update(invalid)
    chosen.unreadable += _unreadable(invalid)
    for symbol, rec in listed.items():
        if is_index(symbol):
            chosen.kept[symbol] = {**rec, "active": True}
            chosen.listed.add(symbol)
            chosen.indices += 1


def retention_start() -> datetime:
    """The oldest delisting whose bars are still inside the retention window, by KapMan's clock."""
    return clock.now() - schema.RETENTION


#: The most tickers one refresh may mark inactive unless told to: a listing the vendor cut short
#: with a clean-looking last page reads as mass delistings, and an inactive watchlist symbol gets
#: no option snapshots, which cannot be fetched later.  A day's real delistings are a handful.
DEACTIVATION_SHARE, DEACTIVATION_FLOOR = 0.05, 25


def deactivation_limit(active: int) -> int:
    return max(DEACTIVATION_FLOOR, int(active * DEACTIVATION_SHARE))


def _write(conn: psycopg.Connection, chosen: Selection, *, allow_deactivations: bool
           ) -> tuple[bulk.MergeCounts, int, int]:
    """One transaction: merge the kept tickers, mark the ones no longer listed inactive (unless more
    than ``deactivation_limit`` would go, or the listing held records whose ticker could not be read,
    and that is not allowed).  Returns the merge's counts, the tickers deactivated and those left
    active for the limit."""
    listed = sorted(chosen.listed)
    with conn.transaction(), conn.cursor() as cur:
        staging = bulk.create_staging(cur, "tickers_stage", "tickers", COLUMNS)
        bulk.copy_rows(cur, staging, COLUMNS, TYPES, (_row(s, r) for s, r in sorted(chosen.kept.items())))
        going, active = cur.execute("SELECT count(*) FILTER (WHERE NOT (symbol = ANY(%s))), count(*) "
                                    "FROM public.tickers WHERE active", (listed,)).fetchone()  # type: ignore[misc]
        counts = bulk.merge(cur, target="tickers", staging=staging, key=("id",), columns=COLUMNS)
        if (going > deactivation_limit(active) or going and chosen.unreadable) and not allow_deactivations:
            return counts, 0, going
        # Anything not in today's active list (of any type) is no longer active; never deleted.
        cur.execute("UPDATE public.tickers SET active = false, updated_at = now() "
                    "WHERE active AND NOT (symbol = ANY(%s))", (listed,))
        return counts, cur.rowcount, 0


def _held_reason(held: int, unreadable: int) -> str:
    """Why ``held`` tickers no longer listed were left active, and what to do."""
    if unreadable:
        why = (f"which held {unreadable} record{'s' if unreadable > 1 else ''} whose ticker could not be read "
               "(any of them may be one of those)")
    else:
        why = (f"more than a refresh marks inactive unless told to (5% of the active ones, at least "
               f"{DEACTIVATION_FLOOR}): a listing cut short reads so")
    return (f"{held} active tickers are not in today's listing, {why}, and inactive watchlist symbols get no "
            "option snapshots; they are left active (the listed ones were written). Rerun when the listing is "
            "whole, or with --allow-deactivations if they really went")


def _headline(chosen: Selection, fetched: _Fetched, counts: bulk.MergeCounts, deactivated: int) -> str:
    excluded = sum(chosen.excluded_by_type.values())
    by_type = (": " + ", ".join(f"{k} {v}" for k, v in chosen.excluded_by_type.items())) if excluded else ""
    return (f"kept {len(chosen.kept)} of {fetched.records} records in {fetched.pages} pages: {counts.inserted} "
            f"inserted, {counts.updated} updated, {deactivated} deactivated ({chosen.duplicates} duplicates, "
            f"{excluded} excluded by type{by_type}; {chosen.invalid} invalid); {chosen.delisted_kept} delisted "
            f"within the retention window kept inactive, {chosen.delisted_outside_window} delisted before it "
            f"left out; {chosen.indices} indices")


def ingest_tickers(conn: psycopg.Connection, client: PolygonClient, *, force: bool = False,
                   types: tuple[str, ...] = DEFAULT_TYPES, allow_deactivations: bool = False,
                   progress: Progress | None = None, refresh_flags: tuple[str, ...] = ()) -> StepResult[TickersDetails]:
    """Load the universe on ``conn``; the caller records the run (see ``run``).  ``refresh_flags``:
    the flags given that only a refresh acts on (``TickersParams``)."""
    existing = count_tickers(conn)
    result = StepResult("tickers", unit="tickers", details=TickersDetails(existing=existing))
    if existing and not force:
        result.details.skipped = True
        if refresh_flags:   # asked for something this run does not do: not an "ok"
            result.nothing(f"{' and '.join(refresh_flags)} without --force change nothing: {existing} tickers "
                           "already present, nothing done (add --force to refresh from the API)")
        else:
            result.headline = f"{existing} already present, nothing done (use --force to refresh from the API)"
        return result
    requests0, retries0 = client.http.stats.requests, client.http.stats.retries
    fetched = _fetch(client, progress or NullProgress())
    chosen = select(fetched.active, fetched.delisted, types, retention_start())
    add_indices(chosen, fetched.indices)
    result.read, result.rejected = fetched.records, chosen.invalid
    for reason, count in sorted(chosen.invalid_by_reason.items()):
        result.note(f"invalid {reason}: {count} (e.g. {'; '.join(chosen.invalid_samples.get(reason, []))})")
    if not any(rec["active"] for rec in chosen.kept.values()):
        # An empty list would mark every ticker inactive: refuse rather than trust it.
        result.nothing(f"the reference API listed no active ticker of the types {','.join(types)} "
                       f"({fetched.records} records); nothing was written")
        return result
    counts, deactivated, held = _write(conn, chosen, allow_deactivations=allow_deactivations)
    if held:
        result.fail("deactivations", _held_reason(held, chosen.unreadable), counted=False)
    stats = client.http.stats
    result.written, result.done = counts.inserted + counts.updated, len(chosen.kept)
    result.unchanged = len(chosen.kept) - result.written
    result.headline = _headline(chosen, fetched, counts, deactivated)
    result.details = TickersDetails(
        existing=existing, pages=fetched.pages, records=fetched.records, kept=len(chosen.kept),
        inserted=counts.inserted, updated=counts.updated, deactivated=deactivated, held_active=held,
        duplicates=chosen.duplicates,
        invalid=chosen.invalid, invalid_by_reason=dict(sorted(chosen.invalid_by_reason.items())),
        excluded_by_type=dict(chosen.excluded_by_type), delisted_kept=chosen.delisted_kept,
        delisted_outside_window=chosen.delisted_outside_window, types=list(types), indices=chosen.indices,
        requests=stats.requests - requests0, retries=stats.retries - retries0)
    return result


def run(settings: Settings, params: TickersParams, progress: Progress | None = None) -> StepResult[TickersDetails]:
    """Step 3: the ticker universe."""
    return execute("tickers", settings, params, progress)


def _body(ctx: Context, params: TickersParams) -> StepResult[TickersDetails]:
    result = ingest_tickers(ctx.conn, ctx.client(), force=params.force, types=params.types,
                            allow_deactivations=params.allow_deactivations, progress=ctx.progress,
                            refresh_flags=params.refresh_flags)
    log.info("%s", result.summary())
    return result


STEP = Definition(TickersParams, _body, ledger_args=lambda p: {"force": p.force, "types": list(p.types),
                                                                "allow_deactivations": p.allow_deactivations},
                  planned=lambda settings: TickersParams(force=True, types=settings.ticker_types))
