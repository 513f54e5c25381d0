"""Writes and the ledger on compressed chunks (issue 28 items 2-3).

A rewrite that changes nothing leaves compressed chunks compressed; a change decompresses only the
segments it touches, and KapMan's lifecycle compresses the chunk again.  The ledger reconciliation
probes one day at a time and never scans the table.  The compressed cases need the community
edition (marked ``community``: they skip elsewhere); the ledger's answers are checked on both.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from kapman.db import bulk, chunks, retention, schema
from kapman.ingest import ohlcv_write
from tests.support import database

pytestmark = pytest.mark.integration

FROZEN = "2025-12-19"
#: Enough tickers that a 30-day chunk holds more than one compressed batch (1,000 rows).
TICKERS = [uuid.UUID(int=i) for i in range(1, 61)]
DAY = date(2025, 3, 3)          # inside the 120-day compression window of the frozen clock


@pytest.fixture
def scratch(new_rebuilt_db: database.NewRebuiltDb, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database as a rebuild on the frozen clock leaves it."""
    monkeypatch.setenv("KAPMAN_NOW", FROZEN)
    with new_rebuilt_db("cw_") as url:
        yield url


@pytest.fixture
def compressed(scratch: str) -> str:
    """Bars for 2025 of sixty tickers, with the chunks older than 120 days compressed by KapMan's
    lifecycle on the frozen clock (tests using it are marked ``community``)."""
    _fill(scratch)
    with psycopg.connect(scratch, autocommit=True) as c:
        assert retention.enforce_retention(c).chunks_compressed > 0
    assert _status(scratch, DAY) == chunks.STATUS_COMPRESSED
    return scratch


def _fill(url: str, first: str = "2025-01-02", last: str = FROZEN) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("""INSERT INTO ohlcv (ticker_id, date, open, high, low, close, volume, transactions)
                     SELECT t, d::date, 10 + i, 11 + i, 9 + i, 10.5 + i, 1000 * i, 7
                     FROM generate_series(%s::date, %s::date, interval '1 day') d,
                          unnest(%s::uuid[]) WITH ORDINALITY AS x(t, i)""", (first, last, TICKERS))
        c.execute("""INSERT INTO ingest_files (source, key, trading_date, etag, rows_read, rows_loaded,
                                              rows_rejected, rows_unknown)
                     SELECT 'file://m', 'day/' || d::date, d::date, 'e', 60, 60, 0, 0
                     FROM generate_series(%s::date, %s::date, interval '1 day') d""", (first, last))


def _status(url: str, day: date) -> int:
    with psycopg.connect(url) as c:
        found = [ch for ch in chunks.chunks(c, "ohlcv") if ch.start <= day < ch.end]
    assert len(found) == 1
    return found[0].status


def _batched(c: psycopg.Connection, day: date) -> int:
    """Rows of the ohlcv chunk holding ``day`` that are still in compressed batches."""
    name = next(ch.name for ch in chunks.chunks(c, "ohlcv") if ch.start <= day < ch.end)
    found = c.execute("SELECT z.schema_name, z.table_name FROM _timescaledb_catalog.chunk k "
                      "JOIN _timescaledb_catalog.chunk z ON z.id = k.compressed_chunk_id WHERE k.table_name = %s",
                      (name,)).fetchone()
    assert found is not None
    return int(c.execute(f"SELECT coalesce(sum(_ts_meta_count), 0) FROM {found[0]}.{found[1]}").fetchone()[0])  # type: ignore[index]


def _day_payload(cur: psycopg.Cursor, day: date, *, bump: uuid.UUID | None = None,
                 without: uuid.UUID | None = None) -> tuple[np.ndarray, bytes]:
    """The stored day as a binary COPY payload of ``ohlcv_write.COLUMNS`` (the form the loader
    writes), with ``bump``'s close raised by one and ``without``'s row left out."""
    ids = [t for t in TICKERS if t != without]
    cols = sql.SQL(", ").join(sql.SQL("CASE WHEN ticker_id = %s THEN close + 1 ELSE close END") if c == "close"
                              else sql.Identifier(c) for c in ohlcv_write.COLUMNS)
    with cur.copy(sql.SQL("COPY (SELECT {} FROM ohlcv WHERE date = %s AND ticker_id = ANY(%s) ORDER BY ticker_id) "
                          "TO STDOUT (FORMAT BINARY)").format(cols), (bump, day, ids)) as copy:
        payload = b"".join(bytes(block) for block in copy)
    return np.array([list(t.bytes) for t in ids], dtype=np.uint8), payload


def _write(url: str, day: date, **change: uuid.UUID) -> ohlcv_write.DayCounts:
    with psycopg.connect(url) as c, c.transaction(), c.cursor() as cur:
        ids, payload = _day_payload(cur, day, **change)
        return ohlcv_write.write_day(cur, day, ids, payload)


# --- writes into compressed chunks ---------------------------------------------------------------

@pytest.mark.community
def test_an_unchanged_rewrite_leaves_the_chunk_compressed(compressed: str) -> None:
    counts = _write(compressed, DAY)
    assert counts == ohlcv_write.DayCounts(inserted=0, updated=0, unchanged=60, removed=0)
    assert _status(compressed, DAY) == chunks.STATUS_COMPRESSED     # nothing decompressed


@pytest.mark.community
def test_a_change_is_written_and_compressed_again_by_the_lifecycle(compressed: str) -> None:
    counts = _write(compressed, DAY, bump=TICKERS[1])
    assert counts == ohlcv_write.DayCounts(inserted=0, updated=1, unchanged=59, removed=0)
    assert _status(compressed, DAY) == chunks.STATUS_COMPRESSED | chunks.STATUS_PARTIAL
    with psycopg.connect(compressed, autocommit=True) as c:
        report = retention.enforce_retention(c)
        closes = c.execute("SELECT array_agg(close ORDER BY ticker_id) FROM ohlcv WHERE date = %s",
                           (DAY,)).fetchone()[0][:3]  # type: ignore[index]
    assert report.chunks_compressed == 1 and "1 chunk(s) compressed" in report.describe()
    assert _status(compressed, DAY) == chunks.STATUS_COMPRESSED
    assert closes == [11.5, 13.5, 13.5]        # the second ticker's close raised by one


@pytest.mark.community
def test_a_vanished_ticker_is_deleted_alone(compressed: str) -> None:
    counts = _write(compressed, DAY, without=TICKERS[0])
    assert counts == ohlcv_write.DayCounts(inserted=0, updated=0, unchanged=59, removed=1)
    with psycopg.connect(compressed) as c:
        kept = c.execute("SELECT count(*), bool_and(ticker_id <> %s) FROM ohlcv WHERE date = %s",
                         (TICKERS[0], DAY)).fetchone()
        batched, total = _batched(c, DAY), c.execute("SELECT count(*) FROM ohlcv WHERE date BETWEEN %s AND %s",
                                                      (DAY.replace(day=1), DAY.replace(day=28))).fetchone()[0]  # type: ignore[index]
    assert kept == (59, True)
    assert batched >= total - 1000 > 0          # one batch came out of compression at most


@pytest.mark.community
def test_replace_into_a_compressed_snapshot_touches_only_what_changes(compressed: str) -> None:
    snap = "2025-03-03 21:00:00+00"
    columns = ("time", "ticker_id", "expiration_date", "strike_price", "option_type", "contract_symbol")
    with psycopg.connect(compressed, autocommit=True) as c:
        c.execute("""INSERT INTO options_chains (time, ticker_id, expiration_date, strike_price, option_type,
                                                contract_symbol)
                     SELECT %s, %s, '2025-04-17', s, 'C', 'O:T' || s FROM generate_series(100, 104) s""",
                  (snap, TICKERS[0]))
        c.execute("SELECT compress_chunk(c) FROM show_chunks('options_chains') c")

    def write(strikes: range) -> bulk.MergeCounts:
        with psycopg.connect(compressed) as c, c.transaction(), c.cursor() as cur:
            with cur.copy("COPY (SELECT %s::timestamptz, %s::uuid, DATE '2025-04-17', s::numeric(12,4), 'C'::char(1), "
                          "'O:T' || s FROM unnest(%s::int[]) s) TO STDOUT (FORMAT BINARY)",
                          (snap, TICKERS[0], list(strikes))) as copy:
                payload = b"".join(bytes(block) for block in copy)
            return bulk.write_group(cur, target="options_chains", columns=columns, payload=payload,
                                    rows=len(strikes), group={"time": snap, "ticker_id": TICKERS[0]},
                                    lock_class=1, key=schema.OPTIONS_KEY, replace=True)

    assert write(range(100, 105)) == bulk.MergeCounts(inserted=0, updated=0, removed=0)
    with psycopg.connect(compressed) as c:
        assert {ch.status for ch in chunks.chunks(c, "options_chains")} == {chunks.STATUS_COMPRESSED}
    assert write(range(101, 106)) == bulk.MergeCounts(inserted=1, updated=0, removed=1)
    with psycopg.connect(compressed) as c:
        strikes = c.execute("SELECT array_agg(strike_price::int ORDER BY strike_price) FROM options_chains"
                            ).fetchone()[0]  # type: ignore[index]
    assert strikes == [101, 102, 103, 104, 105]


# --- the ledger -------------------------------------------------------------------------------------

def _ledger_days(url: str, *days: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("""INSERT INTO ingest_files (source, key, trading_date, etag, rows_read, rows_loaded,
                                              rows_rejected, rows_unknown)
                     SELECT 'file://m', 'old/' || d, d, 'e', 3, 3, 0, 0 FROM unnest(%s::date[]) d""", (list(days),))


def test_the_ledger_forgets_days_outside_every_chunk_and_emptied_days(scratch: str) -> None:
    _fill(scratch, "2025-06-02", "2025-06-30")
    _ledger_days(scratch, "2023-05-01", "2024-12-31")        # claimed, but no chunk covers them
    with psycopg.connect(scratch, autocommit=True) as c:
        c.execute("DELETE FROM ohlcv WHERE date = '2025-06-10'")
        with c.transaction():
            removed = retention.reconcile_ledger(c)
        with c.transaction():
            again = retention.reconcile_ledger(c)
        left = c.execute("SELECT count(*) FROM ingest_files").fetchone()[0]  # type: ignore[index]
    assert removed == [date(2023, 5, 1), date(2024, 12, 31), date(2025, 6, 10)]
    assert again == [] and left == 28


@pytest.mark.community
def test_the_ledger_on_compressed_chunks(compressed: str) -> None:
    _ledger_days(compressed, "2024-12-30")
    with psycopg.connect(compressed, autocommit=True) as c:
        c.execute("DELETE FROM ohlcv WHERE date = '2025-02-12'")       # inside a compressed chunk
        with c.transaction():
            removed = retention.reconcile_ledger(c)
        with c.transaction():
            before_cutoff = retention.reconcile_ledger(c, before=date(2025, 1, 1))
    assert removed == [date(2024, 12, 30), date(2025, 2, 12)] and before_cutoff == []


# --- daily_snapshots' lifecycle (migration 0012) ---------------------------------------------------

def _snapshots(url: str, first: str, last: str = FROZEN) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("""INSERT INTO daily_snapshots (time, ticker_id, technical_indicators_json)
                     SELECT d + interval '21 hours', t, jsonb_build_object('rsi', 50 + i, 'sma_20', 10 + i)
                     FROM generate_series(%s::date, %s::date, interval '1 day') d,
                          unnest(%s::uuid[]) WITH ORDINALITY AS x(t, i)""", (first, last, TICKERS[:3]))


def test_snapshots_are_kept_for_the_window_of_the_data_they_derive_from(scratch: str, license_name: str) -> None:
    _snapshots(scratch, "2023-06-01")
    with psycopg.connect(scratch, autocommit=True) as c:
        report = retention.enforce_retention(c)
        oldest = c.execute("SELECT min(time)::date FROM daily_snapshots").fetchone()[0]  # type: ignore[index]
        states = {ch.compressed for ch in chunks.chunks(c, "daily_snapshots") if ch.end <= date(2025, 8, 21)}
    assert report.dropped["daily_snapshots"] and report.cutoff == date(2023, 12, 20)
    assert date(2023, 12, 13) <= oldest <= date(2023, 12, 20)     # 7-day chunks drop whole
    if license_name == "timescale":      # compressed after 120 days where the edition can
        assert report.compressed["daily_snapshots"] and states == {True}
    else:
        assert "daily_snapshots" not in report.compressed and states == {False}


@pytest.mark.community
def test_each_policy_is_validated_against_its_recorded_window(scratch: str) -> None:
    from kapman.db.capabilities import server_info
    from kapman.db.validate import validate

    def check(c: psycopg.Connection) -> tuple[bool, str]:
        found = {ch.name: ch for ch in validate(c, server_info(c), fresh=False).checks}
        return found["retention policy daily_snapshots"].ok, found["retention policy daily_snapshots"].detail

    with psycopg.connect(scratch, autocommit=True) as c:
        assert check(c) == (True, "drop_after = 730 days")
        job, config = c.execute("SELECT job_id, config FROM timescaledb_information.jobs WHERE proc_name = "
                                "'policy_retention' AND hypertable_name = 'daily_snapshots'").fetchone()  # type: ignore[misc]
        c.execute("SELECT alter_job(%s, config => %s)", (job, Jsonb({**config, "drop_after": "365 days"})))
        assert check(c) == (False, "drop_after = 365 days")          # the policy left the recorded window
        c.execute("UPDATE hypertable_lifecycle SET drop_after = '365 days' WHERE hypertable_name = 'daily_snapshots'")
        assert check(c) == (True, "drop_after = 365 days")           # a window configured in both places


@pytest.mark.community
def test_a_chunk_another_session_compresses_meanwhile_does_not_fail_the_lifecycle(scratch: str) -> None:
    """The policy job (or another run's retention) compressing a chunk the lifecycle is about to:
    ``compress_chunk`` waited for it, then failed with "already compressed", and the retention step,
    its ledger repair with it, failed after a successful run."""
    _fill(scratch)
    early = date(2025, 1, 20)
    with psycopg.connect(scratch) as other:
        name = next(f"{ch.schema}.{ch.name}" for ch in chunks.chunks(other, "ohlcv") if ch.start <= early < ch.end)
        other.execute("SELECT compress_chunk(%s::regclass)", (name,))        # not committed yet
        with ThreadPoolExecutor(1) as pool, psycopg.connect(scratch, autocommit=True) as c:
            run = pool.submit(retention.enforce_retention, c)
            time.sleep(1.0)                 # the lifecycle now waits for this session's compression
            other.commit()
            report = run.result(timeout=60)
    assert report.mode == "paused-policy" and report.chunks_compressed > 0
    assert name not in report.compressed["ohlcv"]       # compressed by the other session, not counted
    assert _status(scratch, early) == chunks.STATUS_COMPRESSED
    assert _status(scratch, date(2025, 7, 1)) == chunks.STATUS_COMPRESSED
