"""Bulk writes: binary COPY, straight into the table or into a staging table compared with the stored rows.

Payloads are built by the one binary COPY encoder, ``kapman.db.pgcopy`` (``encode_binary_copy``
for numpy columns, ``encode_binary_rows`` for Python rows with NULLs and variable-width fields), so
they can be built away from the connection (in a worker process or a thread).  ``copy_rows`` sends
rows through psycopg's ``Copy.write_row``; ``read_fixed`` and ``copy_out`` read binary COPY back.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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
    held: int = 0  # stored rows kept as they were (``write_group``'s ``hold``)


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


#: Bookkeeping stamps: a rewritten row keeps its ``created_at``; ``touch`` (usually ``updated_at``)
#: is set to now().  A payload that carries every other column of a row replaces the row whole.
STAMPS = ("created_at", "updated_at")


@dataclass(frozen=True)
class Diff:
    """How a staged group compares with the stored one, key by key."""
    new: int        # staged keys not stored
    changed: int    # stored keys whose compared values differ
    unchanged: int  # stored keys whose compared values are equal
    absent: int     # stored keys not staged


def write_group(cur: psycopg.Cursor, *, target: str, columns: Sequence[str], payload: bytes, rows: int,
                group: dict[str, object], lock_class: int, key: Sequence[str],
                compare: Sequence[str] | None = None, replace: bool = False,
                touch: str | None = "updated_at", vet: Callable[[Diff], None] | None = None,
                hold: Sequence[Sequence[object]] = ()) -> MergeCounts:
    """Write a binary COPY ``payload`` of rows that all share ``group``'s column values, in the
    caller's transaction, under an advisory lock on the group.

    When no row of the group exists yet (a new snapshot, a new date), the payload is COPYed
    straight into ``target``: the rows are unique on ``key``, so nothing can conflict, and one pass
    is cheaper than a COPY into staging plus an INSERT from it.  Otherwise it is COPYed into this
    connection's staging table and compared with the stored group on ``key`` (``diff_staged``;
    ``compare``, by default every non-key column, decides what counts as a change, so bookkeeping
    columns such as a computed-at stamp do not force a rewrite).  With ``replace`` the group's rows
    whose key is not in the payload are deleted (and counted), so the group ends up exactly the
    payload.  Then:

    - when some stored rows are unchanged, they are dropped from staging (``prune_unchanged``) and
      the rest merged on ``key`` row by row (``merge``): on a compressed chunk each write
      decompresses only the batch holding its row, and an unchanged row is never written;
    - otherwise (a replay that republishes every row, a new version of every document) the stored
      rows are rewritten at once (``rewrite_stored``) and the new ones inserted (``insert_new``).

    ``touch`` is set to now() on a rewritten row (None when ``columns`` carry the bookkeeping stamps
    themselves, as a restore does); ``created_at`` is kept.  ``vet`` sees the diff before anything is
    written: what it raises aborts the write (a restore refuses to change stored rows).  The lock
    (``lock_class`` and the group's values) keeps two writers of the same group from racing between
    the comparison and the write.

    ``hold`` names rows (by their values of the key columns not in ``group``) whose stored version,
    if any, is kept as it is: their staged rows take the stored values before the comparison, so they
    are neither rewritten nor, with ``replace``, removed.  ``held`` counts them; a first write stores
    them as the payload has them.
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
    staging = sql.Identifier(_staging_name(target, columns))
    found = cur.execute("SELECT to_regclass(%s) IS NOT NULL, ARRAY(SELECT attname::text FROM pg_attribute "
                        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum)",
                        (f"pg_temp.{staging.as_string(cur)}", f"public.{target}")).fetchone()
    assert found is not None
    staged_before, target_columns = found
    _stage(cur, staging, target, columns, exists=staged_before)
    copy_binary(cur, staging, columns, payload)
    written = [c for c in columns if c not in key]
    held = hold_stored(cur, target=target, staging=staging, key=key, group=group, columns=written, hold=hold) \
        if hold else 0
    compare = list(compare) if compare is not None else written
    with _hash_joins(cur):
        diff = diff_staged(cur, target=target, staging=staging, key=key, group=group, compare=compare)
        if vet is not None:
            vet(diff)
        removed = delete_absent(cur, target=target, staging=staging, key=key, group=group) \
            if replace and diff.absent else 0
        if not diff.new and not diff.changed:   # a rewrite of what is stored: nothing to write
            return MergeCounts(0, 0, removed, held)
        if diff.unchanged:  # row by row, so that only the changed rows' compressed batches are touched
            prune_unchanged(cur, target=target, staging=staging, key=key, group=group, compare=compare)
            counts = merge(cur, target=target, staging=staging, key=key, columns=columns, compare=compare,
                           touch=touch)
            return MergeCounts(counts.inserted, counts.updated, removed, held)
        updated = rewrite_stored(cur, target=target, staging=staging, key=key, group=group, columns=columns,
                                 touch=touch, target_columns=target_columns,
                                 whole_group=not diff.new and (replace or not diff.absent)) if diff.changed else 0
        inserted = insert_new(cur, target=target, staging=staging, key=key, group=group, columns=columns) \
            if diff.new else 0
    return MergeCounts(inserted, updated, removed, held)


def _staging_name(target: str, columns: Sequence[str]) -> str:
    """One staging table per target and column list (A2 and A3 write different columns of one table)."""
    return f"{target}_stage_{zlib.crc32(','.join(columns).encode()):08x}"


def _stage(cur: psycopg.Cursor, staging: sql.Identifier, target: str, columns: Sequence[str], *,
           exists: bool) -> None:
    """This connection's staging table for ``target``'s ``columns``, empty.

    Kept for the connection's life and emptied at every commit (ON COMMIT DELETE ROWS): creating a
    temporary table and dropping it at commit for each write costs catalog writes of its own, a
    fixed cost per group that a replay of small groups (an option chain) pays thousands of times.
    A table created by a transaction that rolled back is gone, and is created again."""
    if not exists:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA").format(
            staging, sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("public", target)))
    else:
        cur.execute(sql.SQL("DELETE FROM {}").format(staging))  # rows of an earlier group of this transaction


@contextmanager
def _hash_joins(cur: psycopg.Cursor) -> Iterator[None]:
    """Joins of the staged rows with the stored group by hashing, not by nested loops.

    Neither side has statistics (a temporary table, often a chunk written moments ago): a nested
    loop the planner may then pick compares every staged row with every stored one (10,000 x
    10,000 for an A2 date, 2,000 x 2,000 for an option chain: tens of minutes, half a second); a
    hash join on the key compares each once.  The caller's own setting is restored after."""
    previous = cur.execute("SELECT current_setting('enable_nestloop')").fetchone()[0]  # type: ignore[index]
    cur.execute("SET LOCAL enable_nestloop = off")
    yield
    cur.execute("SELECT set_config('enable_nestloop', %s, true)", (previous,))  # the caller's, not the default


def _group_filter(alias: str, group: dict[str, object]) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{}.{} = %s").format(sql.Identifier(alias), sql.Identifier(c))
                                 for c in group)


def _same_key(left: str, right: sql.Composable, key: Sequence[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{l}.{c} = {r}.{c}").format(l=sql.Identifier(left), r=right,
                                                                     c=sql.Identifier(c)) for c in key)


def _values(alias: sql.Composable, names: Sequence[str]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.SQL("{}.{}").format(alias, sql.Identifier(c))
                                                     for c in names))


def hold_stored(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
                group: dict[str, object], columns: Sequence[str], hold: Sequence[Sequence[object]]) -> int:
    """Give the staged rows named in ``hold`` (values of the key columns not in ``group``, in key
    order) the ``columns`` of their stored rows; returns how many were stored (a row not stored keeps
    its staged values).  The arrays go in binary, which types them (text in the text format is not)."""
    free, s = [c for c in key if c not in group], sql.Identifier("s")
    return cur.execute(sql.SQL(
        "UPDATE {stg} AS s SET ({cols}) = ROW({stored}) FROM {tgt} AS t WHERE {group} AND {same} "
        "AND {freed} IN (SELECT * FROM unnest({arrays}))").format(
        stg=staging, cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        stored=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns),
        tgt=sql.Identifier("public", target), group=_group_filter("t", group), same=_same_key("t", s, key),
        freed=_values(s, free), arrays=sql.SQL(", ").join(sql.SQL("%b") for _ in free)),
        [*group.values(), *(list(values) for values in zip(*hold, strict=True))]).rowcount


def diff_staged(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
                group: dict[str, object], compare: Sequence[str]) -> Diff:
    """Compare the staged rows with the group's stored rows in one pass (a full join on ``key``).

    It only reads ``target`` (a compressed chunk is decompressed in memory, not rewritten)."""
    t, s, first = sql.Identifier("t"), sql.Identifier("s"), sql.Identifier(key[0])
    differ = sql.SQL("{} IS DISTINCT FROM {}").format(_values(t, compare), _values(s, compare))
    row = cur.execute(sql.SQL(
        "SELECT count(*) FILTER (WHERE t.{k} IS NULL), "
        "count(*) FILTER (WHERE t.{k} IS NOT NULL AND s.{k} IS NOT NULL AND {differ}), "
        "count(*) FILTER (WHERE t.{k} IS NOT NULL AND s.{k} IS NOT NULL AND NOT ({differ})), "
        "count(*) FILTER (WHERE s.{k} IS NULL) "
        "FROM (SELECT {cols} FROM {tgt} AS t WHERE {group}) AS t FULL JOIN {stg} AS s ON {same}").format(
        k=first, differ=differ, cols=sql.SQL(", ").join(map(sql.Identifier, dict.fromkeys([*key, *compare]))),
        tgt=sql.Identifier("public", target), group=_group_filter("t", group), stg=staging,
        same=_same_key("t", s, key)), list(group.values())).fetchone()
    assert row is not None
    return Diff(*(int(v) for v in row))


def prune_unchanged(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
                    group: dict[str, object], compare: Sequence[str]) -> int:
    """Delete from ``staging`` the rows whose ``compare`` columns equal the stored row's with the
    same key; returns how many.  It only reads ``target`` (a compressed chunk is decompressed in
    memory, not rewritten), so the merge that follows writes only new and changed rows."""
    stmt = sql.SQL(
        "DELETE FROM {s} USING {t} AS t WHERE {group} AND {same} AND {tv} IS NOT DISTINCT FROM {sv}").format(
        s=staging, t=sql.Identifier("public", target), group=_group_filter("t", group),
        same=_same_key("t", staging, key), tv=_values(sql.Identifier("t"), compare), sv=_values(staging, compare))
    return cur.execute(stmt, list(group.values())).rowcount


def rewrite_stored(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
                   group: dict[str, object], columns: Sequence[str], touch: str | None,
                   target_columns: Sequence[str], whole_group: bool) -> int:
    """Write the staged rows over the stored rows with the same key, every one of which differs
    (no stored row of the group is unchanged); returns how many.  ``whole_group``: the staged rows
    are exactly the group's new rows (none new, none stored left out).

    A payload that carries the whole row (every column but the bookkeeping stamps) replaces the
    rows by a delete and an insert, keeping each row's ``created_at``: on these tables an UPDATE,
    or an upsert's conflict, costs about twice an insert (the new version of a row of a full heap
    page goes to another page, and both indexes gain an entry either way), a delete is cheap.  When
    the whole group is replaced and its rows share their kept stamps (a group first written by one
    COPY), the delete takes the group and the insert writes the stamps as constants, without
    joining each row to its deleted one.  A payload of some columns only (A2 and A3 write different
    columns of one row) updates those in place.  Every compressed batch of the group is
    decompressed: each holds changed rows."""
    tgt, s, params = sql.Identifier("public", target), sql.Identifier("s"), list(group.values())
    stamp = [touch] if touch and touch not in columns else []
    kept = [c for c in target_columns if c not in columns and c not in stamp]
    if not all(c in STAMPS for c in kept):
        sets = [sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in columns if c not in key]
        sets += [sql.SQL("{} = now()").format(sql.Identifier(c)) for c in stamp]
        return cur.execute(sql.SQL("UPDATE {tgt} AS t SET {sets} FROM {stg} AS s WHERE {group} AND {same}").format(
            tgt=tgt, sets=sql.SQL(", ").join(sets), stg=staging, group=_group_filter("t", group),
            same=_same_key("t", s, key)), params).rowcount
    cols = sql.SQL(", ").join(map(sql.Identifier, (*columns, *kept, *stamp)))
    staged = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns]
    now = [sql.SQL("now()") for _ in stamp]
    shared = _shared_values(cur, target, group, kept) if whole_group else None
    if shared is not None:
        cur.execute(sql.SQL("DELETE FROM {} AS t WHERE {}").format(tgt, _group_filter("t", group)), params)
        constants = [sql.SQL("%s") for _ in kept]
        return cur.execute(sql.SQL("INSERT INTO {tgt} ({cols}) SELECT {values} FROM {stg} AS s").format(
            tgt=tgt, cols=cols, stg=staging, values=sql.SQL(", ").join([*staged, *constants, *now])), shared).rowcount
    return cur.execute(sql.SQL(
        "WITH gone AS (DELETE FROM {tgt} AS t USING {stg} AS s WHERE {group} AND {same} RETURNING {returned}) "
        "INSERT INTO {tgt} ({cols}) SELECT {values} FROM {stg} AS s JOIN gone USING ({key})").format(
        tgt=tgt, stg=staging, group=_group_filter("t", group), same=_same_key("t", s, key),
        returned=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in (*key, *kept)), cols=cols,
        values=sql.SQL(", ").join([*staged, *(sql.SQL("gone.{}").format(sql.Identifier(c)) for c in kept), *now]),
        key=sql.SQL(", ").join(map(sql.Identifier, key))), params).rowcount


def _shared_values(cur: psycopg.Cursor, target: str, group: dict[str, object],
                   columns: Sequence[str]) -> list[object] | None:
    """The values of ``columns`` that every stored row of the group shares, or None if they differ."""
    if not columns:
        return []
    row = cur.execute(sql.SQL("SELECT count(DISTINCT ROW({})), {} FROM {} AS t WHERE {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.SQL("min({})").format(sql.Identifier(c)) for c in columns),
        sql.Identifier("public", target), _group_filter("t", group)), list(group.values())).fetchone()
    return list(row[1:]) if row and row[0] == 1 else None


def insert_new(cur: psycopg.Cursor, *, target: str, staging: sql.Identifier, key: Sequence[str],
               group: dict[str, object], columns: Sequence[str]) -> int:
    """Insert the staged rows whose key is not stored; returns how many."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    return cur.execute(sql.SQL(
        "INSERT INTO {tgt} ({cols}) SELECT {values} FROM {stg} AS s "
        "WHERE NOT EXISTS (SELECT 1 FROM {tgt} AS t WHERE {group} AND {same})").format(
        tgt=sql.Identifier("public", target), cols=cols, stg=staging,
        values=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
        group=_group_filter("t", group), same=_same_key("t", sql.Identifier("s"), key)),
        list(group.values())).rowcount


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
    That bypasses psycopg's transaction handling, so inside a transaction (retention verifying the
    few snapshots it is about to drop) the COPY goes through psycopg, in that transaction.
    """
    from psycopg import pq

    if conn.info.transaction_status != pq.TransactionStatus.IDLE or not conn.autocommit:
        data = bytearray()
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            for block in copy:
                data += block
        return data
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
