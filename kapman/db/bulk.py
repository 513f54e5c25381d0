"""Bulk writes: binary COPY into a temporary staging table, then one set-based merge.

Payloads are built by the one binary COPY encoder, ``kapman.db.pgcopy`` (``encode_binary_copy``
for numpy columns, ``encode_binary_rows`` for Python rows with NULLs and variable-width fields), so
they can be built away from the connection (in a worker process or a thread).  ``copy_rows`` sends
rows through psycopg's ``Copy.write_row``; ``read_fixed`` and ``copy_out`` read binary COPY back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from kapman.db import pgcopy

COPY_HEADER, COPY_TRAILER = pgcopy.HEADER, pgcopy.TRAILER
#: The one encoder (``kapman.db.pgcopy``), under the names every writer calls.
ROW_TYPES = pgcopy.ROW_TYPES
encode_binary_copy = pgcopy.encode_binary_copy
encode_binary_rows = pgcopy.encode_binary_rows
concat_copy = pgcopy.concat_copy
numeric_binary = pgcopy.numeric_binary
timestamptz_binary = pgcopy.timestamptz_binary


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
    # Neither side has statistics yet (a temporary table, often a chunk written moments ago): a
    # nested loop the planner may then pick compares every staged document with every stored one
    # (10,000 x 10,000 for an A2 date, tens of minutes); a hash join on the key compares each once.
    previous = cur.execute("SELECT current_setting('enable_nestloop')").fetchone()[0]  # type: ignore[index]
    cur.execute("SET LOCAL enable_nestloop = off")
    stmt = sql.SQL(
        "DELETE FROM {s} USING {t} AS t WHERE {group} AND {same} "
        "AND ({tv}) IS NOT DISTINCT FROM ({sv})").format(
        s=staging, t=sql.Identifier("public", target), group=_group_filter("t", group),
        same=_same_key("t", staging, key),
        tv=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in compare),
        sv=sql.SQL(", ").join(sql.SQL("{}.{}").format(staging, sql.Identifier(c)) for c in compare))
    pruned = cur.execute(stmt, list(group.values())).rowcount
    cur.execute("SELECT set_config('enable_nestloop', %s, true)", (previous,))   # the caller's, not the default
    return pruned


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
    wire = [pgcopy.pg_type(t) for t in types]
    if any(t.wire is None for t in wire):
        raise ValueError("read_fixed reads fixed-width columns only")
    fields: list[tuple] = [("count", ">i2")]
    for i, t in enumerate(wire):
        fields += [(f"len{i}", ">i4"), (f"val{i}", "u1", (16,)) if t.name == "uuid" else (f"val{i}", t.wire)]
    rows = np.frombuffer(body, dtype=np.dtype(fields))
    if len(rows) and (rows["count"] != len(types)).any():
        raise ValueError("unexpected column count in COPY stream")
    out = []
    for i, t in enumerate(wire):
        if len(rows) and (rows[f"len{i}"] != t.width).any():
            raise ValueError(f"column {i} has NULLs or an unexpected width; read_fixed needs NOT NULL columns")
        values = rows[f"val{i}"]
        if t.name == "uuid":
            out.append(np.ascontiguousarray(values))
        elif t.epoch_unit is not None:
            out.append(pgcopy.from_wire(t.name, values).astype(f"datetime64[{t.epoch_unit}]"))
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
