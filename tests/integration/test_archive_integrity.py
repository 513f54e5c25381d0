"""The archive bound to its warehouse and checked by content, against the real database: files read
without KapMan, another warehouse's (or a sandbox's) archive refused, coverage counted only where
verified, catch-up of what a run did not archive, restore refusing a file that is not its entry's,
and an S3 endpoint that never answers."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kapman import archive
from kapman.archive import manifest as mf
from kapman.archive import restore, store, table
from kapman.archive.coverage import Depth
from kapman.archive.export import parquet_bytes
from kapman.config import Settings
from kapman.db import destruction
from kapman.errors import UsageError
from kapman.ids import ticker_id
from kapman.step import Outcome
from tests.integration.test_options_archive import digest
from tests.support.hydrate import SNAPSHOTS, hydrate

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("hydrated_clock")]

FIRST, SECOND = sorted(SNAPSHOTS)
SANDBOX_URL = "http://127.0.0.1:9"


@pytest.fixture
def hydrated(fresh_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        yield conn


def settings_for(url: str, root: Path | str, **extra: Any) -> Settings:
    return Settings(database_url=url, archive_location=str(root), **extra)


def manifest_of(root: Path, snapshot) -> mf.Manifest:  # type: ignore[no-untyped-def]
    return mf.Manifest.from_bytes((root / mf.manifest_key(snapshot)).read_bytes())


def relist(root: Path, m: mf.Manifest, name: str, blob: bytes, **changes: object) -> None:
    """Write ``blob`` as file ``name`` and make the manifest list it (size and SHA-256)."""
    (root / m.key(name)).write_bytes(blob)
    m.files[name] = dataclasses.replace(m.files[name], size=len(blob), sha256=hashlib.sha256(blob).hexdigest(),
                                        **changes)
    (root / mf.manifest_key(m.snapshot_time)).write_bytes(m.to_bytes())


def test_files_read_without_kapman_and_manifests_name_the_warehouse(fresh_db: str, hydrated: psycopg.Connection,
                                                                    tmp_path: Path) -> None:
    root = tmp_path / "archive"
    assert archive.export_snapshots(settings_for(fresh_db, root), []).ok
    m = manifest_of(root, FIRST)
    server = urlsplit(fresh_db)       # the test server's own address, whichever edition serves the suite
    assert m.warehouse == f"{server.path.lstrip('/')}@{server.hostname}:{server.port or 5432}" and m.source == "live"
    aapl = mf.file_name(ticker_id("AAPL"))
    assert m.files[aapl].symbol == "AAPL" and len(m.files[aapl].content or "") == 64
    frame = pd.read_parquet(root / m.key(aapl))  # pandas and pyarrow alone
    assert len(frame) == 40 and set(frame["symbol"]) == {"AAPL"} and set(frame["ticker_id"]) == {
        str(ticker_id("AAPL"))}
    stored = hydrated.execute("SELECT sum(bid), count(delta) FROM options_chains WHERE time = %s AND ticker_id = %s",
                              (FIRST, ticker_id("AAPL"))).fetchone()
    assert stored is not None and frame["bid"].sum() == pytest.approx(stored[0]) and frame["delta"].count() == stored[1]
    every = pq.read_table(root / "options_chains")  # the whole archive as one hive-partitioned data set
    assert every.num_rows == digest(hydrated)[0] and "symbol" in every.column_names
    try:
        import duckdb
    except ImportError:
        return
    got = duckdb.sql(f"SELECT symbol, count(*) FROM read_parquet('{root}/options_chains/*/*/*.parquet') "
                     "GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("AAPL", 80), ("MSFT", 40), ("SPY", 24)]


def test_restore_refuses_another_warehouses_and_a_sandbox_archive_unless_named(
        fresh_db: str, hydrated: psycopg.Connection, tmp_path: Path) -> None:
    before = digest(hydrated)
    other, sandbox = tmp_path / "other", tmp_path / "sandbox"
    assert archive.export_snapshots(settings_for(fresh_db, other, warehouse="demo"), []).ok
    assert archive.export_snapshots(settings_for(fresh_db, sandbox, polygon_base_url=SANDBOX_URL), []).ok
    hydrated.execute("TRUNCATE options_chains")
    here = settings_for(fresh_db, other)
    with pytest.raises(UsageError) as refused:
        restore.run(here, restore.RestoreParams())
    assert "holds snapshots of warehouse demo (live); this is warehouse " in refused.value.message
    assert "nothing restored" in refused.value.message and "--from-warehouse demo" in (refused.value.hint or "")
    assert refused.value.message.endswith(f"nothing restored (the first: {mf.snapshot_dir(FIRST)})")
    with pytest.raises(UsageError, match=r"warehouse kapman_test_\S+ \(sandbox\); this is .* \(live\)"):
        restore.run(settings_for(fresh_db, sandbox), restore.RestoreParams())
    assert hydrated.execute("SELECT count(*) FROM options_chains").fetchone() == (0,)
    # the same archive into the sandbox warehouse it came from: restored
    ok = restore.run(settings_for(fresh_db, sandbox, polygon_base_url=SANDBOX_URL), restore.RestoreParams())
    assert ok.outcome is Outcome.OK and digest(hydrated) == before
    hydrated.execute("TRUNCATE options_chains")
    named = restore.run(here, restore.RestoreParams(from_warehouse="demo"))
    assert named.outcome is Outcome.OK and digest(hydrated) == before
    # an archive this warehouse wrote is never overwritten by another's export
    clash = archive.export_snapshots(settings_for(fresh_db, other), [])
    assert not clash.ok and "belongs to warehouse demo" in clash.line()
    assert "the next options run archives it" not in clash.line()   # no run will: it promised one would


def test_a_sandbox_snapshot_under_this_warehouses_name_is_not_mixed_in_by_naming_it(
        fresh_db: str, hydrated: psycopg.Connection, tmp_path: Path) -> None:
    """A live warehouse's archive that also holds a sandbox snapshot filed under its name (the
    sandbox once ran against a database of the same name): the refusal's hint named this very
    warehouse, and --from-warehouse with it restored the sandbox's synthetic chains into live."""
    root = tmp_path / "archive"
    here = settings_for(fresh_db, root)
    assert archive.export_snapshots(here, []).ok
    m = manifest_of(root, FIRST)
    (root / mf.manifest_key(FIRST)).write_bytes(dataclasses.replace(m, source="sandbox").to_bytes())
    own = m.warehouse
    hydrated.execute("TRUNCATE options_chains")
    with pytest.raises(UsageError) as refused:
        restore.run(here, restore.RestoreParams())
    assert f"holds snapshots of warehouse {own} (sandbox); this is warehouse {own} (live)" in refused.value.message
    hint = refused.value.hint or ""
    assert f"--from-warehouse {own}" not in hint and f"snapshot of {FIRST:%Y-%m-%d %H:%M} UTC" in hint
    with pytest.raises(UsageError, match="nothing restored"):
        restore.run(here, restore.RestoreParams(from_warehouse=own))
    assert hydrated.execute("SELECT count(*) FROM options_chains").fetchone() == (0,)
    later = restore.run(here, restore.RestoreParams(start=SECOND.date()))   # the dates around it, as the hint says
    assert later.outcome is Outcome.OK
    assert hydrated.execute("SELECT DISTINCT time FROM options_chains").fetchall() == [(SECOND,)]


def test_status_names_the_mend_when_another_warehouse_holds_the_snapshots(
        fresh_db: str, hydrated: psycopg.Connection, tmp_path: Path) -> None:
    """Two warehouses sharing one KAPMAN_ARCHIVE_DIR: status named --archive-only, which refuses to
    overwrite the other warehouse's manifests (exit 2) and so never mended the warning."""
    from kapman.ops import status
    from kapman.ops.checks import Verdict

    shared = tmp_path / "shared"
    assert archive.export_snapshots(settings_for(fresh_db, shared, warehouse="demo"), []).ok
    here = settings_for(fresh_db, shared)
    assert not archive.export_snapshots(here, []).ok          # what --archive-only does here
    check = status.archive(hydrated, here)
    assert check is not None and check.verdict is Verdict.WARN
    assert check.details["held_by_others"] == ["demo"] and check.details["not_archived"] == 2
    assert check.summary.endswith("would be lost: the archive holds those snapshots under warehouse demo")
    assert (check.fix or "").startswith("if demo is this database under another host name, set KAPMAN_WAREHOUSE=demo; "
                                        "else give this warehouse an archive of its own: set KAPMAN_ARCHIVE_DIR")
    named = status.archive(hydrated, settings_for(fresh_db, shared, warehouse="demo"))   # the first fix
    assert named is not None and named.verdict is Verdict.OK
    own = settings_for(fresh_db, tmp_path / "own")              # the fix, followed
    assert archive.export_snapshots(own, []).ok
    mended = status.archive(hydrated, own)
    assert mended is not None and mended.verdict is Verdict.OK and mended.details["held_by_others"] == []


def test_status_counts_the_snapshots_another_warehouse_holds(
        fresh_db: str, hydrated: psycopg.Connection, tmp_path: Path) -> None:
    """Another warehouse's manifest for one stored snapshot, none for the other: status said the
    archive held both ("those snapshots") under the other warehouse."""
    from kapman.ops import status
    from kapman.ops.checks import Verdict

    shared = tmp_path / "shared"
    assert archive.export_snapshots(settings_for(fresh_db, shared, warehouse="demo"), [FIRST], catch_up=False).ok
    check = status.archive(hydrated, settings_for(fresh_db, shared))
    assert check is not None and check.verdict is Verdict.WARN
    assert check.details["held_by_others"] == ["demo"] and check.details["not_archived"] == 2
    assert check.summary.endswith("2 stored snapshots are NOT archived and would be lost: the archive holds 1 of "
                                  "them under warehouse demo"), check.summary


def test_restore_before_tickers_exist_is_refused(fresh_db: str, hydrated: psycopg.Connection, tmp_path: Path) -> None:
    """'nothing is ingested before tickers exist (the ingesters refuse)': a restore into a database
    repaved without Step 3 wrote every row, each naming a ticker the table did not hold."""
    settings = settings_for(fresh_db, tmp_path / "archive")
    assert archive.export_snapshots(settings, []).ok
    hydrated.execute("TRUNCATE options_chains, tickers")
    with pytest.raises(UsageError, match="public.tickers is empty: option snapshots cannot be restored") as info:
        restore.run(settings, restore.RestoreParams())
    assert "ingest_tickers" in (info.value.hint or "")
    assert hydrated.execute("SELECT count(*) FROM options_chains").fetchone() == (0,)


def test_the_repave_prompt_counts_only_verified_chains(fresh_db: str, hydrated: psycopg.Connection,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "archive"
    settings = settings_for(fresh_db, root)
    assert archive.export_snapshots(settings, []).ok
    assert archive.archived_snapshot_count(hydrated, settings) == 5
    m = manifest_of(root, FIRST)
    (root / m.key(mf.file_name(ticker_id("AAPL")))).unlink()
    (root / m.key(mf.file_name(ticker_id("MSFT")))).write_bytes(b"garbage" * 100)
    assert archive.archived_snapshot_count(hydrated, settings) == 3
    monkeypatch.setenv("KAPMAN_ARCHIVE_DIR", str(root))
    loss = destruction.measure(fresh_db, "x", exists=True, archived=archive.archived_snapshot_count)
    assert (loss.snapshots, loss.archived, loss.irreplaceable) == (5, 3, 2)
    assert (loss.snapshots, loss.snapshot_times) == (5, 2)   # status counts the 2 snapshots, the chains are 5
    assert loss.lines()[-1] == ("  2 of 5 option chains (2 snapshots, a chain per symbol) cannot be fetched again "
                                "(the archive holds 3)")
    # rows changed in the table after they were archived: same count, another content
    hydrated.execute("UPDATE options_chains SET bid = bid + 0.01 WHERE time = %s AND ticker_id = %s",
                     (SECOND, ticker_id("SPY")))
    found = archive.inventory.check(settings, hydrated, Depth.CONTENT)
    assert found.covered == 2 and found.problems[SECOND] == {ticker_id("SPY"): "content differs"}
    assert found.reasons() == {"content differs": 1, "file damaged": 1, "file missing": 1}
    # the catch-up rewrites what is missing or differs, and everything is verified again
    report = archive.export_snapshots(settings, [SECOND])
    assert report.ok and report.caught_up == [FIRST.isoformat()]
    assert archive.archived_snapshot_count(hydrated, settings) == 5


def test_catch_up_archives_chains_a_run_left_out(fresh_db: str, hydrated: psycopg.Connection,
                                                 tmp_path: Path) -> None:
    root = tmp_path / "archive"
    settings = settings_for(fresh_db, root)
    spy = ticker_id("SPY")
    kept = hydrated.execute("SELECT * FROM options_chains WHERE time = %s AND ticker_id = %s", (FIRST, spy)).fetchall()
    hydrated.execute("DELETE FROM options_chains WHERE time = %s AND ticker_id = %s", (FIRST, spy))
    assert archive.export_snapshots(settings, []).ok  # both snapshots archived, the first without SPY
    with hydrated.cursor() as cur:  # SPY added to the archived snapshot by a run with --no-archive
        cur.executemany(f"INSERT INTO options_chains VALUES ({', '.join(['%s'] * len(kept[0]))})", kept)
    census = archive.count_snapshots(settings)
    assert (census.stored, census.archived, census.stored_not_archived) == (2, 2, 1)
    assert archive.archived_snapshot_count(hydrated, settings) == 4
    report = archive.export_snapshots(settings, [])
    assert report.ok and report.caught_up == [FIRST.isoformat()] and (report.files, report.unchanged) == (3, 2)
    assert mf.file_name(spy) in manifest_of(root, FIRST).files
    assert archive.archived_snapshot_count(hydrated, settings) == 5
    # a replay without the archive changed a chain in place (same rows, later updated_at)
    aapl = ticker_id("AAPL")
    hydrated.execute("UPDATE options_chains SET bid = bid + 0.01, updated_at = now() WHERE time = %s "
                     "AND ticker_id = %s", (SECOND, aapl))
    found = archive.inventory.check(settings, hydrated, Depth.ROWS)
    assert found.problems == {SECOND: {aapl: "rows differ: written since they were archived"}}
    report = archive.export_snapshots(settings, [])
    assert report.ok and report.caught_up == [SECOND.isoformat()] and (report.files, report.unchanged) == (2, 1)
    assert archive.archived_snapshot_count(hydrated, settings) == 5


def test_restore_refuses_a_file_that_is_not_its_entrys(fresh_db: str, hydrated: psycopg.Connection,
                                                       tmp_path: Path) -> None:
    root = tmp_path / "archive"
    settings = settings_for(fresh_db, root)
    assert archive.export_snapshots(settings, []).ok
    aapl, spy = mf.file_name(ticker_id("AAPL")), mf.file_name(ticker_id("SPY"))
    first, second = manifest_of(root, FIRST), manifest_of(root, SECOND)
    # the first day's AAPL file under the second day, with an entry that matches it in every field
    day_one = (root / first.key(aapl)).read_bytes()
    relist(root, second, aapl, day_one, rows=first.files[aapl].rows, content=first.files[aapl].content)
    # SPY damaged before it was hashed: one delta written as 3.86e37, listed with its own checksum
    rows = pq.read_table(root / second.key(spy))
    delta = rows.column("delta").to_pylist()
    delta[3] = 3.86e37
    damaged = rows.set_column(rows.column_names.index("delta"), "delta", pa.array(delta, pa.float64()))
    relist(root, second, spy, parquet_bytes(damaged))
    hydrated.execute("TRUNCATE options_chains")

    result = restore.run(settings, restore.RestoreParams())
    reasons = {f.unit.rsplit("/", 1)[-1]: f.reason for f in result.failures}
    assert result.outcome is Outcome.PARTIAL and result.exit_code == 1 and result.done == 3
    assert reasons[aapl] == (f"rows of snapshot {FIRST.isoformat()}, manifest says {SECOND.isoformat()}")
    assert reasons[spy].startswith("implausible value (row 4: delta 3.86e+37 outside [-10, 10])")
    assert hydrated.execute("SELECT count(*) FROM options_chains WHERE time = %s", (SECOND,)).fetchone() == (0,)
    assert hydrated.execute("SELECT count(*) FROM options_chains WHERE time = %s", (FIRST,)).fetchone() == (92,)

    # values plausible but not the rows archived: the content hash says so
    bid = rows.column("bid").to_pylist()
    bid[0] = (bid[0] or 0) + 0.01
    changed = rows.set_column(rows.column_names.index("bid"), "bid", pa.array(bid, pa.float64()))
    relist(root, second, spy, parquet_bytes(changed))
    again = restore.run(settings, restore.RestoreParams(start=SECOND.date(), end=SECOND.date()))
    assert {f.unit.rsplit("/", 1)[-1]: f.reason for f in again.failures}[spy] == (
        "rows differ from those archived (content hash mismatch)")


def test_a_format_1_archive_is_restored_when_named(fresh_db: str, hydrated: psycopg.Connection,
                                                   tmp_path: Path) -> None:
    """Archives written before files carried a symbol: the table's schema and a 16-byte id."""
    root = tmp_path / "archive"
    assert archive.export_snapshots(settings_for(fresh_db, root), []).ok
    before = digest(hydrated)
    for snapshot in SNAPSHOTS:
        m = manifest_of(root, snapshot)
        old = {}
        for name, entry in m.files.items():
            rows, _ = table.from_file(pq.read_table(root / m.key(name)))
            blob = parquet_bytes(rows)
            (root / m.key(name)).write_bytes(blob)
            old[name] = {"ticker_id": str(entry.ticker_id), "rows": entry.rows, "bytes": len(blob),
                         "sha256": hashlib.sha256(blob).hexdigest()}
        import json
        (root / mf.manifest_key(snapshot)).write_text(json.dumps({
            "format": 1, "table": "options_chains", "snapshot_time": snapshot.isoformat(), "rows": m.rows,
            "files": old}))
    hydrated.execute("TRUNCATE options_chains")
    with pytest.raises(UsageError, match="no warehouse \\(an older archive\\)"):
        restore.run(settings_for(fresh_db, root), restore.RestoreParams())
    result = restore.run(settings_for(fresh_db, root), restore.RestoreParams(from_warehouse="any"))
    assert result.outcome is Outcome.OK and digest(hydrated) == before


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_s3_endpoint_costs_one_request_not_the_run(fresh_db: str, hydrated: psycopg.Connection,
                                                           silent_endpoint: str) -> None:
    client = store.open_store(settings_for(fresh_db, "s3://bucket/x", archive_endpoint=silent_endpoint))._client
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3.0, 10.0)
    assert client.meta.config.retries == {"total_max_attempts": 2, "mode": "standard"}
    started = time.monotonic()
    report = archive.export_snapshots(settings_for(fresh_db, "s3://bucket/x", archive_endpoint=silent_endpoint,
                                                   archive_access_key_id="k", archive_secret_access_key="s",
                                                   archive_read_timeout=1.0), [])
    took = time.monotonic() - started
    assert not report.ok and "cannot list s3://bucket/x" in report.line() and "timeout" in report.line().lower()
    assert took < 2 * (1.0 + 1) + 3, took  # two attempts of one read timeout, and no more requests


def test_a_one_symbol_run_with_a_silent_s3_archive_ends_in_seconds(fresh_db: str, reference_db: psycopg.Connection,
                                                                   rest: Any, silent_endpoint: str) -> None:
    """The run itself, as a process, with the archive's own timeouts: it stores the chain, says the
    archive was not written, and ends long before botocore's defaults would let it (minutes)."""
    env = {**os.environ, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
           "KAPMAN_NOW": "2025-12-19", "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_ARCHIVE_DIR": "s3://bucket/x",
           "KAPMAN_ARCHIVE_ENDPOINT": silent_endpoint, "KAPMAN_ARCHIVE_ACCESS_KEY_ID": "k",
           "KAPMAN_ARCHIVE_SECRET_ACCESS_KEY": "s", "KAPMAN_ARCHIVE_READ_TIMEOUT": "2"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "scripts.ingest_options", "--db-url", fresh_db, "--symbols", "DIA",
                           "--workers", "0"], capture_output=True, text=True, timeout=120, env=env)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "archive: NOT written, the database write is kept" in proc.stdout and "s3://bucket/x" in proc.stdout
    assert reference_db.execute("SELECT count(*) FROM options_chains").fetchone()[0] > 0  # type: ignore[index]
    # one listing: 2 attempts of the 2 s read timeout it was given (the defaults are checked above)
    assert 2 * 2 <= took < 20, took
