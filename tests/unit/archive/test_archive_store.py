"""Local store writes atomically and refuses a missing parent; manifests round-trip and reject junk."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from kapman.archive import manifest as mf
from kapman.archive.store import ArchiveError, LocalStore, S3Store, open_store
from kapman.config import Settings


def test_local_put_is_atomic_and_listing_skips_temporaries(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")  # created on first write (its parent exists)
    store.put("a/b/c.parquet", b"one")
    store.put("a/b/c.parquet", b"two")
    (tmp_path / "archive" / "a" / "b" / ".c.parquet.dead.tmp").write_bytes(b"half")
    assert store.get("a/b/c.parquet") == b"two"
    assert store.keys("a") == ["a/b/c.parquet"] and store.keys("nothing") == []
    assert [p.name for p in (tmp_path / "archive" / "a" / "b").iterdir() if not p.name.startswith(".c.parquet.d")] \
        == ["c.parquet"]


def test_local_writers_racing_to_create_the_archive_all_succeed(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = LocalStore(tmp_path / "archive")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put(f"d/{i}.parquet", b"x"), range(64)))
    assert len(store.keys("d")) == 64
    store.delete("d/0.parquet")
    store.delete("d/0.parquet")  # gone already: not an error
    assert len(store.keys("d")) == 63


def test_local_archive_on_a_missing_parent_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "unmounted" / "archive")
    with pytest.raises(ArchiveError, match="cannot write .*unmounted/archive") as exc:
        store.put("x", b"")
    assert exc.value.hint and "KAPMAN_ARCHIVE_DIR" in exc.value.hint
    assert not (tmp_path / "unmounted").exists()
    with pytest.raises(ArchiveError, match="cannot read"):
        store.get("x")


def test_a_file_where_the_archive_should_be_is_refused_not_read_as_empty(tmp_path: Path) -> None:
    """KAPMAN_ARCHIVE_DIR naming a file listed as an empty archive: status warned that every stored
    snapshot was unarchived and named --archive-only, which could not write there either."""
    (tmp_path / "archive").write_text("DATABASE_URL=...\n")
    store = LocalStore(tmp_path / "archive")
    for call in (lambda: store.keys("options_chains"), lambda: store.put("options_chains/x", b"x")):
        with pytest.raises(ArchiveError, match=r"KAPMAN_ARCHIVE_DIR=.*/archive is not a directory") as exc:
            call()
        assert exc.value.hint and "KAPMAN_ARCHIVE_DIR" in exc.value.hint
    assert (tmp_path / "archive").read_text() == "DATABASE_URL=...\n"


def test_default_archive_is_made_where_none_exists_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh checkout has no archive/: KapMan's own default location is made on the first write,
    while a directory the user names still needs its parent."""
    from kapman.archive import warehouse

    monkeypatch.setattr(warehouse, "DEFAULT_ARCHIVE_DIR", tmp_path / "home" / "archive")
    store = open_store(Settings(database_url="postgresql://u@127.0.0.1:5432/kapman"))
    assert isinstance(store, LocalStore) and store.root == tmp_path / "home" / "archive" / "kapman@127.0.0.1-5432"
    store.put("options_chains/x.parquet", b"x")
    home = tmp_path / "home" / "archive" / "kapman@127.0.0.1-5432"
    assert (home / "options_chains" / "x.parquet").read_bytes() == b"x"
    named = open_store(Settings(database_url="postgresql://u@127.0.0.1:5432/kapman",
                                archive_location=str(tmp_path / "unmounted" / "archive")))
    with pytest.raises(ArchiveError, match="cannot write"):
        named.put("x", b"")
    assert not (tmp_path / "unmounted").exists()


def test_open_store_by_location() -> None:
    assert isinstance(open_store(Settings(archive_location="/tmp/a")), LocalStore)
    s3 = open_store(Settings(archive_location="s3://bucket/some/prefix/", archive_endpoint="http://127.0.0.1:9"))
    assert isinstance(s3, S3Store) and s3.location == "s3://bucket/some/prefix"
    with pytest.raises(ArchiveError, match="names no bucket"):
        open_store(Settings(archive_location="s3:///x"))
    with pytest.raises(ArchiveError, match=r"KAPMAN_ARCHIVE_DIR=s3://\[bucket/x is not a URL \(Invalid IPv6 URL\)"):
        open_store(Settings(archive_location="s3://[bucket/x"))  # it was 'unexpected ValueError ... a bug'
    with pytest.raises(ArchiveError, match="only directories and s3://"):
        open_store(Settings(archive_location="gs://bucket"))


def test_a_relative_archive_directory_is_named_by_the_directory_read(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(Settings(archive_location="archive/prod"))
    assert store.location == str(tmp_path / "archive" / "prod")


@pytest.mark.parametrize("inner", ["archive/kapman/options_chains", "archive/k/options_chains/date=2025-12-19/",
                                   "s3://bucket/kapman/options_chains/date=2025-12-19"])
def test_a_location_inside_an_archive_is_refused(inner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read, it looked empty ("no archived snapshots"); written, it made an archive nested in the other."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "archive" / "kapman" / "options_chains" / "date=2025-12-19").mkdir(parents=True)
    with pytest.raises(ArchiveError, match=f"KAPMAN_ARCHIVE_DIR={inner} points inside an archive "
                                           "\\((options_chains|date=2025-12-19)\\)") as refused:
        open_store(Settings(archive_location=inner, archive_endpoint="http://127.0.0.1:9"))
    assert refused.value.hint == "name the directory (or s3://bucket/prefix) that holds options_chains/"


def test_an_archive_named_options_chains_is_not_taken_for_one_inside_an_archive(tmp_path: Path) -> None:
    root = tmp_path / "options_chains"
    root.mkdir()
    assert open_store(Settings(archive_location=str(root))).location == str(root)


def test_archive_secrets_are_masked() -> None:
    s = Settings(archive_access_key_id="AKIAEXAMPLE", archive_secret_access_key="very-secret-value")
    assert "very-secret-value" not in repr(s) and "AKIAEXAMPLE" not in repr(s)
    assert "very-secret-value" in s.secrets()


def test_layout_and_manifest_round_trip() -> None:
    snap = datetime(2025, 12, 20, 2, 30, tzinfo=UTC)  # 21:30 in New York on the 19th
    assert mf.snapshot_dir(snap) == "options_chains/date=2025-12-19/snapshot=20251220T023000Z"
    assert mf.snapshot_dir(snap.replace(microsecond=5)).endswith("snapshot=20251220T023000.000005Z")
    assert mf.manifest_key(snap).endswith("/_manifest.json")
    assert mf.partition_date(mf.manifest_key(snap)) == date(2025, 12, 19)
    assert mf.partition_date("options_chains/date=2025-12-19/time=x/manifest.json") == date(2025, 12, 19)  # format 1
    assert mf.partition_date("options_chains/date=2025-12-19/time=x/a.parquet") is None
    tid = uuid4()
    m = mf.Manifest(snap, {mf.file_name(tid): mf.Entry(tid, 12, 345, "ab" * 32)})
    back = mf.Manifest.from_bytes(m.to_bytes())
    assert back == m and back.rows == 12 and back.key("m.parquet").endswith("T023000Z/m.parquet")
    for junk in (b"\xff", b"[]", b'{"format": 2, "table": "options_chains"}',
                 b'{"format": 1, "table": "options_chains", "snapshot_time": "2025-12-19T21:00:00", "files": {}}'):
        with pytest.raises(ValueError):
            mf.Manifest.from_bytes(junk)
