"""An archive edited by hand, or by something other than KapMan, against the real database: what it
claims is verified by the rows it holds, a manifest outside its format is refused whole, and a
restore never changes a stored row."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kapman import archive
from kapman.archive import manifest as mf
from kapman.archive import restore, table, warehouse
from kapman.archive.coverage import Depth
from kapman.archive.export import parquet_bytes
from kapman.archive.store import ArchiveError
from kapman.ids import ticker_id
from kapman.step import Outcome
from tests.integration.test_archive_integrity import FIRST, SECOND, manifest_of, relist, settings_for
from tests.integration.test_options_archive import digest
from tests.support.hydrate import hydrate

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("hydrated_clock")]

SPY, AAPL = ticker_id("SPY"), ticker_id("AAPL")


@pytest.fixture
def archived(fresh_db: str, tmp_path: Path) -> Iterator[tuple[psycopg.Connection, Path]]:
    """The hydrated warehouse with every snapshot archived at ``tmp_path/archive``."""
    root = tmp_path / "archive"
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        hydrate(conn)
        assert archive.export_snapshots(settings_for(fresh_db, root), []).ok
        yield conn, root


def with_bid_raised(rows: pa.Table) -> pa.Table:
    bid = rows.column("bid").to_pylist()
    bid[0] = (bid[0] or 0) + 0.01
    return rows.set_column(rows.column_names.index("bid"), "bid", pa.array(bid, pa.float64()))


def failures(result: Any) -> dict[str, str]:
    return {f.unit.rsplit("/", 1)[-1]: f.reason for f in result.failures}


def test_content_depth_reads_the_rows_a_file_holds_not_the_hash_its_manifest_claims(
        fresh_db: str, archived: tuple[psycopg.Connection, Path]) -> None:
    conn, root = archived
    settings = settings_for(fresh_db, root)
    m, spy = manifest_of(root, SECOND), mf.file_name(SPY)
    changed = with_bid_raised(pq.read_table(root / m.key(spy)))
    # the file rewritten and its manifest entry edited to its size and SHA-256: the content hash still the old rows'
    relist(root, m, spy, parquet_bytes(changed))
    found = archive.inventory.check(settings, conn, Depth.CONTENT)
    assert found.covered == 4
    assert found.problems == {SECOND: {SPY: "file damaged: rows differ from those archived (content hash mismatch)"}}
    # the content hash edited too: the file agrees with its manifest, not with the stored rows
    rows, _ = table.from_file(changed)
    relist(root, manifest_of(root, SECOND), spy, parquet_bytes(changed),
           content=table.content_hash(table.to_payload(rows)))
    found = archive.inventory.check(settings, conn, Depth.CONTENT)
    assert found.covered == 4 and found.problems == {SECOND: {SPY: "content differs"}}
    assert archive.inventory.unarchived(conn, [FIRST, SECOND], settings) == [SECOND]


def test_a_restore_never_changes_a_stored_row(fresh_db: str, archived: tuple[psycopg.Connection, Path]) -> None:
    conn, root = archived
    settings = settings_for(fresh_db, root)
    spy, aapl = mf.file_name(SPY), mf.file_name(AAPL)
    refused = ("the database holds another version of this chain ({} of {} stored rows differ, {} not archived, "
               "{} archived not stored): the stored rows are kept, nothing written (delete them to load the "
               "archived ones)")
    archived_digest = digest(conn)
    # SPY's stored chain written again since it was archived (same contracts, other quotes)
    conn.execute("UPDATE options_chains SET bid = bid + 1, updated_at = now() WHERE time = %s AND ticker_id = %s",
                 (SECOND, SPY))
    stored = digest(conn)
    for force in (False, True):
        result = restore.run(settings, restore.RestoreParams(force=force))
        assert (result.outcome, result.exit_code, result.done, result.written) == (Outcome.PARTIAL, 1, 4, 0)
        assert failures(result) == {spy: refused.format(12, 12, 0, 0)}
        assert digest(conn) == stored
    # AAPL's stored chain lacks a contract and quotes differ: nothing of it is mixed in or overwritten
    conn.execute("DELETE FROM options_chains WHERE (time, ticker_id, strike_price, option_type, expiration_date) = "
                 "(SELECT time, ticker_id, strike_price, option_type, expiration_date FROM options_chains "
                 "WHERE time = %s AND ticker_id = %s ORDER BY 3, 4, 5 LIMIT 1)", (SECOND, AAPL))
    changed = conn.execute(
        "UPDATE options_chains SET ask = ask + 1, updated_at = now() WHERE time = %s AND ticker_id = %s "
        "AND strike_price = (SELECT max(strike_price) FROM options_chains WHERE time = %s AND ticker_id = %s)",
        (SECOND, AAPL, SECOND, AAPL)).rowcount
    assert changed == 8
    stored = digest(conn)
    result = restore.run(settings, restore.RestoreParams())
    assert failures(result) == {spy: refused.format(12, 12, 0, 0), aapl: refused.format(changed, 39, 0, 1)}
    assert digest(conn) == stored
    # the operator deletes the stored versions: the archived ones are loaded
    conn.execute("DELETE FROM options_chains WHERE time = %s AND ticker_id = ANY(%s)", (SECOND, [SPY, AAPL]))
    result = restore.run(settings, restore.RestoreParams())
    assert (result.outcome, result.written) == (Outcome.OK, 12 + 40) and digest(conn) == archived_digest
    # a chain that only lacks rows (deleted by hand) gets them back, and nothing stored changes
    lost = conn.execute("DELETE FROM options_chains WHERE time = %s AND ticker_id = %s AND option_type = 'P'",
                        (FIRST, SPY)).rowcount
    result = restore.run(settings, restore.RestoreParams())
    assert lost > 0 and (result.outcome, result.written) == (Outcome.OK, lost) and digest(conn) == archived_digest


def _listed_outside(root: Path, body: dict[str, Any], spy: str) -> None:
    (root.parent / "outside.parquet").write_bytes((root / mf.snapshot_dir(SECOND) / spy).read_bytes())
    body["files"]["../../../../outside.parquet"] = body["files"].pop(spy)


def _negative(root: Path, body: dict[str, Any], spy: str) -> None:
    body["files"][spy]["rows"] = -12


def _in_another_directory(root: Path, body: dict[str, Any], spy: str) -> None:
    body["snapshot_time"] = FIRST.isoformat()


EDITS: dict[str, tuple[Callable[[Path, dict[str, Any], str], None], str]] = {
    "a path out of the archive": (_listed_outside, "unreadable manifest (file '../../../../outside.parquet' is not "
                                                   "named for its underlying ({spy}))"),
    "a negative row count": (_negative, "unreadable manifest (file {spy}: negative row count or size)"),
    "another snapshot's": (_in_another_directory, f"manifest of snapshot {FIRST.isoformat()} in another snapshot's "
                                                  f"directory (expected {mf.snapshot_dir(FIRST)})"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_a_manifest_outside_its_format_is_refused_whole(fresh_db: str, archived: tuple[psycopg.Connection, Path],
                                                        edit: str) -> None:
    conn, root = archived
    settings = settings_for(fresh_db, root)
    change, said = EDITS[edit]
    spy = mf.file_name(SPY)
    key = mf.manifest_key(SECOND)
    body = json.loads((root / key).read_text())
    change(root, body, spy)
    (root / key).write_text(json.dumps(body))
    conn.execute("TRUNCATE options_chains")
    result = restore.run(settings, restore.RestoreParams())
    assert (result.outcome, result.exit_code, result.done) == (Outcome.PARTIAL, 1, 3)
    assert [(f.unit, f.reason) for f in result.failures] == [(key, said.format(spy=spy))]
    assert conn.execute("SELECT DISTINCT time FROM options_chains").fetchall() == [(FIRST,)]


def test_a_file_listed_twice_is_an_edited_manifest(fresh_db: str, archived: tuple[psycopg.Connection, Path]) -> None:
    conn, root = archived
    key, spy = mf.manifest_key(SECOND), mf.file_name(SPY)
    text = (root / key).read_text()
    entry = json.dumps(json.loads(text)["files"][spy])
    (root / key).write_text(text.replace('"files": {', f'"files": {{"{spy}": {entry}, ', 1))
    with pytest.raises(ValueError, match=f"unreadable manifest \\('{spy}' listed twice\\)"):
        mf.Manifest.from_bytes((root / key).read_bytes())
    found = archive.inventory.check(settings_for(fresh_db, root), conn, Depth.ROWS)
    assert found.archived == 1 and set(found.problems) == {SECOND}


class FailsFirstRead:
    """A store whose first read of ``key`` fails (an S3 500 once), as the restore meets it."""

    def __init__(self, inner: Any, key: str) -> None:
        self.inner, self.key, self.failed = inner, key, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> bytes:
        if key == self.key and not self.failed:
            self.failed = True
            raise ArchiveError(f"cannot read {key}: InternalError")
        return bytes(self.inner.get(key))


def test_a_manifest_unreadable_at_first_is_still_refused_as_another_warehouses(
        fresh_db: str, archived: tuple[psycopg.Connection, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    conn, root = archived
    other = tmp_path / "other"
    assert archive.export_snapshots(settings_for(fresh_db, other, warehouse="demo"), []).ok
    key = mf.manifest_key(SECOND)
    (root / key).write_bytes((other / key).read_bytes())   # the second snapshot is demo's
    opened = restore.open_store
    monkeypatch.setattr(restore, "open_store", lambda settings: FailsFirstRead(opened(settings), key))
    conn.execute("TRUNCATE options_chains")
    result = restore.run(settings_for(fresh_db, root), restore.RestoreParams())
    assert (result.outcome, result.exit_code, result.done) == (Outcome.PARTIAL, 1, 3)
    assert [f.unit for f in result.failures] == [key]
    assert result.failures[0].reason == (f"a snapshot of warehouse demo (live); this is warehouse "
                                         f"{warehouse.of(settings_for(fresh_db, root)).describe()}: "
                                         "not restored")
    assert conn.execute("SELECT DISTINCT time FROM options_chains").fetchall() == [(FIRST,)]


def test_chains_of_underlyings_tickers_does_not_list_are_restored_and_said(
        fresh_db: str, archived: tuple[psycopg.Connection, Path]) -> None:
    conn, root = archived
    before = digest(conn)
    conn.execute("DELETE FROM tickers WHERE symbol = 'SPY'")
    conn.execute("TRUNCATE options_chains")
    result = restore.run(settings_for(fresh_db, root), restore.RestoreParams())
    assert result.outcome is Outcome.OK and digest(conn) == before
    assert result.notes == ["1 underlying(s) not in public.tickers restored all the same, unseen by reports until "
                            "tickers lists them: SPY"]


def test_a_file_with_a_contract_twice_is_named_and_skipped(fresh_db: str,
                                                          archived: tuple[psycopg.Connection, Path]) -> None:
    conn, root = archived
    m, spy = manifest_of(root, SECOND), mf.file_name(SPY)
    rows = pq.read_table(root / m.key(spy))
    twice = pa.concat_tables([rows, rows.slice(3, 1)])
    as_stored, _ = table.from_file(twice)
    relist(root, m, spy, parquet_bytes(twice), rows=twice.num_rows,
           content=table.content_hash(table.to_payload(as_stored)))
    conn.execute("TRUNCATE options_chains")
    result = restore.run(settings_for(fresh_db, root), restore.RestoreParams())
    assert (result.outcome, result.done) == (Outcome.PARTIAL, 4)
    assert failures(result) == {spy: "1 duplicate contract row(s) (same expiration, strike and type)"}


def test_an_unreadable_manifest_and_its_files_are_not_written_over(fresh_db: str,
                                                                    archived: tuple[psycopg.Connection, Path],
                                                                    tmp_path: Path) -> None:
    """Whose it is cannot be told: another warehouse's files, under the same names, stay as they are."""
    conn, _ = archived
    shared = tmp_path / "shared"
    assert archive.export_snapshots(settings_for(fresh_db, shared, warehouse="demo"), []).ok
    theirs = shared / mf.snapshot_dir(FIRST) / mf.file_name(SPY)
    kept = theirs.read_bytes()
    key = shared / mf.manifest_key(FIRST)
    key.write_bytes(key.read_bytes()[:100])              # demo's manifest, damaged
    conn.execute("UPDATE options_chains SET bid = bid + 1 WHERE time = %s", (FIRST,))
    report = archive.export_snapshots(settings_for(fresh_db, shared), [])
    assert not report.ok and theirs.read_bytes() == kept
    assert report.line().startswith(f"archive: NOT written, the database write is kept: {key}: unreadable manifest "
                                    "(JSONDecodeError: ")
    assert "; not overwritten, nor its files (restore it from a copy" in report.line()
    assert not report.line().endswith("; the next options run archives it")


def test_a_manifest_copied_into_another_snapshots_directory_is_not_taken_for_its_own(
        fresh_db: str, archived: tuple[psycopg.Connection, Path]) -> None:
    """Its entries would be carried into the manifest the export writes for this snapshot."""
    conn, root = archived
    (root / mf.manifest_key(SECOND)).write_bytes((root / mf.manifest_key(FIRST)).read_bytes())
    conn.execute("UPDATE options_chains SET bid = bid + 1, updated_at = now() WHERE time = %s AND ticker_id = %s",
                 (SECOND, SPY))
    report = archive.export_snapshots(settings_for(fresh_db, root), [])
    assert not report.ok and f"{mf.manifest_key(SECOND)}: manifest of snapshot {FIRST.isoformat()} in another " \
                              "snapshot's directory" in report.line()
    assert manifest_of(root, SECOND).snapshot_time == FIRST   # left as it was, for the operator to mend


def test_a_manifest_left_for_the_operator_does_not_hold_up_the_later_snapshots(
        fresh_db: str, archived: tuple[psycopg.Connection, Path]) -> None:
    conn, root = archived
    damaged = root / mf.manifest_key(FIRST)
    damaged.write_bytes(damaged.read_bytes()[:100])
    (root / mf.manifest_key(SECOND)).unlink()            # a run whose archive failed
    report = archive.export_snapshots(settings_for(fresh_db, root), [])
    assert not report.ok and report.caught_up == [SECOND.isoformat()]
    assert f"{mf.manifest_key(FIRST)}: unreadable manifest" in report.line()
    assert manifest_of(root, SECOND).rows == 52 and damaged.stat().st_size == 100
