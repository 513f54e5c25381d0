"""Retention never drops an option snapshot the archive does not hold: nothing fetches it again.

KapMan's own retention (the Apache edition, and paused policies on a frozen clock) keeps every chunk
from the oldest such snapshot on, says so in its line, and drops them once they are archived."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kapman import archive
from kapman.archive import manifest, table, warehouse
from kapman.archive.export import parquet_bytes
from kapman.clock import ny_date_of
from kapman.config import Settings
from kapman.db import lifecycle, retention
from tests.support import database

pytestmark = pytest.mark.integration

TICKER = "00000000-0000-0000-0000-000000000001"
OLD = [datetime(2023, 11, 1, 21, tzinfo=UTC), datetime(2023, 11, 15, 21, tzinfo=UTC),
       datetime(2023, 12, 1, 21, tzinfo=UTC)]          # each in a 7-day chunk wholly before the cutoff
RECENT = datetime(2025, 12, 19, 21, tzinfo=UTC)
TODAY = date(2025, 12, 19)                              # cutoff 2023-12-20
NOW = datetime(2025, 12, 19, 22, tzinfo=UTC)


@pytest.fixture
def warehouse_url(new_rebuilt_db: database.NewRebuiltDb, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Iterator[str]:
    """Old and recent snapshots and bars, on a frozen clock (KapMan enforces the windows on either
    edition), with an archive directory of its own."""
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19")
    monkeypatch.setenv("KAPMAN_ARCHIVE_DIR", str(tmp_path / "archive"))
    with new_rebuilt_db("keep_") as url:
        with psycopg.connect(url) as c:
            c.execute("""INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume)
                         SELECT %s, d::date, 1, 1, 1, 1, 1
                         FROM generate_series(date '2023-10-02', date '2025-12-19', interval '1 day') d""",
                      (TICKER,))
            for snapshot in (*OLD, RECENT):
                c.execute("""INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price,
                             option_type, contract_symbol)
                             SELECT %s, %s, %s::date + 30, s, 'C', 'O:T' || s
                             FROM generate_series(100, 104) s""", (snapshot, TICKER, snapshot))
        yield url


def _snapshots(conn: psycopg.Connection) -> list[datetime]:
    return [r[0] for r in conn.execute("SELECT DISTINCT time FROM options_chains ORDER BY 1")]


def _archive_all(conn: psycopg.Connection, url: str) -> Path:
    """Every stored snapshot archived, as an options run's catch-up does."""
    report = archive.export_snapshots(replace(warehouse.reading(conn), database_url=url), [])
    assert report.ok and report.error is None
    return Path(report.location)


def test_snapshots_the_archive_lacks_are_kept_and_said(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as c:
        report = retention.enforce_retention(c, today=TODAY)
        assert report.kept == OLD
        assert _snapshots(c) == [*OLD, RECENT]
        assert not report.dropped["options_chains"]
        # the other tables keep their windows as before
        assert report.dropped["ohlcv"] and c.execute("SELECT min(date) FROM ohlcv").fetchone()[0] >= date(2023, 11, 20)
    line = report.describe()
    assert ("3 option snapshot(s) older than the window KEPT, oldest 2023-11-01: the archive does not hold them "
            "and nothing fetches them again") in line
    assert "--archive-only" in line


def test_archived_snapshots_go_with_the_window(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as c:
        _archive_all(c, warehouse_url)
        report = retention.enforce_retention(c, today=TODAY)
        assert report.kept == [] and len(report.dropped["options_chains"]) == 3
        assert _snapshots(c) == [RECENT]
    assert "KEPT" not in report.describe()


def test_one_damaged_archive_file_keeps_its_snapshot_and_every_chunk_after_it(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as c:
        root = _archive_all(c, warehouse_url)
        damaged = next((root / manifest.snapshot_dir(OLD[1])).glob("*.parquet"))
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0xFF                    # same size: only its hash tells
        damaged.write_bytes(bytes(data))
        report = retention.enforce_retention(c, today=TODAY)
        assert report.kept == [OLD[1]]
        assert _snapshots(c) == [OLD[1], OLD[2], RECENT]   # the older, archived one went; the later stays
        assert len(report.dropped["options_chains"]) == 1
        # what the KEPT line names repairs it: --archive-only reads every file, and rewrites this one
        repaired = archive.export_snapshots(replace(warehouse.reading(c), database_url=warehouse_url), [],
                                            everything=True)
        assert repaired.ok and repaired.caught_up == [OLD[1].isoformat()] and repaired.files == 1
        assert retention.enforce_retention(c, today=TODAY).kept == [] and _snapshots(c) == [RECENT]


def test_a_file_whose_manifest_was_edited_to_other_rows_keeps_its_snapshot(warehouse_url: str) -> None:
    """The file's SHA-256, size and even content hash edited to match other rows: only the rows it
    holds, compared with the stored ones, tell that the archive does not hold the snapshot."""
    with psycopg.connect(warehouse_url, autocommit=True) as c:
        root = _archive_all(c, warehouse_url)
        m = manifest.Manifest.from_bytes((root / manifest.manifest_key(OLD[1])).read_bytes())
        name, entry = next(iter(m.files.items()))
        rows, symbol = table.from_file(pq.read_table(root / manifest.snapshot_dir(OLD[1]) / name))
        other = rows.set_column(rows.column_names.index("bid"), "bid", pa.array([1.0] * rows.num_rows, pa.float64()))
        blob = parquet_bytes(table.to_file(other, entry.ticker_id, symbol))
        (root / manifest.snapshot_dir(OLD[1]) / name).write_bytes(blob)
        m.files[name] = replace(entry, size=len(blob), sha256=hashlib.sha256(blob).hexdigest(),
                                content=table.content_hash(table.to_payload(other)))
        (root / manifest.manifest_key(OLD[1])).write_bytes(m.to_bytes())
        report = retention.enforce_retention(c, today=TODAY)
        assert report.kept == [OLD[1]] and _snapshots(c) == [OLD[1], OLD[2], RECENT]
        repaired = archive.export_snapshots(replace(warehouse.reading(c), database_url=warehouse_url), [],
                                            everything=True)
        assert repaired.ok and repaired.caught_up == [OLD[1].isoformat()] and repaired.replaced == 1
        assert retention.enforce_retention(c, today=TODAY).kept == [] and _snapshots(c) == [RECENT]


def test_an_archive_that_cannot_be_read_keeps_them_all(warehouse_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_directory = tmp_path / "archive-file"
    not_a_directory.write_text("x")
    monkeypatch.setenv("KAPMAN_ARCHIVE_DIR", str(not_a_directory))
    with psycopg.connect(warehouse_url, autocommit=True) as c:
        report = retention.enforce_retention(c, today=TODAY)
        assert report.kept == OLD and _snapshots(c) == [*OLD, RECENT]


# --- status: how close the oldest unarchived snapshot is to the window's end ------------------------

def _chain(conn: psycopg.Connection, snapshot: datetime) -> None:
    conn.execute("""INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price, option_type,
                    contract_symbol) VALUES (%s, %s, %s::date + 30, 100, 'C', 'O:T')""",
                 (snapshot, TICKER, snapshot))


def _archive_check(conn: psycopg.Connection, tmp_path: Path, now: datetime) -> tuple[str, str]:
    from kapman.ops import status

    check = status.archive(conn, Settings(database_url="", archive_location=str(tmp_path / "empty")), now)
    assert check is not None
    return check.verdict.name, check.summary


def test_status_says_when_kapmans_retention_keeps_an_unarchived_snapshot_past_the_window(
        db: psycopg.Connection, tmp_path: Path) -> None:
    lifecycle.record_clock(db, lifecycle.Clock("frozen", NOW))     # KapMan enforces the window
    _chain(db, OLD[0])
    verdict, summary = _archive_check(db, tmp_path, NOW)
    assert verdict == "WARN"
    assert summary.endswith("1 stored snapshots are NOT archived and would be lost; the oldest (2023-11-01) leaves "
                            "the 730-day window on 2025-10-31; KapMan's retention keeps it until it is archived")


@pytest.mark.community
def test_status_fails_a_month_before_the_retention_policy_drops_an_unarchived_snapshot(
        db: psycopg.Connection, tmp_path: Path) -> None:
    """The community edition on real time: the policy drops on the server's schedule, whatever the
    archive holds; status warns, and fails once the oldest unarchived snapshot has a month left."""
    now = datetime.now(UTC)
    assert lifecycle.read_clock(db).policies_scheduled
    _chain(db, now - timedelta(days=100))
    verdict, summary = _archive_check(db, tmp_path, now)
    assert verdict == "WARN" and summary.endswith("when the retention policy drops it")
    _chain(db, now - timedelta(days=710))
    verdict, summary = _archive_check(db, tmp_path, now)
    leaves = ny_date_of(now - timedelta(days=710) + timedelta(days=730))
    assert verdict == "FAIL"
    assert summary.endswith(f"the oldest ({ny_date_of(now - timedelta(days=710))}) leaves the 730-day window "
                            f"on {leaves}, when the retention policy drops it for good")
