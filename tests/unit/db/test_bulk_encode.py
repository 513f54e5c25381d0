"""bulk.encode_binary_rows: byte for byte what psycopg's ``Copy.write_row`` sends for the same rows."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest

from kapman.db import bulk
from kapman.ingest.options.normalise import TYPES
from tests.support.copy_stream import psycopg_stream

SNAPSHOT = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)
TID = uuid4()
STRIKES = ["0.0001", "99999999.9999", "150.1000", "150.1", "150", "1E+5", "0", "-0", "-12.5", "0.00001",
           "10000", "12345678.9", "1.23E-10", "-0.0001", "NaN", "Infinity", "-Infinity"]


def chain_row(i: int, rng: random.Random) -> tuple:
    """A row shaped like ChainNormaliser's, NULLs where the vendor leaves gaps."""

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.2 else value

    return (
        SNAPSHOT,
        TID,
        date(2025, 12, 19) + timedelta(days=rng.randrange(400)),
        Decimal(rng.choice(["150", "152.5", "0.5", "1000.125", "99999999.9999"])),
        rng.choice("CP"),
        f"O:AAPL{i:015d}",
        maybe(rng.choice([100, 150, 10])),
        maybe(rng.uniform(1, 500)),
        maybe(rng.uniform(0, 50)),
        maybe(rng.uniform(0, 50)),
        maybe(rng.uniform(0, 50)),
        maybe(rng.randrange(10**6)),
        maybe(rng.randrange(10**7)),
        maybe(rng.uniform(0, 3)),
        maybe(rng.uniform(-1, 1)),
        maybe(rng.uniform(0, 1)),
        maybe(-rng.uniform(0, 1)),
        maybe(rng.uniform(0, 1)),
        maybe(SNAPSHOT - timedelta(microseconds=rng.randrange(10**12))),
        maybe(SNAPSHOT - timedelta(microseconds=rng.randrange(10**12))),
        maybe(rng.choice(["REAL-TIME", "DELAYED"])),
        maybe(rng.uniform(0, 50)),
    )


def test_chain_rows_match_psycopg_byte_for_byte() -> None:
    rng = random.Random(5)
    rows = [chain_row(i, rng) for i in range(3000)]
    assert bulk.encode_binary_rows(TYPES, rows) == psycopg_stream(TYPES, rows)


def test_edge_values_match_psycopg() -> None:
    types = ("timestamptz", "uuid", "date", "numeric", "text", "int4", "int8", "float8", "varchar")
    rows = [
        (SNAPSHOT, TID, date(2000, 1, 1), Decimal("0.0001"), "é ü 中 😀", -(2**31), -(2**63), -0.0, ""),
        (datetime(1999, 12, 31, 19, tzinfo=timezone(timedelta(hours=-5))), UUID(int=0), date(1, 1, 1),
         Decimal("99999999.9999"), "", 2**31 - 1, 2**63 - 1, float("nan"), "x"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), UUID(int=2**128 - 1), date(9999, 12, 31),
         Decimal("-12.5"), "tab\tnew\nline", 0, 0, float("inf"), None),
        (None, None, None, None, None, None, None, None, None),
        (SNAPSHOT, TID, date(1969, 7, 20), 7, "C", 7, 7, 7, "P"),  # ints where numeric and float8 are declared
    ]
    assert bulk.encode_binary_rows(types, rows) == psycopg_stream(types, rows)
    strikes = [(Decimal(s),) for s in STRIKES]
    assert bulk.encode_binary_rows(["numeric"], strikes) == psycopg_stream(["numeric"], strikes)


def test_each_object_is_encoded_alike_wherever_it_repeats() -> None:
    one, other = Decimal("150.1"), Decimal("150.1000")  # equal values, different scales
    rows = [(one,), (other,), (one,), (None,), (other,)]
    assert bulk.encode_binary_rows(["numeric"], rows) == psycopg_stream(["numeric"], rows)
    assert bulk.numeric_binary(one) != bulk.numeric_binary(other)


def test_no_rows_is_an_empty_stream() -> None:
    assert bulk.encode_binary_rows(TYPES, []) == bulk.COPY_HEADER + bulk.COPY_TRAILER == psycopg_stream(TYPES, [])


@pytest.mark.parametrize(
    ("types", "row", "error", "match"),
    [
        (["int4"], (2**31,), ValueError, "out of int4 range"),  # psycopg would wrap it silently
        (["int4"], (-(2**31) - 1,), ValueError, "out of int4 range"),
        (["int8"], (2**63,), OverflowError, "too large"),
        (["int4"], (1.5,), TypeError, "holds a float"),
        (["int8"], (True,), TypeError, "holds a bool"),
        (["float8"], ("1.0",), TypeError, "holds a str"),
        (["text"], (b"x",), TypeError, "holds a bytes"),
        (["numeric"], (1.5,), TypeError, "holds a float"),
        (["date"], (SNAPSHOT,), TypeError, "holds a datetime"),
        (["timestamptz"], (datetime(2025, 1, 1),), ValueError, "aware"),
        (["bpchar"], ("C",), ValueError, "unsupported type"),
        (["text", "text"], ("a",), ValueError, "2 fields"),
    ],
)
def test_refuses_what_it_cannot_encode_faithfully(
    types: list[str], row: tuple, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        bulk.encode_binary_rows(types, [row, row])


@pytest.mark.parametrize("wide", [False, True], ids=["narrow", "wide"])
def test_jsonb_and_text_match_psycopg_narrow_and_wide(wide: bool) -> None:
    from psycopg.types.json import Jsonb

    pad = "x" * (300 if wide else 3)
    docs: list[Any] = [f'{{"a": "{pad}"}}', f'{{"é": "{pad} 中"}}'.encode(), None, f'{{"b": [1, 2], "c": "{pad}"}}',
                       f'{{"ü": "{pad}"}}']
    texts = [pad + "é", None, pad, "", pad + "😀"]
    rows = [(d, t) for d, t in zip(docs, texts, strict=True)]
    want = psycopg_stream(["jsonb", "text"], [(None if d is None else Jsonb(d, dumps=lambda v: v.decode() if
                                               isinstance(v, bytes) else v), t) for d, t in rows])
    assert bulk.encode_binary_rows(["jsonb", "text"], rows) == want
    ascii_only = [(d, t) for d, t in rows if (d is None or isinstance(d, str) and d.isascii())
                  and (t is None or t.isascii())]
    assert bulk.encode_binary_rows(["jsonb", "text"], ascii_only) == psycopg_stream(
        ["jsonb", "text"], [(None if d is None else Jsonb(d, dumps=lambda v: v), t) for d, t in ascii_only])
    with pytest.raises(TypeError, match=r"column 1 \(text\) holds a bytes"):
        bulk.encode_binary_rows(["jsonb", "text"], [("{}", b"no")])


def test_an_all_null_column_and_joined_streams() -> None:
    from kapman.db.bulk import COPY_HEADER, COPY_TRAILER, concat_copy, encode_binary_copy

    a = encode_binary_copy([("int8", np.array([1, 2])), ("int8", np.array([3, 4]))])
    b = encode_binary_copy([("int8", np.array([5])), ("int8", None)])
    body = concat_copy([a, b])[len(COPY_HEADER):-len(COPY_TRAILER)]
    field = (8).to_bytes(4, "big")
    row = lambda x, y: (2).to_bytes(2, "big") + field + x.to_bytes(8, "big") + y  # noqa: E731
    assert body == row(1, field + (3).to_bytes(8, "big")) + row(2, field + (4).to_bytes(8, "big")) + \
        row(5, (-1).to_bytes(4, "big", signed=True))
    assert concat_copy([a]) is a
