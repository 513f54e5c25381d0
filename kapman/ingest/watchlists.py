"""Reconcile ``data/watchlists/*.txt`` into ``public.watchlists``.

A file's stem is the watchlist id; one symbol per line, ``#`` starts a comment.  Symbols are
upper-cased and validated; an invalid one stops the run before anything is written.  Under an
advisory lock: new symbols are inserted, removed ones deactivated (never deleted), returning
ones reactivated, and a deleted file deactivates its whole list.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from kapman import clock
from kapman.config import PROJECT_ROOT
from kapman.db import bulk, runs
from kapman.errors import ConfigError, InputError, UsageError

#: Exchange symbols: letters first, then letters, digits, '.' or '-' (BRK.B, BF-B).
SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,14}$")
WATCHLIST_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
#: Transaction-scoped advisory lock key: one reconciliation at a time.
LOCK_KEY = 0x6B61706D616E  # "kapman"


@dataclass
class WatchlistFile:
    watchlist_id: str
    source: str
    symbols: list[str]
    duplicates: list[str] = field(default_factory=list)


@dataclass
class ListOutcome:
    added: int = 0
    reactivated: int = 0
    deactivated: int = 0
    active: int = 0
    duplicates: list[str] = field(default_factory=list)


@dataclass
class WatchlistsResult:
    effective_date: date
    lists: dict[str, ListOutcome] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{wid}: {o.active} active ({o.added} added, {o.reactivated} reactivated, "
                 f"{o.deactivated} deactivated{', duplicates ' + ' '.join(o.duplicates) if o.duplicates else ''})"
                 for wid, o in sorted(self.lists.items())]
        total = sum(o.active for o in self.lists.values())
        unresolved = (f"; {len(self.unresolved)} active symbols have no ticker: {' '.join(self.unresolved[:20])}"
                      if self.unresolved else "; every active symbol resolves to a ticker")
        return "\n".join(lines + [f"watchlists: {len(self.lists)} lists, {total} active entries{unresolved} "
                                  f"({self.seconds:.2f}s)"])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _source_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path.name


def parse_file(path: Path) -> WatchlistFile:
    wid = path.stem.lower()
    if not WATCHLIST_ID.match(wid):
        raise InputError("file name must be <watchlist_id>.txt with a lower-case id (a-z, 0-9, _ or -)",
                         source=str(path))
    symbols: list[str] = []
    seen: set[str] = set()
    dupes: list[str] = []
    errors: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.split("#", 1)[0].strip().upper()
        if not text:
            continue
        if not SYMBOL.match(text):
            errors.append(f"{path}:{number}: invalid symbol {raw.strip()!r}")
            continue
        if text in seen:
            dupes.append(text)
            continue
        seen.add(text)
        symbols.append(text)
    if errors:
        raise InputError("; ".join(errors), hint="fix the lines above; nothing was written")
    return WatchlistFile(wid, _source_name(path), symbols, dupes)


def read_directory(directory: Path) -> list[WatchlistFile]:
    if not directory.is_dir():
        raise ConfigError(f"watchlist directory not found: {directory}",
                          hint="create data/watchlists/<name>.txt or set KAPMAN_WATCHLISTS_DIR")
    return [parse_file(p) for p in sorted(directory.glob("*.txt"))]


_RECONCILE = """
WITH desired AS (SELECT DISTINCT watchlist_id, symbol, source FROM watchlists_stage),
added AS (
    INSERT INTO public.watchlists (watchlist_id, symbol, active, source, effective_date)
    SELECT d.watchlist_id, d.symbol, true, d.source, %(eff)s FROM desired d
    ON CONFLICT (watchlist_id, symbol) DO UPDATE
        SET active = true, deactivated_at = NULL, source = EXCLUDED.source,
            effective_date = EXCLUDED.effective_date, updated_at = now()
        WHERE NOT public.watchlists.active
    RETURNING watchlist_id, (xmax = 0) AS is_new
),
gone AS (
    UPDATE public.watchlists w SET active = false, deactivated_at = now(), updated_at = now()
    WHERE w.active AND NOT EXISTS (
        SELECT 1 FROM desired d WHERE d.watchlist_id = w.watchlist_id AND d.symbol = w.symbol)
    RETURNING w.watchlist_id
)
SELECT watchlist_id, 'added' AS what, count(*) FROM added WHERE is_new GROUP BY 1
UNION ALL SELECT watchlist_id, 'reactivated', count(*) FROM added WHERE NOT is_new GROUP BY 1
UNION ALL SELECT watchlist_id, 'deactivated', count(*) FROM gone GROUP BY 1
"""


def ingest_watchlists(conn: psycopg.Connection, directory: Path, *,
                      effective_date: date | None = None) -> WatchlistsResult:
    started = time.perf_counter()
    files = read_directory(directory)
    result = WatchlistsResult(effective_date=effective_date or clock.today_ny())
    run_id = runs.start_run(conn, "watchlists", {"directory": str(directory),
                                                 "effective_date": result.effective_date})
    columns = ("watchlist_id", "symbol", "source")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        staging = bulk.create_staging(cur, "watchlists_stage", "watchlists", columns)
        bulk.copy_rows(cur, staging, columns, ("text", "text", "text"),
                       ((f.watchlist_id, s, f.source) for f in files for s in f.symbols))
        for f in files:
            result.lists[f.watchlist_id] = ListOutcome(duplicates=f.duplicates)
        for wid, what, count in cur.execute(_RECONCILE, {"eff": result.effective_date}).fetchall():
            outcome = result.lists.setdefault(wid, ListOutcome())
            setattr(outcome, what, int(count))
        for wid, active in cur.execute("SELECT watchlist_id, count(*) FILTER (WHERE active) "
                                       "FROM public.watchlists GROUP BY 1").fetchall():
            result.lists.setdefault(wid, ListOutcome()).active = int(active)
        result.unresolved = [r[0] for r in cur.execute(
            "SELECT DISTINCT w.symbol FROM public.watchlists w LEFT JOIN public.tickers t ON t.symbol = w.symbol "
            "WHERE w.active AND t.id IS NULL ORDER BY 1").fetchall()]
    result.seconds = time.perf_counter() - started
    runs.finish_run(conn, run_id, "ok", result.as_dict())
    return result


@dataclass
class Scope:
    #: symbol -> ticker id, in symbol order.
    tickers: dict[str, UUID] = field(default_factory=dict)
    #: Active watchlist symbols left out, with the reason (no ticker).
    skipped: dict[str, str] = field(default_factory=dict)


def _count(conn: psycopg.Connection, query: str) -> int:
    return int(conn.execute(query).fetchone()[0])  # type: ignore[index]


def resolve_scope(conn: psycopg.Connection, symbols: list[str] | None = None, *,
                  work: str = "options ingestion") -> Scope:
    """Active watchlist symbols with their ticker ids; ``symbols`` narrows to a subset.

    The scope of every non-OHLCV step (options ingestion, dealer metrics); ``work`` names the
    step in the errors.
    """
    if not _count(conn, "SELECT count(*) FROM public.tickers"):
        raise UsageError(
            f"public.tickers is empty: {work} cannot run before tickers exist",
            hint="run python -m scripts.ingest_tickers --force first",
        )
    if not _count(conn, "SELECT count(*) FROM public.watchlists WHERE active"):
        raise UsageError(
            f"no active watchlist symbols: the {work} scope is the watchlists",
            hint="run python -m scripts.ingest_watchlists first",
        )
    rows = conn.execute("""
        SELECT w.symbol, t.id
        FROM (SELECT DISTINCT symbol FROM public.watchlists WHERE active) w
        LEFT JOIN public.tickers t ON t.symbol = w.symbol
        ORDER BY w.symbol""").fetchall()
    active = {symbol: tid for symbol, tid in rows}
    if symbols is not None:
        wanted = sorted({s.strip().upper() for s in symbols if s.strip()})
        if not wanted:
            raise UsageError("--symbols is empty", hint="pass e.g. --symbols AAPL,MSFT")
        outside = [s for s in wanted if s not in active]
        unresolved = [s for s in wanted if s in active and active[s] is None]
        if outside or unresolved:
            parts = ([f"not in an active watchlist: {' '.join(outside)}"] if outside else []) + (
                [f"no ticker: {' '.join(unresolved)}"] if unresolved else []
            )
            raise UsageError(
                f"--symbols names symbols outside the {work} scope ({'; '.join(parts)})",
                hint="add them to data/watchlists/*.txt and run python -m scripts.ingest_watchlists"
                + (", and python -m scripts.ingest_tickers --force" if unresolved else ""),
            )
        active = {s: active[s] for s in wanted}
    scope = Scope()
    for symbol, tid in active.items():
        if tid is None:
            scope.skipped[symbol] = "no ticker"
        else:
            scope.tickers[symbol] = tid
    return scope
