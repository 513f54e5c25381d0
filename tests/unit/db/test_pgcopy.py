"""The one binary COPY encoder: every front end (numpy, Python rows, Arrow) writes what psycopg writes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

import numpy as np

from kapman.db import bulk, pgcopy
from tests.support.copy_stream import psycopg_stream


def test_one_epoch_from_which_every_offset_is_derived() -> None:
    assert pgcopy.PG_EPOCH == datetime(2000, 1, 1, tzinfo=UTC)
    assert pgcopy.PG_EPOCH_US == 946_684_800_000_000 and pgcopy.PG_EPOCH_DAYS == 10_957
    assert bulk.encode_binary_copy is pgcopy.encode_binary_copy
    assert bulk.encode_binary_rows is pgcopy.encode_binary_rows


def test_numpy_columns_are_the_rows_psycopg_sends() -> None:
    ids = [uuid4() for _ in range(3)]
    days = [date(1999, 12, 31), date(2000, 1, 1), date(2025, 12, 19)]
    stamps = [datetime(1970, 1, 1, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC),
              datetime(2025, 12, 19, 21, 0, 0, 5, tzinfo=UTC)]
    rows = [(i, d, s, float(k) - 0.5, k, k) for k, (i, d, s) in enumerate(zip(ids, days, stamps, strict=True))]
    got = pgcopy.encode_binary_copy([
        ("uuid", np.stack([np.frombuffer(i.bytes, np.uint8) for i in ids])),
        ("date", np.array(days, dtype="datetime64[D]")),
        ("timestamptz", np.array([s.replace(tzinfo=None) for s in stamps], dtype="datetime64[us]")),
        ("float8", np.array([r[3] for r in rows])), ("int4", np.arange(3)), ("int8", np.arange(3))])
    assert bytes(got) == psycopg_stream(["uuid", "date", "timestamptz", "float8", "int4", "int8"], rows)


def test_wide_and_narrow_columns_with_nulls_interleave_in_row_order() -> None:
    doc = '{"k": "' + "x" * 200 + '"}'
    rows = [(doc, None, "a", doc), (None, 1.5, "bb", doc + " "), (doc, 2.5, None, None)]
    types = ["jsonb", "float8", "text", "text"]
    from psycopg.types.json import Jsonb

    want = psycopg_stream(types, [(None if r[0] is None else Jsonb(r[0], dumps=lambda v: v), *r[1:]) for r in rows])
    assert bytes(pgcopy.encode_binary_rows(types, rows)) == want
