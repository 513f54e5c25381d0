"""What a rebuild would destroy, and the confirmation it needs before it does.

A database that holds data is only dropped when the user typed its name on a terminal, or passed
``--yes`` where there is none.  The report counts the rows of every table and the option
snapshots that cannot be fetched again: the provider only serves the chain as of now, so a
snapshot is replaceable only if the archive holds it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import psycopg
from psycopg import sql

from kapman.db import schema
from kapman.db.connect import connect
from kapman.errors import UsageError

log = logging.getLogger(__name__)

#: How many of a database's option snapshots (distinct symbol and time) the archive holds; the
#: caller passes the archive's census (``kapman.archive.archived_snapshot_count``), or nothing.
ArchivedCount = Callable[[psycopg.Connection], int]
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", "timescaledb_information",
                   "timescaledb_experimental", "toolkit_experimental")


#: Bookkeeping whose loss alone needs no confirmation: the rebuild's own run is recorded there.
LEDGER_ONLY = frozenset({"ingest_runs"})


class NotConfirmed(UsageError):
    """The user did not confirm the destruction (or could not: no terminal and no --yes)."""


@dataclass
class Loss:
    database: str
    exists: bool = False
    rows: dict[str, int] = field(default_factory=dict)     # schema.table -> rows (data tables only)
    snapshots: int = 0                                      # option chains: (time, symbol) pairs
    snapshot_times: int = 0                                 # option snapshots: times, as status counts them
    archived: int | None = None                             # of which the archive holds; None: no archive

    @property
    def holds_data(self) -> bool:
        return any(n for table, n in self.rows.items() if table not in LEDGER_ONLY)

    @property
    def irreplaceable(self) -> int:
        return max(self.snapshots - (self.archived or 0), 0)

    def lines(self, what: str = "the rebuild") -> list[str]:
        out = [f"database {self.database} holds data that {what} destroys:"]
        out += [f"  {table:<28} {n:>14,} rows" for table, n in sorted(self.rows.items()) if n]
        if self.snapshots:
            where = ("no archive is configured" if self.archived is None
                     else f"the archive holds {self.archived:,}")
            out.append(f"  {self.irreplaceable:,} of {self.snapshots:,} option chains ({self.snapshot_times:,} "
                       f"snapshot{'s' if self.snapshot_times != 1 else ''}, a chain per symbol) cannot be fetched "
                       f"again ({where})")
        return out

    def as_dict(self) -> dict[str, object]:
        return {"database": self.database, "rows": self.rows, "option_snapshots": self.snapshots,
                "option_snapshot_times": self.snapshot_times,
                "archived_snapshots": self.archived, "irreplaceable_snapshots": self.irreplaceable}


def measure(url: str, name: str, exists: bool, archived: ArchivedCount | None = None) -> Loss:
    """Rows per table and option snapshots in the database at ``url`` (nothing if it is absent), and
    with ``archived`` how many of those snapshots the archive holds."""
    loss = Loss(database=name, exists=exists)
    if not exists:
        return loss
    with connect(url) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname <> ALL(%s) "
            "AND n.nspname NOT LIKE '\\_timescaledb%%' AND n.nspname NOT LIKE 'pg\\_temp%%' "
            "AND NOT (n.nspname = 'public' AND c.relname = ANY(%s)) ORDER BY 1, 2",
            (list(_SYSTEM_SCHEMAS), sorted(schema.METADATA_TABLES))).fetchall()
        for nsp, rel in tables:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(nsp, rel))).fetchone()
            label = rel if nsp == "public" else f"{nsp}.{rel}"
            loss.rows[label] = int(count[0]) if count else 0
        if loss.rows.get("options_chains"):
            row = conn.execute("SELECT count(*), count(DISTINCT time) FROM (SELECT DISTINCT time, ticker_id "
                               "FROM public.options_chains) s").fetchone()
            loss.snapshots, loss.snapshot_times = (int(row[0]), int(row[1])) if row else (0, 0)
            loss.archived = None if archived is None else int(archived(conn))
    return loss


def confirm(loss: Loss, *, yes: bool, what: str = "the rebuild",
            stdin: TextIO | None = None, stderr: TextIO | None = None) -> None:
    """Return when ``loss`` may be destroyed; raise NotConfirmed otherwise.

    Nothing to lose, or ``yes``: go.  On a terminal: show the loss and ask for the database name.
    Without a terminal: refuse, naming ``--yes``."""
    if not loss.holds_data or yes:
        if loss.holds_data:
            parts = (" ".join(line.split()) for line in loss.lines(what)[1:])   # the table's padding dropped
            log.warning("%s destroys %s (confirmed with --yes)", what, "; ".join(parts))
        return
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    summary = ", ".join(f"{t} {n:,}" for t, n in sorted(loss.rows.items()) if n)
    if not stdin.isatty():
        raise NotConfirmed(f"database {loss.database} holds data ({summary} rows"
                           + (f"; {loss.irreplaceable:,} option chain{'s' if loss.irreplaceable != 1 else ''} "
                              "cannot be fetched again"
                              if loss.irreplaceable else "") + f") and {what} would destroy it",
                           hint="run it on a terminal to confirm, or pass --yes to confirm up front")
    for line in loss.lines(what):
        print(line, file=stderr)
    print(f"type the database name ({loss.database}) to destroy it, anything else stops: ",
          end="", file=stderr, flush=True)
    answer = stdin.readline().strip()
    if answer != loss.database:
        raise NotConfirmed(f"{what} was not confirmed; database {loss.database} is unchanged")
