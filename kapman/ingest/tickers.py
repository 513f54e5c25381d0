"""Load the ticker universe from the reference API into ``public.tickers``.

Pages every active stocks record and every delisted one, keeps the latest record per symbol (the
API can return a symbol twice with different ``last_updated_utc``), keeps the configured security
types and the tickers delisted within the retention window (inactive, with ``delisted_utc``, so
the bars of their last two years are kept), upserts in bulk, and marks tickers that left both
lists inactive.  Nothing is ever deleted.  Symbols are kept exactly as the source writes them:
``TpC`` (a preferred) and ``TPC`` are two tickers.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from kapman import clock
from kapman.db import bulk, runs, schema
from kapman.ids import ticker_id
from kapman.ingest.ticker_types import DEFAULT_TYPES
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient
from kapman.symbols import MAX_LENGTH

log = logging.getLogger(__name__)


COLUMNS = ("id", "symbol", "name", "market", "locale", "type", "primary_exchange", "currency_name", "cik",
           "composite_figi", "share_class_figi", "active", "delisted_utc", "last_updated_utc")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TYPES = ("uuid", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text", "bool",
         "timestamptz", "timestamptz")


@dataclass
class TickersResult:
    skipped: bool = False
    existing: int = 0
    pages: int = 0
    records: int = 0
    duplicates: int = 0
    invalid: int = 0
    kept: int = 0
    excluded_by_type: dict[str, int] = field(default_factory=dict)
    delisted_kept: int = 0
    delisted_outside_window: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        if self.skipped:
            return (f"tickers: {self.existing} already present, nothing done "
                    "(use --force to refresh from the API)")
        excluded = sum(self.excluded_by_type.values())
        by_type = (" (" + ", ".join(f"{k} {v}" for k, v in self.excluded_by_type.items()) + ")") if excluded else ""
        return (f"tickers: {self.records} records in {self.pages} pages, {self.duplicates} duplicates, "
                f"{excluded} excluded by type{by_type}, {self.invalid} invalid, "
                f"{self.delisted_outside_window} delisted before the retention window; kept {self.kept} "
                f"({self.delisted_kept} delisted within it, inactive): "
                f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.deactivated} deactivated; {self.requests} requests, {self.retries} retries, "
                f"{self.seconds:.1f}s")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Selection:
    """What the reference records make of the universe (pure: no I/O)."""

    #: symbol -> latest record, of the kept types: active ones, then those delisted in the window.
    kept: dict[str, dict] = field(default_factory=dict)
    #: every symbol the source still lists (active, any type): not to be marked inactive.
    listed: set[str] = field(default_factory=set)
    duplicates: int = 0
    invalid: int = 0
    excluded_by_type: dict[str, int] = field(default_factory=dict)
    delisted_kept: int = 0
    #: delisted before the retention window (or without a delisting time): no bars to keep.
    delisted_outside_window: int = 0


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _valid_symbol(symbol: str) -> bool:
    return bool(symbol) and len(symbol) <= MAX_LENGTH and symbol.isascii() and not any(c.isspace() for c in symbol)


def latest_per_symbol(records: list[dict]) -> tuple[dict[str, dict], int, int]:
    """symbol (exactly as written) -> the record with the newest last_updated_utc; (duplicates, invalid)."""
    best: dict[str, dict] = {}
    invalid = 0
    for rec in records:
        symbol = str(rec.get("ticker") or "").strip()
        if not _valid_symbol(symbol):
            invalid += 1
            continue
        current = best.get(symbol)
        rank = (_timestamp(rec.get("last_updated_utc")) or _EPOCH,
                str(rec.get("cik") or ""))
        if current is None or rank > current["_rank"]:
            best[symbol] = {**rec, "_rank": rank, "ticker": symbol}
    duplicates = len(records) - invalid - len(best)
    return best, duplicates, invalid


def select(active: list[dict], delisted: list[dict], types: tuple[str, ...], since: datetime) -> Selection:
    """The universe: active records of ``types``, plus those delisted at or after ``since``.

    A symbol both listed and delisted (a ticker reused by a new company) is the listed one.
    """
    listed, dup_a, bad_a = latest_per_symbol(active)
    gone, dup_d, bad_d = latest_per_symbol(delisted)
    out = Selection(listed=set(listed), duplicates=dup_a + dup_d, invalid=bad_a + bad_d)
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


def _fetch(client: PolygonClient, *, active: bool, result: TickersResult, progress: Progress) -> list[dict]:
    records: list[dict] = []
    for page in client.ticker_pages(active=active):
        records.extend(page)
        result.pages += 1
        progress.advance(1, records=result.records + len(records))
    result.records += len(records)
    return records


def retention_start() -> datetime:
    """The oldest delisting whose bars are still inside the retention window, by KapMan's clock."""
    return clock.now() - schema.RETENTION


def ingest_tickers(conn: psycopg.Connection, client: PolygonClient, *, force: bool = False,
                   types: tuple[str, ...] = DEFAULT_TYPES, progress: Progress | None = None) -> TickersResult:
    progress = progress or NullProgress()
    started = time.perf_counter()
    result = TickersResult(existing=count_tickers(conn))
    if result.existing and not force:
        result.skipped = True
        return result
    run_id = runs.start_run(conn, "tickers", {"force": force, "types": list(types)})
    requests0, retries0 = client.http.stats.requests, client.http.stats.retries
    progress.start(None, "reference pages", unit="page")
    try:
        active = _fetch(client, active=True, result=result, progress=progress)
        delisted = _fetch(client, active=False, result=result, progress=progress)
    except Exception:
        progress.close()
        conn.rollback()
        runs.finish_run(conn, run_id, "failed", {"pages": result.pages, "records": result.records})
        raise
    progress.close()
    chosen = select(active, delisted, types, retention_start())
    kept = chosen.kept
    result.duplicates, result.invalid = chosen.duplicates, chosen.invalid
    result.excluded_by_type, result.delisted_kept = chosen.excluded_by_type, chosen.delisted_kept
    result.delisted_outside_window = chosen.delisted_outside_window
    result.kept = len(kept)
    with conn.transaction(), conn.cursor() as cur:
        staging = bulk.create_staging(cur, "tickers_stage", "tickers", COLUMNS)
        bulk.copy_rows(cur, staging, COLUMNS, TYPES, (_row(s, r) for s, r in sorted(kept.items())))
        counts = bulk.merge(cur, target="tickers", staging=staging, key=("id",), columns=COLUMNS)
        # Anything not in today's active list (of any type) is no longer active; never deleted.
        cur.execute("UPDATE public.tickers SET active = false, updated_at = now() "
                    "WHERE active AND NOT (symbol = ANY(%s))", (sorted(chosen.listed),))
        result.deactivated = cur.rowcount
    result.inserted, result.updated = counts.inserted, counts.updated
    result.unchanged = result.kept - counts.inserted - counts.updated
    stats = client.http.stats
    result.requests, result.retries = stats.requests - requests0, stats.retries - retries0
    result.seconds = time.perf_counter() - started
    runs.finish_run(conn, run_id, "ok", result.as_dict())
    log.info("%s", result.summary())
    return result
