"""The archive an options run writes while it runs (kapman.archive.live), against the real database:
files written as the run commits, a replay that changes an archived snapshot, an interruption and
a failing store that leave the snapshot to the next run, a chain a rerun emptied."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from kapman import archive
from kapman.archive import manifest as mf
from kapman.archive import restore
from kapman.archive.live import LiveExport
from kapman.archive.store import ArchiveError, LocalStore
from kapman.config import Settings
from kapman.step import Outcome
from tests.integration.test_options_archive import digest
from tests.support.hydrate import SNAPSHOTS, hydrate

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("hydrated_clock")]

FIRST, SECOND = sorted(SNAPSHOTS)


@pytest.fixture
def hydrated(fresh_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        yield conn


def underlyings(conn: psycopg.Connection, snapshot: datetime) -> list[UUID]:
    return [r[0] for r in conn.execute("SELECT DISTINCT ticker_id FROM options_chains WHERE time = %s ORDER BY 1",
                                       (snapshot,)).fetchall()]


def wait_for(path: Path, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return path.exists()


def test_each_underlying_is_archived_as_it_commits(fresh_db: str, hydrated: psycopg.Connection,
                                                   tmp_path: Path) -> None:
    root = tmp_path / "archive"
    settings = Settings(database_url=fresh_db, archive_location=str(root))
    ids = underlyings(hydrated, SECOND)
    live = LiveExport(settings, SECOND)
    for ticker_id in ids:
        live.committed(ticker_id, changed=True)
    files = [root / mf.snapshot_dir(SECOND) / mf.file_name(t) for t in ids]
    assert all(wait_for(f) for f in files)  # written while the "run" is still going: before close
    assert not (root / mf.manifest_key(SECOND)).exists()  # listed only once the run has ended
    report = live.close()
    assert report.ok, report.line()
    stored = hydrated.execute("SELECT count(*) FROM options_chains WHERE time = %s", (SECOND,)).fetchone()[0]
    listed = mf.Manifest.from_bytes((root / mf.manifest_key(SECOND)).read_bytes())
    assert sorted(e.ticker_id for e in listed.files.values()) == ids and listed.rows == stored == 52
    assert report.caught_up == [FIRST.isoformat()] and report.snapshots == 2  # the earlier one, caught up
    assert report.files == 5 and report.rows == 40 + 40 + 12 + 40 + 12 and report.overlapped > 0
    assert live.close() is report  # closing twice changes nothing

    before = digest(hydrated)
    hydrated.execute("TRUNCATE options_chains")
    result = restore.run(settings, restore.RestoreParams())
    assert result.outcome is Outcome.OK and digest(hydrated) == before


def test_a_replay_withdraws_the_manifest_and_an_interruption_leaves_it_to_the_next_run(
        fresh_db: str, hydrated: psycopg.Connection, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    settings = Settings(database_url=fresh_db, archive_location=str(root))
    assert archive.export_snapshots(settings, []).ok
    key = root / mf.manifest_key(SECOND)
    changed, same = underlyings(hydrated, SECOND)
    hydrated.execute("UPDATE options_chains SET bid = bid + 0.01, updated_at = now() "
                     "WHERE time = %s AND ticker_id = %s", (SECOND, changed))

    live = LiveExport(settings, SECOND)
    live.committed(same, changed=False)    # a rerun's unchanged chain leaves the manifest true
    assert key.exists()
    live.committed(changed, changed=True)  # the table no longer holds what the manifest lists
    assert not key.exists()
    live.abandon()                         # Ctrl-C: no manifest for a snapshot the run changed
    assert not key.exists()
    census = archive.count_snapshots(settings)
    assert (census.stored, census.archived, census.stored_not_archived) == (2, 1, 1)

    report = archive.export_snapshots(settings, [])  # the next options run's catch-up
    assert report.ok and report.caught_up == [SECOND.isoformat()]
    before = digest(hydrated)
    hydrated.execute("TRUNCATE options_chains")
    assert restore.run(settings, restore.RestoreParams()).outcome is Outcome.OK
    assert digest(hydrated) == before  # the replay's updated rows, not the first run's


def test_a_chain_a_rerun_emptied_leaves_the_manifest(fresh_db: str, hydrated: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    root = tmp_path / "archive"
    settings = Settings(database_url=fresh_db, archive_location=str(root))
    assert archive.export_snapshots(settings, []).ok
    emptied, kept = underlyings(hydrated, SECOND)
    hydrated.execute("DELETE FROM options_chains WHERE time = %s AND ticker_id = %s", (SECOND, emptied))
    live = LiveExport(settings, SECOND)
    live.committed(emptied, changed=True)
    report = live.close()
    assert report.ok and (report.files, report.unchanged) == (1, 1)  # the other one checked, not rewritten
    listed = mf.Manifest.from_bytes((root / mf.manifest_key(SECOND)).read_bytes())
    assert [e.ticker_id for e in listed.files.values()] == [kept]


def test_a_store_that_fails_mid_run_keeps_the_rows_and_the_next_run_archives_them(
        fresh_db: str, hydrated: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "archive"
    settings = Settings(database_url=fresh_db, archive_location=str(root))
    before = digest(hydrated)
    real_put, puts = LocalStore.put, []

    def put_then_fail(self: LocalStore, key: str, data: bytes) -> None:
        puts.append(key)
        if len(puts) > 1:
            raise ArchiveError(f"cannot write {self.root / key}: No space left on device")
        real_put(self, key, data)

    monkeypatch.setattr(LocalStore, "put", put_then_fail)
    live = LiveExport(settings, SECOND)
    for ticker_id in underlyings(hydrated, SECOND):
        live.committed(ticker_id, changed=True)
    report = live.close()
    assert not report.ok and "No space left on device" in report.line()
    assert "the database write is kept" in report.line() and "the next options run archives it" in report.line()
    assert not (root / mf.manifest_key(SECOND)).exists() and digest(hydrated) == before

    monkeypatch.setattr(LocalStore, "put", real_put)
    again = archive.export_snapshots(settings, [])
    assert again.ok and sorted(again.caught_up) == sorted(s.isoformat() for s in SNAPSHOTS)


def test_an_archive_that_cannot_be_opened_says_so_and_takes_nothing(fresh_db: str, hydrated: psycopg.Connection,
                                                                    tmp_path: Path) -> None:
    live = LiveExport(Settings(database_url=fresh_db, archive_location="ftp://example/x"), SECOND)
    live.committed(underlyings(hydrated, SECOND)[0], changed=True)  # ignored: there is no archive
    report = live.close()
    assert not report.ok and "only directories and s3:// URLs" in report.line()
