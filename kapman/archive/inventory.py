"""Which snapshots the database holds and which the archive holds (``coverage``), for status, the
demo and the rebuild's confirmation prompt."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import psycopg

from kapman.archive import coverage, manifest, warehouse
from kapman.archive.checkpoint import EVERYTHING, Window
from kapman.archive.store import Store, open_store
from kapman.config import Settings
from kapman.db.connect import connect
from kapman.errors import KapManError

log = logging.getLogger(__name__)

def archived_dirs(store: Store) -> set[str]:
    """The snapshot directories that have a manifest."""
    return {key.rsplit("/", 1)[0] for key in store.keys(manifest.ROOT) if manifest.partition_date(key)}


@dataclass(frozen=True)
class Census:
    location: str
    stored: int
    archived: int
    stored_not_archived: int  # stored snapshots with a chain the archive does not cover
    #: Warehouses whose manifests the archive holds for stored snapshots it does not cover for this one.
    held_by_others: tuple[str, ...] = ()
    #: The oldest stored snapshot the archive does not cover: the first that retention reaches.
    oldest_not_archived: datetime | None = None
    #: How many of the stored snapshots it does not cover have another warehouse's manifest.
    held_count: int = 0

    def line(self) -> str:
        return (f"{self.stored} option snapshots in the database, {self.archived} in the archive at {self.location}; "
                + (f"{self.stored_not_archived} stored snapshots are NOT archived and would be lost"
                   if self.stored_not_archived else "every stored snapshot is archived"))


def check(settings: Settings, conn: psycopg.Connection | None = None,
          depth: coverage.Depth = coverage.Depth.ROWS, scope: Window = EVERYTHING) -> coverage.Coverage:
    """``coverage.check`` of this configuration's warehouse and archive.  Raises ArchiveError when
    the archive cannot be listed, ConfigError without a database URL."""
    store = open_store(settings)
    owner = warehouse.of(settings)
    if conn is None:
        with connect(settings.require_database_url()) as own:
            return coverage.check(own, store, owner, depth, scope=scope)
    return coverage.check(conn, store, owner, depth, scope=scope)


def count_snapshots(settings: Settings, conn: psycopg.Connection | None = None) -> Census:
    """Snapshots stored vs archived (rows checked, not hashes).  Raises ArchiveError when the
    archive cannot be listed."""
    found = check(settings, conn, coverage.Depth.ROWS)
    held = {t: name for t, name in found.others.items() if t in found.problems}
    return Census(found.location, found.snapshots, found.archived, len(found.problems),
                  tuple(sorted(set(held.values()))), min(found.problems, default=None), len(held))


def unarchived(conn: psycopg.Connection, snapshots: Collection[datetime],
               settings: Settings | None = None) -> list[datetime]:
    """Of ``snapshots`` (stored option snapshot times), those with a chain this warehouse's archive does
    not verifiably hold (``coverage.Depth.CONTENT``: each file verified as the restore verifies it,
    the rows it holds the stored rows): what retention must keep, as nothing fetches them again and
    a drop is for good.  Only the few snapshots leaving the window are read.  All of them when the
    archive cannot be read."""
    if not snapshots:
        return []
    try:
        found = check(warehouse.reading(conn, settings), conn, coverage.Depth.CONTENT, Window.only(snapshots))
    except KapManError as exc:
        log.warning("the options archive cannot be read (%s); keeping every snapshot it should hold", exc.message)
        return sorted(snapshots)
    return sorted(found.problems)


def archived_snapshot_count(conn: psycopg.Connection, settings: Settings | None = None) -> int:
    """How many of this database's option snapshots (distinct time and underlying) the archive
    verifiably holds (``coverage.Depth.FILES``: the file present with the manifest's SHA-256, the
    stored rows' count and latest update as the manifest lists them): what the rebuild's
    confirmation subtracts from what it would destroy for good.  An
    archive that cannot be read holds none (the prompt then errs on the side of warning)."""
    try:  # without settings: this connection's database is the warehouse
        found = check(settings or warehouse.reading(conn), conn, coverage.Depth.FILES)
    except KapManError as exc:
        log.warning("the options archive cannot be read (%s); counting none of its snapshots", exc.message)
        return 0
    if found.uncovered:
        log.warning("%s", found.line())
    return found.covered
