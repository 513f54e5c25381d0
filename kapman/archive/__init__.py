"""The options snapshot archive: what ``options_chains`` stores, kept outside the database.

A snapshot cannot be fetched again once its day has passed, and a repave destroys the database:
every options run therefore also writes what it stored to the archive (``archive_run``), and a
rebuilt database is loaded back from it (``restore.run``).  Layout: ``kapman.archive.manifest``;
stores (a directory or an S3 prefix): ``kapman.archive.store``.
"""

from __future__ import annotations

from datetime import datetime

from kapman.archive.export import ExportReport, export_snapshots
from kapman.archive.inventory import Census, archived_snapshot_count, count_snapshots
from kapman.archive.store import ArchiveError
from kapman.config import Settings

__all__ = ["ArchiveError", "Census", "ExportReport", "archive_run", "archived_snapshot_count", "count_snapshots",
           "export_snapshots"]


def archive_run(settings: Settings, snapshot: datetime) -> ExportReport:
    """The options run's hook, called once its writes are committed: archive ``snapshot`` as
    stored (and any stored snapshot the archive lacks).  Never raises for the archive's sake."""
    return export_snapshots(settings, [snapshot])
