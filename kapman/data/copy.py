"""Query results as Arrow tables through ``COPY ... TO STDOUT (FORMAT csv)``: one stream, parsed by pyarrow's
multi-threaded CSV reader, never a Python object per row.

Timestamps travel as integer microseconds since the epoch (no time-zone text to parse) and are
cast on the client; NULL is COPY's unquoted empty field, an empty string its quoted ``""``.
"""

from __future__ import annotations

import io

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql


def copy_table(conn: psycopg.Connection, query: sql.Composable | str, schema: pa.Schema) -> pa.Table:
    """The rows of ``query`` (its columns in ``schema``'s order) as a table of ``schema``."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(sql.SQL(query) if isinstance(query, str)
                                                                    else query)
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for block in copy:
            buffer.write(block)
    wire = pa.schema([pa.field(f.name, pa.int64() if pa.types.is_timestamp(f.type) else f.type)
                      for f in schema])
    if not buffer.tell():
        return schema.empty_table()
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=wire.names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=wire, null_values=[""], strings_can_be_null=True,
                                             quoted_strings_can_be_null=False))
    columns = [pc.cast(table.column(f.name), f.type) if pa.types.is_timestamp(f.type) else table.column(f.name)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def epoch_us(column: str) -> str:
    """The SQL that sends a timestamptz as integer microseconds since the epoch."""
    return f"floor(extract(epoch FROM {column}) * 1000000)::bigint"
