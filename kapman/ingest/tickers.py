"""Load the ticker universe from the reference API into ``public.tickers``.

Pages every active stocks record, keeps the latest record per symbol (the API can return a
symbol twice with different ``last_updated_utc``), keeps the configured security types, upserts
in bulk, and marks tickers that left the active list inactive.  Nothing is ever deleted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from kapman.db import bulk, runs
from kapman.ids import ticker_id
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient

log = logging.getLogger(__name__)

#: Common stock, ETFs, ADRs (common, preferred, rights) and ETNs: the tradable equities a
#: watchlist or an options chain refers to.  Warrants, units, rights, preferreds, funds and
#: OTC oddities are left out to keep the universe (and A2's work) to what traders screen.
DEFAULT_TYPES = ("CS", "ETF", "ADRC", "ADRP", "ADRR", "ETN")

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
        return (f"tickers: {self.records} records in {self.pages} pages, {self.duplicates} duplicates, "
                f"{excluded} excluded by type, {self.invalid} invalid; kept {self.kept}: "
                f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.deactivated} deactivated; {self.requests} requests, {self.retries} retries, "
                f"{self.seconds:.1f}s")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def latest_per_symbol(records: list[dict]) -> tuple[dict[str, dict], int, int]:
    """symbol -> the record with the newest last_updated_utc; plus (duplicates, invalid) counts."""
    best: dict[str, dict] = {}
    invalid = 0
    for rec in records:
        symbol = str(rec.get("ticker") or "").strip().upper()
        if not symbol or len(symbol) > 20 or any(ch.isspace() for ch in symbol):
            invalid += 1
            continue
        current = best.get(symbol)
        rank = (_timestamp(rec.get("last_updated_utc")) or _EPOCH,
                str(rec.get("cik") or ""))
        if current is None or rank > current["_rank"]:
            best[symbol] = {**rec, "_rank": rank, "ticker": symbol}
    duplicates = len(records) - invalid - len(best)
    return best, duplicates, invalid


def _row(symbol: str, rec: dict) -> tuple:
    return (ticker_id(symbol), symbol, rec.get("name"), rec.get("market"), rec.get("locale"), rec.get("type"),
            rec.get("primary_exchange"), rec.get("currency_name"), rec.get("cik"), rec.get("composite_figi"),
            rec.get("share_class_figi"), bool(rec.get("active", True)), _timestamp(rec.get("delisted_utc")),
            _timestamp(rec.get("last_updated_utc")))


def count_tickers(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM public.tickers").fetchone()[0])  # type: ignore[index]


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
    records: list[dict] = []
    progress.start(None, "reference pages", unit="page")
    try:
        for page in client.ticker_pages():
            records.extend(page)
            result.pages += 1
            progress.advance(1, records=len(records))
    except Exception:
        progress.close()
        conn.rollback()
        runs.finish_run(conn, run_id, "failed", {"pages": result.pages, "records": len(records)})
        raise
    progress.close()
    result.records = len(records)
    latest, result.duplicates, result.invalid = latest_per_symbol(records)
    wanted = set(types)
    kept = {s: r for s, r in latest.items() if r.get("type") in wanted}
    result.excluded_by_type = dict(sorted(Counter(str(r.get("type")) for s, r in latest.items()
                                                  if s not in kept).items()))
    result.kept = len(kept)
    with conn.transaction(), conn.cursor() as cur:
        staging = bulk.create_staging(cur, "tickers_stage", "tickers", COLUMNS)
        bulk.copy_rows(cur, staging, COLUMNS, TYPES, (_row(s, r) for s, r in sorted(kept.items())))
        counts = bulk.merge(cur, target="tickers", staging=staging, key=("id",), columns=COLUMNS)
        # Anything not in today's active list (of any type) is no longer active; never deleted.
        cur.execute("UPDATE public.tickers SET active = false, updated_at = now() "
                    "WHERE active AND NOT (symbol = ANY(%s))", (sorted(latest),))
        result.deactivated = cur.rowcount
    result.inserted, result.updated = counts.inserted, counts.updated
    result.unchanged = result.kept - counts.inserted - counts.updated
    stats = client.http.stats
    result.requests, result.retries = stats.requests - requests0, stats.retries - retries0
    result.seconds = time.perf_counter() - started
    runs.finish_run(conn, run_id, "ok", result.as_dict())
    log.info("%s", result.summary())
    return result
