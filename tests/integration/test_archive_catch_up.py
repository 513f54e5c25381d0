"""The options run's archive catch-up examines only the snapshots that could need archiving, against
the real database: on a warehouse with a long archived history it reads the chunks of the newest
snapshots and of the runs the ledger says did not archive, not the old ones; a restore widens it
to everything again; real options runs record in the ledger where the next catch-up starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kapman import archive
from kapman.archive import checkpoint, coverage
from kapman.archive import manifest as mf
from kapman.config import Settings
from kapman.db import runs
from kapman.ids import ticker_id
from kapman.step import StepResult
from tests.support.hydrate import SNAPSHOTS, hydrate

pytestmark = pytest.mark.integration

FIRST, SECOND = sorted(SNAPSHOTS)
#: Weekly snapshots before the hydrated ones: one 7-day chunk of options_chains each.
OLD = [FIRST - timedelta(days=7 * k) for k in range(1, 13)]


@pytest.fixture
def history(fresh_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        for when in OLD:
            copy_snapshot(conn, FIRST, when)
        yield conn


def copy_snapshot(conn: psycopg.Connection, source: datetime, to: datetime) -> None:
    """``source``'s chains stored again under ``to``."""
    columns = [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = 'options_chains' AND column_name <> 'time' ORDER BY ordinal_position").fetchall()]
    names = ", ".join(columns)
    conn.execute(f"INSERT INTO options_chains (time, {names}) SELECT %s, {names} FROM options_chains WHERE time = %s",
                 (to, source))


@dataclass
class Details:
    archive: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {"archive": self.archive} if self.archive is not None else {}


def options_run(url: str, snapshot: datetime, report: archive.ExportReport | None) -> None:
    """The ledger row an options run of ``snapshot`` leaves: with its archive report, or none
    (``--no-archive``)."""
    with runs.recorded(url, "options", {"archive": report is not None}, snapshot_time=snapshot) as run:
        run.result = StepResult("options", details=Details(report.as_dict() if report else None))


def chunks_read(conn: psycopg.Connection, scope: checkpoint.Window) -> set[str]:
    """The options_chains chunks the catch-up's aggregate reads for ``scope`` (its plans)."""
    seen: set[str] = set()
    real = conn.execute

    def explain(query: Any, params: Any = None, **kw: Any) -> Any:
        if isinstance(query, str) and query.startswith("SELECT time, ticker_id, count(*)"):
            plan = real("EXPLAIN (FORMAT JSON) " + query, params).fetchone()[0]
            seen.update(_relations(plan))
        return real(query, params, **kw)

    conn.execute = explain  # type: ignore[method-assign]
    try:
        coverage.stored_chains(conn, (), scope)
    finally:
        del conn.execute
    return {_compressed_holds(conn, name) for name in seen}


def _compressed_holds(conn: psycopg.Connection, name: str) -> str:
    """The chunk whose rows a relation holds: on the community edition a compressed chunk's rows
    live in an internal table of their own (``compress_hyper_*``), read in the chunk's place."""
    row = conn.execute("SELECT c.table_name FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.chunk z "
                       "ON z.id = c.compressed_chunk_id WHERE z.table_name = %s", (name,)).fetchone()
    return row[0] if row else name


def _relations(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Relation Name" in node:
            yield node["Relation Name"]
        for value in node.values():
            yield from _relations(value)
    elif isinstance(node, list):
        for value in node:
            yield from _relations(value)


def chunk_of(conn: psycopg.Connection, snapshot: datetime) -> str:
    return conn.execute("SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = "
                        "'options_chains' AND range_start <= %s AND %s < range_end", (snapshot, snapshot)).fetchone()[0]


def test_the_catch_up_reads_only_snapshots_that_could_need_archiving(fresh_db: str, history: psycopg.Connection,
                                                                      tmp_path: Path) -> None:
    root = tmp_path / "archive"
    settings = Settings(database_url=fresh_db, archive_location=str(root))
    # No run in the ledger has checked the archive yet: the first catch-up examines all 14 snapshots.
    assert checkpoint.window(history) == checkpoint.EVERYTHING
    first = archive.export_snapshots(settings, [])
    assert first.ok and first.examined == 14 and len(first.caught_up) == 14
    assert first.checked_through == SECOND and first.as_dict()["checked_through"] == SECOND.isoformat()
    options_run(fresh_db, SECOND, first)  # the run whose catch-up that was records it

    # Later: a run stores a new snapshot with --no-archive, and a replay of an old one (a symbol's
    # chain written again under its snapshot time) does not archive either.
    new, replayed = SECOND + timedelta(hours=1), OLD[5]
    copy_snapshot(history, SECOND, new)
    options_run(fresh_db, new, None)
    history.execute("UPDATE options_chains SET bid = bid + 0.01, updated_at = now() WHERE time = %s "
                    "AND ticker_id = %s", (replayed, ticker_id("SPY")))
    options_run(fresh_db, replayed, None)

    scope = checkpoint.window(history)
    assert scope == checkpoint.Window(SECOND, frozenset({new, replayed}))
    read = chunks_read(history, scope)
    wanted = {chunk_of(history, t) for t in (SECOND, new, replayed)}
    untouched = {chunk_of(history, t) for t in [*OLD, FIRST]} - wanted
    assert read == wanted and len(untouched) >= 10  # the old snapshots' chunks are not read

    report = archive.export_snapshots(settings, [])
    assert report.ok and report.examined == 3  # SECOND, the new one, the replayed one; not 15
    assert sorted(report.caught_up) == sorted([new.isoformat(), replayed.isoformat()])
    assert report.checked_through == new
    listed = mf.Manifest.from_bytes((root / mf.manifest_key(replayed)).read_bytes())
    assert listed.files[mf.file_name(ticker_id("SPY"))].updated == history.execute(
        "SELECT max(updated_at) FROM options_chains WHERE time = %s AND ticker_id = %s",
        (replayed, ticker_id("SPY"))).fetchone()[0]
    verified = archive.inventory.check(settings, history, coverage.Depth.FILES)  # every chain, every file
    assert (verified.snapshots, verified.chains, verified.uncovered) == (15, 43, 0)
    options_run(fresh_db, new, report)

    # The next catch-up looks at the newest snapshot alone.
    assert checkpoint.window(history) == checkpoint.Window(new, frozenset())
    again = archive.export_snapshots(settings, [])
    assert again.ok and again.examined == 1 and again.caught_up == []


def test_a_restore_since_the_last_check_widens_the_catch_up_to_everything(fresh_db: str, history: psycopg.Connection,
                                                                         tmp_path: Path) -> None:
    settings = Settings(database_url=fresh_db, archive_location=str(tmp_path / "archive"))
    report = archive.export_snapshots(settings, [])
    options_run(fresh_db, SECOND, report)
    assert checkpoint.window(history) == checkpoint.Window(SECOND, frozenset())
    # a restore may load another warehouse's snapshots (--from-warehouse), of any date
    with runs.recorded(fresh_db, "restore-options", {}) as run:
        run.result = StepResult("restore-options")
    assert checkpoint.window(history) == checkpoint.EVERYTHING
    summary = history.execute("SELECT summary FROM ingest_runs WHERE job = 'options'").fetchone()[0]
    assert json.loads(json.dumps(summary))["archive"]["checked_through"] == SECOND.isoformat()


def test_options_runs_record_what_their_catch_up_checked_and_the_next_starts_there(
        fresh_db: str, reference_db: psycopg.Connection, rest: Any, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    env = {**os.environ, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
           "KAPMAN_NOW": "2025-12-19", "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_ARCHIVE_DIR": str(root)}

    def run(*extra: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "scripts.ingest_options", "--db-url", fresh_db, "--symbols",
                               "DIA,ORCL", "--workers", "0", "--json", *extra], capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    first = run("--snapshot-time", "2025-12-19T20:00:00Z")
    assert first["archive"]["ok"] and first["archive"]["examined"] == 0  # nothing stored before it
    assert first["archive"]["checked_through"] == first["snapshot_time"]
    skipped = run("--no-archive", "--snapshot-time", "2025-12-19T19:00:00Z")  # older than the checkpoint
    assert "archive" not in skipped
    later = run()
    assert later["snapshot_time"] > first["snapshot_time"]
    # the first run's snapshot (the checkpoint) and the --no-archive run's, which the ledger names
    assert later["archive"]["examined"] == 2 and later["archive"]["caught_up"] == [skipped["snapshot_time"]]
    assert later["archive"]["checked_through"] == later["snapshot_time"]
    recorded = reference_db.execute("SELECT summary->'archive'->>'checked_through' FROM ingest_runs "
                                    "WHERE job = 'options' ORDER BY started_at DESC LIMIT 1").fetchone()
    assert recorded is not None and datetime.fromisoformat(recorded[0]) == datetime.fromisoformat(
        later["snapshot_time"])


def test_an_archive_moved_or_emptied_is_caught_up_by_the_next_run_and_by_archive_only(
        fresh_db: str, reference_db: psycopg.Connection, rest: Any, tmp_path: Path) -> None:
    """The checkpoint vouches for one archive: a run archiving elsewhere, or an archive that lost the
    checkpoint's manifest, examines every stored snapshot again; a complete session's rerun (nothing
    to fetch) still catches up; --archive-only does it without the API, and status names it."""
    reference_db.execute("UPDATE watchlists SET active = false WHERE symbol NOT IN ('DIA', 'ORCL')")
    first_root, moved = tmp_path / "first", tmp_path / "moved"

    def command(module: str, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "POLYGON_BASE_URL": rest.base_url, "POLYGON_API_KEY": rest.api_key,
               "KAPMAN_NOW": "2025-12-19", "KAPMAN_ENV_FILE": "/nonexistent", "KAPMAN_ARCHIVE_DIR": str(root)}
        return subprocess.run([sys.executable, "-m", module, "--db-url", fresh_db, *extra], capture_output=True,
                              text=True, timeout=120, env=env)

    def run(root: Path, *extra: str) -> dict[str, Any]:
        done = command("scripts.ingest_options", root, "--workers", "0", "--json", *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        return dict(json.loads(done.stdout))

    first = run(first_root)
    taken = datetime.fromisoformat(first["snapshot_time"])
    assert first["archive"]["ok"] and (first_root / mf.manifest_key(taken)).is_file()
    again = run(first_root)   # the session is complete: nothing fetched, the checkpoint's snapshot examined
    assert again["complete"] == "2025-12-19" and again["archive"]["examined"] == 1
    assert again["archive"]["caught_up"] == [] and again["archive"]["replaced"] == 0

    elsewhere = run(moved)   # KAPMAN_ARCHIVE_DIR moved: the old checkpoint says nothing of this archive
    assert elsewhere["archive"]["caught_up"] == [taken.isoformat()] and (moved / mf.manifest_key(taken)).is_file()

    for path in moved.rglob("*"):   # emptied (a disk replaced): the checkpoint's manifest is gone
        if path.is_file():
            path.unlink()
    told = command("scripts.status", moved).stdout   # (FAIL overall: this warehouse has no bars)
    assert "WARN  archive   1 option snapshots in the database, 0 in the archive" in told
    assert "fix: python -m scripts.ingest_options --archive-only" in told
    only = run(moved, "--archive-only")
    assert only["status"] == "ok" and only["archive"]["caught_up"] == [taken.isoformat()]
    assert (only["done"], only["unit"]) == (1, "snapshots")
    twice = command("scripts.ingest_options", moved, "--archive-only").stdout
    assert twice.startswith("options: ok · every stored snapshot checked against the archive: 1 examined, "
                            "0 archived now · ")
    assert "OK    archive   1 option snapshots in the database, 1 in the archive" in command("scripts.status",
                                                                                              moved).stdout
    verified = archive.inventory.check(Settings(database_url=fresh_db, archive_location=str(moved)), reference_db,
                                       coverage.Depth.FILES)
    assert (verified.snapshots, verified.uncovered) == (1, 0)
    refused = command("scripts.ingest_options", moved, "--archive-only", "--symbols", "DIA")
    assert refused.returncode == 2 and "--archive-only takes none of" in refused.stderr


def test_archived_files_whose_rows_changed_are_replaced_and_said_so(fresh_db: str, history: psycopg.Connection,
                                                                   tmp_path: Path) -> None:
    settings = Settings(database_url=fresh_db, archive_location=str(tmp_path / "archive"))
    assert archive.export_snapshots(settings, []).replaced == 0
    history.execute("UPDATE options_chains SET bid = bid + 0.01, updated_at = now() WHERE time = %s "
                    "AND ticker_id = %s", (SECOND, ticker_id("SPY")))
    report = archive.export_snapshots(settings, [], everything=True)
    assert report.ok and report.examined == 14 and report.caught_up == [SECOND.isoformat()]
    assert report.replaced == 1 and "1 archived files REPLACED: they held other rows" in report.line()
