"""A schema fingerprint: SHA-256 over a canonical, sorted description of the schema.

It covers columns, constraints, indexes, hypertable dimensions, compression settings, policy
jobs (minus their ids), the lifecycle table and the migration ledger, so two rebuilds that
produce the same schema produce the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json

import psycopg

_QUERIES = {
    "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
    "columns": """
        SELECT table_name, ordinal_position, column_name, data_type, udt_name,
               character_maximum_length, numeric_precision, numeric_scale, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "constraints": """
        SELECT r.relname, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = 'public' ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    "dimensions": """
        SELECT hypertable_name, dimension_number, column_name, time_interval::text
        FROM timescaledb_information.dimensions WHERE hypertable_schema = 'public' ORDER BY 1, 2""",
    "compression": """
        SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index, orderby_asc
        FROM timescaledb_information.compression_settings WHERE hypertable_schema = 'public' ORDER BY 1, 2""",
    "jobs": """
        SELECT proc_name, hypertable_name, schedule_interval::text, (config - 'hypertable_id')::text
        FROM timescaledb_information.jobs WHERE hypertable_schema = 'public' ORDER BY 1, 2""",
    "lifecycle": "SELECT * FROM public.hypertable_lifecycle ORDER BY 1",
    "migrations": "SELECT version, name, checksum FROM public.schema_migrations ORDER BY 1",
}


def describe(conn: psycopg.Connection) -> dict[str, list[list[str]]]:
    return {name: [[str(v) for v in row] for row in conn.execute(query).fetchall()]  # type: ignore[arg-type]
            for name, query in _QUERIES.items()}


def fingerprint(conn: psycopg.Connection) -> str:
    canonical = json.dumps(describe(conn), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
