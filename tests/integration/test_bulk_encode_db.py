"""bulk.encode_binary_rows against a real server: what it stores is what psycopg's COPY stores."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from kapman.db import bulk
from kapman.ingest.options import write_chain
from kapman.ingest.options.normalise import COLUMNS, TYPES, NormalisedChain
from kapman.ingest.options.process import encode_chain
from tests.support import database

pytestmark = pytest.mark.integration

SNAPSHOT = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)
#: options_chains' column types, and a numeric without a typmod (which keeps each value's scale).
TABLE = """CREATE TABLE {} (
    n bigint GENERATED ALWAYS AS IDENTITY, time timestamptz, ticker_id uuid, expiration_date date,
    strike_price numeric(12,4), option_type char(1), contract_symbol text, shares_per_contract integer,
    price double precision, volume bigint, free numeric)"""
COLS = ("time", "ticker_id", "expiration_date", "strike_price", "option_type", "contract_symbol",
        "shares_per_contract", "price", "volume", "free")
KINDS = ("timestamptz", "uuid", "date", "numeric", "text", "text", "int4", "float8", "int8", "numeric")


@pytest.fixture(scope="module")
def scratch(admin_url: str) -> Iterator[psycopg.Connection]:
    url = database.create_scratch(admin_url, "enc_")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
    finally:
        database.drop_scratch(admin_url, url)


def rows() -> list[tuple]:
    rng = random.Random(3)
    strikes = ["0.0001", "99999999.9999", "150.1", "150.10005", "1E+3", "0", "-0.0001", "12.5"]
    out: list[tuple] = [
        (SNAPSHOT, uuid4(), date(2026, 1, 16), Decimal(s), rng.choice("CP"), f"O:É{i}中😀", rng.choice([100, None]),
         rng.choice([None, 0.1 * i, -1e300, float("inf")]), rng.choice([None, 0, 2**63 - 1, -(2**63)]), Decimal(s))
        for i, s in enumerate(strikes * 3)
    ]
    out.append((None,) * len(COLS))
    out.append((datetime(1970, 1, 1, tzinfo=UTC), UUID(int=0), date(1, 1, 1), Decimal("1"), "C", "", -(2**31),
                float("nan"), 1, Decimal("NaN")))
    return out


def stored(conn: psycopg.Connection, table: str) -> tuple[list[tuple], bytes]:
    """The rows, and the server's own binary COPY of them, in insertion order."""
    query = sql.SQL("SELECT {} FROM {} ORDER BY n").format(sql.SQL(", ").join(map(sql.Identifier, COLS)),
                                                          sql.Identifier(table))
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)) as copy:
        data = b"".join(bytes(block) for block in copy)
    return conn.execute(query).fetchall(), data


def test_stores_what_psycopg_stores(scratch: psycopg.Connection) -> None:
    for table in ("via_psycopg", "via_payload"):
        scratch.execute(sql.SQL(TABLE).format(sql.Identifier(table)))
    data = rows()
    with scratch.transaction(), scratch.cursor() as cur:
        bulk.copy_rows(cur, sql.Identifier("via_psycopg"), COLS, KINDS, data)
        bulk.copy_binary(cur, sql.Identifier("via_payload"), COLS, bulk.encode_binary_rows(KINDS, data))
    want, got = stored(scratch, "via_psycopg"), stored(scratch, "via_payload")
    assert got[1] == want[1]  # byte for byte, NULLs and numeric scales included
    assert repr(got[0]) == repr(want[0]) and len(got[0]) == len(data)  # repr: NaN is not equal to itself
    strikes = [r[3] for r in got[0][:8]]
    assert strikes[:3] == [Decimal("0.0001"), Decimal("99999999.9999"), Decimal("150.1000")]
    assert [r[9] for r in got[0][:4]] == [Decimal("0.0001"), Decimal("99999999.9999"), Decimal("150.1"),
                                          Decimal("150.10005")]
    assert got[0][0][5] == "O:É0中😀" and got[0][-2] == (None,) * len(COLS)


def test_write_chain_sends_utf8_whatever_the_client_encoding(fresh_db: str) -> None:
    tid = uuid4()
    chain = NormalisedChain(rows=[
        (SNAPSHOT, tid, date(2026, 1, 16), Decimal(f"{100 + i}.5000"), "C", f"O:ÉÜ{i}", 100,
         *(None,) * (len(COLUMNS) - 7))
        for i in range(50)
    ])
    with psycopg.connect(fresh_db, autocommit=True, options="-c client_encoding=LATIN1") as conn:
        assert conn.info.encoding != "utf-8"
        first = write_chain(conn, encode_chain(chain, SNAPSHOT, tid))
        again = write_chain(conn, encode_chain(chain, SNAPSHOT, tid))
        assert conn.info.encoding != "utf-8"  # SET LOCAL: only for the write's transaction
    with psycopg.connect(fresh_db) as conn:
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        got = conn.execute(sql.SQL("SELECT {} FROM options_chains ORDER BY strike_price").format(cols)).fetchall()
    assert (first.inserted, again.inserted, again.updated) == (50, 0, 0)
    assert got == chain.rows and TYPES[5] == "text"
