"""A binary ``COPY .. TO STDOUT`` of one snapshot's ``options_chains`` rows, decoded into Arrow.

Every value is taken from the server's own binary form (floats bit for bit, numerics digit for
digit), so the archive holds what the table holds by construction.  The decoding is vectorised:
once every row's start is known, each field is one numpy gather across all rows.

Finding the rows: every row of one snapshot starts with the same bytes, its field count, the
length and value of ``time`` (the snapshot's) and the length of ``ticker_id``.  Those 18 bytes are
searched for, and the split is then proven: walking every field of every row from those starts
must end each row exactly where the next begins.  Should a value ever contain those bytes, the
proof fails and the rows are found by walking the stream field by field instead (slow, certain).
"""

from __future__ import annotations

import struct
from datetime import datetime

import numpy as np
import pyarrow as pa

from kapman.archive.table import COLUMNS, SCHEMA, Column
from kapman.db import pgcopy

_HEADER, _TRAILER = pgcopy.HEADER, pgcopy.TRAILER
_NUMERIC_POS, _NUMERIC_NEG = pgcopy.NUMERIC_SIGNS


def _row_prefix(snapshot: datetime) -> bytes:
    return struct.pack(">hi", len(COLUMNS), 8) + pgcopy.timestamptz_binary(snapshot) + struct.pack(">i", 16)


def _walk(body: np.ndarray, m: int) -> np.ndarray:
    """Row starts by walking every field: the certain, slow way."""
    view = memoryview(body.tobytes())
    starts, pos, end = [], 0, len(view)
    while pos < end:
        starts.append(pos)
        pos += 2
        for _ in range(m):
            length = int.from_bytes(view[pos:pos + 4], "big", signed=True)
            pos += 4 + max(length, 0)
    return np.array(starts, dtype=np.int64)


def _read(body: np.ndarray, pos: np.ndarray, dtype: str) -> np.ndarray:
    """The big-endian value of ``dtype`` at each byte position, in native order.

    The bytes are gathered into a fresh (n, size) array, which is aligned, and viewed as the type:
    numpy's own gathers from an unaligned, byte-swapped view of the buffer are many times slower.
    Positions past the end (the stale positions of NULL fields) read the last bytes.
    """
    kind = np.dtype(dtype)
    size = kind.itemsize
    raw = body[np.minimum(pos, len(body) - size)[:, None] + np.arange(size)]
    return raw.view(kind).ravel().astype(kind.newbyteorder("="))


def _bytes_at(body: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes at each position, as an (n, width) uint8 array."""
    pos = np.minimum(pos, len(body) - width)
    return np.stack([body[pos + i] for i in range(width)], axis=1)


def _row_starts(body: np.ndarray, prefix: bytes) -> np.ndarray:
    """Every position where ``prefix`` occurs: its first two bytes found in two passes over the
    buffer, the rest checked for those candidates only."""
    starts = np.flatnonzero((body[:-1] == prefix[0]) & (body[1:] == prefix[1]))
    for i in range(2, len(prefix)):
        starts = starts[body[np.minimum(starts + i, len(body) - 1)] == prefix[i]]
    return starts


def _validity(valid: np.ndarray) -> pa.Buffer | None:
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())


class _Fields:
    """The walk across all rows at once: ``pos`` is every row's position in its current field."""

    def __init__(self, body: np.ndarray, starts: np.ndarray) -> None:
        self.body, self.starts, self.pos = body, starts, starts + 2

    def next(self, c: Column) -> pa.Array:
        lengths = _read(self.body, self.pos, ">i4").astype(np.int64)
        at = self.pos + 4
        self.pos = at + np.maximum(lengths, 0)
        valid = lengths >= 0
        if not c.nullable and not valid.all():
            raise ValueError(f"column {c.name} holds NULLs")
        n = len(lengths)
        width = pgcopy.pg_type(c.pg_type).width
        if width is not None:
            if (lengths[valid] != width).any():
                raise ValueError(f"column {c.name}: unexpected field width")
            return self._fixed(c, at, valid, n)
        if c.pg_type == "text":
            return self._text(at, lengths, valid, n)
        if c.pg_type == "numeric":
            return self._numeric(c, at, lengths, valid, n)
        raise ValueError(f"column {c.name}: unsupported type {c.pg_type}")

    def _fixed(self, c: Column, at: np.ndarray, valid: np.ndarray, n: int) -> pa.Array:
        if c.pg_type == "uuid":
            raw = _bytes_at(self.body, at, 16)
            storage = pa.Array.from_buffers(pa.binary(16), n, [_validity(valid), pa.py_buffer(raw.tobytes())])
            return pa.ExtensionArray.from_storage(pa.uuid(), storage)
        wire = pgcopy.pg_type(c.pg_type).wire
        assert wire is not None
        if c.pg_type == "float8":
            values = _read(self.body, at, ">u8").view(np.float64)  # the bits as sent
        else:
            values = pgcopy.from_wire(c.pg_type, _read(self.body, at, wire))
        values = np.where(valid, values, 0).astype(values.dtype if c.pg_type != "date" else np.int32)
        return pa.Array.from_buffers(c.arrow, n, [_validity(valid), pa.py_buffer(values.tobytes())])

    def _text(self, at: np.ndarray, lengths: np.ndarray, valid: np.ndarray, n: int) -> pa.Array:
        widths = np.maximum(lengths, 0)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(widths, out=offsets[1:])
        if offsets[-1] > np.iinfo(np.int32).max:
            raise ValueError("text column too large for one Arrow array")
        source = np.repeat(at - offsets[:-1], widths) + np.arange(int(offsets[-1]))
        data = self.body[source].tobytes()
        return pa.Array.from_buffers(pa.string(), n, [_validity(valid), pa.py_buffer(
            offsets.astype(np.int32).tobytes()), pa.py_buffer(data)])

    def _numeric(self, c: Column, at: np.ndarray, lengths: np.ndarray, valid: np.ndarray, n: int) -> pa.Array:
        """numeric -> decimal128(p, s): sum of base-10000 digits, each scaled to the column's scale."""
        scale = c.arrow.scale
        if scale % 4:
            raise ValueError(f"column {c.name}: scale {scale} is not whole base-10000 digits")
        ndigits = _read(self.body, at, ">i2").astype(np.int64)
        weight = _read(self.body, at + 2, ">i2").astype(np.int64)
        sign = _read(self.body, at + 4, ">u2").astype(np.int64)
        ndigits, weight, sign = (np.where(valid, x, 0) for x in (ndigits, weight, sign))
        if (~np.isin(sign, (_NUMERIC_POS, _NUMERIC_NEG))).any():
            raise ValueError(f"column {c.name} holds NaN or infinity, which the archive cannot keep")
        if (lengths[valid] != 8 + 2 * ndigits[valid]).any():
            raise ValueError(f"column {c.name}: malformed numeric")
        coefficient = np.zeros(n, dtype=np.int64)
        for k in range(int(ndigits.max()) if n else 0):
            has = k < ndigits
            digit = np.where(has, _read(self.body, np.where(has, at + 8 + 2 * k, 0), ">i2").astype(np.int64), 0)
            power = weight - k + scale // 4   # this digit's exponent, in base 10000, of the coefficient
            if (has & (power < 0)).any() or (has & (power > 4)).any():
                raise ValueError(f"column {c.name}: value beyond decimal128({c.arrow.precision}, {scale})")
            coefficient += digit * np.power(10000, np.where(has, power, 0), dtype=np.int64)
        coefficient = np.where(sign == _NUMERIC_NEG, -coefficient, coefficient)
        words = np.empty((n, 2), dtype="<i8")
        words[:, 0], words[:, 1] = coefficient, coefficient >> 63
        return pa.Array.from_buffers(c.arrow, n, [_validity(valid), pa.py_buffer(words.tobytes())])


def rows_of(data: bytes | bytearray, snapshot: datetime) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a binary COPY of ``COLUMNS`` (in order) for one snapshot: the stream's body
    (header and trailer off) and each row's start in it, proven to tile the body."""
    if not data:
        return np.zeros(0, np.uint8), np.zeros(0, np.int64)
    if not (bytes(data[:len(_HEADER)]) == _HEADER and bytes(data[-len(_TRAILER):]) == _TRAILER):
        raise ValueError("not a binary COPY stream")
    body = np.frombuffer(data, dtype=np.uint8)[len(_HEADER):len(data) - len(_TRAILER)]
    if not len(body):
        return body, np.zeros(0, np.int64)
    starts = _row_starts(body, _row_prefix(snapshot))
    if not _tiles(body, starts):  # a value held the prefix: split the certain way
        starts = _walk(body, len(COLUMNS))
    return body, starts


def _tiles(body: np.ndarray, starts: np.ndarray) -> bool:
    """Whether walking every field's length from ``starts`` ends each row where the next begins."""
    if not len(starts) or starts[0] != 0:
        return False
    pos = starts + 2
    for _ in COLUMNS:
        if (pos > len(body) - 4).any():
            return False
        pos = pos + 4 + np.maximum(_read(body, pos, ">i4").astype(np.int64), 0)
    return bool(np.array_equal(pos, np.append(starts[1:], len(body))))


def from_copy(data: bytes | bytearray, snapshot: datetime) -> pa.Table:
    """The rows of a binary COPY of ``COLUMNS`` (in order) for one snapshot, as a table of ``SCHEMA``."""
    body, starts = rows_of(data, snapshot)
    if not len(starts):
        return SCHEMA.empty_table()
    return decode_rows(body, starts)


def row_bytes(body: np.ndarray, starts: np.ndarray, first: int, end: int) -> memoryview:
    """The stream's bytes of rows ``first`` to ``end`` (exclusive): what a content hash covers."""
    stop = int(starts[end]) if end < len(starts) else len(body)
    return body[int(starts[first]):stop].data


#: Where a row's ticker_id starts: after the field count, time's length and value, ticker_id's length.
TICKER_AT = 2 + 4 + 8 + 4


def ticker_ids(body: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each row's ticker_id as (n, 16) uint8, straight from the stream."""
    return _bytes_at(body, starts + TICKER_AT, 16)


#: Rows decoded at a time: a block's bytes (~2 MB) stay in the CPU's cache across its 20 fields.
BLOCK_ROWS = 8192


def decode_rows(body: np.ndarray, starts: np.ndarray) -> pa.Table:
    """Rows at ``starts`` (``rows_of``'s), decoded a block at a time."""
    if not len(starts) or starts[0] != 0:
        raise ValueError("rows do not start at the stream's body")
    tables = []
    for first in range(0, len(starts), BLOCK_ROWS):
        block = starts[first:first + BLOCK_ROWS]
        end = starts[first + BLOCK_ROWS] if first + BLOCK_ROWS < len(starts) else len(body)
        tables.append(_decode(body[block[0]:end], block - block[0]))
    return pa.concat_tables(tables)


def _decode(body: np.ndarray, starts: np.ndarray) -> pa.Table:
    fields = _Fields(body, starts)
    arrays = [fields.next(c) for c in COLUMNS]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)
