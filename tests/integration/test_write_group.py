"""``bulk.write_group`` on a group that is already stored (a replay, a rerun, A3 after A2).

Only changed rows are written and counted as updated; unchanged rows are not touched (the same
row version stays); a rewritten row keeps its ``created_at``; columns another writer owns stay;
the staging table of a connection serves one group after another.  On the community edition a
change decompresses only the compressed batches holding the changed rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import psycopg
import pytest

from kapman.db import bulk, schema
from kapman.ingest.options.normalise import COLUMNS, TYPES
from kapman.jobs import snapshots
from tests.support import database

pytestmark = pytest.mark.integration

SNAP = datetime(2025, 3, 3, 21, tzinfo=UTC)
TICKER, OTHER = UUID(int=7), UUID(int=8)
EXPIRY = date(2025, 4, 17)


@pytest.fixture
def url(new_rebuilt_db: database.NewRebuiltDb, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("KAPMAN_NOW", "2025-12-19")   # SNAP lies in the 120-day compression window
    with new_rebuilt_db("wg_") as scratch:
        yield scratch


def contract(strike: int, bid: float, ticker: UUID = TICKER) -> tuple:
    """One options_chains row of every column the options writer writes."""
    return (SNAP, ticker, EXPIRY, Decimal(strike), "C", f"O:T{strike}", 100, 150.0, bid, bid + 0.1, None, 10,
            100, 0.3, 0.5, 0.01, -0.02, 0.1, None, None, "DELAYED", None)


def write(conn: psycopg.Connection, rows: Sequence[tuple], *, replace: bool = True,
          ticker: UUID = TICKER) -> bulk.MergeCounts:
    with conn.transaction(), conn.cursor() as cur:
        return write_in(cur, rows, replace=replace, ticker=ticker)


def write_in(cur: psycopg.Cursor, rows: Sequence[tuple], *, replace: bool = True,
             ticker: UUID = TICKER) -> bulk.MergeCounts:
    return bulk.write_group(cur, target="options_chains", columns=COLUMNS,
                            payload=bulk.encode_binary_rows(TYPES, rows), rows=len(rows),
                            group={"time": SNAP, "ticker_id": ticker}, lock_class=1, key=schema.OPTIONS_KEY,
                            replace=replace)


def stored(conn: psycopg.Connection, ticker: UUID = TICKER) -> dict[int, tuple]:
    """strike -> (bid, created_at, updated_at, row version) of the ticker's snapshot."""
    rows = conn.execute("SELECT strike_price::int, bid, created_at, updated_at, xmin::text || ctid::text "
                        "FROM options_chains WHERE time = %s AND ticker_id = %s", (SNAP, ticker)).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_a_replay_with_every_row_changed_rewrites_each_keeping_created_at(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        assert write(conn, [contract(s, 1.0) for s in range(100, 150)]) == bulk.MergeCounts(50, 0)
        before = stored(conn)
        assert write(conn, [contract(s, 1.25) for s in range(100, 150)]) == bulk.MergeCounts(0, 50, 0)
        after = stored(conn)
    assert sorted(after) == list(range(100, 150))
    assert {a[0] for a in after.values()} == {1.25}
    assert all(after[s][1] == before[s][1] < after[s][2] for s in after)   # created_at kept, updated_at now
    full = conn_rows(url)
    assert full == [contract(s, 1.25) for s in range(100, 150)]            # every column as written


def conn_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        cols = ", ".join(COLUMNS)
        rows = conn.execute(f"SELECT {cols} FROM options_chains ORDER BY strike_price").fetchall()  # noqa: S608
    return [(*r[:3], Decimal(int(r[3])), *r[4:]) for r in rows]


def test_a_rerun_writes_only_what_changed_and_counts_each_outcome(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        write(conn, [contract(s, 1.0) for s in range(100, 105)])
        before = stored(conn)
        rerun = [contract(100, 1.0), contract(101, 2.0), contract(102, 1.0), contract(104, 2.0), contract(105, 3.0)]
        assert write(conn, rerun) == bulk.MergeCounts(inserted=1, updated=2, removed=1)
        after = stored(conn)
        assert write(conn, rerun) == bulk.MergeCounts(0, 0, 0)                 # all unchanged now
        assert stored(conn) == after
    assert sorted(after) == [100, 101, 102, 104, 105]                          # 103 was absent: removed
    assert {s: a[0] for s, a in after.items()} == {100: 1.0, 101: 2.0, 102: 1.0, 104: 2.0, 105: 3.0}
    assert after[100] == before[100] and after[102] == before[102]             # the same row versions
    assert after[101][1] == before[101][1] and after[101][3] != before[101][3]  # rewritten, created_at kept


def test_a_replay_keeps_each_rows_own_created_at(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        write(conn, [contract(100, 1.0), contract(101, 1.0)])
        assert write(conn, [contract(s, 1.0) for s in (100, 101, 102)]) == bulk.MergeCounts(1, 0, 0)
        first = stored(conn)
        assert write(conn, [contract(s, 2.0) for s in (100, 101, 102, 103)]) == bulk.MergeCounts(1, 3, 0)
        second = stored(conn)
        assert write(conn, [contract(s, 3.0) for s in (100, 101, 102, 103)]) == bulk.MergeCounts(0, 4, 0)
        third = stored(conn)
    assert first[100][1] == first[101][1] < first[102][1]                    # two transactions wrote them
    assert [second[s][1] for s in (100, 101, 102)] == [first[s][1] for s in (100, 101, 102)]
    assert second[103][1] > first[102][1]
    assert {s: v[1] for s, v in third.items()} == {s: v[1] for s, v in second.items()}
    assert {v[0] for v in third.values()} == {3.0}


def test_without_replace_absent_rows_stay(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        write(conn, [contract(s, 1.0) for s in range(100, 103)])
        assert write(conn, [contract(100, 5.0)], replace=False) == bulk.MergeCounts(0, 1, 0)
        assert {s: a[0] for s, a in stored(conn).items()} == {100: 5.0, 101: 1.0, 102: 1.0}


def test_one_transaction_writes_group_after_group_and_a_rollback_loses_nothing(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for ticker in (TICKER, OTHER):
            write(conn, [contract(s, 1.0, ticker) for s in range(100, 104)], ticker=ticker)
        with conn.transaction(), conn.cursor() as cur:                        # staging reused in one transaction
            assert write_in(cur, [contract(s, 2.0) for s in range(100, 103)]) == bulk.MergeCounts(0, 3, 1)
            assert write_in(cur, [contract(100, 3.0, OTHER)], ticker=OTHER, replace=False) == \
                bulk.MergeCounts(0, 1, 0)
        with pytest.raises(psycopg.errors.QueryCanceled), conn.transaction(), conn.cursor() as cur:
            write_in(cur, [contract(100, 9.0)])
            cur.execute("SET LOCAL statement_timeout = 1")
            cur.execute("SELECT pg_sleep(1)")
        assert write(conn, [contract(s, 2.0) for s in range(100, 104)]) == bulk.MergeCounts(1, 0, 0)
        assert {s: a[0] for s, a in stored(conn).items()} == {100: 2.0, 101: 2.0, 102: 2.0, 103: 2.0}
        assert {s: a[0] for s, a in stored(conn, OTHER).items()} == {100: 3.0, 101: 1.0, 102: 1.0, 103: 1.0}
        assert conn.execute("SELECT current_setting('enable_nestloop')").fetchone() == ("on",)


def test_a_staging_table_dropped_with_its_transaction_is_made_again(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        write(conn, [contract(100, 1.0)])
        with pytest.raises(psycopg.errors.QueryCanceled), conn.transaction(), conn.cursor() as cur:
            write_in(cur, [contract(100, 2.0)])      # the connection's first staging table, created here
            cur.execute("SET LOCAL statement_timeout = 1")
            cur.execute("SELECT pg_sleep(1)")
        assert write(conn, [contract(100, 2.0)]) == bulk.MergeCounts(0, 1, 0)


def a2_row(ticker: UUID, rsi: float) -> tuple:
    return (SNAP, ticker, f'{{"rsi": {rsi}}}', '{"close": 1}', datetime.now(UTC), "v1")


def write_snapshots(conn: psycopg.Connection, columns: Sequence[str], rows: list[tuple]) -> bulk.MergeCounts:
    return snapshots.write(conn, columns, snapshots.encode(columns, rows),
                           compare=[c for c in columns if c not in ("time", "ticker_id", "ta_computed_at",
                                                                    "dealer_computed_at")], time=SNAP)


def test_a2_rewrites_its_columns_and_keeps_a3s(url: str) -> None:
    a3 = (SNAP, TICKER, '{"gex": 5}', SNAP, datetime.now(UTC), "d1")
    with psycopg.connect(url, autocommit=True) as conn:
        write_snapshots(conn, snapshots.A2_COLUMNS, [a2_row(TICKER, 50), a2_row(OTHER, 60)])
        assert write_snapshots(conn, snapshots.A3_COLUMNS, [a3]) == bulk.MergeCounts(0, 1)
        before = conn.execute("SELECT ticker_id, created_at, xmin::text FROM daily_snapshots ORDER BY ticker_id"
                              ).fetchall()
        counts = write_snapshots(conn, snapshots.A2_COLUMNS, [a2_row(TICKER, 51), a2_row(OTHER, 60),
                                                              a2_row(UUID(int=9), 70)])
        rows = conn.execute("SELECT ticker_id, technical_indicators_json->>'rsi', dealer_metrics_json->>'gex', "
                            "created_at, xmin::text FROM daily_snapshots ORDER BY ticker_id").fetchall()
    assert counts == bulk.MergeCounts(inserted=1, updated=1)       # OTHER: only ta_computed_at differs
    assert [r[:3] for r in rows] == [(TICKER, "51", "5"), (OTHER, "60", None), (UUID(int=9), "70", None)]
    assert rows[0][3] == before[0][1] and rows[1][3:] == before[1][1:]


# --- compressed chunks (community edition) --------------------------------------------------------

def _compressed_rows(conn: psycopg.Connection, hypertable: str) -> int:
    """Rows of ``hypertable`` still held in compressed batches."""
    total = 0
    for schema_name, table in conn.execute(
            "SELECT z.schema_name, z.table_name FROM _timescaledb_catalog.chunk k "
            "JOIN _timescaledb_catalog.hypertable h ON h.id = k.hypertable_id "
            "JOIN _timescaledb_catalog.chunk z ON z.id = k.compressed_chunk_id WHERE h.table_name = %s",
            (hypertable,)).fetchall():
        total += conn.execute(f'SELECT coalesce(sum(_ts_meta_count), 0) FROM "{schema_name}"."{table}"'  # noqa: S608
                              ).fetchone()[0]  # type: ignore[index]
    return total


def _compress(conn: psycopg.Connection, hypertable: str) -> None:
    conn.execute("SELECT compress_chunk(c) FROM show_chunks(%s) c", (hypertable,))


def _bids(conn: psycopg.Connection, ticker: UUID = TICKER) -> dict[int, float]:
    return dict(conn.execute("SELECT strike_price::int, bid FROM options_chains WHERE time = %s AND ticker_id = %s",
                             (SNAP, ticker)).fetchall())


@pytest.mark.community
def test_a_changed_contract_decompresses_only_its_batch(url: str) -> None:
    chain = [contract(s, 1.0) for s in range(1, 2501)]          # batches of 1,000 ordered by strike
    with psycopg.connect(url, autocommit=True) as conn:
        write(conn, chain)
        _compress(conn, "options_chains")
        assert write(conn, chain) == bulk.MergeCounts(0, 0, 0)
        assert _compressed_rows(conn, "options_chains") == 2500   # unchanged: nothing decompressed
        chain[1499] = contract(1500, 2.0)
        assert write(conn, chain) == bulk.MergeCounts(0, 1, 0)
        assert _compressed_rows(conn, "options_chains") == 1500   # the batch of strikes 1001-2000 only
        bids = _bids(conn)
    assert len(bids) == 2500 and bids[1500] == 2.0 and bids[1499] == 1.0


@pytest.mark.community
def test_a_replay_of_every_contract_leaves_other_underlyings_compressed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        write(conn, [contract(s, 1.0) for s in range(1, 2501)])
        write(conn, [contract(s, 1.0, OTHER) for s in range(1, 1001)], ticker=OTHER)
        _compress(conn, "options_chains")
        assert write(conn, [contract(s, 2.0) for s in range(1, 2501)]) == bulk.MergeCounts(0, 2500, 0)
        assert _compressed_rows(conn, "options_chains") == 1000   # the other underlying's segment
        assert set(_bids(conn).values()) == {2.0} and len(_bids(conn)) == 2500
        assert set(_bids(conn, OTHER).values()) == {1.0}


@pytest.mark.community
def test_a2_change_decompresses_only_the_batch_of_its_ticker(url: str) -> None:
    tickers = [UUID(int=i) for i in range(1, 2501)]               # batches of 1,000 ordered by ticker
    with psycopg.connect(url, autocommit=True) as conn:
        write_snapshots(conn, snapshots.A2_COLUMNS, [a2_row(t, 50) for t in tickers])
        _compress(conn, "daily_snapshots")
        rows = [a2_row(t, 51 if t == tickers[1499] else 50) for t in tickers]
        assert write_snapshots(conn, snapshots.A2_COLUMNS, rows) == bulk.MergeCounts(0, 1)
        assert _compressed_rows(conn, "daily_snapshots") == 1500
        changed = conn.execute("SELECT technical_indicators_json->>'rsi' FROM daily_snapshots WHERE ticker_id = %s",
                               (tickers[1499],)).fetchone()
    assert changed == ("51",)


OHLCV_TYPES = ("uuid", "date", "float8", "float8", "float8", "float8", "float8", "int8", "float8")


def _bars(day: date, volume: float, tickers: int = 300) -> bytes:
    return bulk.encode_binary_rows(OHLCV_TYPES, [(UUID(int=t), day, 10.0, 11.0, 9.0, 10.5, volume, 7, None)
                                                 for t in range(1, tickers + 1)])


@pytest.mark.community
def test_day_after_day_on_one_connection_into_a_compressed_chunk_finds_each_days_rows(url: str) -> None:
    """A write that leaves a compressed chunk partly decompressed moves other days' rows out of its
    batches. A plan the server had cached for "does this day have rows?" (psycopg prepares a query
    run five times) still read the chunk as compressed and answered no for the next day, whose
    rows then failed the COPY on their key: a month's --force backfill stopped at its sixth day."""
    from kapman.db.connect import connect
    from kapman.ingest.ohlcv_write import COLUMNS as OHLCV

    days = [date(2025, 10, d) for d in (1, 2, 3, 6, 7, 8, 9, 10, 13, 14)]
    with connect(url) as conn:
        for day in days:
            with conn.transaction(), conn.cursor() as cur:
                bulk.write_group(cur, target="ohlcv", columns=OHLCV, payload=_bars(day, 100.0), rows=300,
                                 group={"date": day}, lock_class=2, key=("ticker_id", "date"))
        _compress(conn, "ohlcv")
        for day in days:   # every row of every day changed, one day a transaction, as a backfill writes them
            with conn.transaction(), conn.cursor() as cur:
                counts = bulk.write_group(cur, target="ohlcv", columns=OHLCV, payload=_bars(day, 200.0), rows=300,
                                          group={"date": day}, lock_class=2, key=("ticker_id", "date"))
            assert counts == bulk.MergeCounts(0, 300, 0), day
        assert conn.execute("SELECT count(*), min(volume), max(volume) FROM ohlcv").fetchone() == (3000, 200.0, 200.0)
