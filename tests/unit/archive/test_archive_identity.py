"""The archive's warehouse identity and source, its manifests (format 2 and 1), and its files read alone."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kapman.archive import manifest as mf
from kapman.archive import table, warehouse
from kapman.archive.export import parquet_bytes
from kapman.archive.store import open_store
from kapman.config import DEFAULT_ARCHIVE_DIR, Settings
from kapman.errors import ConfigError
from tests.unit.archive.test_archive_table import arrow, row

SNAPSHOT = datetime(2025, 12, 19, 21, tzinfo=UTC)


def test_the_warehouse_a_connection_reads_is_its_database_not_database_url() -> None:
    conn = SimpleNamespace(info=SimpleNamespace(dsn="user=u dbname=prod host=10.0.0.5 port=6543"))
    settings = Settings(database_url="postgresql://u:pw@127.0.0.1/kapman")
    here = warehouse.reading(conn, settings)  # type: ignore[arg-type]
    assert warehouse.name_of(here) == "prod@10.0.0.5:6543" and settings.database_url.endswith("/kapman")
    named = warehouse.reading(conn, Settings(database_url=settings.database_url, warehouse="books"))  # type: ignore[arg-type]
    assert warehouse.name_of(named) == "books"


def test_the_identity_is_the_database_and_its_server_unless_named() -> None:
    url = "postgresql://kapman:s3cret@db.example:6543/kapman?sslmode=require"
    assert warehouse.name_of(Settings(database_url=url)) == "kapman@db.example:6543"
    assert warehouse.name_of(Settings(database_url="postgresql://u@127.0.0.1/kapman_demo")) == \
        "kapman_demo@127.0.0.1:5432"
    assert warehouse.name_of(Settings(database_url="host=h port=1 dbname=d user=u")) == "d@h:1"
    assert warehouse.name_of(Settings(database_url=url, warehouse="prod")) == "prod"
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        warehouse.name_of(Settings())


def test_the_sandbox_is_told_from_live_by_its_base_url() -> None:
    assert warehouse.source_of(Settings()) == "live"
    assert warehouse.source_of(Settings(polygon_base_url="http://127.0.0.1:8123")) == "sandbox"
    assert warehouse.source_of(Settings(polygon_base_url="http://localhost:8123")) == "sandbox"
    assert warehouse.source_of(Settings(polygon_base_url="http://[::1]:8123")) == "sandbox"
    assert warehouse.source_of(Settings(polygon_base_url="https://api.polygon.io")) == "live"


def test_the_default_directory_is_per_warehouse_and_the_demo_apart() -> None:
    real = Settings(database_url="postgresql://kapman@127.0.0.1:5432/kapman")
    demo = Settings(database_url="postgresql://kapman@127.0.0.1:5432/kapman_demo")
    assert open_store(real).location == str(DEFAULT_ARCHIVE_DIR / "kapman@127.0.0.1-5432")
    assert open_store(demo).location == str(DEFAULT_ARCHIVE_DIR / "kapman_demo@127.0.0.1-5432")
    assert open_store(Settings(database_url="postgresql://h/kapman", archive_location="/x/y")).location == "/x/y"
    assert Path(warehouse.default_location(Settings(database_url="postgresql://h/kapman", warehouse="../a b"))
                ).parent == DEFAULT_ARCHIVE_DIR


def test_manifests_carry_their_warehouse_and_read_format_1() -> None:
    tid = uuid4()
    entry = mf.Entry(tid, 3, 100, "ab" * 32, "AAPL", "cd" * 32)
    m = mf.Manifest(SNAPSHOT, {mf.file_name(tid): entry}, "kapman@h:5432", "sandbox")
    again = mf.Manifest.from_bytes(m.to_bytes())
    assert again == m and again.files[mf.file_name(tid)].symbol == "AAPL"
    old = (b'{"format": 1, "table": "options_chains", "snapshot_time": "2025-12-19T21:00:00+00:00", "rows": 3, '
           b'"files": {"' + mf.file_name(tid).encode() + b'": {"ticker_id": "' + str(tid).encode() +
           b'", "rows": 3, "bytes": 100, "sha256": "' + b"ab" * 32 + b'"}}}')
    read = mf.Manifest.from_bytes(old)
    assert (read.warehouse, read.source, read.files[mf.file_name(tid)].content) == (None, None, None)
    with pytest.raises(ValueError, match="format-2"):
        mf.Manifest.from_bytes(old.replace(b'"format": 1', b'"format": 9'))


def test_an_archive_file_is_readable_alone_and_comes_back_as_the_rows() -> None:
    tid = uuid4()
    rows = arrow([row(i, random.Random(i), tid) for i in range(30)])
    blob = parquet_bytes(table.to_file(rows, tid, "BRK.B"))
    plain = pq.read_table(io.BytesIO(blob))  # no KapMan needed: text id, a symbol column
    assert plain.schema.field("ticker_id").type == pa.string() and plain.column_names[:3] == [
        "time", "ticker_id", "symbol"]
    frame = plain.to_pandas()
    assert set(frame["ticker_id"]) == {str(tid)} and set(frame["symbol"]) == {"BRK.B"} and len(frame) == 30
    back, symbol = table.from_file(plain)
    assert back.equals(rows) and symbol == "BRK.B"
    assert table.to_payload(back) == table.to_payload(rows)
    # format 1 (the table's own schema, a 16-byte id) is still read
    assert table.from_file(rows) == (rows, None) and table.file_schema_problem(rows.schema) is None
    mixed = pa.concat_tables([plain, table.to_file(rows, uuid4(), "BRK.B")])
    with pytest.raises(ValueError, match="2 ticker ids"):
        table.from_file(mixed)


def test_implausible_values_are_named() -> None:
    tid = uuid4()
    clean = arrow([row(i, random.Random(i), tid) for i in range(5)])
    for name, (low, _) in table.PLAUSIBLE.items():  # every checked column in range, one NULL each
        kind = clean.schema.field(name).type
        clean = clean.set_column(clean.column_names.index(name), name,
                                 pa.array([low, None, low + 1, low + 2, low], kind))
    clean = clean.set_column(8, "bid", pa.array([1.0, None, 2.0, 0.0, 3.0], pa.float64()))
    assert table.implausible(clean) is None
    bad = clean.set_column(14, "delta", pa.array([0.5, None, 3.86e37, 0.1, 0.2], pa.float64()))
    assert table.implausible(bad) == "row 3: delta 3.86e+37 outside [-10, 10]"
    nan = clean.set_column(8, "bid", pa.array([1.0, float("nan"), 2.0, 0.0, 3.0], pa.float64()))
    assert "bid nan" in (table.implausible(nan) or "")
