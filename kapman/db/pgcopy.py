"""PostgreSQL's binary COPY format in one place: its framing, its epoch, one table of the types
KapMan writes and reads, and one encoder.

A stream is a header, rows, and a trailer; a row is its field count (int16) and, per field, a
length (int32, -1 for NULL) and that many bytes.  Every writer's payload goes through
``encode_columns``: callers turn each column into each row's field length and its value's bytes,
one row per value padded to the column's widest (``Column``), from numpy (``encode_binary_copy``),
Python rows (``encode_binary_rows``) or Arrow (``kapman.archive.table``).  The rows are then laid
out in one (rows x widest row) byte slab, each field at the same offset in every row, and the bytes
each row really uses are selected in one pass: slab-wide copies, no per-row or per-byte Python
work.  Columns of long values (JSON documents) are not padded: they are copied into the stream a
value at a time between the slab's pieces (see ``Wide``).

Readers (``bulk.read_fixed``, ``kapman.archive.decode``) take the same table's wire types and epoch.
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, DecimalTuple
from itertools import repeat
from typing import Any
from uuid import UUID

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)

#: PostgreSQL's epoch: timestamps are microseconds and dates days from it.  Every offset below is
#: derived from this one value.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
PG_EPOCH_US = (PG_EPOCH - _UNIX_EPOCH) // _MICROSECOND        # from the Unix epoch, in microseconds
PG_EPOCH_DAYS = (PG_EPOCH - _UNIX_EPOCH).days                  # from the Unix epoch, in days
_PG_EPOCH_ORDINAL = PG_EPOCH.date().toordinal()


@dataclass(frozen=True)
class PgType:
    name: str
    python: tuple[type, ...]      # what ``encode_binary_rows`` accepts for it
    wire: str | None = None       # numpy dtype of a fixed-width value (big-endian); None: variable width
    epoch_unit: str | None = None  # "us"/"D": the value counts these from PG_EPOCH

    @property
    def width(self) -> int | None:
        return None if self.wire is None else np.dtype(self.wire).itemsize


#: Every type KapMan writes or reads in binary form.
TYPES: dict[str, PgType] = {t.name: t for t in (
    PgType("timestamptz", (datetime,), ">i8", "us"),
    PgType("date", (date,), ">i4", "D"),
    PgType("uuid", (UUID,), "V16"),
    PgType("int4", (int,), ">i4"),
    PgType("int8", (int,), ">i8"),
    PgType("float8", (float, int), ">f8"),
    PgType("numeric", (Decimal, int)),
    PgType("text", (str,)),
    PgType("varchar", (str,)),
    PgType("jsonb", (str, bytes)),  # already-serialised JSON text
)}
#: pg types ``encode_binary_rows`` accepts, with the Python types their values may have.
ROW_TYPES: dict[str, tuple[type, ...]] = {name: t.python for name, t in TYPES.items()}


def pg_type(name: str) -> PgType:
    try:
        return TYPES[name]
    except KeyError:
        raise ValueError(f"unsupported type {name!r}") from None


# ---- values <-> wire --------------------------------------------------------------------------
def to_wire(name: str, values: np.ndarray) -> np.ndarray:
    """numpy values as their big-endian wire form: date as datetime64[D] or days from the Unix
    epoch, timestamptz as datetime64[us] or microseconds from it, uuid as (n, 16) uint8."""
    t = pg_type(name)
    if t.wire is None:
        raise ValueError(f"{name} has no fixed-width wire form")
    if name == "uuid":
        return np.ascontiguousarray(values, dtype=np.uint8).reshape(len(values), 16)
    if t.epoch_unit is not None:
        unix = values.astype(f"datetime64[{t.epoch_unit}]").astype(np.int64) if values.dtype.kind == "M" else values
        values = np.asarray(unix, dtype=np.int64) - (PG_EPOCH_US if t.epoch_unit == "us" else PG_EPOCH_DAYS)
    return values.astype(t.wire)


def from_wire(name: str, values: np.ndarray) -> np.ndarray:
    """Wire values (native order) of a date or timestamptz as days or microseconds from the Unix
    epoch (int64); other types unchanged."""
    unit = pg_type(name).epoch_unit
    if unit is None:
        return values
    return values.astype(np.int64) + (PG_EPOCH_US if unit == "us" else PG_EPOCH_DAYS)


def timestamptz_binary(value: datetime) -> bytes:
    """An aware datetime in ``timestamptz``'s binary form: microseconds since PG_EPOCH."""
    if value.tzinfo is None:
        raise ValueError(f"timestamptz needs an aware datetime, got {value!r}")
    return struct.pack(">q", (value - PG_EPOCH) // _MICROSECOND)


def _date(value: date) -> bytes:
    if isinstance(value, datetime):
        raise TypeError(f"date column holds a datetime: {value!r}")
    return struct.pack(">i", value.toordinal() - _PG_EPOCH_ORDINAL)


_NUMERIC_POS, _NUMERIC_NEG = 0x0000, 0x4000
_NUMERIC_SPECIAL = {"n": 0xC000, "N": 0xC000, "F": 0xD000}  # NaN, sNaN (stored as NaN), +Infinity
_NUMERIC_NINF = 0xF000
NUMERIC_SIGNS = (_NUMERIC_POS, _NUMERIC_NEG)


def numeric_binary(value: Decimal | int) -> bytes:
    """A value in ``numeric``'s binary form: ndigits, weight, sign, dscale, then base-10000 digits.

    The coefficient is scaled so that its base-10000 digits line up with the decimal point
    (``dscale`` rounded up to whole groups of four), split into digits, and trailing zero digits are
    dropped; the display scale is the Decimal's own (``Decimal('150.1')`` keeps one decimal).
    """
    return _numeric_of((value if isinstance(value, Decimal) else Decimal(value)).as_tuple())


@functools.lru_cache(maxsize=1 << 16)  # keyed by sign, digits and exponent: equal values of other scales differ
def _numeric_of(parts: DecimalTuple) -> bytes:
    sign, digits, exponent = parts
    if isinstance(exponent, str):
        flag = _NUMERIC_NINF if exponent == "F" and sign else _NUMERIC_SPECIAL[exponent]
        return struct.pack(">hhHh", 0, 0, flag, 0)
    dscale = max(0, -exponent)
    groups = -(-dscale // 4)  # base-10000 digits after the point
    coefficient = int("".join(map(str, digits))) if digits else 0
    scaled = coefficient * 10 ** (exponent + 4 * groups)
    out: list[int] = []
    while scaled:
        scaled, digit = divmod(scaled, 10000)
        out.append(digit)
    if not out:
        return struct.pack(">hhHh", 0, 0, _NUMERIC_POS, dscale)
    weight = len(out) - 1 - groups
    out.reverse()
    while out[-1] == 0:
        out.pop()
    if len(out) > 0x7FFF or not -0x8000 <= weight <= 0x7FFF or dscale > 0x3FFF:
        raise ValueError(f"numeric value out of range: {sign and '-' or ''}{''.join(map(str, digits))}E{exponent}")
    return struct.pack(f">hhHh{len(out)}H", len(out), weight, _NUMERIC_NEG if sign else _NUMERIC_POS, dscale, *out)


# ---- columns ----------------------------------------------------------------------------------
@dataclass
class Column:
    """One column ready for the stream: each row's value, and its field length (-1 for NULL; None:
    every row is the full width).  ``values`` are either numbers written as ``wire`` (a big-endian
    numpy dtype, converted as they are laid out) or each row's bytes, (n, width) uint8, padded to
    the widest (NULL rows: anything)."""

    values: np.ndarray
    lengths: np.ndarray | None = None
    wire: str | None = None

    @property
    def width(self) -> int:
        return np.dtype(self.wire).itemsize if self.wire else int(self.values.shape[1])

    def field(self, name: str) -> tuple:
        return (name, self.wire) if self.wire else (name, "u1", (self.width,))


class Wide(list):
    """A column of long values (JSON documents), copied into the stream one value at a time rather
    than padded into the slab; ``lengths`` as ``Column``'s (``prefix`` included: jsonb's version
    byte, written before each value)."""

    lengths: np.ndarray
    prefix: bytes = b""


def padded(body: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Variable-width values ``body[offsets[i]:offsets[i + 1]]`` as one padded row each."""
    widths = np.diff(offsets)
    widest = int(widths.max()) if len(widths) else 0
    if widest and (widths == widest).all():  # one width (a chain's option types): a view, no gather
        return body[offsets[0]:offsets[-1]].reshape(len(widths), widest)
    if not len(body):
        body = np.zeros(1, np.uint8)
    return body[np.minimum(offsets[:-1, None] + np.arange(widest), len(body) - 1)]


def fixed(name: str, values: np.ndarray, valid: np.ndarray | None = None) -> Column:
    """Fixed-width values of type ``name`` (as ``to_wire`` takes them) as a column; ``valid``
    False marks NULLs."""
    t = pg_type(name)
    if name == "uuid":
        column = Column(to_wire(name, values))
    elif t.epoch_unit is not None:
        unix = values.astype(f"datetime64[{t.epoch_unit}]").astype(np.int64) if values.dtype.kind == "M" else values
        column = Column(unix - (PG_EPOCH_US if t.epoch_unit == "us" else PG_EPOCH_DAYS), wire=t.wire)
    else:
        column = Column(values, wire=t.wire)
    if valid is not None and not valid.all():
        column.lengths = np.where(valid, column.width, -1).astype(np.int64)
    return column


def encode_columns(n: int, columns: Sequence[Column | Wide]) -> bytes:
    """The complete binary COPY stream of ``n`` rows of ``columns`` (see the module's docstring)."""
    if not n:
        return HEADER + TRAILER
    # Pieces of the row between wide values: narrow fields (with their lengths) and a wide one's length.
    pieces: list[list[Column | Wide]] = [[]]
    wides: list[Wide] = []
    for c in columns:
        if isinstance(c, Wide):
            pieces[-1].append(c)
            wides.append(c)
            pieces.append([])
        elif len(c.values) != n:
            raise ValueError("columns differ in length")
        else:
            pieces[-1].append(c)
    count = len(columns)
    if not wides:
        return HEADER + _slab(n, pieces[0], count)[0] + TRAILER
    # A bytearray, returned as it is: a copy of tens of MB (A2's JSON) would cost as much as building it.
    return _interleave(n, [_slab(n, p, count if k == 0 else None) for k, p in enumerate(pieces)],  # type: ignore[return-value]
                       wides)


def _slab(n: int, columns: list[Column | Wide], count: int | None) -> tuple[bytes, np.ndarray]:
    """The fields of ``columns`` (the field ``count`` first, when given), row after row, and each
    row's byte count: one structured array, each field at the same offset in every row, then the
    bytes each row uses selected (when some field is shorter than its column's widest)."""
    fields: list[tuple] = [("count", ">i2")] if count is not None else []
    for i, c in enumerate(columns):
        fields.append((f"l{i}", ">i4"))
        if isinstance(c, Column):
            fields.append(c.field(f"v{i}"))
    layout = np.dtype(fields)
    rows = np.empty(n, dtype=layout)
    if count is not None:
        rows["count"] = count
    sizes = np.full(n, layout.itemsize, dtype=np.int64)
    short: list[tuple[int, int, np.ndarray]] = []  # (offset, width, lengths) of fields using less
    for i, c in enumerate(columns):
        rows[f"l{i}"] = c.lengths if c.lengths is not None else c.width
        if isinstance(c, Wide):
            continue
        rows[f"v{i}"] = c.values
        # else every row uses it whole; a column NULL in every row (width 0) has no bytes to leave out
        if c.width and c.lengths is not None and (c.lengths != c.width).any():
            short.append((int(layout.fields[f"v{i}"][1]), c.width, c.lengths))  # type: ignore[index]
            sizes -= c.width - np.maximum(c.lengths, 0)
    if not short:
        return rows.tobytes(), sizes
    used = np.ones((n, layout.itemsize), dtype=bool)
    for at, w, lengths in short:
        used[:, at:at + w] = np.arange(w) < lengths[:, None]  # NULL (-1) uses none
    return rows.view(np.uint8).reshape(n, layout.itemsize)[used].tobytes(), sizes


def _interleave(n: int, pieces: list[tuple[bytes, np.ndarray]], wides: list[Wide]) -> bytearray:
    """Rows of narrow pieces with wide values between them: each piece's bytes placed with one
    gather, the wide values copied one at a time (a slice copy each)."""
    sizes = np.empty((n, 2 * len(pieces) - 1), dtype=np.int64)  # piece, wide, piece, ..., in row order
    sizes[:, 0::2] = np.stack([s for _, s in pieces], axis=1)
    sizes[:, 1::2] = np.stack([np.maximum(w.lengths, 0) for w in wides], axis=1)
    starts = len(HEADER) + np.cumsum(sizes.ravel()).reshape(n, -1) - sizes  # each part's start
    total = len(HEADER) + int(sizes.sum())
    buffer = bytearray(total + len(TRAILER))
    out = np.frombuffer(buffer, dtype=np.uint8)
    out[:len(HEADER)] = np.frombuffer(HEADER, dtype=np.uint8)
    out[total:] = np.frombuffer(TRAILER, dtype=np.uint8)
    for k, (data, size) in enumerate(pieces):
        offsets = np.cumsum(size) - size  # where each row's piece starts in ``data``
        out[np.repeat(starts[:, 2 * k] - offsets, size) + np.arange(len(data))] = np.frombuffer(data, np.uint8)
    for k, wide in enumerate(wides):
        at = starts[:, 2 * k + 1][wide.lengths >= 0]
        p = len(wide.prefix)
        if p:
            out[at[:, None] + np.arange(p)] = np.frombuffer(wide.prefix, dtype=np.uint8)
        for start, value in zip((at + p).tolist(), wide, strict=True):
            raw = value.encode() if isinstance(value, str) else value
            buffer[start:start + len(raw)] = raw
    return buffer


# ---- numpy columns ----------------------------------------------------------------------------
def encode_binary_copy(columns: Sequence[tuple[str, np.ndarray | None]]) -> bytes:
    """A complete binary COPY stream of fixed-width numpy columns (as ``to_wire`` takes them); a
    column given as None is NULL in every row."""
    n = next(len(v) for _, v in columns if v is not None)
    out = []
    for name, values in columns:
        if values is None:
            out.append(Column(np.zeros((n, 0), np.uint8), np.full(n, -1, np.int64)))
        else:
            if len(values) != n:
                raise ValueError("columns differ in length")
            out.append(fixed(name, values))
    return encode_columns(n, out)


def concat_copy(payloads: Sequence[bytes]) -> bytes:
    """One binary COPY stream holding the rows of several (of the same columns), in order."""
    if len(payloads) == 1:
        return payloads[0]
    body = b"".join(memoryview(p)[len(HEADER):len(p) - len(TRAILER)] for p in payloads)
    return HEADER + body + TRAILER


# ---- Python rows ------------------------------------------------------------------------------
#: jsonb's binary form: a version byte, then the JSON text.
_JSONB_VERSION = b"\x01"
#: Text columns whose values average at least this many bytes are ``Wide``: JSON documents of a
#: few kB would otherwise be padded to the longest.
_WIDE_FIELD = 64
_INT_RANGE = {"int4": (-(2**31), 2**31 - 1), "int8": (-(2**63), 2**63 - 1)}


def _uuid(value: UUID) -> bytes:
    return value.bytes


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "timestamptz": timestamptz_binary, "date": _date, "uuid": _uuid, "numeric": numeric_binary}


def _by_identity(values: Sequence[Any], encode: Callable[[Any], bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each value's length and padded bytes, with ``encode`` called once per distinct object.

    Snapshot times, ids, dates and strikes repeat across a chain as the same few objects.
    """
    ids = np.fromiter(map(id, values), dtype=np.uint64, count=len(values))
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    parts = [encode(values[i]) for i in first.tolist()]
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    blob = np.frombuffer(b"".join(parts), dtype=np.uint8)
    if (sizes == sizes[0]).all():
        table = blob.reshape(len(parts), -1)
    else:
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        table = padded(blob, offsets)
    return sizes[inverse], table[inverse]


def _texts(values: Sequence[str | bytes], prefix: bytes) -> tuple[np.ndarray, np.ndarray | Wide]:
    """Each value's length (``prefix`` included) and its padded bytes, or a ``Wide`` of the values
    themselves when they are long (ASCII strings as they are: their length is their UTF-8 bytes')."""
    ascii_only = all(type(v) is str and v.isascii() for v in values)
    parts: Sequence[str | bytes] = values if ascii_only else [
        v.encode() if isinstance(v, str) else v for v in values]
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)) + len(prefix)
    if int(sizes.sum()) >= _WIDE_FIELD * len(parts):
        wide = Wide(parts)
        wide.prefix = prefix
        return sizes, wide
    joined = "".join(parts).encode() if ascii_only else b"".join(parts)  # type: ignore[arg-type]
    body = np.frombuffer(joined, dtype=np.uint8)
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(sizes - len(prefix), out=offsets[1:])
    values_ = padded(body, offsets)
    if prefix:
        values_ = np.concatenate([np.broadcast_to(np.frombuffer(prefix, np.uint8), (len(parts), len(prefix))),
                                  values_], axis=1)
    return sizes, values_


def _row_column(name: str, values: Sequence[Any], index: int) -> Column | Wide:
    """One column of Python values (None for NULL), type-checked."""
    allowed = ROW_TYPES.get(name)
    if allowed is None:
        raise ValueError(f"column {index}: unsupported type {name!r}")
    n = len(values)
    kinds = set(map(type, values))
    nulls: np.ndarray | None = None
    if type(None) in kinds:
        kinds.discard(type(None))
        nulls = np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=n)
    for kind in kinds:
        if not issubclass(kind, allowed) or kind is bool:
            raise TypeError(f"column {index} ({name}) holds a {kind.__name__}")
    present = values if nulls is None else [v for v in values if v is not None]
    if name in ("float8", "int4", "int8"):
        if name == "float8":
            numbers, wire = np.array(present, dtype=np.float64), ">f8"
        else:
            numbers = np.array(present, dtype=np.int64)  # OverflowError beyond int8
            low, high = _INT_RANGE[name]
            if len(numbers) and (numbers.min() < low or numbers.max() > high):
                raise ValueError(f"column {index}: value out of {name} range")
            wire = ">i4" if name == "int4" else ">i8"
        if nulls is None:
            return Column(numbers, wire=wire)
        full = np.zeros(n, dtype=numbers.dtype)
        full[~nulls] = numbers
        return Column(full, _with_nulls(np.full(len(numbers), np.dtype(wire).itemsize, np.int64), nulls, n),
                      wire=wire)
    if not present:
        sizes, rows = np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.uint8)
    elif name in ("text", "varchar", "jsonb"):
        sizes, got = _texts(present, _JSONB_VERSION if name == "jsonb" else b"")
        if isinstance(got, Wide):
            got.lengths = _with_nulls(sizes, nulls, n)  # the values are the present ones, in order
            return got
        rows = got
    else:
        sizes, rows = _by_identity(present, _ENCODERS[name])
    if nulls is None:
        return Column(rows, None if (sizes == rows.shape[1]).all() else sizes)
    full = np.zeros((n, rows.shape[1]), dtype=np.uint8)
    full[~nulls] = rows
    return Column(full, _with_nulls(sizes, nulls, n))


def _with_nulls(sizes: np.ndarray, nulls: np.ndarray | None, n: int) -> np.ndarray:
    if nulls is None:
        return sizes
    lengths = np.full(n, -1, dtype=np.int64)
    lengths[~nulls] = sizes
    return lengths


def encode_binary_rows(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A complete binary COPY stream of Python rows (None for NULL) with declared PostgreSQL types.

    The bytes psycopg's ``Copy.write_row`` sends for the same rows and types, built a column at a
    time: numbers with numpy, timestamps, ids, dates and numerics once per distinct object, texts
    joined.  Types: the keys of ``ROW_TYPES`` (text is sent as UTF-8, so the connection that COPYs
    it must use that client encoding).  Integers are range-checked rather than wrapped.
    """
    m = len(types)
    if not rows:
        return HEADER + TRAILER
    if set(map(len, rows)) != {m}:
        raise ValueError(f"every row needs {m} fields")
    columns = [_row_column(name, values, j)
               for j, (name, values) in enumerate(zip(types, zip(*rows, strict=True), strict=True))]
    return encode_columns(len(rows), columns)
