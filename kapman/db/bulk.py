"""Bulk writes: binary COPY into a temporary staging table, then one set-based merge.

``encode_binary_copy`` builds PostgreSQL's binary COPY stream for fixed-width, non-null columns
straight from numpy arrays (one structured array, one ``tobytes``), with no per-row Python work.
``encode_binary_rows`` builds the same stream for Python rows with NULLs and variable-width fields
(text, numeric, jsonb) a column at a time, so it can run away from the connection (in a worker
process or a thread): it is the one encoder of every writer's payload (option chains, A2's and A3's
snapshot rows).  ``copy_rows`` sends such rows through psycopg's ``Copy.write_row``.
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, DecimalTuple
from itertools import repeat
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg import sql

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_PG_EPOCH_DAYS = np.datetime64("2000-01-01", "D")
_PG_EPOCH_US = np.datetime64("2000-01-01T00:00:00", "us")

#: pg type -> numpy big-endian storage
_WIRE = {"uuid": ("u1", (16,)), "date": (">i4", ()), "float8": (">f8", ()), "int8": (">i8", ()),
         "int4": (">i4", ()), "timestamptz": (">i8", ())}
_WIDTH = {"uuid": 16, "date": 4, "float8": 8, "int8": 8, "int4": 4, "timestamptz": 8}


def _wire_values(pg_type: str, values: np.ndarray) -> np.ndarray:
    if pg_type == "date":
        return (values.astype("datetime64[D]") - _PG_EPOCH_DAYS).astype(np.int64)
    if pg_type == "timestamptz":
        return (values.astype("datetime64[us]") - _PG_EPOCH_US).astype(np.int64)
    return values


def encode_binary_copy(columns: Sequence[tuple[str, np.ndarray | None]]) -> bytes:
    """A complete binary COPY stream for fixed-width columns (uuid as (n, 16) uint8); a column
    given as None is NULL in every row."""
    n = next(len(v) for _, v in columns if v is not None)
    fields: list[tuple] = [("count", ">i2")]
    for i, (pg_type, values) in enumerate(columns):
        base, shape = _WIRE[pg_type]
        fields.append((f"len{i}", ">i4"))
        if values is not None:
            fields.append((f"val{i}", base, shape) if shape else (f"val{i}", base))
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["count"] = len(columns)
    for i, (pg_type, values) in enumerate(columns):
        if values is None:
            rows[f"len{i}"] = -1
            continue
        if len(values) != n:
            raise ValueError("columns differ in length")
        rows[f"len{i}"] = _WIDTH[pg_type]
        rows[f"val{i}"] = _wire_values(pg_type, values)
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER


def concat_copy(payloads: Sequence[bytes]) -> bytes:
    """One binary COPY stream holding the rows of several (of the same columns), in order."""
    if len(payloads) == 1:
        return payloads[0]
    body = b"".join(memoryview(p)[len(COPY_HEADER):len(p) - len(COPY_TRAILER)] for p in payloads)
    return COPY_HEADER + body + COPY_TRAILER


#: pg types ``encode_binary_rows`` accepts, with the Python types their values may have.
ROW_TYPES: dict[str, tuple[type, ...]] = {
    "timestamptz": (datetime,), "uuid": (UUID,), "date": (date,), "numeric": (Decimal, int),
    "text": (str,), "varchar": (str,), "int4": (int,), "int8": (int,), "float8": (float, int),
    "jsonb": (str, bytes),  # already-serialised JSON text
}
#: jsonb's binary form: a version byte, then the JSON text.
_JSONB_VERSION = b"\x01"
#: Columns whose values average at least this many bytes are scattered a row at a time (a slice
#: copy each) instead of one index per byte: JSON documents of a few kB would need index arrays
#: eight times the payload's size.
_WIDE_FIELD = 64
_PG_EPOCH_TZ = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_ORDINAL = date(2000, 1, 1).toordinal()
_MICROSECOND = timedelta(microseconds=1)
_INT_RANGE = {"int4": (-(2**31), 2**31 - 1), "int8": (-(2**63), 2**63 - 1)}
_NUMERIC_POS, _NUMERIC_NEG = 0x0000, 0x4000
_NUMERIC_SPECIAL = {"n": 0xC000, "N": 0xC000, "F": 0xD000}  # NaN, sNaN (stored as NaN), +Infinity
_NUMERIC_NINF = 0xF000


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


def _by_identity(values: Sequence[Any], encode: Callable[[Any], bytes]) -> tuple[np.ndarray, bytes]:
    """Each value's length and all values' bytes, with ``encode`` called once per distinct object.

    Snapshot times, ids, dates and strikes repeat across a chain as the same few objects.
    """
    ids = np.fromiter(map(id, values), dtype=np.uint64, count=len(values))
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    parts = [encode(values[i]) for i in first.tolist()]
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    starts = np.cumsum(sizes) - sizes
    lengths = sizes[inverse]
    if (lengths == lengths[0]).all():  # fixed width: one row of bytes per value
        table = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(len(parts), -1)
        return lengths, table[inverse].tobytes()
    blob = np.frombuffer(b"".join(parts), dtype=np.uint8)
    source = np.repeat(starts[inverse] - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
    return lengths, blob[source].tobytes()


class _Texts(list):
    """A wide text column's values, left unencoded until each is copied into the stream
    (one 3 kB value at a time instead of a payload-sized intermediate); ``prefix`` goes before each."""

    prefix: bytes = b""


def _encode_texts(values: Sequence[str | bytes], prefix: bytes) -> tuple[np.ndarray, bytes | _Texts]:
    """Each value's length (``prefix`` included: jsonb's version byte) and the values to copy.

    Narrow columns come back as one joined buffer.  Wide ones (JSON documents) come back as a
    ``_Texts`` of the values themselves: ASCII strings as they are (their length is that of their
    UTF-8 bytes), anything else encoded first.
    """
    ascii_only = all(type(v) is str and v.isascii() for v in values)
    parts: Sequence[str | bytes] = values if ascii_only else [
        v.encode() if isinstance(v, str) else v for v in values]
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)) + len(prefix)
    if int(sizes.sum()) >= _WIDE_FIELD * len(parts):
        texts = _Texts(parts)
        texts.prefix = prefix
        return sizes, texts
    joined = [p.encode() if isinstance(p, str) else p for p in parts]
    return sizes, prefix.join([b"", *joined]) if prefix else b"".join(joined)  # type: ignore[list-item,arg-type]


def timestamptz_binary(value: datetime) -> bytes:
    """An aware datetime in ``timestamptz``'s binary form: microseconds since 2000-01-01 UTC."""
    if value.tzinfo is None:
        raise ValueError(f"timestamptz needs an aware datetime, got {value!r}")
    return struct.pack(">q", (value - _PG_EPOCH_TZ) // _MICROSECOND)


def _date(value: date) -> bytes:
    if isinstance(value, datetime):
        raise TypeError(f"date column holds a datetime: {value!r}")
    return struct.pack(">i", value.toordinal() - _PG_EPOCH_ORDINAL)


def _uuid(value: UUID) -> bytes:
    return value.bytes


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "timestamptz": timestamptz_binary, "date": _date, "uuid": _uuid, "numeric": numeric_binary}


def _encode_column(pg_type: str, values: Sequence[Any], index: int) -> tuple[np.ndarray, bytes | _Texts]:
    """One column: each row's value length (-1 for NULL) and the non-null values' bytes, in order
    (or, for a wide text column, the values themselves: see ``_encode_texts``)."""
    allowed = ROW_TYPES.get(pg_type)
    if allowed is None:
        raise ValueError(f"column {index}: unsupported type {pg_type!r}")
    n = len(values)
    kinds = set(map(type, values))
    nulls: np.ndarray | None = None
    if type(None) in kinds:
        kinds.discard(type(None))
        nulls = np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=n)
    for kind in kinds:
        if not issubclass(kind, allowed) or kind is bool:
            raise TypeError(f"column {index} ({pg_type}) holds a {kind.__name__}")
    present = values if nulls is None else [v for v in values if v is not None]
    data: bytes | _Texts
    if pg_type in ("float8", "int4", "int8"):
        if pg_type == "float8":
            numbers = np.array(present, dtype=np.float64).astype(">f8")
        else:
            wide = np.array(present, dtype=np.int64)  # OverflowError beyond int8
            low, high = _INT_RANGE[pg_type]
            if len(wide) and (wide.min() < low or wide.max() > high):
                raise ValueError(f"column {index}: value out of {pg_type} range")
            numbers = wide.astype(">i4" if pg_type == "int4" else ">i8")
        width = numbers.dtype.itemsize
        lengths = np.full(n, width, dtype=np.int64)
        data = numbers.tobytes()
    else:
        if not present:
            sizes, data = np.empty(0, dtype=np.int64), b""
        elif pg_type in ("text", "varchar", "jsonb"):
            sizes, data = _encode_texts(present, _JSONB_VERSION if pg_type == "jsonb" else b"")
        else:
            sizes, data = _by_identity(present, _ENCODERS[pg_type])
        lengths = np.empty(n, dtype=np.int64)
        if nulls is None:
            lengths[:] = sizes
        else:
            lengths[~nulls] = sizes
    if nulls is not None:
        lengths[nulls] = -1
    return lengths, data


def encode_binary_rows(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A complete binary COPY stream of Python rows (None for NULL) with declared PostgreSQL types.

    The bytes ``copy_rows`` sends for the same rows and types, built a column at a time: values are
    converted per column (numpy for the numbers, one encoding per distinct object for timestamps,
    ids, dates and numerics), then every row's field count, field lengths and values are scattered
    into one buffer.  Types: the keys of ``ROW_TYPES`` (text is sent as UTF-8, so the connection
    that COPYs it must use that client encoding).  Integers are range-checked rather than wrapped.
    """
    m = len(types)
    if not rows:
        return COPY_HEADER + COPY_TRAILER
    if set(map(len, rows)) != {m}:
        raise ValueError(f"every row needs {m} fields")
    n = len(rows)
    lengths = np.empty((n, m), dtype=np.int64)
    datas = []
    for j, (pg_type, values) in enumerate(zip(types, zip(*rows, strict=True), strict=True)):
        lengths[:, j], data = _encode_column(pg_type, values, j)
        datas.append(data)
    widths = np.maximum(lengths, 0)
    field_sizes = widths + 4
    row_sizes = 2 + field_sizes.sum(axis=1)
    row_starts = np.cumsum(row_sizes) - row_sizes
    field_starts = row_starts[:, None] + 2 + np.cumsum(field_sizes, axis=1) - field_sizes
    head = len(COPY_HEADER)
    total = head + int(row_sizes.sum())
    # One buffer, header and trailer in place, returned as it is: a copy of tens of MB (A2's JSON)
    # would cost as much as building it.
    buffer = bytearray(total + len(COPY_TRAILER))
    out = np.frombuffer(buffer, dtype=np.uint8)
    out[:head] = np.frombuffer(COPY_HEADER, dtype=np.uint8)
    out[total:] = np.frombuffer(COPY_TRAILER, dtype=np.uint8)
    row_starts += head
    field_starts += head
    out[row_starts[:, None] + np.arange(2)] = np.frombuffer(m.to_bytes(2, "big"), dtype=np.uint8)
    out[field_starts[..., None] + np.arange(4)] = lengths.astype(">i4").view(np.uint8).reshape(n, m, 4)
    for j, data in enumerate(datas):
        if not data:
            continue
        if isinstance(data, _Texts):
            starts = (field_starts[:, j] + 4)[lengths[:, j] >= 0]
            if data.prefix:
                out[starts[:, None] + np.arange(len(data.prefix))] = np.frombuffer(data.prefix, dtype=np.uint8)
            _copy_texts(buffer, (starts + len(data.prefix)).tolist(), data)
            continue
        width = widths[:, j]
        offsets = np.cumsum(width) - width  # where each row's value starts in ``data``
        out[np.repeat(field_starts[:, j] + 4 - offsets, width) + np.arange(len(data))] = np.frombuffer(
            data, dtype=np.uint8)
    return buffer  # type: ignore[return-value]  # a bytearray: bytes to every reader and to COPY


def _copy_texts(buffer: bytearray, starts: list[int], texts: Sequence[str | bytes]) -> None:
    """Copy each value to where it starts: plain slice copies, one per row."""
    for start, value in zip(starts, texts, strict=True):
        raw = value.encode() if isinstance(value, str) else value
        buffer[start:start + len(raw)] = raw


def copy_binary(cur: psycopg.Cursor, table: sql.Composable, columns: Sequence[str], payload: bytes) -> None:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with cur.copy(stmt) as copy:
        copy.write(payload)


def copy_rows(cur: psycopg.Cursor, table: sql.Composable, columns: Sequence[str], types: Sequence[str],
              rows: Iterable[Sequence[object]]) -> None:
    """Binary COPY of Python rows (None for NULL) with declared PostgreSQL types."""
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with cur.copy(stmt) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def create_staging(cur: psycopg.Cursor, name: str, like: str, columns: Sequence[str]) -> sql.Identifier:
    """A temporary table with ``like``'s column types for ``columns``, dropped at commit."""
    ident = sql.Identifier(name)
    cur.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        ident, sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("public", like)))
    return ident


@dataclass(frozen=True)
class MergeCounts:
    inserted: int
    updated: int
    removed: int = 0


def merge(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
          columns: Sequence[str], touch: str | None = "updated_at",
          compare: Sequence[str] | None = None) -> MergeCounts:
    """INSERT .. ON CONFLICT (key) DO UPDATE only where a value changed; counts both outcomes.

    Every non-key column is written; ``compare`` (default: all of them) decides what counts as
    a change, so bookkeeping columns such as a computed-at stamp do not force an update.
    """
    written = [c for c in columns if c not in key]
    values = list(compare) if compare is not None else written
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    sets = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in written]
    if touch:
        sets.append(sql.SQL("{} = now()").format(sql.Identifier(touch)))
    tgt = sql.Identifier("public", target)
    changed = sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(target), sql.Identifier(c)) for c in values),
        sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in values))
    stmt = sql.SQL(
        "WITH m AS (INSERT INTO {tgt} AS {alias} ({cols}) SELECT {cols} FROM {stg} "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {changed} RETURNING (xmax = 0) AS ins) "
        "SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins) FROM m").format(
        tgt=tgt, alias=sql.Identifier(target), cols=cols, stg=staging,
        key=sql.SQL(", ").join(map(sql.Identifier, key)), sets=sql.SQL(", ").join(sets), changed=changed)
    row = cur.execute(stmt).fetchone()
    assert row is not None
    return MergeCounts(int(row[0]), int(row[1]))


def write_group(cur: psycopg.Cursor, *, target: str, columns: Sequence[str], payload: bytes, rows: int,
                group: dict[str, object], lock_class: int, key: Sequence[str],
                compare: Sequence[str] | None = None, replace: bool = False,
                touch: str | None = "updated_at") -> MergeCounts:
    """Write a binary COPY ``payload`` of rows that all share ``group``'s column values, in the
    caller's transaction, under an advisory lock on the group.

    When no row of the group exists yet (a new snapshot, a new date), the payload is COPYed
    straight into ``target``: the rows are unique on ``key``, so nothing can conflict, and one pass
    is cheaper than a COPY into staging plus an INSERT from it.  Otherwise it is COPYed into staging,
    the rows equal to the stored ones are dropped from staging (``prune_unchanged``) and the rest
    merged on ``key`` (see ``merge``; ``touch`` as there: None when ``columns`` carry the
    bookkeeping stamps themselves, as a restore does); with ``replace`` the group's rows whose key
    is not in the payload are deleted too (and counted), so the group ends up exactly the payload.
    The lock (``lock_class`` and the group's values) keeps two writers of the same group from racing
    between that check and the write.

    On a compressed chunk only rows that change are written: every write (an upsert's conflict, a
    delete) decompresses the segments it touches, so a rewrite of an unchanged day touches none.
    """
    lock_key = "@".join(str(v) for v in group.values())
    cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (lock_class, lock_key))
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in group)
    table = sql.Identifier("public", target)
    present = cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(table, where),
                          list(group.values())).fetchone()
    if not (present and present[0]):
        copy_binary(cur, table, columns, payload)
        return MergeCounts(inserted=rows, updated=0)
    staging = create_staging(cur, f"{target}_stage", target, columns)
    copy_binary(cur, staging, columns, payload)
    removed = delete_absent(cur, target=target, staging=staging, key=key, group=group) if replace else 0
    written = [c for c in columns if c not in key]
    prune_unchanged(cur, target=target, staging=staging, key=key, group=group,
                    compare=list(compare) if compare is not None else written)
    counts = merge(cur, target=target, staging=staging, key=key, columns=columns, compare=compare, touch=touch)
    return MergeCounts(counts.inserted, counts.updated, removed)


def _group_filter(alias: str, group: dict[str, object]) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{}.{} = %s").format(sql.Identifier(alias), sql.Identifier(c))
                                 for c in group)


def _same_key(left: str, right: sql.Composable, key: Sequence[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{l}.{c} = {r}.{c}").format(l=sql.Identifier(left), r=right,
                                                                     c=sql.Identifier(c)) for c in key)


def prune_unchanged(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
                    group: dict[str, object], compare: Sequence[str]) -> int:
    """Delete from ``staging`` the rows whose ``compare`` columns equal the stored row's with the
    same key; returns how many.  It only reads ``target`` (a compressed chunk is decompressed in
    memory, not rewritten), so the merge that follows writes only new and changed rows."""
    stmt = sql.SQL(
        "DELETE FROM {s} USING {t} AS t WHERE {group} AND {same} "
        "AND ({tv}) IS NOT DISTINCT FROM ({sv})").format(
        s=staging, t=sql.Identifier("public", target), group=_group_filter("t", group),
        same=_same_key("t", staging, key),
        tv=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in compare),
        sv=sql.SQL(", ").join(sql.SQL("{}.{}").format(staging, sql.Identifier(c)) for c in compare))
    return cur.execute(stmt, list(group.values())).rowcount


def delete_absent(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
                  group: dict[str, object]) -> int:
    """Delete the group's rows of ``target`` whose key is not in ``staging``; returns how many.

    The keys are found by a read first and the delete runs only when there are some, narrowed to
    their values of each key column: a delete decompresses every compressed segment its filter
    can match, and the group's filter alone matches a whole chunk."""
    tgt = sql.Identifier("public", target)
    absent = sql.SQL("NOT EXISTS (SELECT 1 FROM {s} WHERE {same})").format(s=staging, same=_same_key("d", staging, key))
    free = [c for c in key if c not in group]
    found = cur.execute(sql.SQL("SELECT {cols} FROM {t} AS d WHERE {group} AND {absent}").format(
        cols=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in free), t=tgt,
        group=_group_filter("d", group), absent=absent), list(group.values())).fetchall()
    if not found:
        return 0
    narrow = sql.SQL(" AND ").join(sql.SQL("d.{} = ANY(%s)").format(sql.Identifier(c)) for c in free)
    distinct = [sorted({row[i] for row in found}) for i in range(len(free))]
    return cur.execute(sql.SQL("DELETE FROM {t} AS d WHERE {group} AND {narrow} AND {absent}").format(
        t=tgt, group=_group_filter("d", group), narrow=narrow, absent=absent),
        [*group.values(), *distinct]).rowcount


def read_fixed(cur: psycopg.Cursor, query: sql.Composable, types: Sequence[str]) -> list[np.ndarray]:
    """Run ``COPY (query) TO STDOUT (FORMAT BINARY)`` and decode it with one numpy view.

    Only for NOT NULL, fixed-width columns (``uuid``, ``date``, ``float8``, ``int8``, ``int4``,
    ``timestamptz``); returns one array per column (uuid as (n, 16) uint8, date as
    datetime64[D], timestamptz as datetime64[us] UTC).
    """
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query).as_bytes(cur)
    data = copy_out(cur.connection, stmt)
    body = memoryview(data)[len(COPY_HEADER):len(data) - len(COPY_TRAILER)] if data else b""  # no copy
    fields: list[tuple] = [("count", ">i2")]
    for i, pg_type in enumerate(types):
        base, shape = _WIRE[pg_type]
        fields += [(f"len{i}", ">i4"), (f"val{i}", base, shape) if shape else (f"val{i}", base)]
    rows = np.frombuffer(body, dtype=np.dtype(fields))
    if len(rows) and (rows["count"] != len(types)).any():
        raise ValueError("unexpected column count in COPY stream")
    out = []
    for i, pg_type in enumerate(types):
        if len(rows) and (rows[f"len{i}"] != _WIDTH[pg_type]).any():
            raise ValueError(f"column {i} has NULLs or an unexpected width; read_fixed needs NOT NULL columns")
        values = rows[f"val{i}"]
        if pg_type == "date":
            out.append(_PG_EPOCH_DAYS + values.astype(np.int64).astype("timedelta64[D]"))
        elif pg_type == "timestamptz":
            out.append(_PG_EPOCH_US + values.astype(np.int64).astype("timedelta64[us]"))
        elif pg_type == "uuid":
            out.append(np.ascontiguousarray(values))
        else:
            out.append(values.astype(values.dtype.newbyteorder("=")))
    return out


def copy_out(conn: psycopg.Connection, stmt: bytes) -> bytearray:
    """All bytes of a COPY TO STDOUT, read straight from libpq.

    psycopg's ``Copy`` iterator costs ~10 us per CopyData message, and the server sends one
    message per row: for millions of rows that is seconds of pure overhead.  Reading with
    ``PQgetCopyData`` in a tight loop is the same protocol at a fraction of the cost; appending
    each message to one growing buffer (no per-row ``bytes``, no final join) halves it again.
    """
    from psycopg import pq

    if conn.info.transaction_status != pq.TransactionStatus.IDLE or not conn.autocommit:
        raise psycopg.ProgrammingError("bulk COPY reads need an idle autocommit connection")
    pgconn = conn.pgconn
    data = bytearray()
    with conn.lock:
        result = pgconn.exec_(stmt)
        if result.status != pq.ExecStatus.COPY_OUT:
            message = (result.error_message or b"").decode(errors="replace").strip()
            sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
            raise psycopg.errors.lookup(sqlstate.decode())(message) if sqlstate else psycopg.OperationalError(message)
        get = pgconn.get_copy_data
        while True:
            size, block = get(0)
            if size < 0:
                break
            data += block
        final = pgconn.get_result()
        while pgconn.get_result() is not None:
            pass
    if final is not None and final.status != pq.ExecStatus.COMMAND_OK:
        raise psycopg.OperationalError((final.error_message or b"").decode(errors="replace").strip())
    return data
