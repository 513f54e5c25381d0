"""Reconcile ``data/watchlists/*.txt`` into ``public.watchlists``.

A file's stem is the watchlist id; one symbol per line, ``#`` starts a comment (files are read
by ``kapman.ingest.watchlist_files``: any bad input stops the run before anything is written).
Symbols are kept exactly as written: they are case-sensitive, and one that matches a ticker only
when case is ignored is reported with the likely intended symbol, never mapped.  Under an
advisory lock: new symbols are inserted, removed ones deactivated (never deleted), returning
ones reactivated, and a deleted file deactivates its whole list.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from kapman import clock
from kapman.db import bulk, runs
from kapman.ingest.tickermap import case_suggestions
from kapman.ingest.watchlist_files import WatchlistFile, read_directory

#: Transaction-scoped advisory lock key: one reconciliation at a time.
LOCK_KEY = 0x6B61706D616E  # "kapman"


@dataclass
class ListOutcome:
    added: int = 0
    reactivated: int = 0
    deactivated: int = 0
    active: int = 0
    #: Lines that repeated a symbol, and the first few (capped: a file can repeat millions).
    duplicates: int = 0
    duplicate_samples: list[str] = field(default_factory=list)

    def line(self, wid: str) -> str:
        more = self.duplicates - len(self.duplicate_samples)
        dupes = (f", duplicates {', '.join(self.duplicate_samples)}" + (f" ... and {more} more" if more else "")
                 if self.duplicates else "")
        return (f"{wid}: {self.active} active ({self.added} added, {self.reactivated} reactivated, "
                f"{self.deactivated} deactivated{dupes})")


@dataclass
class Unresolved:
    symbol: str
    where: str             # "data/watchlists/mvp.txt:3"
    suggestion: str | None  # the ticker(s) it matches when case is ignored

    def message(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{self.where}: {self.symbol}: no such ticker{hint}"


#: Unresolved symbols named one by one in the summary and the ledger (the count is exact).
MAX_UNRESOLVED = 20


@dataclass
class WatchlistsResult:
    effective_date: date
    lists: dict[str, ListOutcome] = field(default_factory=dict)
    unresolved: list[Unresolved] = field(default_factory=list)
    unresolved_count: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [o.line(wid) for wid, o in sorted(self.lists.items())]
        lines += [u.message() for u in self.unresolved]
        more = self.unresolved_count - len(self.unresolved)
        if more:
            lines.append(f"... and {more} more active symbols without a ticker")
        total = sum(o.active for o in self.lists.values())
        unresolved = (f"; {self.unresolved_count} active symbols have no ticker"
                      if self.unresolved_count else "; every active symbol resolves to a ticker")
        return "\n".join(lines + [f"watchlists: {len(self.lists)} lists, {total} active entries{unresolved} "
                                  f"({self.seconds:.2f}s)"])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _unresolved(conn: psycopg.Connection, symbols: list[str], files: list[WatchlistFile]) -> list[Unresolved]:
    """Each symbol with the file and line that names it, and what it may have meant."""
    near = case_suggestions(conn, symbols)
    where: dict[str, str] = {}
    for f in files:
        for symbol in symbols:
            if symbol in f.lines and symbol not in where:
                where[symbol] = f"{f.source}:{f.lines[symbol]}"
    return [Unresolved(s, where.get(s, "watchlists"), near.get(s)) for s in symbols]


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
            result.lists[f.watchlist_id] = ListOutcome(duplicates=f.duplicates,
                                                       duplicate_samples=f.duplicate_samples)
        for wid, what, count in cur.execute(_RECONCILE, {"eff": result.effective_date}).fetchall():
            outcome = result.lists.setdefault(wid, ListOutcome())
            setattr(outcome, what, int(count))
        for wid, active in cur.execute("SELECT watchlist_id, count(*) FILTER (WHERE active) "
                                       "FROM public.watchlists GROUP BY 1").fetchall():
            result.lists.setdefault(wid, ListOutcome()).active = int(active)
        missing = [r[0] for r in cur.execute(
            "SELECT DISTINCT w.symbol FROM public.watchlists w LEFT JOIN public.tickers t ON t.symbol = w.symbol "
            "WHERE w.active AND t.id IS NULL ORDER BY 1").fetchall()]
    result.unresolved_count = len(missing)
    result.unresolved = _unresolved(conn, missing[:MAX_UNRESOLVED], files)
    result.seconds = time.perf_counter() - started
    runs.finish_run(conn, run_id, "ok", result.as_dict())
    return result
