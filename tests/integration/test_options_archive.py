"""The options snapshot archive against the real database: export, repave, restore, bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from kapman import archive
from kapman.archive import manifest as mf
from kapman.archive import restore, table
from kapman.archive.export import parquet_bytes
from kapman.config import Settings
from kapman.db.rebuild import rebuild
from kapman.jobs import a3_dealer_metrics as a3
from kapman.step import Outcome
from tests.support.hydrate import DEALER_DAYS, SNAPSHOTS, hydrate

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("hydrated_clock")]

DIGEST = """SELECT count(*), md5(string_agg(t::text, '|' ORDER BY time, ticker_id, expiration_date, strike_price,
                                                           option_type)) FROM options_chains t"""
DEALER = """SELECT time, ticker_id, dealer_metrics_json FROM daily_snapshots
             WHERE dealer_metrics_json IS NOT NULL ORDER BY time, ticker_id"""


def digest(conn: psycopg.Connection) -> tuple:
    return conn.execute(DIGEST).fetchone()  # type: ignore[return-value]


def settings_for(url: str, location: str | Path, **extra: str) -> Settings:
    return Settings(database_url=url, archive_location=str(location), **extra)


def dealer_metrics(conn: psycopg.Connection) -> list[tuple]:
    a3.compute(conn, a3.A3Params(dates=list(DEALER_DAYS), force=True, workers=1))
    return conn.execute(DEALER).fetchall()


def repave(url: str) -> None:
    """Step 0-5 again: a rebuilt database with everything but the option snapshots."""
    rebuild(url)
    with psycopg.connect(url, autocommit=True) as conn:
        hydrate(conn)
        conn.execute("TRUNCATE options_chains, daily_snapshots")


@pytest.fixture
def hydrated(fresh_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        yield conn


def test_columns_are_the_tables(hydrated: psycopg.Connection) -> None:
    rows = hydrated.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                            "AND table_name = 'options_chains' ORDER BY ordinal_position").fetchall()
    assert tuple(r[0] for r in rows) == table.NAMES


def test_hydrate_archive_repave_restore_round_trip(fresh_db: str, hydrated: psycopg.Connection,
                                                    tmp_path: Path) -> None:
    settings = settings_for(fresh_db, tmp_path / "archive")
    before = digest(hydrated)
    dealer_before = dealer_metrics(hydrated)
    assert before[0] == 40 + 40 + 12 + 40 + 12 and len(dealer_before) > 0
    report = archive.export_snapshots(settings, [])  # catch-up: every stored snapshot
    assert report.ok, report.line()
    assert (report.snapshots, report.files, report.rows) == (2, 5, before[0])
    census = archive.count_snapshots(settings)
    assert (census.stored, census.archived, census.stored_not_archived) == (2, 2, 0)
    # the rebuild's confirmation counts (time, underlying) pairs: all 5 are archived
    assert archive.archived_snapshot_count(hydrated, settings) == 5
    assert archive.archived_snapshot_count(hydrated, settings_for(fresh_db, tmp_path / "none")) == 0

    repave(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert archive.count_snapshots(settings, conn).stored == 0
        result = restore.run(settings, restore.RestoreParams())
        assert result.outcome is Outcome.OK, result.summary()
        assert (result.done, result.written, result.unchanged, result.details.snapshots) == (5, before[0], 0, 2)
        assert digest(conn) == before
        assert dealer_metrics(conn) == dealer_before
        status = conn.execute("SELECT status, summary->'counts'->>'written' FROM ingest_runs "
                              "WHERE job = 'restore-options'").fetchall()
        assert status == [("ok", str(before[0]))]

        again = restore.run(settings, restore.RestoreParams())  # idempotent: nothing read, nothing written
        assert (again.outcome, again.read, again.written, again.unchanged) == (Outcome.OK, 0, 0, before[0])
        forced = restore.run(settings, restore.RestoreParams(force=True))  # read and merged: all unchanged
        assert (forced.read, forced.written, forced.unchanged) == (before[0], 0, before[0])
        assert digest(conn) == before

        # resumable: a restore stopped after some files writes only what is missing
        conn.execute("DELETE FROM options_chains WHERE time = %s", (max(SNAPSHOTS),))
        day = max(SNAPSHOTS).date()
        only = restore.run(settings, restore.RestoreParams(start=day, end=day))
        assert (only.done, only.written, only.details.snapshots) == (2, 40 + 12, 1)
        assert digest(conn) == before


def test_an_interrupt_while_a_file_commits_is_counted_with_it(fresh_db: str, hydrated: psycopg.Connection,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or SIGTERM) mostly reaches a restore while it waits for a file's commit: the ledger
    row counts that file and its rows, as the table holds them."""
    import signal

    settings = settings_for(fresh_db, tmp_path / "archive")
    assert archive.export_snapshots(settings, []).ok
    hydrated.execute("TRUNCATE options_chains")
    real_write = restore.write_payload
    writes = []

    def write(*args: Any) -> Any:
        counts = real_write(*args)
        writes.append(1)
        if len(writes) == 3:      # committed; the signal arrives before the restore has counted it
            os.kill(os.getpid(), signal.SIGINT)
        return counts

    monkeypatch.setattr(restore, "write_payload", write)
    with pytest.raises(KeyboardInterrupt):
        restore.run(settings, restore.RestoreParams())
    status, done, written = hydrated.execute(
        "SELECT status, summary->>'done', summary->'counts'->>'written' FROM ingest_runs "
        "WHERE job = 'restore-options'").fetchone()  # type: ignore[misc]
    files, rows = hydrated.execute("SELECT count(DISTINCT (time, ticker_id)), count(*) FROM options_chains").fetchone()  # type: ignore[misc]
    assert (status, int(done), int(written)) == ("interrupted", 3, rows) and files == 3


def test_a_snapshot_before_the_retention_window_stays_in_the_archive(fresh_db: str, hydrated: psycopg.Connection,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Restored, it was dropped again by the next run's retention (the archive keeps every snapshot for
    good; the warehouse keeps the window): it is left in the archive, and the run says so."""
    settings = settings_for(fresh_db, tmp_path / "archive")
    assert archive.export_snapshots(settings, []).ok
    repave(fresh_db)
    first, second = sorted(SNAPSHOTS)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("UPDATE hypertable_lifecycle SET drop_after = interval '1 day' "
                     "WHERE hypertable_name = 'options_chains'")
        monkeypatch.setenv("KAPMAN_NOW", "2025-12-20T22:00:00Z")   # options are kept from the 19th
        result = restore.run(settings, restore.RestoreParams())
        assert result.outcome is Outcome.OK and result.details.snapshots == 1, result.summary()
        said = ("1 archived snapshot(s) before the retention window (option snapshots are kept from 2025-12-19 "
                "by KapMan's clock) stay in the archive, not restored: retention would drop them again")
        assert said in result.notes
        assert conn.execute("SELECT DISTINCT time FROM options_chains").fetchall() == [(second,)]
        only_older = restore.run(settings, restore.RestoreParams(day=first.date()))
        assert only_older.outcome is Outcome.NOTHING and only_older.exit_code == 2
        assert said in only_older.summary()


def test_bad_files_are_named_and_skipped_the_rest_restored(fresh_db: str, hydrated: psycopg.Connection,
                                                            tmp_path: Path) -> None:
    root = tmp_path / "archive"
    settings = settings_for(fresh_db, root)
    assert archive.export_snapshots(settings, []).ok
    first, second = sorted(SNAPSHOTS)
    m1 = mf.Manifest.from_bytes((root / mf.manifest_key(first)).read_bytes())
    names = sorted(m1.files)                      # AAPL, MSFT, SPY of the first snapshot
    truncated, mismatched, wrong = (root / m1.key(n) for n in names)
    truncated.write_bytes(truncated.read_bytes()[:200])
    mismatched.write_bytes(mismatched.read_bytes() + b"x")
    # a readable Parquet file without one column, listed with its own checksum
    bad = pq.read_table(wrong).drop_columns(["vega"])
    blob = parquet_bytes(bad)
    wrong.write_bytes(blob)
    entry = m1.files[names[2]]
    m1.files[names[2]] = dataclasses.replace(entry, size=len(blob),
                                             sha256=hashlib.sha256(blob).hexdigest())
    (root / mf.manifest_key(first)).write_bytes(m1.to_bytes())
    good_manifest = (root / mf.manifest_key(second)).read_bytes()
    (root / mf.manifest_key(second)).write_bytes(b"{not json")

    hydrated.execute("TRUNCATE options_chains")
    result = restore.run(settings, restore.RestoreParams())
    assert result.outcome is Outcome.FAILED and result.exit_code == 2  # every file attempted failed
    reasons = {f.unit.rsplit("/", 1)[-1]: f.reason for f in result.failures}
    assert set(reasons) == {names[0], names[1], names[2], mf.MANIFEST}
    assert "checksum mismatch" in reasons[names[0]] and "checksum mismatch" in reasons[names[1]]
    assert "missing vega" in reasons[names[2]] and "unreadable manifest" in reasons[mf.MANIFEST]
    assert result.done == 0 and hydrated.execute("SELECT count(*) FROM options_chains").fetchone() == (0,)

    # the truncated file again, with a checksum that matches it: unreadable Parquet, the others restored
    m1 = mf.Manifest.from_bytes((root / mf.manifest_key(first)).read_bytes())
    data = truncated.read_bytes()
    m1.files[names[0]] = dataclasses.replace(m1.files[names[0]], size=len(data),
                                             sha256=hashlib.sha256(data).hexdigest())
    (root / mf.manifest_key(first)).write_bytes(m1.to_bytes())
    (root / mf.manifest_key(second)).write_bytes(good_manifest)
    result = restore.run(settings, restore.RestoreParams())
    reasons = {f.unit.rsplit("/", 1)[-1]: f.reason for f in result.failures}
    assert "unreadable Parquet" in reasons[names[0]] and set(reasons) == {names[0], names[1], names[2]}
    assert result.outcome is Outcome.PARTIAL and result.done == 2 and result.exit_code == 1
    assert hydrated.execute("SELECT count(*) FROM options_chains").fetchone() == (40 + 12,)


def test_an_archive_that_cannot_be_written_keeps_the_database_write(fresh_db: str, hydrated: psycopg.Connection,
                                                                    tmp_path: Path) -> None:
    before = digest(hydrated)
    missing = archive.export_snapshots(settings_for(fresh_db, tmp_path / "no" / "such" / "dir"), [])
    assert not missing.ok and "no/such/dir" in missing.line() and "database write is kept" in missing.line()
    a_file = tmp_path / "plain-file"
    a_file.write_text("")
    assert not archive.export_snapshots(settings_for(fresh_db, a_file), []).ok
    assert digest(hydrated) == before
    census = archive.count_snapshots(settings_for(fresh_db, tmp_path / "empty"))
    assert (census.stored, census.archived, census.stored_not_archived) == (2, 0, 2)
    assert "2 stored snapshots are NOT archived" in census.line()


@pytest.fixture
def s3() -> Iterator[dict[str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield {"archive_endpoint": f"http://{host}:{port}", "archive_access_key_id": "archive-key-id",
           "archive_secret_access_key": "archive-secret-key"}
    server.stop()


def test_s3_archive_round_trip_and_a_refused_bucket(fresh_db: str, hydrated: psycopg.Connection,
                                                    s3: dict[str, str]) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3["archive_endpoint"], region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="y").create_bucket(Bucket="kapman-archive")
    settings = settings_for(fresh_db, "s3://kapman-archive/warehouse/one", **s3)
    before = digest(hydrated)
    report = archive.export_snapshots(settings, [])
    assert report.ok and report.files == 5 and report.location == "s3://kapman-archive/warehouse/one"
    again = archive.export_snapshots(settings, [max(SNAPSHOTS)], catch_up=False)
    assert (again.files, again.unchanged) == (2, 2)  # the same bytes are not sent again
    refused = archive.export_snapshots(settings_for(fresh_db, "s3://no-such-bucket/x", **s3), [])
    assert not refused.ok and "NoSuchBucket" in refused.line() and "archive-secret-key" not in refused.line()

    repave(fresh_db)
    result = restore.run(settings, restore.RestoreParams())
    assert result.outcome is Outcome.OK and result.written == before[0]
    with psycopg.connect(fresh_db) as conn:
        assert digest(conn) == before


def test_restore_command_summary_json_and_nothing_archived(fresh_db: str, hydrated: psycopg.Connection,
                                                           tmp_path: Path) -> None:
    root = tmp_path / "archive"
    assert archive.export_snapshots(settings_for(fresh_db, root), []).ok
    hydrated.execute("TRUNCATE options_chains")
    env = {"KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_ARCHIVE_DIR": str(root), "PATH": "/usr/bin:/bin",
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    base = [sys.executable, "-m", "scripts.restore_options_archive", "--db-url", fresh_db]
    proc = subprocess.run(base + ["--start-date", "2025-12-18", "--end-date", "2025-12-18"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("restore-options: ok · 3 files of 1 snapshots") and "92 written" in proc.stdout
    proc = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=120, env=env)
    body = json.loads(proc.stdout)
    assert (body["status"], body["counts"]["written"], body["counts"]["unchanged"]) == ("ok", 52, 92)
    proc = subprocess.run(base + ["--date", "2024-01-02"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "no archived snapshots at" in proc.stdout


def test_every_options_run_archives_what_it_stored(fresh_db: str, reference_db: psycopg.Connection,
                                                   rest: Any, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    env = {**os.environ, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
           "KAPMAN_NOW": "2025-12-19", "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_ARCHIVE_DIR": str(root)}
    base = [sys.executable, "-m", "scripts.ingest_options", "--db-url", fresh_db, "--symbols", "DIA,ORCL",
            "--workers", "0", "--json"]

    def cli(*extra: str, **env_over: str) -> subprocess.CompletedProcess:
        return subprocess.run(base + list(extra), capture_output=True, text=True, timeout=120,
                              env={**env, **env_over})

    first = cli()
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    stored = reference_db.execute("SELECT count(*) FROM options_chains").fetchone()[0]  # type: ignore[index]
    assert body["archive"]["ok"] and body["archive"]["files"] == 2 and body["archive"]["rows"] == stored > 0
    key = mf.manifest_key(datetime.fromisoformat(body["snapshot_time"]))
    archived = mf.Manifest.from_bytes((root / key).read_bytes())
    assert archived.rows == stored
    written = (root / key).stat().st_mtime_ns

    skipped = cli("--no-archive", "--snapshot-time", "2025-12-19T21:00:00Z")
    assert skipped.returncode == 0 and "archive" not in json.loads(skipped.stdout)
    replay = cli("--snapshot-time", "2025-12-19T21:00:00Z")
    assert json.loads(replay.stdout)["archive"]["unchanged"] == 2  # same rows: same bytes, not rewritten
    assert (root / key).stat().st_mtime_ns == written

    refused = subprocess.run([a for a in base if a != "--json"], capture_output=True, text=True, timeout=120,
                             env={**env, "KAPMAN_ARCHIVE_DIR": str(tmp_path / "gone" / "archive")})
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "archive: NOT written, the database write is kept" in refused.stdout and "gone/archive" in refused.stdout
    assert reference_db.execute("SELECT count(*) FROM options_chains").fetchone()[0] == stored  # type: ignore[index]
    assert rest.api_key not in refused.stdout + refused.stderr
