"""The archive's Arrow side: CSV export parsing, the restore payload byte for byte, schema checks."""

from __future__ import annotations

import math
import random
import struct
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pyarrow as pa
import pytest

from kapman.archive import decode, table
from tests.support.copy_stream import psycopg_stream

SNAPSHOT = datetime(2025, 12, 19, 21, 0, 0, 123456, tzinfo=UTC)
PG_TYPES = [c.pg_type for c in table.COLUMNS]


def row(i: int, rng: random.Random, tid: UUID) -> tuple:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.25 else value

    stamp = datetime(2025, 12, 19, 22, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**9))
    return (SNAPSHOT, tid, date(2025, 12, 19) + timedelta(days=rng.randrange(900)),
            Decimal(rng.choice(["150", "152.5", "0.0001", "99999999.9999", "0", "-12.5", "1000.125"])).quantize(
                Decimal("0.0001")),
            rng.choice("CP"), rng.choice([f"O:AAPL{i:06d}", "", "O:\u00e9\"q,"]),
            maybe(rng.choice([100, 10, -(2**31)])), maybe(rng.uniform(1, 500)),
            maybe(rng.choice([0.0, -0.0, 1e-300, math.inf, -math.inf, 1.7976931348623157e308])),
            maybe(rng.uniform(0, 50)), maybe(rng.uniform(0, 50)), maybe(rng.randrange(2**40)),
            maybe(rng.choice([0, 2**63 - 1, -(2**63)])), maybe(rng.uniform(0, 3)), maybe(rng.uniform(-1, 1)),
            maybe(rng.uniform(0, 1)), maybe(rng.uniform(-5, 0)), maybe(rng.uniform(0, 1)), stamp, stamp,
            maybe(stamp), maybe(stamp), maybe(rng.choice(["REAL-TIME", "DELAYED"])), maybe(rng.uniform(0, 50)))


def arrow(rows: list[tuple]) -> pa.Table:
    arrays = []
    for j, c in enumerate(table.COLUMNS):
        values = [r[j] for r in rows]
        if c.pg_type == "uuid":
            arrays.append(pa.ExtensionArray.from_storage(pa.uuid(), pa.array([v.bytes for v in values], pa.binary(16))))
        else:
            arrays.append(pa.array(values, c.arrow))
    return pa.Table.from_arrays(arrays, schema=table.SCHEMA)


def test_payload_is_what_psycopg_would_send_for_the_same_rows() -> None:
    rng = random.Random(3)
    tid = uuid4()
    rows = [row(i, rng, tid) for i in range(500)]
    t = arrow(rows)
    assert table.to_payload(t) == psycopg_stream(PG_TYPES, rows)
    # a slice (an offset into Arrow's buffers) encodes the same as its rows
    assert table.to_payload(t.slice(17, 100)) == psycopg_stream(PG_TYPES, rows[17:117])
    assert table.to_payload(t.slice(0, 0)) == psycopg_stream(PG_TYPES, [])


def test_a_null_in_a_not_null_column_is_refused() -> None:
    rows = [row(0, random.Random(1), uuid4())]
    t = arrow(rows).set_column(5, "contract_symbol", pa.array([None], pa.string()))
    with pytest.raises(ValueError, match="contract_symbol holds 1 NULLs"):
        table.to_payload(t)


def test_binary_copy_decodes_to_the_rows() -> None:
    rng = random.Random(4)
    tid = uuid4()
    rows = [row(i, rng, tid) for i in range(400)]
    decoded = decode.from_copy(psycopg_stream(PG_TYPES, rows), SNAPSHOT)
    assert decoded.schema == table.SCHEMA
    assert decoded.equals(arrow(rows))
    assert table.to_payload(decoded) == psycopg_stream(PG_TYPES, rows)  # and back, byte for byte
    assert decode.from_copy(b"", SNAPSHOT).num_rows == 0
    assert decode.from_copy(psycopg_stream(PG_TYPES, []), SNAPSHOT).num_rows == 0
    with pytest.raises(ValueError, match="not a binary COPY"):
        decode.from_copy(b"time,ticker_id\n", SNAPSHOT)


def test_a_value_holding_the_row_prefix_does_not_split_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """With only the first 6 bytes of the prefix searched for, a bid ending in the field count
    (00 18) followed by ask's length (00 00 00 08) looks like a row start: the split must be caught
    and redone."""
    fields = len(table.COLUMNS)
    monkeypatch.setattr(decode, "_row_prefix", lambda snapshot: struct.pack(">hi", fields, 8))
    bid = struct.unpack(">d", bytes.fromhex(f"3ff000000000{fields:04x}"))[0]
    rng = random.Random(6)
    tid = uuid4()
    rows = [row(i, rng, tid) for i in range(5)]
    rows[2] = rows[2][:8] + (bid, 1.5) + rows[2][10:]
    stream = psycopg_stream(PG_TYPES, rows)
    assert stream.count(struct.pack(">hi", fields, 8)) == 6
    assert decode.from_copy(stream, SNAPSHOT).equals(arrow(rows))


def test_rows_decoded_in_blocks_are_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "BLOCK_ROWS", 7)
    rows = [row(i, random.Random(8), uuid4()) for i in range(50)]
    assert decode.from_copy(psycopg_stream(PG_TYPES, rows), SNAPSHOT).equals(arrow(rows))


def test_a_nan_strike_cannot_be_archived() -> None:
    rows = [row(0, random.Random(2), uuid4())]
    rows[0] = rows[0][:3] + (Decimal("NaN"),) + rows[0][4:]
    with pytest.raises(ValueError, match="strike_price holds NaN"):
        decode.from_copy(psycopg_stream(PG_TYPES, rows), SNAPSHOT)


def test_a_streams_underlyings_are_its_runs_of_one_ticker_id_in_order() -> None:
    """How the export and the coverage check cut a snapshot's COPY stream into files."""
    rng = random.Random(5)
    ids = sorted([uuid4(), uuid4(), uuid4()])
    rows = [row(i, rng, tid) for tid in ids for i in range(rng.randrange(1, 9))]
    body, starts = decode.rows_of(psycopg_stream(PG_TYPES, rows), SNAPSHOT)
    parts = table.runs(decode.ticker_ids(body, starts))
    assert [p[0] for p in parts] == ids
    assert parts[0][1] == 0 and parts[-1][2] == len(rows)
    assert all(prev[2] == nxt[1] for prev, nxt in zip(parts, parts[1:], strict=False))
    assert all({r[1] for r in rows[first:end]} == {tid} for tid, first, end in parts)
    assert table.runs(decode.ticker_ids(*decode.rows_of(b"", SNAPSHOT))) == []


def test_schema_problems_name_the_columns() -> None:
    assert table.schema_problem(table.SCHEMA) is None
    assert "missing vega" in (table.schema_problem(table.SCHEMA.remove(17)) or "")
    extra = table.SCHEMA.append(pa.field("note", pa.string()))
    assert "unexpected note" in (table.schema_problem(extra) or "")
    wrong = table.SCHEMA.set(7, pa.field("underlying_price", pa.float32()))
    assert table.schema_problem(wrong) == "column underlying_price is float, expected double"


def test_every_value_options_ingestion_stores_is_plausible_to_the_restore() -> None:
    """Ingestion stored bids up to 1e8 and counts up to 2**63-1 that the restore called implausible,
    refusing the symbol's whole file."""
    from kapman.ingest.options.normalise import COLUMNS, RANGES

    for index, name, low, high in RANGES:
        if COLUMNS[index] in table.PLAUSIBLE:
            plausible = table.PLAUSIBLE[COLUMNS[index]]
            assert plausible[0] <= low and high <= plausible[1], (name, (low, high), plausible)
    assert {COLUMNS[i] for i, *_ in RANGES} - set(table.PLAUSIBLE) == {"day_close"}  # not checked on restore
