"""``options_chains`` as Arrow: the archive's schema, the export query, and the restore payload.

The archive holds every column of the table, bookkeeping stamps included, so a restored row is the
row that was archived.  The export reads the table with one binary ``COPY .. TO STDOUT``
(``kapman.archive.decode`` turns it into Arrow); the restore turns an Arrow table back into the
binary COPY stream ``bulk.write_group`` sends, through the one encoder (``kapman.db.pgcopy``).
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
    Column("quote_updated_at", "timestamptz", _UTC_US),   # migration 0010: freshness
    Column("trade_updated_at", "timestamptz", _UTC_US),
    Column("timeframe", "text", pa.string()),
    Column("day_close", "float8", pa.float64()),
)
NAMES = tuple(c.name for c in COLUMNS)
#: Columns whose values repeat across a chain (the snapshot, the underlying, expirations, strikes):
#: the ones Parquet's dictionary encoding is worth its CPU on.
REPEATING = ("time", "ticker_id", "symbol", "expiration_date", "strike_price", "option_type", "shares_per_contract",
             "underlying_price", "created_at", "updated_at")
SCHEMA = pa.schema([pa.field(c.name, c.arrow, nullable=c.nullable) for c in COLUMNS])
#: An archive file's columns (format 2): the table's, with ``ticker_id`` as text and the
#: underlying's ``symbol`` after it, so any Parquet reader (pandas, polars, DuckDB) reads it alone.
FILE_SCHEMA = pa.schema([pa.field("ticker_id", pa.string(), nullable=False) if f.name == "ticker_id" else f
                         for f in SCHEMA]).insert(2, pa.field("symbol", pa.string()))
#: Values far outside any real chain: a file holding one was damaged (before it was hashed, or in
#: the table it was read from) and is not restored.  NULLs pass; NaN and infinities do not.  Each
#: range holds the one options ingestion stores (``kapman.ingest.options.normalise.RANGES``), so a
#: chain a run stored is a chain the restore takes back.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "shares_per_contract": (0, 2**31 - 1), "underlying_price": (0, 1e8), "bid": (0, 1e8), "ask": (0, 1e8),
    "last": (0, 1e8), "volume": (0, 2**63 - 1), "open_interest": (0, 2**63 - 1), "implied_volatility": (0, 1e3),
    "delta": (-10, 10), "gamma": (-1e4, 1e4), "theta": (-1e6, 1e6), "vega": (-1e6, 1e6),
}
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


def runs(ids: np.ndarray) -> list[tuple[uuid.UUID, int, int]]:
    """Consecutive runs of one id in (n, 16) uuid bytes: (id, first row, row after the last)."""
    if not len(ids):
        return []
    starts = np.flatnonzero(np.concatenate(([True], (ids[1:] != ids[:-1]).any(axis=1))))
    ends = np.append(starts[1:], len(ids))
    return [(uuid.UUID(bytes=ids[s].tobytes()), s, e) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


# ---- archive files ---------------------------------------------------------------------------
def to_file(part: pa.Table, ticker_id: uuid.UUID, symbol: str | None) -> pa.Table:
    """One underlying's rows (of ``SCHEMA``) as an archive file's table (``FILE_SCHEMA``)."""
    n = part.num_rows
    ids = pa.array([str(ticker_id)], pa.string()).take(np.zeros(n, dtype=np.int32))
    symbols = pa.array([symbol], pa.string()).take(np.zeros(n, dtype=np.int32))
    columns = [part.column("time"), ids, symbols, *part.columns[2:]]
    return pa.Table.from_arrays(columns, schema=FILE_SCHEMA)


def from_file(rows: pa.Table) -> tuple[pa.Table, str | None]:
    """An archive file's table as ``SCHEMA`` rows, and the symbol it names (None in a format-1 file,
    whose schema is ``SCHEMA`` itself).  Raises ValueError: wrong columns, or not one underlying."""
    problem = file_schema_problem(rows.schema)
    if problem:
        raise ValueError(problem)
    if "symbol" not in rows.column_names:
        return rows, None
    ids = pc.unique(rows.column("ticker_id")).to_pylist()
    symbols = pc.unique(rows.column("symbol")).to_pylist()
    if len(ids) > 1 or len(symbols) > 1:
        raise ValueError(f"{len(ids)} ticker ids and {len(symbols)} symbols in one underlying's file")
    n = rows.num_rows
    if not n:
        return SCHEMA.empty_table(), None
    try:
        tid = uuid.UUID(ids[0])
    except (TypeError, ValueError):
        raise ValueError(f"ticker_id {ids[0]!r} is not a UUID") from None
    storage = pa.array([tid.bytes], pa.binary(16)).take(np.zeros(n, dtype=np.int32))
    ticker = pa.ExtensionArray.from_storage(pa.uuid(), storage)
    columns = [rows.column("time"), ticker, *rows.columns[3:]]
    return pa.Table.from_arrays(columns, schema=SCHEMA), symbols[0]


def implausible(rows: pa.Table) -> str | None:
    """The first value far outside any real chain (``PLAUSIBLE``), or None.  NaN fails both bounds."""
    for name, (low, high) in PLAUSIBLE.items():
        array = rows.column(name).combine_chunks()
        values = _values(array)
        with np.errstate(invalid="ignore"):
            bad = ~((values >= low) & (values <= high))
        valid = _valid(array)
        if valid is not None:
            bad &= valid  # NULL: plausible
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return f"row {i + 1}: {name} {values[i].item()!r} outside [{low:g}, {high:g}]"
    return None


# ---- restore ---------------------------------------------------------------------------------
def file_schema_problem(schema: pa.Schema) -> str | None:
    """Why a file's schema is neither format 2's (``FILE_SCHEMA``) nor format 1's (``SCHEMA``), or None."""
    text_id = "ticker_id" in schema.names and schema.field("ticker_id").type == pa.string()
    return schema_problem(schema, FILE_SCHEMA if "symbol" in schema.names or text_id else SCHEMA)


def schema_problem(schema: pa.Schema, want: pa.Schema = SCHEMA) -> str | None:
    """Why a file's schema is not ``want`` (names, order and types), or None."""
    names, expected = tuple(schema.names), tuple(want.names)
    if names != expected:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else [])
        detail = "; ".join(parts) or "columns out of order"
        return f"columns do not match options_chains ({detail})"
    for field, wanted in zip(schema, want, strict=True):
        if field.type != wanted.type:
            return f"column {field.name} is {field.type}, expected {wanted.type}"
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
    return pgcopy.encode_columns(table.num_rows, columns)


def content_hash(payload: bytes) -> str:
    """The content hash of a binary COPY payload (``manifest``): the SHA-256 of its rows, between
    the stream's header and trailer, as the export hashes the rows the table sent."""
    return hashlib.sha256(memoryview(payload)[len(pgcopy.HEADER):len(payload) - len(pgcopy.TRAILER)]).hexdigest()


def _valid(array: pa.Array) -> np.ndarray | None:
    """Which rows are not NULL (None: all of them), from the validity bitmap."""
    if not array.null_count:
        return None
    bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, count=array.offset + len(array), bitorder="little")[array.offset:].view(bool)


def _values(array: pa.Array, dtype: type | None = None) -> np.ndarray:
    """A fixed-width array's values as numpy, read from its buffer without a copy (timestamps and
    dates as their integer counts; NULL slots hold whatever the buffer holds: callers mask them)."""
    kind = np.dtype(dtype or array.type.to_pandas_dtype())
    buffer = array.buffers()[1]
    if buffer is None:  # no rows, or (some writers) NULL in every row
        return np.zeros(len(array), dtype=kind)
    return np.frombuffer(buffer, dtype=kind)[array.offset:array.offset + len(array)]


def _fixed_bytes(array: pa.Array, width: int) -> np.ndarray:
    """A fixed-size binary array's values as an (n, width) uint8 view (NULL slots hold garbage)."""
    data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    return data[array.offset * width:(array.offset + len(array)) * width].reshape(len(array), width)


def _encode(pg_type: str, array: pa.Array) -> pgcopy.Column:
    """One column as ``pgcopy`` lays it out."""
    valid = _valid(array)
    if pg_type == "timestamptz":  # microseconds from the Unix epoch
        return pgcopy.fixed(pg_type, _values(array, np.int64), valid)
    if pg_type == "date":         # days from the Unix epoch
        return pgcopy.fixed(pg_type, _values(array, np.int32).astype(np.int64), valid)
    if pg_type == "uuid":
        return pgcopy.fixed(pg_type, _fixed_bytes(array.storage, 16), valid)
    if pg_type in ("int4", "int8", "float8"):
        return pgcopy.fixed(pg_type, _values(array), valid)
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


@functools.lru_cache(maxsize=1 << 14)  # strikes repeat across the chains of a snapshot
def _numeric(coefficient: int, scale: int) -> bytes:
    return pgcopy.numeric_binary(Decimal(coefficient).scaleb(-scale))


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
    parts = [_numeric(v, scale) for v in distinct.tolist()]
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    table = pgcopy.padded(np.frombuffer(b"".join(parts), dtype=np.uint8), offsets)
    lengths = sizes[inverse]
    if valid is not None:
        lengths[~valid] = -1
    return pgcopy.Column(table[inverse], lengths)
