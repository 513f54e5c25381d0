"""The archive's Arrow side: CSV export parsing, the restore payload byte for byte, schema checks."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pyarrow as pa
import pytest

from kapman.archive import table
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
            maybe(rng.uniform(0, 1)), maybe(rng.uniform(-5, 0)), maybe(rng.uniform(0, 1)), stamp, stamp)


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


def test_csv_as_postgresql_writes_it() -> None:
    tid = UUID("1a4d5b38-114b-5c1a-a9d2-4ac083bdd910")
    micros = (SNAPSHOT - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    csv = (f'{micros},{tid},2026-01-16,150.1000,C,"",100,270.5,NaN,Infinity,-Infinity,,,'
           f'0.25,,,,,{micros},{micros}\n'
           f'{micros},{tid},2026-01-16,0.0001,P,"O:X""Y,Z",,1e-300,0,-0,1.7976931348623157e+308,'
           f'9223372036854775807,-1,,,,,,{micros},{micros}\n').encode()
    t = table.from_csv(csv)
    assert t.schema == table.SCHEMA
    a, b = t.to_pylist()
    assert a["time"] == SNAPSHOT and a["ticker_id"] == tid and a["strike_price"] == Decimal("150.1000")
    assert a["contract_symbol"] == "" and a["volume"] is None and a["delta"] is None
    assert math.isnan(a["bid"]) and a["ask"] == math.inf and a["last"] == -math.inf
    assert b["contract_symbol"] == 'O:X"Y,Z' and b["shares_per_contract"] is None and b["underlying_price"] == 1e-300
    assert b["volume"] == 2**63 - 1 and math.copysign(1, b["ask"]) == -1
    assert table.from_csv(b"").num_rows == 0


def test_split_by_underlying_keeps_runs_in_order() -> None:
    rng = random.Random(5)
    ids = sorted([uuid4(), uuid4(), uuid4()])
    rows = [row(i, rng, tid) for tid in ids for i in range(rng.randrange(1, 9))]
    parts = table.split_by_underlying(arrow(rows))
    assert [p[0] for p in parts] == ids
    assert sum(p[1].num_rows for p in parts) == len(rows)
    assert all(set(p[1].column("ticker_id").to_pylist()) == {tid} for tid, p in zip(ids, parts, strict=True))


def test_schema_problems_name_the_columns() -> None:
    assert table.schema_problem(table.SCHEMA) is None
    assert "missing vega" in (table.schema_problem(table.SCHEMA.remove(17)) or "")
    extra = table.SCHEMA.append(pa.field("note", pa.string()))
    assert "unexpected note" in (table.schema_problem(extra) or "")
    wrong = table.SCHEMA.set(7, pa.field("underlying_price", pa.float32()))
    assert table.schema_problem(wrong) == "column underlying_price is float, expected double"
