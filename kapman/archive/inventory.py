"""Which snapshots the database holds and which the archive holds, for the export's catch-up and
the rebuild's confirmation prompt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from kapman.archive import manifest
from kapman.archive.store import Store, open_store
from kapman.config import Settings
from kapman.db.connect import connect

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
