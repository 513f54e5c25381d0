"""The binary COPY stream psycopg itself would send: the reference for KapMan's own encoders."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from psycopg import postgres, pq
from psycopg.adapt import Transformer

from kapman.db import bulk


def psycopg_stream(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """The stream ``copy_rows`` sends: psycopg's binary dumpers for the declared types, per field."""
    tx = Transformer()
    tx.set_dumper_types([postgres.types[t].oid for t in types], pq.Format.BINARY)
    out = [bulk.COPY_HEADER]
    for row in rows:
        out.append(struct.pack(">h", len(types)))
        for value in tx.dump_sequence(row, [pq.Format.BINARY] * len(types)):
            out.append(b"\xff\xff\xff\xff" if value is None else struct.pack(">i", len(value)) + bytes(value))
    return b"".join(out) + bulk.COPY_TRAILER
