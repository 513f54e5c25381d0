"""snapshots.encode: byte for byte what psycopg's COPY would send for the same A2 and A3 rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from psycopg.types.json import Jsonb

from kapman.jobs import snapshots
from tests.support.copy_stream import psycopg_stream

AT = datetime(2025, 12, 19, 21, 0, tzinfo=UTC)
NOW = datetime(2025, 12, 20, 1, 2, 3, 456789, tzinfo=UTC)


def _as_psycopg(row: tuple) -> tuple:
    return tuple(Jsonb(v, dumps=lambda text: text) if isinstance(v, (str, bytes)) and v[:1] in ("{", b"{") else v
                 for v in row)


def test_a2_rows_with_bytes_documents_and_a_null() -> None:
    rows = [(AT, uuid4(), b'{"trend": {"sma": {"sma_14": 1.5}}}', b'{"hv": null, "close": 3.25}', NOW, "a2-1"),
            (AT, uuid4(), '{"momentum": {"rsi": {"rsi": 55.0}}, "note": "é"}', None, NOW, "a2-1")]
    types = [snapshots._TYPES[c] for c in snapshots.A2_COLUMNS]
    data, count = snapshots.encode(snapshots.A2_COLUMNS, rows)
    assert count == 2
    assert data == psycopg_stream(types, [_as_psycopg(r) for r in rows])


def test_a3_rows_with_a_missing_snapshot_time() -> None:
    rows = [(AT, uuid4(), json.dumps({"status": "FULL", "gex": -1.25e9}), NOW, NOW, "a3-1"),
            (AT, uuid4(), json.dumps({"status": "INVALID"}), None, NOW, "a3-1")]
    types = [snapshots._TYPES[c] for c in snapshots.A3_COLUMNS]
    data, count = snapshots.encode(snapshots.A3_COLUMNS, rows)
    assert count == 2 and data == psycopg_stream(types, [_as_psycopg(r) for r in rows])


def test_no_rows() -> None:
    data, count = snapshots.encode(snapshots.A2_COLUMNS, [])
    assert count == 0 and data == psycopg_stream(["timestamptz"], [])
