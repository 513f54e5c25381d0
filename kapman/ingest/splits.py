"""Load stock splits from the reference API into ``public.splits`` (for A2's adjustment).

Pages ``/v3/reference/splits`` for every split executed on or after ``since`` (default: the
start of the 730-day retention window; an older split changes no stored bar), validates each
record, keeps one per (ticker, execution date), and merges them in one transaction.  A split
the API no longer lists in that range (a vendor correction) is removed.  Splits of symbols that
are not in ``public.tickers`` are stored too (the ticker may be loaded later) and reported.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from kapman import clock
from kapman.db import bulk, schema
from kapman.errors import UsageError
from kapman.progress import NullProgress, Progress
from kapman.providers.polygon import PolygonClient

log = logging.getLogger(__name__)

COLUMNS = ("ticker", "execution_date", "split_from", "split_to", "vendor_id")
TYPES = ("text", "date", "float8", "float8", "text")
#: Rejected records and unknown symbols named in the summary, at most.
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


@dataclass
class SplitsResult:
    since: date
    pages: int = 0
    records: int = 0
    invalid: int = 0
    invalid_samples: list[str] = field(default_factory=list)
    duplicates: int = 0
    kept: int = 0
    reverse: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    unknown_tickers: list[str] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"splits since {self.since}: {self.records} records in {self.pages} pages, {self.duplicates} "
                 f"duplicates, {self.invalid} invalid; kept {self.kept} ({self.reverse} reverse): "
                 f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged, "
                 f"{self.removed} removed; {self.requests} requests, {self.retries} retries, {self.seconds:.1f}s"]
        if self.invalid_samples:
            lines.append(f"  invalid: {'; '.join(self.invalid_samples)}")
        if self.unknown_tickers:
            shown = ", ".join(self.unknown_tickers[:SAMPLES])
            more = f" and {len(self.unknown_tickers) - SAMPLES} more" if len(self.unknown_tickers) > SAMPLES else ""
            lines.append(f"  {len(self.unknown_tickers)} split tickers are not in public.tickers (stored; A2 uses "
                         f"them once the ticker is loaded): {shown}{more}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_since(today: date | None = None) -> date:
    """The first day of the retention window: a split executed before it adjusts no stored bar."""
    return (today or clock.today_ny()) - schema.RETENTION


def parse_split(record: dict[str, Any]) -> Split:
    """One API record as a Split; ValueError naming the bad field."""
    ticker = str(record.get("ticker") or "").strip()
    if not ticker or len(ticker) > 20 or any(ch.isspace() for ch in ticker):
        raise ValueError(f"ticker {record.get('ticker')!r}")
    try:
        day = date.fromisoformat(str(record.get("execution_date")))
    except ValueError:
        raise ValueError(f"{ticker}: execution_date {record.get('execution_date')!r}") from None
    ratio = []
    for name in ("split_from", "split_to"):
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{ticker} {day}: {name} {value!r}")
        ratio.append(float(value))
    vendor_id = record.get("id")
    return Split(ticker, day, ratio[0], ratio[1], None if vendor_id is None else str(vendor_id))


def _unknown(conn: psycopg.Connection, symbols: list[str]) -> list[str]:
    known = {r[0] for r in conn.execute("SELECT symbol FROM public.tickers WHERE symbol = ANY(%s)", (symbols,))}
    return sorted(set(symbols) - known)


def ingest_splits(conn: psycopg.Connection, client: PolygonClient, *, since: date | None = None,
                  progress: Progress | None = None) -> SplitsResult:
    progress = progress or NullProgress()
    started = time.perf_counter()
    if not int(conn.execute("SELECT count(*) FROM public.tickers").fetchone()[0]):  # type: ignore[index]
        raise UsageError("public.tickers is empty: splits cannot be ingested before tickers exist",
                         hint="run python -m scripts.ingest_tickers --force first")
    result = SplitsResult(since=since or default_since())
    stats = client.http.stats
    requests0, retries0 = stats.requests, stats.retries
    kept: dict[tuple[str, date], Split] = {}
    progress.start(None, "split pages", unit="page")
    try:
        for page in client.split_pages(executed_from=result.since.isoformat()):
            result.pages += 1
            for record in page:
                result.records += 1
                try:
                    split = parse_split(record)
                except ValueError as exc:
                    result.invalid += 1
                    if len(result.invalid_samples) < SAMPLES:
                        result.invalid_samples.append(f"page {result.pages}: {exc}")
                    continue
                if split.execution_date < result.since:   # the server filters; never trust it blindly
                    continue
                result.duplicates += split.key in kept
                kept[split.key] = split
            progress.advance(1, records=result.records)
    finally:
        progress.close()
    result.kept = len(kept)
    result.reverse = sum(s.split_from > s.split_to for s in kept.values())
    with conn.transaction(), conn.cursor() as cur:
        staging = bulk.create_staging(cur, "splits_stage", "splits", COLUMNS)
        bulk.copy_rows(cur, staging, COLUMNS, TYPES, (s.row() for _, s in sorted(kept.items())))
        counts = bulk.merge(cur, target="splits", staging=staging, key=schema.SPLITS_KEY, columns=COLUMNS)
        # What the vendor no longer lists in the range just read in full was withdrawn.
        cur.execute(sql.SQL("DELETE FROM public.splits s WHERE s.execution_date >= %s AND NOT EXISTS "
                            "(SELECT 1 FROM {} g WHERE g.ticker = s.ticker "
                            "AND g.execution_date = s.execution_date)").format(staging), (result.since,))
        result.removed = cur.rowcount
    result.inserted, result.updated = counts.inserted, counts.updated
    result.unchanged = result.kept - counts.inserted - counts.updated
    result.unknown_tickers = _unknown(conn, sorted({s.ticker for s in kept.values()}))
    result.requests, result.retries = stats.requests - requests0, stats.retries - retries0
    result.seconds = time.perf_counter() - started
    log.info("%s", result.summary())
    return result

