"""Validate every invariant of the runbook's Step 2 against a rebuilt database."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from kapman.db import lifecycle, schema
from kapman.db.capabilities import ServerInfo


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ValidationReport:
    checks: list[Check] = field(default_factory=list)
    lifecycle_mode: str = "unknown"   # 'policy' or 'application'
    lifecycle_clock: lifecycle.Clock | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


def _column(conn: psycopg.Connection, query: str, *params: object) -> list:
    return [r[0] for r in conn.execute(query, params).fetchall()]  # type: ignore[arg-type]


def _extensions(conn: psycopg.Connection, report: ValidationReport) -> None:
    present = set(_column(conn, "SELECT extname FROM pg_extension WHERE extname IN ('timescaledb', 'uuid-ossp')"))
    missing = {"timescaledb", "uuid-ossp"} - present
    report.add("extensions", not missing, "timescaledb, uuid-ossp" if not missing else f"missing {sorted(missing)}")


def _tables(conn: psycopg.Connection, report: ValidationReport) -> None:
    tables = set(_column(conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"))
    extra, missing = tables - schema.EXPECTED_TABLES, schema.EXPECTED_TABLES - tables
    detail = (f"{len(tables)} tables" if not (extra or missing)
              else f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    report.add("table set", not (extra or missing), detail)
    forbidden = _column(conn, "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                              "WHERE table_name = %s", schema.FORBIDDEN_TABLE)
    report.add("no ohlcv_daily", not forbidden, "absent" if not forbidden else f"found {forbidden}")
    contracts = _column(conn, "SELECT table_name FROM information_schema.tables "
                              "WHERE table_schema = 'public' AND table_name ILIKE '%%contract%%'")
    report.add("no contracts table", not contracts, "absent" if not contracts else f"found {contracts}")


def _hypertables(conn: psycopg.Connection, report: ValidationReport) -> None:
    rows = conn.execute(
        "SELECT hypertable_name, column_name, time_interval FROM timescaledb_information.dimensions "
        "WHERE hypertable_schema = 'public' AND dimension_number = 1").fetchall()
    dims = {name: (col, interval) for name, col, interval in rows}
    for table, expected in schema.HYPERTABLES.items():
        got = dims.get(table)
        report.add(f"hypertable {table}", got == expected,
                   f"on {expected[0]} every {expected[1].days} days" if got == expected else f"got {got}")


def _unique_key(conn: psycopg.Connection, table: str) -> tuple[str, ...]:
    """The columns of ``table``'s primary key or unique constraint, in key order."""
    return tuple(_column(conn, """
        SELECT a.attname FROM pg_constraint c
        JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
        CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = k.attnum
        WHERE n.nspname = 'public' AND r.relname = %s AND c.contype IN ('p', 'u')
        ORDER BY c.conname, k.ord""", table))


def _options_key(conn: psycopg.Connection, report: ValidationReport) -> None:
    key = _unique_key(conn, "options_chains")
    report.add("options_chains unique key", key == schema.OPTIONS_KEY, ", ".join(key))
    strike = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'public.options_chains'::regclass AND attname = 'strike_price'").fetchone()
    report.add("strike_price type", strike is not None and strike[0] == "numeric(12,4)",
               strike[0] if strike else "missing")


def _case_sensitive_symbols(conn: psycopg.Connection, report: ValidationReport) -> None:
    rows = conn.execute("""
        SELECT r.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
        JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE n.nspname = 'public' AND r.relname = ANY(%s) AND c.contype = 'c'""",
                        (sorted(schema.SYMBOL_CHECKS),)).fetchall()
    folding = sorted(name for _, name, definition in rows if re.search(r"\b(upper|lower)\(", definition))
    present = {(table, name) for table, name, _ in rows}
    missing = sorted(name for table, name in schema.SYMBOL_CHECKS.items() if (table, name) not in present)
    ok = not folding and not missing
    report.add("case-sensitive symbols", ok, "tickers, watchlists" if ok
               else f"case-folding checks {folding}, missing {missing}")


def _splits_key(conn: psycopg.Connection, report: ValidationReport) -> None:
    key = _unique_key(conn, "splits")
    report.add("splits unique key", key == schema.SPLITS_KEY, ", ".join(key) or "missing")


def _lifecycle(conn: psycopg.Connection, info: ServerInfo, report: ValidationReport, *, own_clock: bool) -> None:
    recorded = {r[0]: r[1:] for r in conn.execute(
        "SELECT hypertable_name, retention_mode, drop_after, compress_after FROM public.hypertable_lifecycle"
    ).fetchall()}
    modes = {t: r[0] for t, r in recorded.items()}
    expected_mode = "policy" if info.policies_available else "application"
    report.lifecycle_mode = expected_mode
    ok = all(modes.get(t) == expected_mode for t in schema.LIFECYCLE_TABLES)
    report.add("lifecycle mode recorded", ok, f"{expected_mode} ({info.license} license)" if ok else f"got {modes}")
    _clock(conn, report, own=own_clock)
    _compressed_writes(conn, report)
    if not info.policies_available:
        return
    jobs = conn.execute(
        "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs "
        "WHERE hypertable_schema = 'public' AND proc_name IN ('policy_retention', 'policy_compression')").fetchall()
    found = {(p, h): c for p, h, c in jobs}
    compressed = set(_column(conn, "SELECT hypertable_name FROM timescaledb_information.hypertables "
                                   "WHERE hypertable_schema = 'public' AND compression_enabled"))
    for table in schema.LIFECYCLE_TABLES:
        # each policy keeps the window hypertable_lifecycle records for its table
        _, drop_after, compress_after = recorded.get(table, (None, None, None))
        retention = found.get(("policy_retention", table)) or {}
        compression = found.get(("policy_compression", table)) or {}
        window = lifecycle.policy_interval
        report.add(f"retention policy {table}", window(retention.get("drop_after")) == drop_after,
                   f"drop_after = {retention.get('drop_after')}")
        report.add(f"compression policy {table}", window(compression.get("compress_after")) == compress_after,
                   f"compress_after = {compression.get('compress_after')}")
        report.add(f"compression enabled {table}", table in compressed, str(table in compressed))


def _compressed_writes(conn: psycopg.Connection, report: ValidationReport) -> None:
    """Migration 0009: no cap on the tuples one write may decompress (a day file into a compressed chunk)."""
    row = conn.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = current_database() AND s.setrole = 0").fetchone()
    settings = dict(x.split("=", 1) for x in (row[0] if row else []))
    value = settings.get(schema.DECOMPRESSION_LIMIT_GUC)
    report.add("writes into compressed chunks", value == "0",
               "no decompression limit" if value == "0" else f"{schema.DECOMPRESSION_LIMIT_GUC} = {value}")


def _clock(conn: psycopg.Connection, report: ValidationReport, *, own: bool = True) -> None:
    """Migration 0009: the clock the lifecycle follows is KapMan's, and the policy jobs agree.
    ``own``: the database was just built, so it recorded this process's clock (an upgrade leaves the
    warehouse's clock as it was: only the jobs must agree with it)."""
    recorded = lifecycle.read_clock(conn)
    expected = lifecycle.process_clock()
    ok = recorded.mode == expected.mode or not own
    report.lifecycle_clock = recorded
    report.add("lifecycle clock", ok, recorded.describe() if ok else f"recorded {recorded}, expected {expected}")
    jobs = lifecycle.policy_jobs(conn)
    if jobs:
        wrong = [f"{j.proc_name} {j.hypertable}" for j in jobs if j.scheduled != recorded.policies_scheduled]
        state = "scheduled" if recorded.policies_scheduled else "paused"
        report.add("policy jobs follow the clock", not wrong,
                   f"{len(jobs)} {state}" if not wrong else f"not {state}: {', '.join(wrong)}")


def _empty(conn: psycopg.Connection, report: ValidationReport) -> None:
    nonempty = []
    for table in sorted(schema.EXPECTED_TABLES - schema.METADATA_TABLES):
        row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
            sql.Identifier("public", table))).fetchone()
        if row and row[0]:
            nonempty.append(table)
    report.add("data tables empty", not nonempty, "all empty" if not nonempty else f"rows in {nonempty}")


def validate(conn: psycopg.Connection, info: ServerInfo, *, fresh: bool = True) -> ValidationReport:
    """Every invariant of the schema.  ``fresh``: the database was just built, so it is empty and
    recorded this process's clock; ``fresh=False`` for one that keeps its data and its recorded clock
    (an upgrade in place)."""
    report = ValidationReport()
    _extensions(conn, report)
    _tables(conn, report)
    _hypertables(conn, report)
    _options_key(conn, report)
    _case_sensitive_symbols(conn, report)
    _splits_key(conn, report)
    _lifecycle(conn, info, report, own_clock=fresh)
    if fresh:
        _empty(conn, report)
    return report
