"""``kapman snapshots``: each option snapshot's time, symbols, completeness and archive state.

Completeness is the inventory's one definition for the snapshot's session
(``kapman.ops.inventory.options_day``: every watchlist symbol has a chain of the session), beside
the snapshot's options run as the ledger has it (``ok``, ``partial`` with the symbols it failed,
...); the archive state comes from the archive's own reading of its manifests
(``kapman.archive.coverage``: each stored chain against an archived file of the same rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from kapman import cli
from kapman.archive import inventory as archive_inventory
from kapman.archive.coverage import Coverage, Depth, stored_chains
from kapman.archive.store import ArchiveError
from kapman.clock import ny_date_of
from kapman.config import Settings
from kapman.db import runs as ledger
from kapman.db.connect import connect
from kapman.ops.inventory import OptionsDay, options_day
from kapman.views.table import plain, table_text

EXAMPLES = """
  kapman snapshots                 # the last 20 option snapshots
  kapman snapshots --limit 200 --json
"""
COLUMNS = ("time", "date", "symbols", "contracts", "session", "run", "failed", "archive")


def _runs(conn: psycopg.Connection, times: list[datetime]) -> dict[datetime, tuple[str, int]]:
    """The options run of each snapshot time: (status, symbols it failed); a run killed without a word is
    marked abandoned first, as every reader of the ledger does."""
    ledger.resolve_abandoned(conn)
    rows = conn.execute("SELECT DISTINCT ON (snapshot_time) snapshot_time, status, "
                        "coalesce((summary ->> 'failed')::int, 0) FROM public.ingest_runs "
                        "WHERE job = 'options' AND snapshot_time = ANY(%s) ORDER BY snapshot_time, started_at DESC",
                        (times,)).fetchall()
    return {t: (status, failed) for t, status, failed in rows}


def _archive(settings: Settings, conn: psycopg.Connection) -> tuple[Coverage | None, str]:
    try:
        found = archive_inventory.check(settings, conn, Depth.ROWS)
        return found, found.location
    except ArchiveError as exc:
        return None, exc.message


def list_snapshots(conn: psycopg.Connection, settings: Settings, limit: int) -> tuple[list[dict[str, Any]], str]:
    times = sorted(stored_chains(conn))[-limit:]
    if not times:
        return [], ""
    rows = conn.execute("SELECT time, ticker_id, count(*) FROM public.options_chains WHERE time = ANY(%s) "
                        "GROUP BY time, ticker_id", (times,)).fetchall()
    per_time: dict[datetime, dict[UUID, int]] = {}
    for time, ticker, contracts in rows:
        per_time.setdefault(time, {})[ticker] = contracts
    runs = _runs(conn, times)
    sessions = {day: options_day(conn, day) for day in {ny_date_of(t) for t in times}}
    archived, where = _archive(settings, conn)
    out = []
    for time in reversed(times):
        tickers = per_time.get(time, {})
        status, failed = runs.get(time, ("no run recorded", 0))
        if archived is None:
            state = "unreadable"
        else:
            held = len(tickers) - len(archived.problems.get(time, {}))
            state = "archived" if held == len(tickers) else f"{held} of {len(tickers)}" if held else "not archived"
        out.append({"time": time, "date": ny_date_of(time), "symbols": len(tickers),
                    "contracts": sum(tickers.values()),
                    "session": _session(sessions[ny_date_of(time)]), "run": status, "failed": failed, "archive": state})
    return out, where


def _session(day: OptionsDay) -> str:
    if day.complete:
        return "complete"
    return f"{len(day.missing)} missing" if day.missing else "writing" if day.writing else "incomplete"


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m kapman.views.snapshots",
                   "List the option snapshots stored, newest first: the snapshot time and its New York date, "
                   "the symbols and contracts stored, whether its session is complete (every watchlist symbol "
                   "has a chain of the session; else N missing, writing or incomplete), the options run that "
                   "took it (ok, partial, failed; 'no run recorded' where the ledger has none, as for a restored "
                   "one) with the symbols it failed, and whether the options archive holds it (archived, n of m "
                   "symbols, not archived).",
                   EXAMPLES)
    p.add_argument("--limit", type=cli.count_arg, default=20, metavar="N", help="the newest N snapshots (default 20)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        rows, where = list_snapshots(conn, settings, args.limit)
    text = (table_text(rows, COLUMNS) + f"\narchive: {where}") if rows else "no option snapshots stored"
    cli.emit(args, text, {"archive": where, "snapshots": [{k: plain(v) for k, v in r.items()} for r in rows]})
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
