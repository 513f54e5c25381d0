"""Which snapshots the database holds and which the archive holds, for the export's catch-up and
the rebuild's confirmation prompt."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from kapman.archive import manifest
from kapman.archive.store import ArchiveError, Store, open_store
from kapman.config import Settings, load_settings
from kapman.db.connect import connect

log = logging.getLogger(__name__)

#: DISTINCT time by hopping down the time index one snapshot at a time (a loose index scan):
#: a few index probes per snapshot instead of reading every row of the hypertable.
_STORED = """
WITH RECURSIVE t(time) AS (
    SELECT min(time) FROM public.options_chains
    UNION ALL
    SELECT (SELECT min(o.time) FROM public.options_chains o WHERE o.time > t.time) FROM t WHERE t.time IS NOT NULL
)
SELECT time FROM t WHERE time IS NOT NULL
"""


def stored_snapshots(conn: psycopg.Connection) -> list[datetime]:
    return [row[0] for row in conn.execute(_STORED).fetchall()]


def archived_dirs(store: Store) -> set[str]:
    """The snapshot directories that have a manifest."""
    return {key.rsplit("/", 1)[0] for key in store.keys(manifest.ROOT) if manifest.partition_date(key)}


@dataclass(frozen=True)
class Census:
    location: str
    stored: int
    archived: int
    stored_not_archived: int  # what a repave would lose for good

    def line(self) -> str:
        return (f"{self.stored} option snapshots in the database, {self.archived} in the archive at {self.location}; "
                + (f"{self.stored_not_archived} stored snapshots are NOT archived and would be lost"
                   if self.stored_not_archived else "every stored snapshot is archived"))


def count_snapshots(settings: Settings, conn: psycopg.Connection | None = None) -> Census:
    """Snapshots stored vs archived.  Raises ArchiveError when the archive cannot be listed."""
    store = open_store(settings)
    archived = archived_dirs(store)
    if conn is None:
        with connect(settings.require_database_url()) as own:
            stored = {manifest.snapshot_dir(t) for t in stored_snapshots(own)}
    else:
        stored = {manifest.snapshot_dir(t) for t in stored_snapshots(conn)}
    return Census(store.location, len(stored), len(archived), len(stored - archived))


def archived_pairs(store: Store) -> set[tuple[datetime, UUID]]:
    """Every (snapshot time, underlying) a readable manifest lists."""
    out: set[tuple[datetime, UUID]] = set()
    for key in store.keys(manifest.ROOT):
        if manifest.partition_date(key) is None:
            continue
        try:
            listed = manifest.Manifest.from_bytes(store.get(key))
        except ValueError as exc:
            log.warning("%s: %s; its files are not counted as archived", key, exc)
            continue
        out.update((listed.snapshot_time, e.ticker_id) for e in listed.files.values())
    return out


def archived_snapshot_count(conn: psycopg.Connection, settings: Settings | None = None) -> int:
    """How many of this database's option snapshots (distinct time and underlying) the archive
    holds: what the rebuild's confirmation subtracts from what it would destroy for good.  An
    archive that cannot be read holds none (the prompt then errs on the side of warning)."""
    try:
        pairs = archived_pairs(open_store(settings or load_settings()))
    except ArchiveError as exc:
        log.warning("the options archive cannot be read (%s); counting none of its snapshots", exc.message)
        return 0
    stored = conn.execute("SELECT DISTINCT time, ticker_id FROM public.options_chains").fetchall()
    return sum((t, i) in pairs for t, i in stored)
