"""A6.1: options_chains as a TimescaleDB hypertable with its lifecycle, per the runbook's SQL."""

from __future__ import annotations

import psycopg
import pytest

from kapman.db import retention
from tests.support import database

pytestmark = pytest.mark.integration

POLICY_SQL = """
    SELECT j.job_id, j.proc_name, j.hypertable_schema, j.hypertable_name, j.schedule_interval, j.config
    FROM timescaledb_information.jobs j
    WHERE j.proc_name = %s AND j.hypertable_schema = 'public'
      AND j.hypertable_name IN ('ohlcv', 'options_chains')
    ORDER BY j.hypertable_name;"""


def test_options_chains_is_a_hypertable(conn: psycopg.Connection) -> None:
    rows = conn.execute("""
        SELECT hypertable_schema, hypertable_name, num_chunks, compression_enabled
        FROM timescaledb_information.hypertables
        WHERE hypertable_schema='public' AND hypertable_name='options_chains';""").fetchall()
    assert len(rows) == 1 and rows[0][:3] == ("public", "options_chains", 0)


def test_unique_key_shape(conn: psycopg.Connection) -> None:
    rows = conn.execute("""
        SELECT conname, pg_get_constraintdef(c.oid) AS definition
        FROM pg_constraint c
        JOIN pg_class r ON r.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE n.nspname='public' AND r.relname='options_chains' AND c.contype IN ('p','u')
        ORDER BY c.contype, c.conname;""").fetchall()
    assert rows == [("options_chains_pkey",
                     "PRIMARY KEY (\"time\", ticker_id, expiration_date, strike_price, option_type)")]


def test_column_types(conn: psycopg.Connection) -> None:
    types = dict(conn.execute("""
        SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = 'public.options_chains'::regclass AND attnum > 0 AND NOT attisdropped""").fetchall())
    assert types["time"] == "timestamp with time zone"
    assert types["ticker_id"] == "uuid"
    assert types["expiration_date"] == "date"
    assert types["strike_price"] == "numeric(12,4)"
    assert types["option_type"] == "character(1)"
    for col in ("bid", "ask", "last", "implied_volatility", "delta", "gamma", "theta", "vega",
                "underlying_price"):
        assert types[col] == "double precision", col
    assert types["volume"] == types["open_interest"] == "bigint"
    assert types["contract_symbol"] == "text"
    assert types["created_at"] == "timestamp with time zone"


def test_option_type_is_constrained(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price, option_type, "
                     "contract_symbol) VALUES (now(), uuid_generate_v4(), current_date, 100, 'X', 'O:X')")
    conn.rollback()


def test_no_contracts_table(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_schema='public' AND table_name ILIKE '%contract%'").fetchall() == []


@pytest.mark.community
def test_community_edition_has_both_policies(conn: psycopg.Connection) -> None:
    retention_rows = conn.execute(POLICY_SQL, ("policy_retention",)).fetchall()
    compression_rows = conn.execute(POLICY_SQL, ("policy_compression",)).fetchall()
    assert [(r[3], r[5]["drop_after"]) for r in retention_rows] == [
        ("ohlcv", "730 days"), ("options_chains", "730 days")]
    assert [(r[3], r[5]["compress_after"]) for r in compression_rows] == [
        ("ohlcv", "120 days"), ("options_chains", "120 days")]
    enabled = conn.execute("SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables "
                           "WHERE hypertable_name IN ('ohlcv','options_chains') ORDER BY 1").fetchall()
    assert enabled == [("ohlcv", True), ("options_chains", True)]
    modes = dict(conn.execute("SELECT hypertable_name, retention_mode FROM hypertable_lifecycle").fetchall())
    assert modes == {"ohlcv": "policy", "options_chains": "policy", "daily_snapshots": "policy"}


def test_apache_edition_records_application_retention(conn: psycopg.Connection, license_name: str) -> None:
    if license_name == "timescale":
        pytest.skip("community edition: policies are used instead")
    assert conn.execute(POLICY_SQL, ("policy_retention",)).fetchall() == []
    modes = dict(conn.execute("SELECT hypertable_name, retention_mode FROM hypertable_lifecycle").fetchall())
    assert modes == {"ohlcv": "application", "options_chains": "application", "daily_snapshots": "application"}


def test_application_retention_drops_only_old_chunks(new_rebuilt_db: database.NewRebuiltDb,
                                                     license_name: str) -> None:
    if license_name == "timescale":
        pytest.skip("community edition: the retention policy does this")
    from datetime import date

    with new_rebuilt_db("ret_") as url:
        with psycopg.connect(url) as c:
            c.execute("""INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume)
                         SELECT '00000000-0000-0000-0000-000000000001', d::date, 1, 1, 1, 1, 1
                         FROM generate_series(date '2022-01-01', date '2025-12-19', interval '1 day') d""")
            c.execute("""INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price,
                         option_type, contract_symbol)
                         SELECT d, '00000000-0000-0000-0000-000000000001', d::date + 30, 100, 'C', 'O:T'
                         FROM generate_series(timestamptz '2022-01-01 21:00Z', timestamptz '2025-12-19 21:00Z',
                                              interval '1 day') d""")
            c.commit()
            # every snapshot archived (what the archive lacks is kept: test_retention_archive.py)
            report = retention.enforce_retention(c, today=date(2025, 12, 19), unarchived=lambda _c, _t: [])
            assert report.mode == "application"
            assert report.cutoff == date(2023, 12, 20)
            assert report.chunks_dropped > 0 and report.dropped["ohlcv"] and report.dropped["options_chains"]
            oldest = c.execute("SELECT min(date) FROM ohlcv").fetchone()[0]
            # Whole chunks only, like the policy: nothing newer than the cutoff is lost, and what
            # survives older than the cutoff is less than one chunk (30 days) deep.
            assert date(2023, 11, 20) <= oldest <= date(2023, 12, 20)
            assert c.execute("SELECT count(*) FROM ohlcv WHERE date >= '2023-12-20'").fetchone()[0] == \
                (date(2025, 12, 19) - date(2023, 12, 20)).days + 1
            again = retention.enforce_retention(c, today=date(2025, 12, 19), unarchived=lambda _c, _t: [])
            assert again.chunks_dropped == 0   # deterministic and idempotent
