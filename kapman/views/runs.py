"""``kapman runs``: the run ledger (``ingest_runs``), newest first, filtered by step and status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from kapman import cli, registry
from kapman.db import runs as ledger
from kapman.db.connect import connect
from kapman.errors import UsageError
from kapman.views.table import plain, table_text

STATUSES = ("running", "ok", "partial", "failed", "nothing-to-do", "interrupted", "abandoned")
EXAMPLES = """
  kapman runs                                  # the last 20 runs of every step
  kapman runs --step options --status partial,failed --limit 50
  kapman runs --json | jq '.runs[] | select(.status != "ok")'
"""
COLUMNS = ("started_at", "step", "status", "seconds", "clock", "outcome")


def _named(flag: str, text: str) -> list[str]:
    """The comma-separated names of a filter; none at all (an empty variable in a script) is refused, not read
    as a filter that matches nothing."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{flag} is empty", hint=f"name one or more, or leave {flag} out for all")
    return names


def _statuses(text: str) -> list[str]:
    chosen = _named("--status", text)
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown:
        raise UsageError(f"--status: {', '.join(unknown)} is not a run status; choose from {', '.join(STATUSES)}")
    return chosen


def _steps(text: str) -> list[str]:
    """The ledger job names of the steps named (a step's older job names included)."""
    jobs: list[str] = []
    for name in _named("--step", text):
        step = registry.BY_JOB.get(name) or registry.BY_NAME.get(name)
        if step is None or step.module is None or not step.recorded:
            known = ", ".join(s.name for s in registry.recorded_steps())
            raise UsageError(f"--step: {name} is not a step that records runs; choose from {known}")
        jobs += step.jobs
    return jobs


def _outcome(row: dict[str, Any]) -> str:
    """What a run did, in a few words: its error, else its summary's counts."""
    if row["error"]:
        return str(row["error"]).splitlines()[0][:100]
    summary = row["summary"] or {}
    counts = summary.get("counts") or {}
    said = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    unit = str(summary.get("unit", ""))
    done = f"{summary['done']} {unit[:-1] if summary.get('done') == 1 and unit.endswith('s') else unit}".strip() \
        if summary.get("done") else ""
    return "; ".join(p for p in (done, said) if p)


def list_runs(conn: psycopg.Connection, steps: list[str] | None, statuses: list[str] | None,
              limit: int) -> list[dict[str, Any]]:
    ledger.resolve_abandoned(conn)   # a run killed without a word is listed as abandoned, not running
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT run_id, job AS step, status, started_at, finished_at, extract(epoch FROM duration)::float8 "
            "AS seconds, clock_started_at, snapshot_time, args, summary, error FROM public.ingest_runs "
            "WHERE (%(steps)s::text[] IS NULL OR job = ANY(%(steps)s)) "
            "AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s)) "
            "ORDER BY started_at DESC LIMIT %(limit)s",
            {"steps": steps, "statuses": statuses, "limit": limit}).fetchall()
    for row in rows:
        row["run_id"] = str(row["run_id"])
        clock = row["clock_started_at"]
        row["clock"] = clock if clock and abs((clock - row["started_at"]).total_seconds()) > 60 else None
        row["outcome"] = _outcome(row)
    return rows


def shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the table prints them: seconds to a tenth (1.63045 and 0.197698 side by side read badly)."""
    return [{**r, "seconds": None if r["seconds"] is None else round(r["seconds"], 1)} for r in rows]


def main(argv: Sequence[str] | None = None) -> int:
    p = cli.parser("python -m kapman.views.runs",
                   "List the runs of every step from the ledger (ingest_runs), newest first: when it started "
                   "(wall clock, and KapMan's clock where that differs), the step, its outcome, how long it "
                   "took and what it did or the error that ended it.", EXAMPLES)
    p.add_argument("--step", type=_steps, metavar="S1,S2", help="only these steps (e.g. options,a2)")
    p.add_argument("--status", type=_statuses, metavar="S1,S2", help=f"only these outcomes: {', '.join(STATUSES)}")
    p.add_argument("--limit", type=cli.count_arg, default=20, metavar="N", help="at most N runs (default 20)")
    args = p.parse_args(argv)
    settings = cli.settings_for(args)
    with connect(settings.require_database_url()) as conn:
        rows = list_runs(conn, args.step, args.status, args.limit)
    filtered = " that match" if args.step or args.status else ""
    text = table_text(shown(rows), COLUMNS) if rows else f"no runs recorded{filtered}"
    cli.emit(args, text, {"runs": [{k: plain(v) for k, v in r.items()} for r in rows]})
    return cli.EXIT_OK


if __name__ == "__main__":
    cli.entrypoint(main)
