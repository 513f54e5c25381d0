"""``options_chains`` as Arrow: the archive's schema, the export query, and the restore payload.

The archive holds every column of the table, bookkeeping stamps included, so a restored row is the
row that was archived.  The export reads the table with one binary ``COPY .. TO STDOUT``
(``kapman.archive.decode`` turns it into Arrow); the restore turns an Arrow table back into the
binary COPY stream ``bulk.write_group`` sends, through the one encoder (``kapman.db.pgcopy``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
from psycopg import sql

from kapman.db import pgcopy

TABLE = "options_chains"
_UTC_US = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str          # a name of ``pgcopy.TYPES``
    arrow: pa.DataType
    nullable: bool = True


#: Every column of ``public.options_chains``, in table order (a test holds this to the schema).
COLUMNS: tuple[Column, ...] = (
    Column("time", "timestamptz", _UTC_US, False),
    Column("ticker_id", "uuid", pa.uuid(), False),
    Column("expiration_date", "date", pa.date32(), False),
    Column("strike_price", "numeric", pa.decimal128(12, 4), False),
    Column("option_type", "text", pa.string(), False),
    Column("contract_symbol", "text", pa.string(), False),
    Column("shares_per_contract", "int4", pa.int32()),
    Column("underlying_price", "float8", pa.float64()),
    Column("bid", "float8", pa.float64()),
    Column("ask", "float8", pa.float64()),
    Column("last", "float8", pa.float64()),
    Column("volume", "int8", pa.int64()),
    Column("open_interest", "int8", pa.int64()),
    Column("implied_volatility", "float8", pa.float64()),
    Column("delta", "float8", pa.float64()),
    Column("gamma", "float8", pa.float64()),
    Column("theta", "float8", pa.float64()),
    Column("vega", "float8", pa.float64()),
    Column("created_at", "timestamptz", _UTC_US, False),
    Column("updated_at", "timestamptz", _UTC_US, False),
)
NAMES = tuple(c.name for c in COLUMNS)
#: Columns whose values repeat across a chain (the snapshot, the underlying, expirations, strikes):
#: the ones Parquet's dictionary encoding is worth its CPU on.
REPEATING = ("time", "ticker_id", "expiration_date", "strike_price", "option_type", "shares_per_contract",
             "underlying_price", "created_at", "updated_at")
SCHEMA = pa.schema([pa.field(c.name, c.arrow, nullable=c.nullable) for c in COLUMNS])
#: What makes a row different on a replayed restore: everything but the bookkeeping stamps.
COMPARE = tuple(n for n in NAMES if n not in ("created_at", "updated_at"))
#: The table's key, and the order rows are archived in.
KEY = ("time", "ticker_id", "expiration_date", "strike_price", "option_type")


# ---- export ----------------------------------------------------------------------------------
def export_query(where: sql.Composable) -> sql.Composable:
    """Binary ``COPY`` of every column, ordered by underlying and key, for the rows ``where`` selects
    (decoded by ``kapman.archive.decode``)."""
    return sql.SQL("COPY (SELECT {} FROM {} WHERE {} ORDER BY ticker_id, {}) TO STDOUT (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, NAMES)), sql.Identifier("public", TABLE), where,
        sql.SQL(", ").join(map(sql.Identifier, KEY[2:])))


def split_by_underlying(table: pa.Table) -> list[tuple[uuid.UUID, pa.Table]]:
    """Consecutive runs of one ``ticker_id`` (the export orders by it), each as its own table."""
    if not table.num_rows:
        return []
    ids = _fixed_bytes(table.column("ticker_id").combine_chunks().storage, 16)
    starts = np.flatnonzero(np.concatenate(([True], (ids[1:] != ids[:-1]).any(axis=1))))
    ends = np.append(starts[1:], table.num_rows)
    return [(uuid.UUID(bytes=ids[s].tobytes()), table.slice(s, e - s))
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


# ---- restore ---------------------------------------------------------------------------------
def schema_problem(schema: pa.Schema) -> str | None:
    """Why a file's schema is not the archive's (names, order and types), or None."""
    names = tuple(schema.names)
    if names != NAMES:
        missing = [n for n in NAMES if n not in names]
        extra = [n for n in names if n not in NAMES]
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else [])
        detail = "; ".join(parts) or "columns out of order"
        return f"columns do not match options_chains ({detail})"
    for c, field in zip(COLUMNS, schema, strict=True):
        if field.type != c.arrow:
            return f"column {c.name} is {field.type}, expected {c.arrow}"
    return None


def to_payload(table: pa.Table) -> bytes:
    """The binary COPY stream of ``table`` (of ``SCHEMA``) for ``NAMES``, as ``write_group`` sends it:
    each column turned into its wire values with numpy, then ``pgcopy.encode_columns``.
    Raises ValueError when a NOT NULL column holds a NULL."""
    columns = []
    for c in COLUMNS:
        array = table.column(c.name).combine_chunks()
        if not c.nullable and array.null_count:
            raise ValueError(f"column {c.name} holds {array.null_count} NULLs")
        columns.append(_encode(c.pg_type, array))
    return bytes(pgcopy.encode_columns(table.num_rows, columns))


def _valid(array: pa.Array) -> np.ndarray | None:
    return None if not array.null_count else array.is_valid().to_numpy(zero_copy_only=False)


def _fixed_bytes(array: pa.Array, width: int) -> np.ndarray:
    """A fixed-size binary array's values as an (n, width) uint8 view (NULL slots hold garbage)."""
    data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    return data[array.offset * width:(array.offset + len(array)) * width].reshape(len(array), width)


def _encode(pg_type: str, array: pa.Array) -> pgcopy.Column:
    """One column as ``pgcopy`` lays it out."""
    valid = _valid(array)
    if pg_type == "timestamptz":  # microseconds from the Unix epoch
        return pgcopy.fixed(pg_type, array.cast(pa.int64()).fill_null(0).to_numpy(), valid)
    if pg_type == "date":         # days from the Unix epoch
        return pgcopy.fixed(pg_type, array.cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64), valid)
    if pg_type == "uuid":
        return pgcopy.fixed(pg_type, _fixed_bytes(array.storage, 16), valid)
    if pg_type in ("int4", "int8", "float8"):
        return pgcopy.fixed(pg_type, array.fill_null(0).to_numpy(), valid)
    if pg_type == "numeric":
        return _numerics(array, valid)
    if pg_type == "text":
        n = len(array)
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + n + 1].astype(np.int64)
        data = array.buffers()[2]
        body = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        lengths = np.diff(offsets)
        if valid is not None:
            lengths[~valid] = -1
        return pgcopy.Column(pgcopy.padded(body, offsets), lengths)
    raise ValueError(f"unsupported column type {pg_type!r}")


def _numerics(array: pa.Array, valid: np.ndarray | None) -> pgcopy.Column:
    """decimal128 -> numeric, one encoding per distinct value (a chain has a few hundred strikes)."""
    scale = array.type.scale
    # decimal128 is 16-byte little-endian two's complement; numeric(12,4) fits the low 8 bytes.
    words = np.ascontiguousarray(_fixed_bytes(array, 16)).view("<i8")
    low, high = words[:, 0], words[:, 1]
    beyond = high != (low >> 63)
    if valid is not None:
        low, beyond = np.where(valid, low, 0), beyond & valid
    if beyond.any():
        raise ValueError("numeric value beyond 18 digits")
    distinct, inverse = np.unique(low, return_inverse=True)
    parts = [pgcopy.numeric_binary(Decimal(int(v)).scaleb(-scale)) for v in distinct.tolist()]
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    table = pgcopy.padded(np.frombuffer(b"".join(parts), dtype=np.uint8), offsets)
    lengths = sizes[inverse]
    if valid is not None:
        lengths[~valid] = -1
    return pgcopy.Column(table[inverse], lengths)
