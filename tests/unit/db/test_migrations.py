from __future__ import annotations

from pathlib import Path

import pytest

from kapman.db.migrations import MIGRATIONS_DIR, MigrationError, check_drift, discover


def make(dir_: Path, name: str, body: str = "SELECT 1;") -> Path:
    path = dir_ / name
    path.write_text(body)
    return path


def test_project_migrations_are_ordered_and_start_with_extensions() -> None:
    migrations = discover(MIGRATIONS_DIR)
    versions = [m.version for m in migrations]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))
    assert "CREATE EXTENSION IF NOT EXISTS timescaledb" in migrations[0].sql


def test_order_is_numeric_not_lexical(tmp_path: Path) -> None:
    make(tmp_path, "0010_later.sql")
    make(tmp_path, "0002_second.sql")
    make(tmp_path, "0001_first.sql")
    make(tmp_path, "README.md", "ignored")
    assert [m.name for m in discover(tmp_path)] == ["first", "second", "later"]


def test_duplicate_version_rejected(tmp_path: Path) -> None:
    make(tmp_path, "0001_a.sql")
    make(tmp_path, "0001_b.sql")
    with pytest.raises(MigrationError, match="version 0001 also used"):
        discover(tmp_path)


@pytest.mark.parametrize("bad", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql"])
def test_misnamed_file_rejected(tmp_path: Path, bad: str) -> None:
    make(tmp_path, bad)
    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        discover(tmp_path)


def test_empty_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="no migrations"):
        discover(tmp_path)


def test_checksum_drift_is_an_error(tmp_path: Path) -> None:
    path = make(tmp_path, "0001_a.sql", "CREATE TABLE a ();")
    ledger = {1: ("a", discover(tmp_path)[0].checksum)}
    check_drift(discover(tmp_path), ledger)  # unchanged: fine
    path.write_text("CREATE TABLE a (x int);")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        check_drift(discover(tmp_path), ledger)


def test_applied_migration_file_removed_is_an_error(tmp_path: Path) -> None:
    make(tmp_path, "0001_a.sql")
    current = discover(tmp_path)
    with pytest.raises(MigrationError, match="0002_b is applied but its file is gone"):
        check_drift(current, {1: ("a", current[0].checksum), 2: ("b", "y")})
