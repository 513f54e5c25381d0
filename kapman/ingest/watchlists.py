"""Reconcile ``data/watchlists/*.txt`` into ``public.watchlists``.

A file's stem is the watchlist id; one symbol per line, ``#`` starts a comment (files are read
by ``kapman.ingest.watchlist_files``: any bad input stops the run before anything is written).
Symbols are kept exactly as written: they are case-sensitive, and one that matches a ticker only
when case is ignored is reported with the likely intended symbol, never mapped.  Under an
advisory lock: new symbols are inserted, removed ones deactivated (never deleted), returning
ones reactivated, and a deleted file deactivates its whole list.  A file that would deactivate more
of its list than a tickers refresh may deactivate of the universe (``deactivation_limit``), or every
member (an empty file), leaves that list as stored unless ``allow_deactivations``: a file emptied or
cut short (a copy interrupted, a disk full) reads so, and inactive symbols get no option snapshots,
which cannot be fetched later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg

from kapman import registry
from kapman.config import Settings
from kapman.db import bulk, lifecycle
from kapman.execute import Context, Definition, execute
from kapman.ingest.tickers import DEACTIVATION_FLOOR, deactivation_limit
from kapman.ingest.watchlist_files import WatchlistFile, read_directory
from kapman.params import not_after_today
from kapman.progress import Progress
from kapman.step import StepResult
from kapman.symbols import case_suggestions

log = logging.getLogger(__name__)

#: Transaction-scoped advisory lock key: one reconciliation at a time.
LOCK_KEY = 0x6B61706D616E  # "kapman"


@dataclass(frozen=True)
class WatchlistsParams:
    directory: Path
    effective_date: date | None = None   # default: today in New York, by KapMan's clock
    allow_deactivations: bool = False    # apply a file that empties or sharply shrinks its list

    def validate(self) -> None:
        """The directory and its files are input, checked as they are read (before any write)."""


@dataclass
class ListOutcome:
    added: int = 0
    reactivated: int = 0
    deactivated: int = 0
    active: int = 0
    #: Symbols the file dropped that were left active: more than a run deactivates unless told to.
    held: int = 0
    #: Lines that repeated a symbol, and the first few (capped: a file can repeat millions).
    duplicates: int = 0
    duplicate_samples: list[str] = field(default_factory=list)

    def line(self, wid: str) -> str:
        more = self.duplicates - len(self.duplicate_samples)
        dupes = (f", duplicates {', '.join(self.duplicate_samples)}" + (f" ... and {more} more" if more else "")
                 if self.duplicates else "")
        return (f"{wid}: {self.active} active ({self.added} added, {self.reactivated} reactivated, "
                f"{self.deactivated} deactivated{f', {self.held} held active' if self.held else ''}{dupes})")


_RECONCILE = """
WITH desired AS (SELECT DISTINCT watchlist_id, symbol, source FROM watchlists_stage
                 WHERE NOT (watchlist_id = ANY(%(held)s))),
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
    WHERE w.active AND NOT (w.watchlist_id = ANY(%(held)s)) AND NOT EXISTS (
        SELECT 1 FROM desired d WHERE d.watchlist_id = w.watchlist_id AND d.symbol = w.symbol)
    RETURNING w.watchlist_id
)
SELECT watchlist_id, 'added' AS what, count(*) FROM added WHERE is_new GROUP BY 1
UNION ALL SELECT watchlist_id, 'reactivated', count(*) FROM added WHERE NOT is_new GROUP BY 1
UNION ALL SELECT watchlist_id, 'deactivated', count(*) FROM gone GROUP BY 1
"""


def _tickers_exist(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM public.tickers)").fetchone()[0])  # type: ignore[index]


#: Per list of a file: its active symbols, and how many of them the file no longer holds.
_GOING = """
SELECT w.watchlist_id, count(*), count(*) FILTER (WHERE NOT EXISTS (
    SELECT 1 FROM watchlists_stage s WHERE s.watchlist_id = w.watchlist_id AND s.symbol = w.symbol))
FROM public.watchlists w WHERE w.active AND w.watchlist_id = ANY(%s) GROUP BY 1
"""


def _held(cur: psycopg.Cursor, files: list[WatchlistFile], lists: dict[str, ListOutcome]) -> list[str]:
    """The lists whose file would deactivate every member (an empty file) or more than
    ``deactivation_limit`` of them; each one's ``held`` count is set.  A deleted file is no such
    case: deleting it is how a list is retired."""
    empty = {f.watchlist_id for f in files if not f.symbols}
    held = []
    for wid, active, going in cur.execute(_GOING, ([f.watchlist_id for f in files],)).fetchall():
        if going > deactivation_limit(active) or (going and wid in empty):
            lists[wid].held = int(going)
            held.append(wid)
    return held


def _reconcile(conn: psycopg.Connection, files: list[WatchlistFile], effective: date, *,
               allow_deactivations: bool = False) -> dict[str, ListOutcome]:
    """One transaction under the advisory lock: the files become the active entries (but for the
    lists ``_held`` keeps as stored, unless ``allow_deactivations``)."""
    lists = {f.watchlist_id: ListOutcome(duplicates=f.duplicates, duplicate_samples=f.duplicate_samples)
             for f in files}
    columns = ("watchlist_id", "symbol", "source")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        staging = bulk.create_staging(cur, "watchlists_stage", "watchlists", columns)
        bulk.copy_rows(cur, staging, columns, ("text", "text", "text"),
                       ((f.watchlist_id, s, f.source) for f in files for s in f.symbols))
        held = [] if allow_deactivations else _held(cur, files, lists)
        for wid, what, count in cur.execute(_RECONCILE, {"eff": effective, "held": held}).fetchall():
            setattr(lists.setdefault(wid, ListOutcome()), what, int(count))
        for wid, active in cur.execute("SELECT watchlist_id, count(*) FILTER (WHERE active) "
                                       "FROM public.watchlists GROUP BY 1").fetchall():
            lists.setdefault(wid, ListOutcome()).active = int(active)
    return lists


def _unresolved(conn: psycopg.Connection, files: list[WatchlistFile]) -> list[tuple[str, str]]:
    """(symbol, reason) of every active symbol without a ticker: the file and line that name it,
    and the ticker it matches when case is ignored (reported, never mapped)."""
    missing = [r[0] for r in conn.execute(
        "SELECT DISTINCT w.symbol FROM public.watchlists w LEFT JOIN public.tickers t ON t.symbol = w.symbol "
        "WHERE w.active AND t.id IS NULL ORDER BY 1").fetchall()]
    near = case_suggestions(conn, missing)
    where: dict[str, str] = {}
    for f in files:
        for symbol, line in f.lines.items():
            where.setdefault(symbol, f"{f.source}:{line}")
    return [(s, "no such ticker" + (f"; did you mean {near[s]}?" if s in near else "")
             + (f" ({where[s]})" if s in where else "")) for s in missing]


def _held_reason(wid: str, outcome: ListOutcome) -> str:
    """Why ``wid``'s file was not applied, and what to do."""
    if outcome.held == outcome.active:
        why = (f"all {outcome.held} active symbols of watchlist {wid} (a file emptied or cut short reads so, "
               "and inactive symbols get no option snapshots)")
    else:
        why = (f"{outcome.held} of the {outcome.active} active symbols of watchlist {wid}, more than a run "
               f"deactivates unless told to (5% of them, at least {DEACTIVATION_FLOOR}): a file cut short "
               "reads so, and inactive symbols get no option snapshots")
    return (f"it would deactivate {why}; {wid} is kept as stored. Restore the file, or rerun with "
            "--allow-deactivations if they really went")


@dataclass
class WatchlistsDetails:
    effective_date: str | None = None
    unresolved: int = 0
    lists: dict[str, ListOutcome] = field(default_factory=dict)


def ingest_watchlists(conn: psycopg.Connection, directory: Path, *, effective_date: date | None = None,
                      allow_deactivations: bool = False) -> StepResult[WatchlistsDetails]:
    """Reconcile ``directory`` on ``conn``; the caller records the run (see ``run``)."""
    result = StepResult("watchlists", unit="symbols", details=WatchlistsDetails())
    files = read_directory(directory)          # any bad input raises here, before any write
    result.read = sum(len(f.symbols) for f in files)
    if not _tickers_exist(conn):
        result.nothing("public.tickers is empty: watchlist symbols cannot be resolved before tickers exist; "
                       f"run {registry.mend('tickers')} first (nothing was written)")
        return result
    today = lifecycle.warehouse_today(conn)
    not_after_today(effective_date, today)   # a symbol is not on a list from a day still to come
    effective = effective_date or today
    lists = _reconcile(conn, files, effective, allow_deactivations=allow_deactivations)
    for f in files:
        if lists[f.watchlist_id].held:
            result.fail(f.source, _held_reason(f.watchlist_id, lists[f.watchlist_id]), counted=False)
    unresolved = _unresolved(conn, files)
    for symbol, reason in unresolved:
        result.fail(symbol, reason)
    active = sum(o.active for o in lists.values())
    arrived = sum(o.added + o.reactivated for o in lists.values())
    result.written = arrived + sum(o.deactivated for o in lists.values())
    result.unchanged = result.read - arrived
    result.done = len({s for f in files for s in f.symbols}) - len(unresolved)
    result.notes = [o.line(wid) for wid, o in sorted(lists.items())]
    result.headline = (f"{len(lists)} lists, {active} active entries, "
                       + (f"{len(unresolved)} active symbols have no ticker" if unresolved
                          else "every active symbol resolves to a ticker"))
    result.details = WatchlistsDetails(effective.isoformat(), len(unresolved), dict(sorted(lists.items())))
    return result


def run(settings: Settings, params: WatchlistsParams,
        progress: Progress | None = None) -> StepResult[WatchlistsDetails]:
    """Step 4: the watchlists (``progress`` unused: one quick transaction)."""
    return execute("watchlists", settings, params, progress)


def _body(ctx: Context, params: WatchlistsParams) -> StepResult[WatchlistsDetails]:
    result = ingest_watchlists(ctx.conn, params.directory, effective_date=params.effective_date,
                               allow_deactivations=params.allow_deactivations)
    log.info("%s", result.summary())
    return result


STEP = Definition(WatchlistsParams, _body,
                  ledger_args=lambda p: {"directory": str(p.directory), "effective_date": p.effective_date,
                                         "allow_deactivations": p.allow_deactivations},
                  planned=lambda settings: WatchlistsParams(settings.watchlists_dir))
