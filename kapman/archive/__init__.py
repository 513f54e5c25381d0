"""The options snapshot archive: what ``options_chains`` stores, kept outside the database.

A snapshot cannot be fetched again once its day has passed, and a repave destroys the database:
every options run therefore also writes what it stores to the archive as it goes (``archive_run``), and a
rebuilt database is loaded back from it (``restore.run``).  Layout: ``kapman.archive.manifest``;
stores (a directory or an S3 prefix): ``kapman.archive.store``; whose archive it is:
``kapman.archive.warehouse``; what it verifiably holds: ``kapman.archive.coverage``.
"""

from __future__ import annotations

from datetime import datetime

from kapman.archive.export import ExportReport, export_snapshots
from kapman.archive.inventory import Census, archived_snapshot_count, count_snapshots
from kapman.archive.live import LiveExport
from kapman.archive.store import ArchiveError
from kapman.config import Settings

__all__ = ["ArchiveError", "Census", "ExportReport", "LiveExport", "archive_run", "archived_snapshot_count",
           "count_snapshots", "export_snapshots"]


def archive_run(settings: Settings, snapshot: datetime) -> LiveExport:
    """The options run's archive of ``snapshot``, fed as the run commits each underlying and closed
    after it (``kapman.archive.live``).  Never raises for the archive's sake."""
    return LiveExport(settings, snapshot)
